//! `manifest.json`: every bundle of the period (path relative to the evidence root, bundle id,
//! sequence, SHA-256, whether it verified), the packet files' hashes and the signing key id,
//! signed like a bundle (`manifest.json.sig` raw Ed25519, `manifest.json.sshsig` SSHSIG with
//! namespace `msp-evidence`), so an auditor checks the whole month with stock tools.
//!
//! [`verify`] is `msp-agent evidence verify manifest.json`: the manifest's signatures, every
//! listed bundle's SHA-256, no bundle listed twice, every bundle of the period in the evidence
//! directory listed, the packet files' hashes.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use crate::keyring::Keyring;
use crate::store::{sha256_hex, BundleName};
use crate::keys::{Signer, ALGORITHM, NAMESPACE};

/// File name of the manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// `manifest_version` written.
pub const MANIFEST_VERSION: &str = "1.0";

/// The manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Format version.
    pub manifest_version: String,
    /// Client.
    pub client_id: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Start of the period (RFC 3339, UTC).
    pub period_start: String,
    /// End of the period (exclusive).
    pub period_end: String,
    /// The time the packet was judged at.
    pub as_of: String,
    /// When the packet was made.
    pub generated_at: String,
    /// `msp-agent <version>`.
    pub generator: String,
    /// The evidence directory the bundles were read from (bundle paths are relative to it).
    pub evidence_dir: String,
    /// Baseline version and SHA-256 the packet was made against.
    pub baseline_version: String,
    /// SHA-256 of the baseline file.
    pub baseline_sha256: String,
    /// The key that signed this manifest.
    pub signing: ManifestSigning,
    /// Headline figures, as in the packet.
    pub summary: serde_json::Value,
    /// Every bundle file of the period, in name order.
    pub bundles: Vec<ManifestBundle>,
    /// The packet files, relative to the manifest's directory.
    pub files: Vec<ManifestFile>,
}

/// Signing key of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestSigning {
    /// `SHA256:…` fingerprint.
    pub key_id: String,
    /// `ed25519`.
    pub algorithm: String,
}

/// One bundle of the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestBundle {
    /// Path relative to the evidence directory (`2026/11/EB-20261101-0001.json`).
    pub path: String,
    /// Bundle id (`null` when the file does not parse).
    pub bundle_id: Option<String>,
    /// Chain sequence (`null` when the file does not parse).
    pub sequence: Option<u64>,
    /// SHA-256 of the file's bytes.
    pub sha256: String,
    /// Whether it verified when the packet was made; a bundle that did not counts for nothing.
    pub verified: bool,
    /// Why it did not verify.
    pub problem: Option<String>,
}

/// A packet file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// File name.
    pub path: String,
    /// SHA-256.
    pub sha256: String,
    /// Size.
    pub size_bytes: u64,
}

/// Serialise (pretty, trailing newline) and write `manifest.json`, `.sig` and `.sshsig`.
pub fn write_signed(out_dir: &Path, manifest: &Manifest, signer: &Signer) -> Result<PathBuf> {
    let mut bytes = serde_json::to_vec_pretty(manifest).context("serialising the manifest")?;
    bytes.push(b'\n');
    let raw = signer.sign_raw(&bytes);
    let ssh = signer.sign_sshsig(&bytes)?;
    let path = out_dir.join(MANIFEST_FILE);
    crate::fsutil::replace(&companion(&path, ".sig"), &raw, 0o644)?;
    crate::fsutil::replace(&companion(&path, ".sshsig"), ssh.as_bytes(), 0o644)?;
    crate::fsutil::replace(&path, &bytes, 0o644)?;
    Ok(path)
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct ManifestReport {
    /// Bundles listed.
    pub bundles_listed: usize,
    /// Bundles whose hash matched.
    pub bundles_ok: usize,
    /// Every problem, the first bad bundle first (`(name, reason)`).
    pub problems: Vec<(String, String)>,
}

/// Verify a manifest against the evidence directory (`evidence_dir`, or the one it records).
/// `Err` for I/O errors and an unusable manifest; everything wrong with the evidence is a
/// problem in the report.
pub fn verify(
    manifest_path: &Path,
    keys: &Keyring,
    evidence_dir: Option<&Path>,
) -> Result<ManifestReport> {
    let bytes = crate::fsutil::read_regular(manifest_path, crate::fsutil::limits::MANIFEST)?;
    let mut report = ManifestReport::default();
    let mut problems: Vec<(String, String)> = Vec::new();
    let name = manifest_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| MANIFEST_FILE.into());

    // The manifest's own signatures, before trusting anything it says.
    let manifest: Manifest = serde_json::from_slice(&bytes).with_context(|| {
        format!("{} is not a packet manifest", manifest_path.display())
    })?;
    if manifest.signing.algorithm != ALGORITHM {
        problems.push((name.clone(), format!("signing.algorithm is {:?}", manifest.signing.algorithm)));
    }
    match keys.get(&manifest.signing.key_id) {
        None => problems.push((
            name.clone(),
            format!("signed by unknown key {} (not in the key directory)", manifest.signing.key_id),
        )),
        Some(k) => {
            match crate::fsutil::read_regular(&companion(manifest_path, ".sig"), crate::fsutil::limits::RAW_SIG) {
                Err(e) => problems.push((name.clone(), format!("{name}.sig: {e:#}"))),
                Ok(sig) => match <[u8; 64]>::try_from(sig.as_slice()) {
                    Err(_) => problems.push((name.clone(), format!("{name}.sig is not a 64-byte Ed25519 signature"))),
                    Ok(raw) => {
                        if k.key.verify_strict(&bytes, &Signature::from_bytes(&raw)).is_err() {
                            problems.push((name.clone(), format!("raw signature ({name}.sig) does not verify: manifest or signature modified")));
                        }
                    }
                },
            }
            match crate::fsutil::read_regular(&companion(manifest_path, ".sshsig"), crate::fsutil::limits::SSHSIG) {
                Err(e) => problems.push((name.clone(), format!("{name}.sshsig: {e:#}"))),
                Ok(armoured) => {
                    let ok = crate::keys::sshsig_from_canonical_pem(&armoured).ok().is_some_and(|sig| {
                        crate::keys::ssh_public_key(&k.key)
                            .verify(NAMESPACE, &bytes, &sig)
                            .is_ok()
                    });
                    if !ok {
                        problems.push((name.clone(), format!("SSH signature ({name}.sshsig) does not verify: manifest or signature modified")));
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        report.problems = problems;
        return Ok(report);
    }

    // The packet files beside the manifest (reported after the bundles).
    let mut file_problems = Vec::new();
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    for f in &manifest.files {
        if !plain_name(&f.path) {
            file_problems.push((f.path.clone(), "is not a plain file name".into()));
            continue;
        }
        match crate::fsutil::read_regular(&dir.join(&f.path), crate::fsutil::limits::MANIFEST) {
            Err(e) => file_problems.push((f.path.clone(), format!("cannot be read: {e:#}"))),
            Ok(b) if sha256_hex(&b) != f.sha256 => file_problems
                .push((f.path.clone(), "sha256 does not match the manifest (modified)".into())),
            Ok(_) => {}
        }
    }

    // Every listed bundle, once, with its hash.
    let root = match evidence_dir {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from(&manifest.evidence_dir),
    };
    let month_dir = manifest.month.replace('-', "/");
    let mut listed = HashSet::new();
    let mut bundle_problems: BTreeMap<(Option<BundleName>, String), String> = BTreeMap::new();
    for b in &manifest.bundles {
        report.bundles_listed += 1;
        let file_name = b.path.rsplit('/').next().unwrap_or(&b.path).to_string();
        let key = (BundleName::parse_file_name(&file_name), b.path.clone());
        let ok_path = b.path.starts_with(&format!("{month_dir}/"))
            && b.path.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        if !ok_path {
            bundle_problems.insert(key, format!("{}: path is not inside {month_dir}/", b.path));
            continue;
        }
        if !listed.insert(b.path.clone()) {
            bundle_problems.insert(key, format!("{}: listed twice in the manifest", b.path));
            continue;
        }
        match crate::fsutil::read_regular_opt(&root.join(&b.path), crate::fsutil::limits::BUNDLE) {
            Ok(None) => {
                bundle_problems.insert(key, format!("{}: listed in the manifest but missing (deleted)", b.path));
            }
            Err(e) => match crate::fsutil::refused(&e) {
                Some(why) => {
                    bundle_problems.insert(key, format!("{}: {why}", b.path));
                }
                None => return Err(e),
            },
            Ok(Some(bytes)) if sha256_hex(&bytes) != b.sha256 => {
                bundle_problems.insert(key, format!("{}: sha256 {} does not match the manifest's {} (modified)", b.path, sha256_hex(&bytes), b.sha256));
            }
            Ok(Some(_)) => report.bundles_ok += 1,
        }
    }
    // Every bundle of the period in the directory is listed.
    let period_dir = root.join(&month_dir);
    if period_dir.is_dir() {
        let (files, _) = crate::verify::collect(std::slice::from_ref(&period_dir))?;
        for f in files {
            let rel = f
                .strip_prefix(&root)
                .unwrap_or(&f)
                .to_string_lossy()
                .into_owned();
            if listed.contains(&rel) {
                continue;
            }
            // Another client's bundle in a shared directory is not this packet's business.
            let client = crate::fsutil::read_regular(&f, crate::fsutil::limits::BUNDLE)
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v.get("client_id").and_then(|c| c.as_str()).map(str::to_string));
            if client.as_deref().is_some_and(|c| c != manifest.client_id) {
                continue;
            }
            let file_name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            bundle_problems.insert(
                (BundleName::parse_file_name(&file_name), rel.clone()),
                format!("{rel}: in the evidence directory but not listed in the manifest (added after the packet)"),
            );
        }
    } else if !manifest.bundles.is_empty() {
        bail!("evidence directory {} has no {month_dir}/ (give the evidence directory after the manifest)", root.display());
    }
    for ((n, path), why) in bundle_problems {
        let name = n.map(|n| format!("{}.json", n.id())).unwrap_or(path);
        problems.push((name, why));
    }
    problems.extend(file_problems);
    report.problems = problems;
    Ok(report)
}

fn plain_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('/') && s != "." && s != ".."
}
