//! The per-client fleet packet against the stand-in FleetQuery (ops_standin), signed with a
//! real agent key and checked with the real `ssh-keygen -Y verify` and `openssl pkeyutl`.

mod ops_standin;

use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use msp_fleet::model::*;
use msp_fleet::packet;
use ops_standin::{host, StandIn};
use sha2::{Digest, Sha256};

fn bref(id: &str, at: &str, ty: &str) -> BundleRef {
    BundleRef {
        bundle_id: id.into(),
        object_key: format!("msp-evidence/clinic-001/srv-a/2026/11/{id}.json"),
        generated_at: at.into(),
        event_type: ty.into(),
    }
}

fn fleet() -> StandIn {
    let q = StandIn::default();
    let mut a = host("clinic-001", "srv-a");
    a.key_ids = vec!["SHA256:abc".into()];
    a.controls = vec![
        ControlLine {
            control_id: "§164.312(b)".into(),
            title: "Audit controls".into(),
            state: ControlState::Passing,
            evidence_rule: "heartbeat".into(),
            freshness_hours: Some(1),
            evidence: Some(bref(
                "EB-20261130-0099",
                "2026-11-30T23:50:00Z",
                "heartbeat",
            )),
            exception: None,
            reason: "newest heartbeat 10 min old".into(),
        },
        ControlLine {
            control_id: "§164.308(a)(7)(ii)(A)".into(),
            title: "Data backup <plan>".into(),
            state: ControlState::IntegrityError,
            evidence_rule: "backup_completed".into(),
            freshness_hours: Some(26),
            evidence: None,
            exception: None,
            reason: "EB-20261129-0004 failed verification".into(),
        },
    ];
    a.incidents = vec![
        IncidentLine {
            bundle: bref("EB-20261109-0002", "2026-11-09T02:10:00Z", "backup_failed"),
            runbook_id: Some("RB-BACKUP-001".into()),
            status: "escalated".into(),
        },
        IncidentLine {
            bundle: bref("EB-20261201-0001", "2026-12-01T03:00:00Z", "disk_full"),
            runbook_id: Some("RB-DISK-001".into()),
            status: "failed".into(),
        },
    ];
    a.integrity = vec![IntegrityLine {
        object_key: "msp-evidence/clinic-001/srv-a/2026/11/EB-20261129-0004.json".into(),
        bundle_id: Some("EB-20261129-0004".into()),
        problem: "signature does not verify <script>alert(1)</script>".into(),
    }];
    a.summary.integrity_errors = 1;
    q.put("clinic-001", Some("Clinic & Sons"), a);
    q.put(
        "clinic-001",
        Some("Clinic & Sons"),
        host("clinic-001", "srv-b"),
    );
    q.set(
        "clinic-001",
        "srv-b",
        Silence::Page,
        Some("2026-11-20T00:00:00Z"),
    );
    q.put("clinic-002", None, host("clinic-002", "other"));
    q
}

fn keys(dir: &Path) -> msp_evidence::keys::Signer {
    let now: DateTime<Utc> = "2026-10-01T00:00:00Z".parse().unwrap();
    msp_evidence::keys::generate(dir, now).unwrap();
    msp_evidence::keys::Signer::load(dir).unwrap()
}

fn ssh_verify(keys: &Path, file: &Path) -> bool {
    let input = std::fs::File::open(file).unwrap();
    Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(keys.join("allowed_signers"))
        .args(["-I", "msp-evidence", "-n", "msp-evidence", "-s"])
        .arg(format!("{}.sshsig", file.display()))
        .stdin(input)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn openssl_verify(keys: &Path, file: &Path) -> bool {
    Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(keys.join("evidence-signing.pub.pem"))
        .arg("-rawin")
        .arg("-in")
        .arg(file)
        .arg("-sigfile")
        .arg(format!("{}.sig", file.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn packet_is_signed_verifiable_with_stock_tools_escaped_and_judged_at_month_end() {
    let tmp = tempfile::tempdir().unwrap();
    let kd = tmp.path().join("keys");
    let signer = keys(&kd);
    let q = fleet();
    let out = tmp.path().join("out");
    let now: DateTime<Utc> = "2026-12-02T16:00:00Z".parse().unwrap();
    let manifest = packet::write(
        &q,
        &Scope::Operator,
        "clinic-001",
        "2026-11",
        now,
        &out,
        &signer,
    )
    .unwrap();
    assert_eq!(manifest, out.join("fleet-manifest.json"));
    // Judged at the end of the month, not now.
    let end: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().unwrap();
    assert!(q.calls.lock().unwrap().iter().all(|t| *t == end));

    // Stock tools accept the signatures.
    assert!(ssh_verify(&kd, &manifest), "ssh-keygen -Y verify");
    assert!(openssl_verify(&kd, &manifest), "openssl pkeyutl -verify");
    let m: packet::FleetManifest =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m.manifest_type, "msp-fleet-packet");
    assert_eq!(m.client_id, "clinic-001");
    assert_eq!(m.period_start, "2026-11-01T00:00:00Z");
    assert_eq!(m.as_of, "2026-12-01T00:00:00Z");
    assert_eq!(m.hosts, ["srv-a", "srv-b"]);
    assert_eq!(m.signing.key_id, signer.key_id());
    assert_eq!(
        m.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["packet.html", "packet.json"]
    );
    for f in &m.files {
        let b = std::fs::read(out.join(&f.path)).unwrap();
        assert_eq!(hex::encode(Sha256::digest(&b)), f.sha256, "{}", f.path);
        assert_eq!(b.len() as u64, f.size_bytes);
    }

    // The HTML: header, escaped hostile strings, object keys, the month's incidents only.
    let html = std::fs::read_to_string(out.join("packet.html")).unwrap();
    assert!(html.contains("What it does NOT prove"));
    assert!(
        html.contains("verified against the host&#39;s registered key")
            || html.contains("verified against the host's registered key")
    );
    assert!(html.contains("Clinic &amp; Sons"));
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;"));
    assert!(html.contains("Data backup &lt;plan&gt;"));
    assert!(html.contains("msp-evidence/clinic-001/srv-a/2026/11/EB-20261130-0099.json"));
    assert!(html.contains("EB-20261109-0002"));
    assert!(
        !html.contains("EB-20261201-0001"),
        "a December incident is not November's"
    );
    assert!(html.contains("silent (page tier)"));
    assert!(html.contains("integrity error"));
    // Nothing of another client.
    assert!(!html.contains("clinic-002") && !html.contains("other"));

    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("packet.json")).unwrap()).unwrap();
    assert_eq!(j["client_id"], "clinic-001");
    assert_eq!(j["month"], "2026-11");
    assert_eq!(j["hosts"][0]["controls"][1]["state"], "integrity_error");
    assert_eq!(j["hosts"][0]["incidents"].as_array().unwrap().len(), 1);
    assert_eq!(j["hosts"][1]["summary"]["silence"], "page");

    // A changed packet file no longer matches; a changed manifest no longer verifies.
    let mut bytes = std::fs::read(&manifest).unwrap();
    let i = bytes.iter().position(|b| *b == b'2').unwrap();
    bytes[i] = b'3';
    std::fs::write(&manifest, &bytes).unwrap();
    assert!(!ssh_verify(&kd, &manifest));
    assert!(!openssl_verify(&kd, &manifest));
}

#[test]
fn current_month_is_judged_now_scope_and_month_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let kd = tmp.path().join("keys");
    let signer = keys(&kd);
    let q = fleet();
    let now: DateTime<Utc> = "2026-11-15T10:00:00Z".parse().unwrap();
    let m = packet::write(
        &q,
        &Scope::Client("clinic-001".into()),
        "clinic-001",
        "2026-11",
        now,
        &tmp.path().join("a"),
        &signer,
    )
    .unwrap();
    let m: packet::FleetManifest = serde_json::from_slice(&std::fs::read(m).unwrap()).unwrap();
    assert_eq!(m.as_of, "2026-11-15T10:00:00Z");
    assert_eq!(m.period_end, "2026-12-01T00:00:00Z");

    let err = format!(
        "{:#}",
        packet::write(
            &q,
            &Scope::Client("clinic-002".into()),
            "clinic-001",
            "2026-11",
            now,
            &tmp.path().join("b"),
            &signer
        )
        .unwrap_err()
    );
    assert!(err.contains("not visible"), "{err}");
    assert!(!tmp.path().join("b").exists());
    let err = format!(
        "{:#}",
        packet::write(
            &q,
            &Scope::Operator,
            "clinic-001",
            "2026-12",
            now,
            &tmp.path().join("c"),
            &signer
        )
        .unwrap_err()
    );
    assert!(err.contains("has not started"), "{err}");
    for bad in ["2026-13", "2026-1", "202611", "2026-11-01"] {
        let err = format!(
            "{:#}",
            packet::write(
                &q,
                &Scope::Operator,
                "clinic-001",
                bad,
                now,
                &tmp.path().join("d"),
                &signer
            )
            .unwrap_err()
        );
        assert!(err.contains("YYYY-MM"), "{bad}: {err}");
    }
    assert_eq!(
        packet::month_bounds("2026-12").unwrap().1,
        "2027-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
}
