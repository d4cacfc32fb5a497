//! Where the evidence is read from: the WORM bucket ([`S3Source`]) or a directory with the
//! bucket's layout ([`LocalSource`], a mirror). Both list one host prefix's keys after a given
//! key, in key order, so a poll costs one listing per host when nothing changed.

mod local;
mod s3;

pub use local::LocalSource;
pub use s3::S3Source;

use anyhow::Result;
use chrono::{DateTime, Utc};

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Full key, `PREFIX/CLIENT/HOST/YYYY/MM/FILE`.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// When the object was stored (S3 `LastModified`, a mirror file's mtime), if known.
    pub last_modified: Option<DateTime<Utc>>,
}

/// A read-only view of the bucket.
pub trait Source: Send + Sync {
    /// The key prefix the agents upload under (`msp-evidence`).
    fn prefix(&self) -> &str;
    /// Objects whose key starts with `host_prefix` and sorts strictly after `start_after`
    /// (all of them when `None`), in key order. One listing request per call when the answer
    /// fits one page.
    fn list_after(&self, host_prefix: &str, start_after: Option<&str>) -> Result<Vec<ObjectInfo>>;
    /// The object's bytes.
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// Where this source reads from, for messages.
    fn describe(&self) -> String;
}
