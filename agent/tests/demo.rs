//! `msp-agent demo`: the README's main job works on embedded defaults, twice in a row, and
//! its evidence verifies with the stock tools.

mod common {
    pub mod stock;
}

use std::process::Command;

#[test]
fn demo_runs_twice_and_its_evidence_verifies_with_stock_tools() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("demo");
    for round in 1..=2 {
        let o = Command::new(env!("CARGO_BIN_EXE_msp-agent")).args(["demo", "--out"]).arg(&out).output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "round {round}: {stdout}{}", String::from_utf8_lossy(&o.stderr));
        assert!(stdout.contains("All evidence in"), "{stdout}");
        assert_eq!(stdout.matches("-> OK").count(), 3, "ssh-keygen, openssl and evidence verify: {stdout}");
    }
    let n = common::stock::verify_all_with_stock_tools(&out.join("keys"), &out.join("evidence"));
    assert_eq!(n, 2, "one bundle per run, one chain");
    for rb in ["RB-BACKUP-001", "RB-CERT-001", "RB-CPU-001", "RB-DISK-001", "RB-DRIFT-001", "RB-RESTORE-001", "RB-SERVICE-001"] {
        assert!(out.join("runbooks").join(format!("{rb}.yaml")).is_file(), "{rb} written");
    }
}
