//! The bucket's own settings: `worm init` creates or completes them, `worm verify` reports
//! any that are missing, and both print the least-privilege IAM policies.
//!
//! What the controls require of the evidence bucket (see `docs/operations.md`, onboarding):
//! Object Lock with a COMPLIANCE default retention of at least the baseline's floor
//! (`logging.evidence_worm_retention_days`), versioning, every public access path blocked,
//! default encryption, and a lifecycle rule that moves evidence to colder storage. The
//! uploader sets COMPLIANCE retention on every object itself; the default retention is the
//! second line, for an object put by anything else.

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::json;

use super::config::WormConfig;
use super::s3::{S3Client, S3Error};

/// Storage class the lifecycle rule moves evidence to (S3 Glacier Instant Retrieval: cheap,
/// and still readable at once by `worm restore` and the fleet view).
pub const DEFAULT_STORAGE_CLASS: &str = "GLACIER_IR";
/// Days after upload before the lifecycle rule moves evidence to colder storage.
pub const DEFAULT_TRANSITION_DAYS: u32 = 90;
/// The id of the lifecycle rule `worm init` writes.
pub const LIFECYCLE_RULE_ID: &str = "msp-evidence-to-colder-storage";

/// The retention floor of the baseline compiled into the binary
/// (`logging.evidence_worm_retention_days`).
pub fn baseline_retention_floor() -> Result<u32> {
    let (name, text) = crate::packet::EMBEDDED_BASELINE;
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(text).with_context(|| format!("parsing {name}"))?;
    let v = find_key(&doc, "evidence_worm_retention_days")
        .and_then(|s| s.get("value"))
        .and_then(|v| v.as_u64())
        .with_context(|| format!("{name}: logging.evidence_worm_retention_days.value is missing"))?;
    u32::try_from(v).with_context(|| format!("{name}: evidence_worm_retention_days {v} is too large"))
}

/// Depth-first search for a mapping key (the baseline nests settings under sections).
fn find_key<'a>(v: &'a serde_yaml_ng::Value, key: &str) -> Option<&'a serde_yaml_ng::Value> {
    let m = v.as_mapping()?;
    for (k, val) in m {
        if k.as_str() == Some(key) {
            return Some(val);
        }
        if let Some(found) = find_key(val, key) {
            return Some(found);
        }
    }
    None
}

/// What `worm init` should set.
#[derive(Debug, Clone)]
pub struct BucketPlan {
    /// COMPLIANCE default retention in days (at least the baseline floor).
    pub retention_days: u32,
    /// Days until the lifecycle transition.
    pub transition_days: u32,
    /// Target storage class of the transition.
    pub storage_class: String,
}

/// One setting as found in the bucket.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    /// Short name (`object_lock`, `versioning`, `public_access_block`, `encryption`, `lifecycle`).
    pub name: &'static str,
    /// The setting is as the controls require.
    pub ok: bool,
    /// What was found (or why it is wrong).
    pub detail: String,
}

/// Every setting of the bucket, checked.
#[derive(Debug, Clone, Serialize)]
pub struct SettingsReport {
    pub bucket: String,
    /// The retention floor compared against.
    pub retention_floor_days: u32,
    pub settings: Vec<Setting>,
}

impl SettingsReport {
    /// The settings that are missing or wrong.
    pub fn missing(&self) -> Vec<&Setting> {
        self.settings.iter().filter(|s| !s.ok).collect()
    }
}

const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

fn doc_text(xml: &str, path: &[&str]) -> Option<String> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let mut node = doc.root_element();
    for name in path {
        node = node
            .descendants()
            .find(|c| c.is_element() && c.tag_name().name() == *name)?;
    }
    node.text().map(|t| t.trim().to_string())
}

/// Read every setting and compare it with what the controls require.
pub fn check_settings(client: &S3Client, floor_days: u32) -> Result<SettingsReport, S3Error> {
    let mut settings = Vec::new();
    let prot = client.bucket_protection()?;
    settings.push(Setting {
        name: "versioning",
        ok: prot.versioning.as_deref() == Some("Enabled"),
        detail: format!("status {}", prot.versioning.as_deref().unwrap_or("never enabled")),
    });
    let lock = client.get_bucket_config(
        "GetObjectLockConfiguration",
        "object-lock",
        &["ObjectLockConfigurationNotFoundError"],
    )?;
    settings.push(match lock {
        None => Setting { name: "object_lock", ok: false, detail: "Object Lock is not enabled".into() },
        Some(x) => {
            let enabled = doc_text(&x, &["ObjectLockEnabled"]).as_deref() == Some("Enabled");
            let mode = doc_text(&x, &["DefaultRetention", "Mode"]);
            let days = doc_text(&x, &["DefaultRetention", "Days"]).and_then(|d| d.parse::<u64>().ok());
            let years = doc_text(&x, &["DefaultRetention", "Years"]).and_then(|d| d.parse::<u64>().ok());
            let eff_days = days.or(years.map(|y| y * 365));
            let ok = enabled
                && mode.as_deref() == Some("COMPLIANCE")
                && eff_days.is_some_and(|d| d >= u64::from(floor_days));
            let detail = if !enabled {
                "Object Lock is not enabled".to_string()
            } else {
                match (mode, eff_days) {
                    (Some(m), Some(d)) => format!(
                        "default retention {m} {d} days (required: COMPLIANCE, at least {floor_days} days)"
                    ),
                    _ => format!(
                        "Object Lock enabled but no default retention (required: COMPLIANCE, at least {floor_days} days)"
                    ),
                }
            };
            Setting { name: "object_lock", ok, detail }
        }
    });
    let pab = client.get_bucket_config(
        "GetPublicAccessBlock",
        "publicAccessBlock",
        &["NoSuchPublicAccessBlockConfiguration"],
    )?;
    settings.push(match pab {
        None => Setting { name: "public_access_block", ok: false, detail: "no public access block".into() },
        Some(x) => {
            let flags = ["BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets"];
            let off: Vec<&str> = flags
                .iter()
                .copied()
                .filter(|f| doc_text(&x, &[f]).as_deref() != Some("true"))
                .collect();
            Setting {
                name: "public_access_block",
                ok: off.is_empty(),
                detail: if off.is_empty() { "all four blocks on".into() } else { format!("not blocked: {}", off.join(", ")) },
            }
        }
    });
    let enc = client.get_bucket_config(
        "GetBucketEncryption",
        "encryption",
        &["ServerSideEncryptionConfigurationNotFoundError"],
    )?;
    settings.push(match enc.as_deref().and_then(|x| doc_text(x, &["SSEAlgorithm"])) {
        Some(a) => Setting { name: "encryption", ok: true, detail: format!("default encryption {a}") },
        None => Setting { name: "encryption", ok: false, detail: "no default encryption".into() },
    });
    let lc = client.get_bucket_config(
        "GetBucketLifecycleConfiguration",
        "lifecycle",
        &["NoSuchLifecycleConfiguration"],
    )?;
    settings.push(match lc.as_deref().map(lifecycle_summary) {
        Some(Ok(d)) => Setting { name: "lifecycle", ok: true, detail: d },
        Some(Err(d)) => Setting { name: "lifecycle", ok: false, detail: d },
        None => Setting { name: "lifecycle", ok: false, detail: "no lifecycle rule (evidence stays in the standard storage class)".into() },
    });
    Ok(SettingsReport { bucket: client.bucket().to_string(), retention_floor_days: floor_days, settings })
}

/// An enabled rule with a transition and no expiration is what we want; an expiration rule is
/// reported (under COMPLIANCE it cannot remove locked versions early, but it says the wrong
/// thing about intent and adds delete markers).
fn lifecycle_summary(xml: &str) -> Result<String, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("lifecycle is not XML: {e}"))?;
    let mut transitions = Vec::new();
    for rule in doc.descendants().filter(|n| n.is_element() && n.tag_name().name() == "Rule") {
        let text = |name: &str| {
            rule.descendants()
                .find(|c| c.is_element() && c.tag_name().name() == name)
                .and_then(|c| c.text())
                .map(|t| t.trim().to_string())
        };
        if text("Status").as_deref() != Some("Enabled") {
            continue;
        }
        if rule.children().any(|c| c.is_element() && c.tag_name().name() == "Expiration") {
            return Err(format!("rule {} expires objects", text("ID").unwrap_or_default()));
        }
        if let Some(class) = text("StorageClass") {
            transitions.push(format!("{} after {} days", class, text("Days").unwrap_or_else(|| "?".into())));
        }
    }
    if transitions.is_empty() {
        Err("no enabled transition to colder storage".into())
    } else {
        Ok(format!("transition to {}", transitions.join(", ")))
    }
}

/// Create the bucket if it does not exist (with Object Lock), then set every setting that the
/// check finds missing. Returns what was changed and the check after the changes.
pub fn init(client: &S3Client, cfg: &WormConfig, plan: &BucketPlan, floor_days: u32) -> Result<(Vec<String>, SettingsReport)> {
    let mut changed = Vec::new();
    match client.bucket_protection() {
        Ok(_) => {}
        Err(e) if e.code() == Some("NoSuchBucket") => {
            client
                .create_bucket_with_object_lock()
                .with_context(|| format!("creating bucket {:?}", cfg.bucket))?;
            changed.push(format!("created bucket {} with Object Lock", cfg.bucket));
        }
        Err(e) => return Err(e).with_context(|| format!("checking bucket {:?}", cfg.bucket)),
    }
    let before = check_settings(client, floor_days).context("reading the bucket's settings")?;
    for s in before.missing() {
        match s.name {
            "versioning" => {
                client.put_bucket_config(
                    "PutBucketVersioning",
                    "versioning",
                    &format!("<VersioningConfiguration xmlns=\"{XMLNS}\"><Status>Enabled</Status></VersioningConfiguration>"),
                )?;
            }
            "object_lock" => {
                client.put_bucket_config(
                    "PutObjectLockConfiguration",
                    "object-lock",
                    &format!(
                        "<ObjectLockConfiguration xmlns=\"{XMLNS}\"><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>{}</Days></DefaultRetention></Rule></ObjectLockConfiguration>",
                        plan.retention_days
                    ),
                ).context("setting the Object Lock default retention (a bucket created without Object Lock cannot always get it; create a new bucket)")?;
            }
            "public_access_block" => {
                client.put_bucket_config(
                    "PutPublicAccessBlock",
                    "publicAccessBlock",
                    &format!("<PublicAccessBlockConfiguration xmlns=\"{XMLNS}\"><BlockPublicAcls>true</BlockPublicAcls><IgnorePublicAcls>true</IgnorePublicAcls><BlockPublicPolicy>true</BlockPublicPolicy><RestrictPublicBuckets>true</RestrictPublicBuckets></PublicAccessBlockConfiguration>"),
                )?;
            }
            "encryption" => {
                client.put_bucket_config(
                    "PutBucketEncryption",
                    "encryption",
                    &format!("<ServerSideEncryptionConfiguration xmlns=\"{XMLNS}\"><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"),
                )?;
            }
            "lifecycle" => {
                let prefix = cfg.prefix.trim_matches('/');
                let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
                client.put_bucket_config(
                    "PutBucketLifecycleConfiguration",
                    "lifecycle",
                    &format!(
                        "<LifecycleConfiguration xmlns=\"{XMLNS}\"><Rule><ID>{LIFECYCLE_RULE_ID}</ID><Filter><Prefix>{prefix}</Prefix></Filter><Status>Enabled</Status><Transition><Days>{d}</Days><StorageClass>{c}</StorageClass></Transition><NoncurrentVersionTransition><NoncurrentDays>{d}</NoncurrentDays><StorageClass>{c}</StorageClass></NoncurrentVersionTransition></Rule></LifecycleConfiguration>",
                        d = plan.transition_days,
                        c = plan.storage_class
                    ),
                )?;
            }
            _ => continue,
        }
        changed.push(format!("set {} (was: {})", s.name, s.detail));
    }
    let after = check_settings(client, floor_days).context("reading the bucket's settings back")?;
    Ok((changed, after))
}

/// The uploader's policy: put, read back, list; no delete, no retention change, no bucket
/// configuration. `s3:PutObjectRetention` is needed because the uploader sends the
/// retention headers with PutObject; COMPLIANCE retention can only be extended, never shortened.
pub fn uploader_policy(bucket: &str, prefix: &str) -> serde_json::Value {
    let objects = object_arn(bucket, prefix);
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "MspEvidenceUpload",
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:PutObjectRetention", "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention"],
                "Resource": objects
            },
            {
                "Sid": "MspEvidenceList",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:ListBucketVersions", "s3:GetBucketVersioning", "s3:GetBucketObjectLockConfiguration"],
                "Resource": format!("arn:aws:s3:::{bucket}")
            },
            {
                "Sid": "MspEvidenceNeverDelete",
                "Effect": "Deny",
                "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:PutBucketObjectLockConfiguration", "s3:PutLifecycleConfiguration", "s3:DeleteBucket"],
                "Resource": [format!("arn:aws:s3:::{bucket}"), objects]
            }
        ]
    })
}

/// The fleet view's policy (and the restore test's, if run with separate credentials): read
/// and list only.
pub fn fleet_policy(bucket: &str, prefix: &str) -> serde_json::Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "MspEvidenceRead",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention"],
                "Resource": object_arn(bucket, prefix)
            },
            {
                "Sid": "MspEvidenceList",
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
                "Resource": format!("arn:aws:s3:::{bucket}")
            }
        ]
    })
}

fn object_arn(bucket: &str, prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        format!("arn:aws:s3:::{bucket}/*")
    } else {
        format!("arn:aws:s3:::{bucket}/{p}/*")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_comes_from_the_embedded_baseline() {
        assert_eq!(baseline_retention_floor().unwrap(), 2190);
    }

    #[test]
    fn policies_never_allow_delete() {
        for p in [uploader_policy("b", "msp-evidence"), fleet_policy("b", "msp-evidence")] {
            for st in p["Statement"].as_array().unwrap() {
                if st["Effect"] == "Allow" {
                    let actions = st["Action"].to_string();
                    assert!(!actions.contains("Delete"), "{actions}");
                    assert!(!actions.contains("Bypass"), "{actions}");
                }
            }
        }
        let fleet = fleet_policy("b", "").to_string();
        assert!(!fleet.contains("PutObject"), "{fleet}");
        assert!(fleet.contains("arn:aws:s3:::b/*"), "{fleet}");
    }

    #[test]
    fn lifecycle_with_expiration_or_without_transition_is_reported() {
        let ok = "<LifecycleConfiguration><Rule><ID>a</ID><Status>Enabled</Status><Transition><Days>90</Days><StorageClass>GLACIER_IR</StorageClass></Transition></Rule></LifecycleConfiguration>";
        assert_eq!(lifecycle_summary(ok).unwrap(), "transition to GLACIER_IR after 90 days");
        let exp = "<LifecycleConfiguration><Rule><ID>x</ID><Status>Enabled</Status><Expiration><Days>30</Days></Expiration></Rule></LifecycleConfiguration>";
        assert!(lifecycle_summary(exp).unwrap_err().contains("expires"));
        let off = "<LifecycleConfiguration><Rule><ID>a</ID><Status>Disabled</Status><Transition><Days>90</Days><StorageClass>GLACIER</StorageClass></Transition></Rule></LifecycleConfiguration>";
        assert!(lifecycle_summary(off).is_err());
    }
}
