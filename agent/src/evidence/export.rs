//! Offboarding: `msp-agent evidence export --client ID --to DIR` hands a clinic everything
//! that proves its evidence, in a form it can check with stock tools and no vendor account.
//!
//! Layout of DIR:
//! * `evidence/`: every bundle of the client (`YYYY/MM/EB-….json`, `.sig`, `.sshsig`,
//!   `.artifacts/`), their upload receipts (`receipts/`), prune records (`pruned/`);
//! * `keys/`: the public keys only (`key-info.json`, `evidence-signing.pub{,.pem}`,
//!   `allowed_signers`, `archive/`); never the private key;
//! * `packets/NAME/`: each packet directory given with `--packets`;
//! * `export.json`: what was exported (counts, chains), and `README.txt` for the recipient;
//! * `SHA256SUMS` (`sha256sum -c` format, every file above) with `SHA256SUMS.sig` (raw
//!   Ed25519) and `SHA256SUMS.sshsig` (namespace `msp-evidence`): the signed manifest.
//!
//! Verified on the way out: the exported bundles are verified from the exported keys (as the
//! recipient will), and the manifest is read back and checked. Any problem is named and the
//! command exits 1.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::keyring::Keyring;
use super::store::sha256_hex;
use super::verify;
use crate::fsutil;
use crate::keys::Signer;

/// The manifest file name.
pub const SUMS_FILE: &str = "SHA256SUMS";

/// What an export wrote and found.
#[derive(Debug, Default, Serialize)]
pub struct ExportReport {
    pub client_id: String,
    pub bundles: usize,
    pub receipts: usize,
    pub packets: usize,
    pub key_files: usize,
    /// Files listed in `SHA256SUMS`.
    pub files: usize,
    pub chains: Vec<verify::ChainSummary>,
    /// Problems found when verifying the export (empty: it verified).
    pub problems: Vec<String>,
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    fsutil::create_dir_all(to.parent().context("no parent directory")?, 0o755)?;
    fsutil::write_once(to, &bytes, 0o444).with_context(|| format!("writing {}", to.display()))
}

fn copy_tree(from: &Path, to: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<usize> {
    let mut n = 0;
    let mut stack = vec![from.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            let p = e.path();
            let ft = e.file_type().with_context(|| format!("reading {}", p.display()))?;
            if e.file_name().to_string_lossy().starts_with('.') || ft.is_symlink() {
                continue;
            }
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && keep(&p) {
                let rel = p.strip_prefix(from).context("path outside the tree")?;
                copy_file(&p, &to.join(rel))?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Public key material only: the private key (`*.key`) never leaves.
fn is_public_key_file(p: &Path) -> bool {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // A revocation record's signatures (`revocations/REV-*.json.sig`, `.sshsig`) go too:
    // without them the recipient's keyring refuses the record (keyring.rs).
    let revocation_sig = name.starts_with("REV-") && (name.ends_with(".json.sig") || name.ends_with(".json.sshsig"));
    !name.ends_with(".key")
        && (name == "allowed_signers"
            || name.ends_with(".json")
            || name.ends_with(".pub")
            || name.ends_with(".pem")
            || revocation_sig)
}

fn all_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let e = e.with_context(|| format!("listing {}", dir.display()))?;
            if e.file_type().with_context(|| format!("reading {}", e.path().display()))?.is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

const README: &str = "Evidence export for client {CLIENT}
==========================================

Made by msp-agent {VERSION} on {DATE} (UTC). Everything here is metadata about the clinic's
servers (unit states, exit codes, hashes, times), signed by the server's evidence key. No
patient data.

Contents
  evidence/    signed evidence bundles (YYYY/MM/EB-YYYYMMDD-NNNN.json with .sig and .sshsig,
               artifacts in EB-....artifacts/), upload receipts (receipts/), and prune
               records (pruned/: where local history was pruned, it is in the WORM bucket)
  keys/        the public signing keys with their validity windows (archive/ holds retired keys)
  packets/     monthly compliance packets (if any were included)
  export.json  what was exported
  SHA256SUMS   the SHA-256 of every file above, signed (SHA256SUMS.sig, SHA256SUMS.sshsig)

Check it with stock tools (no vendor account, no custom binary)
  1. The manifest is authentic:
       ssh-keygen -Y verify -f keys/allowed_signers -I msp-evidence -n msp-evidence \\
         -s SHA256SUMS.sshsig < SHA256SUMS
  2. Every file is what the manifest says:
       sha256sum -c SHA256SUMS
  3. Any bundle, on its own:
       ssh-keygen -Y verify -f keys/allowed_signers -I msp-evidence -n msp-evidence \\
         -s evidence/2026/11/EB-20261122-0001.json.sshsig < evidence/2026/11/EB-20261122-0001.json
       openssl pkeyutl -verify -pubin -inkey keys/evidence-signing.pub.pem -rawin \\
         -in X.json -sigfile X.json.sig
     (a bundle signed by a retired key: use that key's .pub.pem from keys/archive/, or
      ssh-keygen with -Overify-time=YYYYMMDDhhmmssZ set to the bundle's generated_at)
  4. The whole chain (signatures, hash chain, artifacts), if you have msp-agent:
       msp-agent evidence verify --keys keys evidence

The same objects are kept in the MSP's S3 Object Lock bucket (COMPLIANCE retention); the
receipts name each object's key and version.
";

/// Export the client's evidence from `evidence_dir` (public keys from `keys_dir`, packets
/// from `packets`) into `to` (must be empty or absent), sign the manifest with `signer`, and
/// verify the result.
pub fn export(
    evidence_dir: &Path,
    keys_dir: &Path,
    packets: &[PathBuf],
    client_id: &str,
    to: &Path,
    signer: &Signer,
) -> Result<ExportReport> {
    if to.exists() && std::fs::read_dir(to).with_context(|| format!("reading {}", to.display()))?.next().is_some() {
        bail!("{} is not empty; export writes a fresh directory", to.display());
    }
    let mut report = ExportReport { client_id: client_id.to_string(), ..Default::default() };
    let ev_out = to.join("evidence");
    let (files, _heads) = verify::collect(&[evidence_dir.to_path_buf()])?;
    let mut ids = std::collections::BTreeSet::new();
    for f in &files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let v: serde_json::Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                report.problems.push(format!("{}: not JSON ({e}); not exported", f.display()));
                continue;
            }
        };
        if v.get("client_id").and_then(|c| c.as_str()) != Some(client_id) {
            continue;
        }
        let rel = f.strip_prefix(evidence_dir).context("bundle outside the evidence directory")?;
        copy_file(f, &ev_out.join(rel))?;
        for suffix in [".sig", ".sshsig"] {
            let mut s = f.as_os_str().to_owned();
            s.push(suffix);
            let c = PathBuf::from(s);
            if c.is_file() {
                copy_file(&c, &ev_out.join(rel).with_file_name(c.file_name().unwrap_or_default()))?;
            }
        }
        let stem = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let id = stem.trim_end_matches(".json").to_string();
        let adir = f.with_file_name(format!("{id}.artifacts"));
        if adir.is_dir() {
            copy_tree(&adir, &ev_out.join(rel).with_file_name(format!("{id}.artifacts")), &|_| true)?;
        }
        ids.insert(id);
        report.bundles += 1;
    }
    if report.bundles == 0 {
        bail!("no bundles of client {client_id:?} in {}", evidence_dir.display());
    }
    let rdir = evidence_dir.join("receipts");
    if rdir.is_dir() {
        report.receipts = copy_tree(&rdir, &ev_out.join("receipts"), &|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name.split('.').next().is_some_and(|id| ids.contains(id))
        })?;
    }
    let pdir = evidence_dir.join(super::prune::PRUNED_DIR);
    if pdir.is_dir() {
        copy_tree(&pdir, &ev_out.join(super::prune::PRUNED_DIR), &|_| true)?;
    }
    // The signed chain head: without it the copy could not show that its newest bundles
    // are all there (a store holds one host's chain, so the head is this client's).
    let hdir = evidence_dir.join(super::store::HEAD_DIR);
    if hdir.is_dir() {
        copy_tree(&hdir, &ev_out.join(super::store::HEAD_DIR), &|_| true)?;
    }
    report.key_files = copy_tree(keys_dir, &to.join("keys"), &is_public_key_file)?;
    if !to.join("keys/allowed_signers").is_file() {
        bail!("{}: no allowed_signers; not a key directory", keys_dir.display());
    }
    for p in packets {
        let name = p.file_name().with_context(|| format!("{}: no directory name", p.display()))?;
        copy_tree(p, &to.join("packets").join(name), &|_| true)?;
        report.packets += 1;
    }

    // Verify what was exported, from the exported keys, as the recipient will.
    let ring = Keyring::load(&to.join("keys")).context("loading the exported keys")?;
    let (vfiles, mut heads) = verify::collect(std::slice::from_ref(&ev_out))?;
    let (records, mut chain_problems) = super::prune::load_records(std::slice::from_ref(&ev_out), &ring)?;
    super::prune::mark_pruned(&records, &mut heads);
    let opts = verify::VerifyOptions { keys: ring, partial: !records.is_empty(), ..Default::default() };
    let v = verify::verify_files(&vfiles, &heads, &opts)?;
    if !records.is_empty() {
        chain_problems.extend(super::prune::check_starts(&records, &vfiles, &v.chains));
    }
    report.problems.extend(v.problems.iter().map(|p| format!("{}: {}", p.bundle, p.reason)));
    report.problems.extend(chain_problems.into_iter().map(|(b, r)| format!("{b}: {r}")));
    report.chains = v.chains;

    let now = chrono::Utc::now();
    let readme = README
        .replace("{CLIENT}", client_id)
        .replace("{VERSION}", crate::AGENT_VERSION)
        .replace("{DATE}", &now.format("%Y-%m-%d %H:%M").to_string());
    fsutil::write_once(&to.join("README.txt"), readme.as_bytes(), 0o444)?;
    let meta = serde_json::json!({
        "export_version": 1,
        "client_id": client_id,
        "generated_at": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "generator": format!("msp-agent {}", crate::AGENT_VERSION),
        "bundles": report.bundles,
        "receipts": report.receipts,
        "packets": report.packets,
        "chains": report.chains,
        "signing_key_id": signer.key_id(),
        "verified_on_export": report.problems.is_empty(),
        "problems": report.problems,
    });
    let mut mb = serde_json::to_vec_pretty(&meta).context("serialising export.json")?;
    mb.push(b'\n');
    fsutil::write_once(&to.join("export.json"), &mb, 0o444)?;

    let mut sums = String::new();
    for f in all_files(to)? {
        let rel = f.strip_prefix(to).context("file outside the export")?.to_string_lossy().into_owned();
        let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        sums.push_str(&format!("{}  {rel}\n", sha256_hex(&bytes)));
        report.files += 1;
    }
    let sums_path = to.join(SUMS_FILE);
    let raw = signer.sign_raw(sums.as_bytes());
    let ssh = signer.sign_sshsig(sums.as_bytes()).context("SSH-signing SHA256SUMS")?;
    fsutil::write_once(&to.join(format!("{SUMS_FILE}.sig")), &raw, 0o444)?;
    fsutil::write_once(&to.join(format!("{SUMS_FILE}.sshsig")), ssh.as_bytes(), 0o444)?;
    fsutil::write_once(&sums_path, sums.as_bytes(), 0o444)?;
    report.problems.extend(check_sums(to, &Keyring::load(&to.join("keys"))?, signer.key_id()));
    Ok(report)
}

/// `msp-agent evidence export` (see `EvidenceCmd::Export`).
pub fn run(client: &str, to: &Path, evidence_dir: &Path, key_dir: &Path, packets: &[PathBuf]) -> Result<crate::exit::Exit> {
    let signer = Signer::load(key_dir)?;
    let r = export(evidence_dir, key_dir, packets, client, to, &signer)?;
    for p in &r.problems {
        println!("problem: {p}");
    }
    eprintln!(
        "evidence export: {} bundle(s), {} receipt file(s), {} packet(s), {} key file(s), {} files in SHA256SUMS, into {}: {}",
        r.bundles,
        r.receipts,
        r.packets,
        r.key_files,
        r.files,
        to.display(),
        if r.problems.is_empty() { "verified" } else { "FAILED verification" }
    );
    Ok(if r.problems.is_empty() { crate::exit::Exit::Ok } else { crate::exit::Exit::CheckFailed })
}

/// Read `SHA256SUMS` back: its raw signature with the exported key, and every listed file.
pub fn check_sums(to: &Path, ring: &Keyring, key_id: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let sums = match std::fs::read(to.join(SUMS_FILE)) {
        Ok(b) => b,
        Err(e) => return vec![format!("{SUMS_FILE}: {e}")],
    };
    let sig = std::fs::read(to.join(format!("{SUMS_FILE}.sig"))).ok().and_then(|s| <[u8; 64]>::try_from(s.as_slice()).ok());
    match (ring.get(key_id), sig) {
        (Some(k), Some(s)) if k.key.verify_strict(&sums, &ed25519_dalek::Signature::from_bytes(&s)).is_ok() => {}
        _ => problems.push(format!("{SUMS_FILE}.sig does not verify with key {key_id} from keys/")),
    }
    for line in String::from_utf8_lossy(&sums).lines() {
        let Some((sha, rel)) = line.split_once("  ") else {
            problems.push(format!("{SUMS_FILE}: malformed line {line:?}"));
            continue;
        };
        match std::fs::read(to.join(rel)) {
            Ok(b) if sha256_hex(&b) == sha => {}
            Ok(_) => problems.push(format!("{rel}: SHA-256 does not match {SUMS_FILE}")),
            Err(e) => problems.push(format!("{rel}: {e}")),
        }
    }
    problems
}
