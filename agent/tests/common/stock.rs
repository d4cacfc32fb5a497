//! Verification of evidence with the stock tools an auditor has: `ssh-keygen -Y verify` and
//! `openssl pkeyutl -verify -rawin`, exactly as DESIGN.md 3 and the README print them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Every bundle `EB-*.json` under `root` (not upload receipts), sorted by path (chain order
/// within a month).
pub fn bundles(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() && !name.starts_with('.') && !name.ends_with(".artifacts") && name != "receipts" {
                stack.push(p);
            } else if name.starts_with("EB-") && name.ends_with(".json") && !name.ends_with(".receipt.json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// `ssh-keygen -Y verify -f allowed_signers -I msp-evidence -n msp-evidence -s B.sshsig < B`.
pub fn ssh_keygen_verify(keys: &Path, bundle: &Path) -> Result<(), String> {
    ssh_keygen_verify_at(keys, bundle, None)
}

/// The same with `-Overify-time=YYYYMMDDHHMMSS` (a historical bundle against the key valid
/// at its time, DESIGN.md 3).
pub fn ssh_keygen_verify_at(keys: &Path, bundle: &Path, verify_time: Option<&str>) -> Result<(), String> {
    let sig = PathBuf::from(format!("{}.sshsig", bundle.display()));
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-Y", "verify", "-f"])
        .arg(keys.join("allowed_signers"))
        .args(["-I", "msp-evidence", "-n", "msp-evidence", "-s"])
        .arg(&sig);
    if let Some(t) = verify_time {
        cmd.arg(format!("-Overify-time={t}"));
    }
    let out = cmd
        .stdin(Stdio::from(std::fs::File::open(bundle).map_err(|e| e.to_string())?))
        .output()
        .map_err(|e| format!("running ssh-keygen: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// `openssl pkeyutl -verify -pubin -inkey evidence-signing.pub.pem -rawin -in B -sigfile B.sig`.
pub fn openssl_verify(keys: &Path, bundle: &Path) -> Result<(), String> {
    openssl_verify_pem(&keys.join("evidence-signing.pub.pem"), bundle)
}

/// The same with the public key at `pem` (e.g. an archived key after rotation).
pub fn openssl_verify_pem(pem: &Path, bundle: &Path) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(pem)
        .args(["-rawin", "-in"])
        .arg(bundle)
        .arg("-sigfile")
        .arg(format!("{}.sig", bundle.display()))
        .output()
        .map_err(|e| format!("running openssl: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// Both stock verifications for every bundle under `root`; panics naming the first failure.
pub fn verify_all_with_stock_tools(keys: &Path, root: &Path) -> usize {
    let all = bundles(root);
    for b in &all {
        if let Err(e) = ssh_keygen_verify(keys, b) {
            panic!("ssh-keygen rejected {}: {e}", b.display());
        }
        if let Err(e) = openssl_verify(keys, b) {
            panic!("openssl rejected {}: {e}", b.display());
        }
    }
    all.len()
}
