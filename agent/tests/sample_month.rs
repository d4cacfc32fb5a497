//! `msp-agent evidence sample-month` (a test and demo aid): the months it writes verify with
//! `msp-agent evidence verify` and, for a bundle, with the stock `ssh-keygen` and `openssl`;
//! a second month continues the chain; a month out of order or a key valid too late is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use chrono::{DateTime, Utc};

fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msp-agent"))
        .args(args)
        .output()
        .unwrap()
}

fn sample(store: &Path, keys: &Path, month: &str) -> Output {
    agent(&[
        "evidence",
        "sample-month",
        "--store",
        store.to_str().unwrap(),
        "--month",
        month,
        "--client",
        "clinic-007",
        "--host",
        "clinic-007-srv",
        "--key-dir",
        keys.to_str().unwrap(),
        "--heartbeat-minutes",
        "60",
    ])
}

fn bundles(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    v.sort();
    v
}

#[test]
fn months_verify_continue_the_chain_and_pass_stock_tools() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let store = tmp.path().join("store");
    let t: DateTime<Utc> = "2026-09-01T00:00:00Z".parse().unwrap();
    msp_agent::keys::generate(&keys, t).unwrap();

    let help = agent(&["evidence", "sample-month", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("TEST AND DEMO AID"));

    let out = sample(&store, &keys, "2026-10");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sample(&store, &keys, "2026-11");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        said.contains("clinic-007/clinic-007-srv in 2026-11"),
        "{said}"
    );

    // The November chain follows October's: first sequence = October's count + 1.
    let oct = bundles(&store.join("2026/10"));
    let nov = bundles(&store.join("2026/11"));
    assert!(
        oct.len() > 700 && nov.len() > 700,
        "{} {}",
        oct.len(),
        nov.len()
    );
    let first: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&nov[0]).unwrap()).unwrap();
    assert_eq!(
        first["chain"]["sequence"].as_u64().unwrap(),
        oct.len() as u64 + 1
    );
    assert_eq!(first["client_id"], "clinic-007");
    assert_eq!(first["hostname"], "clinic-007-srv");

    // The whole store verifies with the agent's verifier (chain from sequence 1, both months).
    let v = agent(&[
        "evidence",
        "verify",
        "--keys",
        keys.to_str().unwrap(),
        store.to_str().unwrap(),
    ]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&v.stdout),
        String::from_utf8_lossy(&v.stderr)
    );

    // One bundle with the stock tools.
    let b = &nov[nov.len() / 2];
    let ok = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(keys.join("allowed_signers"))
        .args(["-I", "msp-evidence", "-n", "msp-evidence", "-s"])
        .arg(format!("{}.sshsig", b.display()))
        .stdin(std::fs::File::open(b).unwrap())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "ssh-keygen -Y verify {}", b.display());
    let ok = Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(keys.join("evidence-signing.pub.pem"))
        .args(["-rawin", "-in"])
        .arg(b)
        .arg("-sigfile")
        .arg(format!("{}.sig", b.display()))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl pkeyutl -verify {}", b.display());

    // Writing October again (not after the newest bundle) is refused, and nothing changes.
    let before = std::fs::read(&oct[3]).unwrap();
    let out = sample(&store, &keys, "2026-10");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds evidence up to"));
    assert_eq!(std::fs::read(&oct[3]).unwrap(), before);

    // Flipping one byte of a bundle is caught by the verifier (the store is real evidence).
    let mut bytes = std::fs::read(b).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    std::fs::write(b, bytes).unwrap();
    let v = agent(&[
        "evidence",
        "verify",
        "--keys",
        keys.to_str().unwrap(),
        store.to_str().unwrap(),
    ]);
    assert_eq!(v.status.code(), Some(1));
}

#[test]
fn a_key_valid_only_after_the_month_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    msp_agent::keys::generate(&keys, "2026-11-15T00:00:00Z".parse().unwrap()).unwrap();
    let out = sample(&tmp.path().join("store"), &keys, "2026-11");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("valid from") && err.contains("would not verify"),
        "{err}"
    );
    assert!(!tmp.path().join("store/2026/11").exists());
}
