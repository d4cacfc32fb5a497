//! A small blocking S3 client: exactly the calls the uploader, the startup check and
//! `worm verify` need, signed with SigV4 (`aws-sigv4`), sent with `reqwest::blocking`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use std::path::Path;

use anyhow::{bail, Context, Result};
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::HeaderMap;
use reqwest::Url;
use sha2::{Digest, Sha256};


/// Characters kept as they are in a key segment or query value (RFC 3986 unreserved).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why an S3 call failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// No HTTP answer (connection refused, timeout, reset). The request may or may not have
    /// been applied by the server.
    #[error("{op} {target}: cannot reach {endpoint}: {detail}")]
    Transport {
        op: &'static str,
        target: String,
        endpoint: String,
        detail: String,
    },
    /// The request could not be built or signed (bad endpoint, key or credentials format);
    /// nothing was sent.
    #[error("{op} {target}: {detail}")]
    Local {
        op: &'static str,
        target: String,
        detail: String,
    },
    /// The server answered with an error status.
    #[error("{op} {target}: HTTP {status} {code}: {message}")]
    Service {
        op: &'static str,
        target: String,
        status: u16,
        code: String,
        message: String,
    },
}

impl S3Error {
    /// The S3 error code (`SignatureDoesNotMatch`, `NoSuchKey`, ...), if the server answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            S3Error::Service { code, .. } => Some(code),
            S3Error::Transport { .. } | S3Error::Local { .. } => None,
        }
    }
    /// HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            S3Error::Service { status, .. } => Some(*status),
            S3Error::Transport { .. } | S3Error::Local { .. } => None,
        }
    }
    /// True when the server may have applied the request although we saw no success: a
    /// transport failure or a 5xx. A PUT that failed this way must be checked with HEAD before
    /// it is sent again, or a locked bucket would keep two versions.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            S3Error::Transport { .. } => true,
            S3Error::Service { status, .. } => *status >= 500,
            S3Error::Local { .. } => false,
        }
    }
}

/// What HEAD says about an object (its latest version).
#[derive(Debug, Clone)]
pub struct ObjectHead {
    pub size: u64,
    /// `x-amz-checksum-sha256` (base64) when the server returns it.
    pub checksum_sha256: Option<String>,
    /// ETag without quotes.
    pub etag: String,
    pub version_id: Option<String>,
    pub lock_mode: Option<String>,
    pub retain_until: Option<DateTime<Utc>>,
    /// `Last-Modified`: when this version was stored.
    pub last_modified: Option<DateTime<Utc>>,
}

/// One entry of ListObjectVersions.
#[derive(Debug, Clone)]
pub struct ObjectVersion {
    pub key: String,
    pub version_id: String,
    pub size: u64,
    /// ETag without quotes (empty for delete markers).
    pub etag: String,
    pub is_latest: bool,
    pub delete_marker: bool,
}

/// One entry of ListObjectsV2 (the latest version of a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSummary {
    pub key: String,
    pub size: u64,
    /// `LastModified`: when the latest version was stored, if the server said.
    pub last_modified: Option<DateTime<Utc>>,
}

/// What a successful PutObject returned.
#[derive(Debug, Clone)]
pub struct PutResult {
    pub version_id: Option<String>,
    pub etag: String,
}

/// What a checked GetObject returned.
#[derive(Debug, Clone)]
pub struct GetResult {
    pub body: Vec<u8>,
    /// SHA-256 (hex) of the body.
    pub sha256_hex: String,
    pub version_id: Option<String>,
    /// Which server-side value the body was checked against.
    pub checked_by: &'static str,
}

/// The bucket's protection settings, as the startup check sees them.
#[derive(Debug, Clone)]
pub struct BucketProtection {
    pub versioning: Option<String>,
    pub object_lock_enabled: bool,
}

struct Response {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Where the bucket is: what [`S3Client::new`] needs (the agent builds it from its `worm:`
/// config, the fleet view from its `source.s3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https://s3.REGION.amazonaws.com` or an S3-compatible endpoint, without a trailing `/`.
    pub url: String,
    /// Bucket name.
    pub bucket: String,
    /// SigV4 region.
    pub region: String,
    /// Path-style addressing (`URL/BUCKET/KEY`, for MinIO, moto and other local servers).
    pub path_style: bool,
    /// Per-request timeout.
    pub request_timeout_seconds: u64,
}

/// The client. One per uploader thread; cheap to keep.
pub struct S3Client {
    http: reqwest::blocking::Client,
    endpoint: Url,
    bucket: String,
    region: String,
    path_style: bool,
    creds: Credentials,
    requests: AtomicU64,
}

impl S3Client {
    /// Build a client for the bucket at `ep`.
    pub fn new(ep: &Endpoint, creds: Credentials) -> Result<S3Client> {
        let endpoint = Url::parse(&ep.url)
            .with_context(|| format!("S3 endpoint {:?} is not a URL", ep.url))?;
        let timeout = Duration::from_secs(ep.request_timeout_seconds.max(1));
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("msp-evidence/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(S3Client {
            http,
            endpoint,
            bucket: ep.bucket.clone(),
            region: ep.region.clone(),
            path_style: ep.path_style,
            creds,
            requests: AtomicU64::new(0),
        })
    }

    /// How many HTTP requests this client has sent (tests use it to show there is no hot loop).
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn url(&self, key: Option<&str>, query: &[(&str, &str)]) -> Result<Url> {
        let mut path = String::new();
        let base = self.endpoint.path().trim_end_matches('/');
        path.push_str(base);
        let mut url = self.endpoint.clone();
        if self.path_style {
            path.push('/');
            path.push_str(&self.bucket);
        } else {
            let host = self
                .endpoint
                .host_str()
                .context("worm.endpoint has no host")?;
            url.set_host(Some(&format!("{}.{host}", self.bucket)))
                .with_context(|| {
                    format!(
                        "bucket {:?} does not make a valid host name; use path_style",
                        self.bucket
                    )
                })?;
        }
        match key {
            Some(k) => {
                for seg in k.split('/') {
                    path.push('/');
                    path.extend(utf8_percent_encode(seg, UNRESERVED));
                }
            }
            None => path.push('/'),
        }
        url.set_path(&path);
        if query.is_empty() {
            url.set_query(None);
        } else {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        utf8_percent_encode(k, UNRESERVED),
                        utf8_percent_encode(v, UNRESERVED)
                    )
                })
                .collect();
            url.set_query(Some(&q.join("&")));
        }
        Ok(url)
    }

    /// Sign and send one request. `payload_sha256` is the hex SHA-256 of `body`.
    // One private call site per S3 operation; a parameter struct would only add noise.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        op: &'static str,
        method: reqwest::Method,
        key: Option<&str>,
        query: &[(&str, &str)],
        extra_headers: &[(&str, String)],
        body: Vec<u8>,
        payload_sha256: Option<String>,
    ) -> Result<Response, S3Error> {
        let target = match key {
            Some(k) => format!("s3://{}/{k}", self.bucket),
            None => format!("s3://{}", self.bucket),
        };
        let transport = |detail: String| S3Error::Transport {
            op,
            target: target.clone(),
            endpoint: self.endpoint.to_string(),
            detail,
        };
        let local = |detail: String| S3Error::Local {
            op,
            target: target.clone(),
            detail,
        };
        let url = self.url(key, query).map_err(|e| local(format!("{e:#}")))?;
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let payload_hash = payload_sha256.unwrap_or_else(|| hex::encode(Sha256::digest(&body)));
        let mut headers: Vec<(String, String)> = vec![("host".into(), host)];
        headers.extend(
            extra_headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone())),
        );

        let signed = self
            .sign(method.as_str(), url.as_str(), &headers, &payload_hash)
            .map_err(|e| local(format!("signing: {e:#}")))?;
        let mut req = self.http.request(method, url);
        for (k, v) in headers.iter().chain(signed.iter()) {
            req = req.header(k.as_str(), v.as_str());
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req
            .body(body)
            .send()
            .map_err(|e| transport(error_chain(&e)))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .map_err(|e| transport(format!("reading the response: {}", error_chain(&e))))?
            .to_vec();
        if (200..300).contains(&status) {
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        let (code, message) = parse_error(status, &body);
        Err(S3Error::Service {
            op,
            target,
            status,
            code,
            message,
        })
    }

    fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        payload_hash: &str,
    ) -> Result<Vec<(String, String)>> {
        let creds = aws_credential_types::Credentials::new(
            &self.creds.access_key_id,
            &self.creds.secret_access_key,
            self.creds.session_token.clone(),
            None,
            "msp-agent",
        );
        let identity = creds.into();
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent (no double encoding, no normalisation) and wants
        // x-amz-content-sha256.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .context("SigV4 parameters")?
            .into();
        let signable = SignableRequest::new(
            method,
            url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Precomputed(payload_hash.to_string()),
        )
        .context("SigV4 request")?;
        let (instructions, _sig) = sign(signable, &params)
            .context("SigV4 signing")?
            .into_parts();
        let (signed_headers, _) = instructions.into_parts();
        Ok(signed_headers
            .into_iter()
            .map(|h| (h.name().to_string(), h.value().to_string()))
            .collect())
    }

    /// PutObject with COMPLIANCE retention until `retain_until`, Content-MD5 and
    /// `x-amz-checksum-sha256` (the server rejects the body if either does not match).
    pub fn put_object(
        &self,
        key: &str,
        body: Vec<u8>,
        retain_until: DateTime<Utc>,
    ) -> Result<PutResult, S3Error> {
        let sha = Sha256::digest(&body);
        let md5 = md5::Md5::digest(&body);
        let b64 = base64::engine::general_purpose::STANDARD;
        let content_type = if key.ends_with(".json") {
            "application/json"
        } else {
            "application/octet-stream"
        };
        let headers = [
            ("content-type", content_type.to_string()),
            ("content-md5", b64.encode(md5)),
            ("x-amz-checksum-sha256", b64.encode(sha)),
            ("x-amz-object-lock-mode", "COMPLIANCE".to_string()),
            (
                "x-amz-object-lock-retain-until-date",
                format_retain_until(retain_until),
            ),
        ];
        let r = self.send(
            "PutObject",
            reqwest::Method::PUT,
            Some(key),
            &[],
            &headers,
            body,
            Some(hex::encode(sha)),
        )?;
        Ok(PutResult {
            version_id: header(&r.headers, "x-amz-version-id"),
            etag: unquote(&header(&r.headers, "etag").unwrap_or_default()),
        })
    }

    /// HeadObject (latest version, checksum mode on). `None` if there is no such key.
    pub fn head_object(&self, key: &str) -> Result<Option<ObjectHead>, S3Error> {
        let headers = [("x-amz-checksum-mode", "ENABLED".to_string())];
        match self.send(
            "HeadObject",
            reqwest::Method::HEAD,
            Some(key),
            &[],
            &headers,
            vec![],
            None,
        ) {
            Ok(r) => {
                let size = header(&r.headers, "content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let retain_until = header(&r.headers, "x-amz-object-lock-retain-until-date")
                    .and_then(|v| DateTime::parse_from_rfc3339(&v).ok())
                    .map(|d| d.with_timezone(&Utc));
                Ok(Some(ObjectHead {
                    size,
                    checksum_sha256: header(&r.headers, "x-amz-checksum-sha256"),
                    etag: unquote(&header(&r.headers, "etag").unwrap_or_default()),
                    version_id: header(&r.headers, "x-amz-version-id"),
                    lock_mode: header(&r.headers, "x-amz-object-lock-mode"),
                    retain_until,
                    last_modified: header(&r.headers, "last-modified")
                        .and_then(|v| DateTime::parse_from_rfc2822(&v).ok())
                        .map(|d| d.with_timezone(&Utc)),
                }))
            }
            Err(S3Error::Service { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every version and delete marker under `prefix`, following pagination.
    pub fn list_object_versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>, S3Error> {
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker) = (String::new(), String::new());
        loop {
            let mut q: Vec<(&str, &str)> = vec![("versions", ""), ("prefix", prefix)];
            if !key_marker.is_empty() {
                q.push(("key-marker", &key_marker));
            }
            if !version_marker.is_empty() {
                q.push(("version-id-marker", &version_marker));
            }
            let r = self.send(
                "ListObjectVersions",
                reqwest::Method::GET,
                None,
                &q,
                &[],
                vec![],
                None,
            )?;
            let text = String::from_utf8_lossy(&r.body).into_owned();
            let bad = |detail: String| S3Error::Service {
                op: "ListObjectVersions",
                target: format!("s3://{}/{prefix}", self.bucket),
                status: r.status,
                code: "MalformedResponse".into(),
                message: detail,
            };
            let doc =
                roxmltree::Document::parse(&text).map_err(|e| bad(format!("not XML: {e}")))?;
            let root = doc.root_element();
            for node in root.children().filter(|n| n.is_element()) {
                let name = node.tag_name().name();
                if name != "Version" && name != "DeleteMarker" {
                    continue;
                }
                out.push(ObjectVersion {
                    key: child_text(node, "Key"),
                    version_id: child_text(node, "VersionId"),
                    size: child_text(node, "Size").parse().unwrap_or(0),
                    etag: unquote(&child_text(node, "ETag")),
                    is_latest: child_text(node, "IsLatest") == "true",
                    delete_marker: name == "DeleteMarker",
                });
            }
            if child_text(root, "IsTruncated") != "true" {
                return Ok(out);
            }
            key_marker = child_text(root, "NextKeyMarker");
            version_marker = child_text(root, "NextVersionIdMarker");
            if key_marker.is_empty() {
                return Err(bad("truncated listing without NextKeyMarker".into()));
            }
        }
    }

    /// ListObjectsV2 of the latest versions under `prefix`, in key order, starting after
    /// `start_after` (exclusive) when given, following `continuation-token` paging. The fleet
    /// view polls each host prefix with it: with `start_after` = the last key it saw, an
    /// unchanged prefix costs one request that returns nothing.
    pub fn list_objects_v2(&self, prefix: &str, start_after: Option<&str>) -> Result<Vec<ObjectSummary>, S3Error> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let mut q: Vec<(&str, &str)> = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(s) = start_after.filter(|s| !s.is_empty()) {
                q.push(("start-after", s));
            }
            if !token.is_empty() {
                q.push(("continuation-token", &token));
            }
            let r = self.send("ListObjectsV2", reqwest::Method::GET, None, &q, &[], vec![], None)?;
            let text = String::from_utf8_lossy(&r.body).into_owned();
            let bad = |detail: String| S3Error::Service {
                op: "ListObjectsV2",
                target: format!("s3://{}/{prefix}", self.bucket),
                status: r.status,
                code: "MalformedResponse".into(),
                message: detail,
            };
            let doc = roxmltree::Document::parse(&text).map_err(|e| bad(format!("not XML: {e}")))?;
            let root = doc.root_element();
            for node in root.children().filter(|n| n.is_element() && n.tag_name().name() == "Contents") {
                let key = child_text(node, "Key");
                if key.is_empty() {
                    return Err(bad("a Contents entry without Key".into()));
                }
                let size_text = child_text(node, "Size");
                let size = size_text
                    .parse()
                    .map_err(|_| bad(format!("{key}: Size {size_text:?} is not a number")))?;
                let last_modified = DateTime::parse_from_rfc3339(&child_text(node, "LastModified"))
                    .ok()
                    .map(|d| d.with_timezone(&Utc));
                out.push(ObjectSummary { key, size, last_modified });
            }
            if child_text(root, "IsTruncated") != "true" {
                return Ok(out);
            }
            let next = child_text(root, "NextContinuationToken");
            if next.is_empty() || next == token {
                return Err(bad("truncated listing without a new NextContinuationToken".into()));
            }
            token = next;
        }
    }

    /// Read the bucket's versioning status and Object Lock configuration. A missing bucket
    /// is an error (`NoSuchBucket`).
    pub fn bucket_protection(&self) -> Result<BucketProtection, S3Error> {
        let r = self.send(
            "GetBucketVersioning",
            reqwest::Method::GET,
            None,
            &[("versioning", "")],
            &[],
            vec![],
            None,
        )?;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        let versioning = roxmltree::Document::parse(&text)
            .ok()
            .map(|d| child_text(d.root_element(), "Status"))
            .filter(|s| !s.is_empty());
        let object_lock_enabled = match self.send(
            "GetObjectLockConfiguration",
            reqwest::Method::GET,
            None,
            &[("object-lock", "")],
            &[],
            vec![],
            None,
        ) {
            Ok(r) => {
                let text = String::from_utf8_lossy(&r.body).into_owned();
                roxmltree::Document::parse(&text)
                    .map(|d| child_text(d.root_element(), "ObjectLockEnabled") == "Enabled")
                    .unwrap_or(false)
            }
            Err(S3Error::Service { code, .. })
                if code == "ObjectLockConfigurationNotFoundError" =>
            {
                false
            }
            Err(e) => return Err(e),
        };
        Ok(BucketProtection {
            versioning,
            object_lock_enabled,
        })
    }

    /// CreateBucket with Object Lock enabled (which also turns versioning on). For setting up
    /// a bucket by hand and for tests; the agent never creates buckets on its own.
    pub fn create_bucket_with_object_lock(&self) -> Result<(), S3Error> {
        let body = if self.region == "us-east-1" {
            Vec::new()
        } else {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.region
            )
            .into_bytes()
        };
        let headers = [("x-amz-bucket-object-lock-enabled", "true".to_string())];
        self.send(
            "CreateBucket",
            reqwest::Method::PUT,
            None,
            &[],
            &headers,
            body,
            None,
        )
        .map(|_| ())
    }

    /// CreateBucket without Object Lock (tests of the startup check).
    pub fn create_plain_bucket(&self) -> Result<(), S3Error> {
        self.send(
            "CreateBucket",
            reqwest::Method::PUT,
            None,
            &[],
            &[],
            vec![],
            None,
        )
        .map(|_| ())
    }

    /// GetObject of `version_id` (or the latest version), checksum mode on. The body is
    /// checked against what the server says it stored: `x-amz-checksum-sha256` when returned,
    /// otherwise a 32-hex-digit ETag (the MD5 of a single-part upload, which is what the
    /// uploader sends with Content-MD5). A body that matches neither is an error naming the key.
    pub fn get_object(&self, key: &str, version_id: Option<&str>) -> Result<GetResult, S3Error> {
        let headers = [("x-amz-checksum-mode", "ENABLED".to_string())];
        let q: Vec<(&str, &str)> = version_id.map(|v| vec![("versionId", v)]).unwrap_or_default();
        let r = self.send("GetObject", reqwest::Method::GET, Some(key), &q, &headers, vec![], None)?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let sha = Sha256::digest(&r.body);
        let checksum = header(&r.headers, "x-amz-checksum-sha256");
        let etag = unquote(&header(&r.headers, "etag").unwrap_or_default());
        let mismatch = |detail: String| S3Error::Service {
            op: "GetObject",
            target: format!("s3://{}/{key}", self.bucket),
            status: r.status,
            code: "ChecksumMismatch".into(),
            message: detail,
        };
        let checked_by = if let Some(c) = &checksum {
            if *c != b64.encode(sha) {
                return Err(mismatch(format!(
                    "body sha256 {} does not match x-amz-checksum-sha256 {c}",
                    b64.encode(sha)
                )));
            }
            "x-amz-checksum-sha256"
        } else if etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit()) {
            let md5 = hex::encode(md5::Md5::digest(&r.body));
            if !etag.eq_ignore_ascii_case(&md5) {
                return Err(mismatch(format!("body MD5 {md5} does not match ETag {etag}")));
            }
            "ETag (MD5)"
        } else {
            return Err(mismatch(
                "the server returned neither x-amz-checksum-sha256 nor an MD5 ETag; the download cannot be checked"
                    .into(),
            ));
        };
        Ok(GetResult {
            sha256_hex: hex::encode(sha),
            version_id: header(&r.headers, "x-amz-version-id"),
            checked_by,
            body: r.body,
        })
    }

    /// PUT a bucket sub-resource (`?object-lock`, `?publicAccessBlock`, `?encryption`,
    /// `?lifecycle`, `?versioning`) with an XML body and the Content-MD5 S3 requires for them.
    pub fn put_bucket_config(&self, op: &'static str, subresource: &str, xml: &str) -> Result<(), S3Error> {
        let body = xml.as_bytes().to_vec();
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
        let headers = [("content-md5", md5), ("content-type", "application/xml".to_string())];
        self.send(op, reqwest::Method::PUT, None, &[(subresource, "")], &headers, body, None)
            .map(|_| ())
    }

    /// GET a bucket sub-resource as XML text; `None` when the server answers with one of
    /// `absent_codes` (S3's way of saying "not configured").
    pub fn get_bucket_config(
        &self,
        op: &'static str,
        subresource: &str,
        absent_codes: &[&str],
    ) -> Result<Option<String>, S3Error> {
        match self.send(op, reqwest::Method::GET, None, &[(subresource, "")], &[], vec![], None) {
            Ok(r) => Ok(Some(String::from_utf8_lossy(&r.body).into_owned())),
            Err(S3Error::Service { code, .. }) if absent_codes.contains(&code.as_str()) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// DeleteObject of one version. On a locked version the server must refuse (403).
    pub fn delete_object_version(&self, key: &str, version_id: &str) -> Result<(), S3Error> {
        self.send(
            "DeleteObject",
            reqwest::Method::DELETE,
            Some(key),
            &[("versionId", version_id)],
            &[],
            vec![],
            None,
        )
        .map(|_| ())
    }
}

/// Retain-until as sent to S3: RFC 3339 UTC with whole seconds (what S3 echoes back, so the
/// read-back comparison is exact).
pub fn format_retain_until(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

fn unquote(s: &str) -> String {
    s.trim_matches('"').to_string()
}

fn child_text(node: roxmltree::Node, name: &str) -> String {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .and_then(|c| c.text())
        .unwrap_or_default()
        .to_string()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The S3 error code and message from an error body; HEAD answers have no body, so fall back
/// on the status.
fn parse_error(status: u16, body: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(body);
    if let Ok(doc) = roxmltree::Document::parse(&text) {
        let root = doc.root_element();
        let code = child_text(root, "Code");
        if !code.is_empty() {
            return (code, child_text(root, "Message"));
        }
    }
    let code = match status {
        301 => "PermanentRedirect",
        400 => "BadRequest",
        403 => "Forbidden",
        404 => "NotFound",
        _ => "Error",
    };
    let snippet: String = text.chars().take(200).collect();
    (
        code.to_string(),
        if snippet.is_empty() {
            "(no response body)".into()
        } else {
            snippet
        },
    )
}

/// Access key, secret and optional session token.
#[derive(Clone)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN` (temporary credentials only).
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Credentials> {
        let get = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let Some(access_key_id) = get("AWS_ACCESS_KEY_ID") else {
            bail!("no S3 credentials: AWS_ACCESS_KEY_ID is not set (and no worm.credentials_file configured)");
        };
        let Some(secret_access_key) = get("AWS_SECRET_ACCESS_KEY") else {
            bail!("no S3 credentials: AWS_SECRET_ACCESS_KEY is not set");
        };
        Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: get("AWS_SESSION_TOKEN"),
        })
    }

    /// Parse an AWS shared-credentials style file: the `[default]` section, or the only
    /// section, or key lines without any section.
    pub fn from_file(path: &Path) -> Result<Credentials> {
        // Regular file, UTF-8, no NUL (a NUL would end up inside a header value).
        let text = crate::yamlutil::read_text(path).context("reading the S3 credentials file")?;
        Credentials::parse(&text).with_context(|| format!("S3 credentials file {}", path.display()))
    }

    /// Parse the text of a credentials file (see [`Credentials::from_file`]).
    pub fn parse(text: &str) -> Result<Credentials> {
        // (section name, [(key, value, line number)]); the unnamed section first.
        type Section = (String, Vec<(String, String, usize)>);
        let mut sections: Vec<Section> = vec![(String::new(), vec![])];
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                sections.push((name.trim().to_string(), vec![]));
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                bail!("line {}: expected `key = value` or `[section]`", i + 1);
            };
            if let Some(last) = sections.last_mut() {
                last.1
                    .push((k.trim().to_ascii_lowercase(), v.trim().to_string(), i + 1));
            }
        }
        sections.retain(|(name, kv)| !(name.is_empty() && kv.is_empty()));
        let chosen = match sections.iter().find(|(n, _)| n == "default") {
            Some(s) => s,
            None if sections.len() == 1 => &sections[0],
            None => bail!("no [default] section and more than one section"),
        };
        let get = |key: &str| {
            chosen
                .1
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, v, _)| v.clone())
        };
        let access_key_id =
            get("aws_access_key_id").context("field aws_access_key_id is missing")?;
        let secret_access_key =
            get("aws_secret_access_key").context("field aws_secret_access_key is missing")?;
        Ok(Credentials {
            access_key_id,
            secret_access_key,
            session_token: get("aws_session_token"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(path_style: bool, endpoint: &str) -> S3Client {
        let url = if endpoint.is_empty() { "https://s3.us-east-1.amazonaws.com".to_string() } else { endpoint.to_string() };
        let c = Endpoint { url, bucket: "evidence-bucket".into(), region: "us-east-1".into(), path_style, request_timeout_seconds: 30 };
        let creds = Credentials {
            access_key_id: "AK".into(),
            secret_access_key: "SK".into(),
            session_token: None,
        };
        S3Client::new(&c, creds).unwrap()
    }

    #[test]
    fn urls_path_and_virtual_host_style() {
        let c = client(true, "http://127.0.0.1:9000");
        assert_eq!(
            c.url(Some("p/c 1/h/2026/01/EB-1.json"), &[])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/evidence-bucket/p/c%201/h/2026/01/EB-1.json"
        );
        assert_eq!(
            c.url(None, &[("versions", ""), ("prefix", "a/b")])
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/evidence-bucket/?versions=&prefix=a%2Fb"
        );
        let c = client(false, "");
        assert_eq!(
            c.url(Some("k"), &[]).unwrap().as_str(),
            "https://evidence-bucket.s3.us-east-1.amazonaws.com/k"
        );
    }

    #[test]
    fn error_bodies_give_code_and_message() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>";
        let (code, msg) = parse_error(403, body);
        assert_eq!(code, "SignatureDoesNotMatch");
        assert!(msg.starts_with("The request signature"));
        assert_eq!(parse_error(404, b"").0, "NotFound");
    }

    #[test]
    fn retain_until_is_whole_seconds_utc() {
        let t = DateTime::parse_from_rfc3339("2033-11-20T15:33:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_retain_until(t), "2033-11-20T15:33:00Z");
    }
}
