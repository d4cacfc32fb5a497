//! The WORM bucket, read with read-only credentials (`s3:ListBucket`, `s3:GetObject`).

use anyhow::{Context, Result};
use msp_evidence::s3::{Credentials, Endpoint, S3Client};

use super::{ObjectInfo, Source};
use crate::config::S3SourceConfig;

/// Reads the bucket.
pub struct S3Source {
    client: S3Client,
    prefix: String,
    describe: String,
}

impl S3Source {
    /// From `fleet.yaml`'s `source.s3`. Path-style addressing is used for every endpoint
    /// that is not AWS (`*.amazonaws.com`): S3-compatible servers (MinIO, moto) need it, and
    /// AWS wants virtual-host style.
    pub fn from_config(cfg: &S3SourceConfig, prefix: &str) -> Result<S3Source> {
        let creds = Credentials::from_file(&cfg.credentials_file)
            .with_context(|| format!("source.s3.credentials_file {}", cfg.credentials_file.display()))?;
        let url = cfg.endpoint.trim_end_matches('/').to_string();
        let host = reqwest::Url::parse(&url)
            .with_context(|| format!("source.s3.endpoint {url:?} is not a URL"))?
            .host_str()
            .unwrap_or_default()
            .to_string();
        let ep = Endpoint {
            path_style: !host.ends_with(".amazonaws.com"),
            url,
            bucket: cfg.bucket.clone(),
            region: cfg.region.clone(),
            request_timeout_seconds: 30,
        };
        Ok(S3Source::new(S3Client::new(&ep, creds)?, prefix))
    }

    /// From a ready client (tests count its requests).
    pub fn new(client: S3Client, prefix: &str) -> S3Source {
        let describe = format!("s3://{}/{}", client.bucket(), prefix.trim_matches('/'));
        S3Source {
            client,
            prefix: prefix.trim_matches('/').to_string(),
            describe,
        }
    }

    /// HTTP requests sent so far.
    pub fn requests_sent(&self) -> u64 {
        self.client.requests_sent()
    }
}

impl Source for S3Source {
    fn prefix(&self) -> &str {
        &self.prefix
    }

    fn list_after(&self, host_prefix: &str, start_after: Option<&str>) -> Result<Vec<ObjectInfo>> {
        let objects = self
            .client
            .list_objects_v2(host_prefix, start_after)
            .with_context(|| format!("listing {}", self.describe))?;
        Ok(objects
            .into_iter()
            .map(|o| ObjectInfo {
                key: o.key,
                size: o.size,
                last_modified: o.last_modified,
            })
            .collect())
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        Ok(self
            .client
            .get_object(key, None)
            .with_context(|| format!("reading {}", self.describe))?
            .body)
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}
