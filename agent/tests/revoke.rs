//! Issue 17 item 1: `key revoke --compromised-since TIME`. Real bundles in a real store, the
//! real `msp-agent` binary, and the stock `ssh-keygen -Y verify -Overify-time` an auditor runs.

mod common {
    pub mod stock;
}

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, TimeZone, Utc};
use msp_agent::evidence::bundle::Bundle;
use msp_agent::evidence::sample::sample_new_bundle;
use msp_agent::evidence::store::{serialize_bundle, EvidenceStore, Written};
use msp_agent::keys::{self, Signer};

const BIN: &str = env!("CARGO_BIN_EXE_msp-agent");

fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

fn verify(keys: &Path, paths: &[&Path]) -> (i32, String) {
    run(Command::new(BIN).args(["evidence", "verify", "--keys"]).arg(keys).args(paths))
}

fn sidecar(p: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", p.display()))
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    keys: PathBuf,
    root: PathBuf,
    old: Signer,
    written: Vec<Written>,
}

/// A key valid from 2026-11-01 that signed bundles on 11-10, 11-12 and 11-14 at 09:00, then
/// `key revoke` (the CLI, at the real now) with the compromise at 2026-11-11T00:00:00Z.
fn revoked_store() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let keys = dir.join("keys");
    keys::generate(&keys, t(2026, 11, 1, 0, 0)).unwrap();
    let root = dir.join("evidence");
    let old = Signer::load(&keys).unwrap();
    let mut store = EvidenceStore::open(&root).unwrap();
    let written = [(1, 10), (2, 12), (3, 14)]
        .into_iter()
        .map(|(i, d)| store.append(sample_new_bundle(i, vec![]), &old, t(2026, 11, d, 9, 0)).unwrap())
        .collect();
    drop(store);
    let (code, out) = verify(&keys, &[&root]);
    assert_eq!(code, 0, "before revocation: {out}");
    let (code, out) = run(Command::new(BIN)
        .args(["key", "revoke", "--key-dir"])
        .arg(&keys)
        .args(["--compromised-since", "2026-11-11T00:00:00Z"]));
    assert_eq!(code, 0, "key revoke: {out}");
    assert!(out.contains(&format!("revoked {}: compromised since 2026-11-11T00:00:00Z", old.key_id())), "{out}");
    Fixture { _tmp: tmp, dir, keys, root, old, written }
}

fn rev_path(f: &Fixture) -> PathBuf {
    keys::revocation_path(&f.keys, f.old.key_id())
}

#[test]
fn revoke_splits_bundles_at_the_compromise_for_verify_and_ssh_keygen() {
    let f = revoked_store();
    // The active key was revoked, so it was rotated: a new key signs from now on.
    let new = Signer::load(&f.keys).unwrap();
    assert_ne!(new.key_id(), f.old.key_id());
    let info: serde_json::Value = serde_json::from_slice(
        &fs::read(f.keys.join("archive").join(format!("{}.json", keys::key_id_file_stem(f.old.key_id())))).unwrap(),
    )
    .unwrap();
    assert_eq!(info["compromised_since"], "2026-11-11T00:00:00Z");
    assert_eq!(info["valid_until"], "2026-11-11T00:00:00Z");
    let allowed = fs::read_to_string(f.keys.join("allowed_signers")).unwrap();
    assert!(allowed.contains(r#"valid-after="20261101000000Z",valid-before="20261111000000Z""#), "{allowed}");

    // msp-agent evidence verify: the two bundles after the compromise are named, exit 1.
    let (code, out) = verify(&f.keys, &[&f.root]);
    assert_eq!(code, 1, "{out}");
    for b in ["EB-20261112-0001.json", "EB-20261114-0001.json"] {
        let day = &b[7..11];
        assert!(
            out.contains(&format!(
                "{b}: signed by key {} after its compromise at 2026-11-11T00:00:00Z: generated_at 2026-{}-{}T09:00:00Z (key revoked; untrusted)",
                f.old.key_id(),
                &day[..2],
                &day[2..]
            )),
            "{b} not named: {out}"
        );
    }
    assert!(!out.contains("EB-20261110-0001.json:"), "the bundle before the compromise was named: {out}");
    // The bundle before the compromise still verifies on its own.
    let (code, out) = verify(&f.keys, &[&f.written[0].path]);
    assert_eq!(code, 0, "{out}");

    // ssh-keygen with the rewritten allowed_signers: before TIME accepted, after TIME refused.
    common::stock::ssh_keygen_verify_at(&f.keys, &f.written[0].path, Some("20261110090000"))
        .unwrap_or_else(|e| panic!("ssh-keygen refused the bundle before the compromise: {e}"));
    for w in &f.written[1..] {
        let at = format!("202611{}090000", &w.path.file_name().unwrap().to_string_lossy()[9..11]);
        let r = common::stock::ssh_keygen_verify_at(&f.keys, &w.path, Some(&at));
        assert!(r.is_err(), "ssh-keygen accepted {} signed after the compromise", w.path.display());
    }

    // The revocation record itself verifies with the stock tool (signed by the new key).
    let rec = rev_path(&f);
    common::stock::ssh_keygen_verify(&f.keys, &rec).unwrap_or_else(|e| panic!("ssh-keygen refused the revocation record: {e}"));
    let r: serde_json::Value = serde_json::from_slice(&fs::read(&rec).unwrap()).unwrap();
    assert_eq!(r["signed_by"], new.key_id());
    assert_eq!(r["key_id"], f.old.key_id());

    // New bundles by the successor verify; the chain goes on.
    let mut store = EvidenceStore::open(&f.root).unwrap();
    let w4 = store.append(sample_new_bundle(4, vec![]), &new, Utc::now()).unwrap();
    drop(store);
    common::stock::ssh_keygen_verify(&f.keys, &w4.path).unwrap();
    let (code, out) = verify(&f.keys, &[&f.root]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains(&format!("{}:", w4.path.file_name().unwrap().to_string_lossy())), "{out}");
}

#[test]
fn a_back_dated_bundle_by_the_stolen_key_appended_after_the_compromise_is_named() {
    let f = revoked_store();
    // The thief signs a bundle dated before the compromise (inside the key's remaining window)
    // and appends it to the chain after bundle 3, dated 11-14.
    let last = &f.written[2];
    let mut b: Bundle = serde_json::from_slice(&fs::read(&last.path).unwrap()).unwrap();
    b.bundle_id = "EB-20261110-0002".into();
    b.generated_at = "2026-11-10T10:00:00Z".into();
    b.chain.sequence = 4;
    b.chain.prev_bundle_sha256 = last.sha256.clone();
    let bytes = serialize_bundle(&b).unwrap();
    let forged = f.root.join("2026/11/EB-20261110-0002.json");
    fs::write(&forged, &bytes).unwrap();
    fs::write(sidecar(&forged, ".sig"), f.old.sign_raw(&bytes)).unwrap();
    fs::write(sidecar(&forged, ".sshsig"), f.old.sign_sshsig(&bytes).unwrap()).unwrap();
    // On its own, at the time it claims, the stock tool accepts it: only the chain says no.
    common::stock::ssh_keygen_verify_at(&f.keys, &forged, Some("20261110100000")).unwrap();

    let (code, out) = verify(&f.keys, &[&f.root]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "EB-20261110-0002.json: signed by key {} after its compromise at 2026-11-11T00:00:00Z: it follows EB-20261112-0001.json (sequence 2, dated after the compromise) in the chain",
            f.old.key_id()
        )),
        "{out}"
    );
}

#[test]
fn tampering_with_the_revocation_is_detected() {
    let f = revoked_store();
    let rec = rev_path(&f);
    let archived = f.keys.join("archive").join(format!("{}.json", keys::key_id_file_stem(f.old.key_id())));
    let pristine = f.dir.join("keys-pristine");
    assert!(Command::new("cp").arg("-a").arg(&f.keys).arg(&pristine).status().unwrap().success());
    let reset = || {
        fs::remove_dir_all(&f.keys).unwrap();
        assert!(Command::new("cp").arg("-a").arg(&pristine).arg(&f.keys).status().unwrap().success());
    };
    let expect = |what: &str, needle: &str| {
        let (code, out) = verify(&f.keys, &[&f.root]);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.contains(needle), "{what}: expected {needle:?} in {out}");
    };

    // 1. A later compromise time written into the record: its signature no longer verifies.
    let text = fs::read_to_string(&rec).unwrap().replace("2026-11-11T00:00:00Z", "2026-11-20T00:00:00Z");
    fs::write(&rec, text).unwrap();
    expect("record edited", "the revocation record was modified");
    reset();

    // 2. The record removed (and its signatures).
    for s in ["", ".sig", ".sshsig"] {
        fs::remove_file(sidecar(&rec, s)).unwrap();
    }
    expect("record removed", "the signed revocation record was removed");
    reset();

    // 3. The archived key info edited back to its old window.
    let mut info: serde_json::Value = serde_json::from_slice(&fs::read(&archived).unwrap()).unwrap();
    info.as_object_mut().unwrap().remove("compromised_since");
    info["valid_until"] = serde_json::Value::String(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    fs::write(&archived, serde_json::to_vec_pretty(&info).unwrap()).unwrap();
    expect("revocation edited away", "the revocation was edited away or not completed");
    reset();

    // 4. A record signed by the stolen key itself (what a thief can make) is refused.
    let mut r: serde_json::Value = serde_json::from_slice(&fs::read(&rec).unwrap()).unwrap();
    r["signed_by"] = serde_json::Value::String(f.old.key_id().into());
    let bytes = serde_json::to_vec_pretty(&r).unwrap();
    fs::write(&rec, &bytes).unwrap();
    fs::write(sidecar(&rec, ".sig"), f.old.sign_raw(&bytes)).unwrap();
    expect("self-signed record", "is not another key of this key directory");
    reset();

    let (code, out) = verify(&f.keys, &[&f.written[0].path]);
    assert_eq!(code, 0, "after reset: {out}");
}

#[test]
fn revoke_refuses_a_future_time_and_a_time_before_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    keys::generate(&keys, t(2026, 11, 1, 0, 0)).unwrap();
    let before = fs::read(keys.join("key-info.json")).unwrap();
    for (since, needle) in [("2999-01-01T00:00:00Z", "is in the future"), ("2026-10-01T00:00:00Z", "after --compromised-since")] {
        let (code, out) = run(Command::new(BIN).args(["key", "revoke", "--key-dir"]).arg(&keys).args(["--compromised-since", since]));
        assert_eq!(code, 2, "{out}");
        assert!(out.contains(needle), "{out}");
    }
    assert_eq!(fs::read(keys.join("key-info.json")).unwrap(), before, "a refused revoke changed the keys");
    let (code, out) = run(Command::new(BIN).args(["key", "revoke", "--key-dir"]).arg(&keys).args(["--compromised-since", "yesterday"]));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--compromised-since"), "{out}");
}

#[test]
fn export_carries_the_revocation_and_the_recipient_sees_the_same_split() {
    let f = revoked_store();
    let to = f.dir.join("export");
    let (code, out) = run(Command::new(BIN)
        .args(["evidence", "export", "--client", "clinic-001", "--to"])
        .arg(&to)
        .arg("--evidence-dir")
        .arg(&f.root)
        .arg("--key-dir")
        .arg(&f.keys));
    // The bundles signed after the compromise fail the export's own verification (exit 1),
    // named; the export still holds everything, revocation included.
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("EB-20261112-0001.json: signed by key"), "{out}");
    let stem = keys::key_id_file_stem(f.old.key_id());
    for s in ["", ".sig", ".sshsig"] {
        let p = to.join("keys/revocations").join(format!("REV-{stem}.json{s}"));
        assert!(p.is_file(), "{} not exported: {out}", p.display());
    }
    assert!(!to.join("keys/evidence-signing.key").exists(), "private key exported");
    let (code, out) = verify(&to.join("keys"), &[&to.join("evidence")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("EB-20261114-0001.json: signed by key"), "{out}");
    assert!(!out.contains("EB-20261110-0001.json:"), "{out}");
    let (code, out) = verify(&to.join("keys"), &[&to.join("evidence/2026/11/EB-20261110-0001.json")]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn the_packet_marks_bundles_after_the_compromise_unverified_and_keeps_the_earlier_ones() {
    use msp_agent::packet::period::Month;
    use msp_agent::packet::sample::{write_month, MonthSpec};
    let tmp = tempfile::tempdir().unwrap();
    let keys_dir = tmp.path().join("keys");
    let evidence = tmp.path().join("evidence");
    let month = Month::parse("2026-10").unwrap();
    keys::generate(&keys_dir, month.start() - chrono::Duration::days(30)).unwrap();
    let signer = Signer::load(&keys_dir).unwrap();
    let text = msp_agent::packet::EMBEDDED_BASELINE.1;
    let mut findings = msp_agent::baseline::report::Findings::default();
    let b = msp_agent::baseline::model::load("b", text, &mut findings).unwrap();
    let spec = MonthSpec::new(month, &b.version, &msp_agent::baseline::model::sha256_hex(text.as_bytes()));
    write_month(&evidence, &spec, &signer).unwrap();
    let (code, out) = run(Command::new(BIN)
        .args(["key", "revoke", "--key-dir"])
        .arg(&keys_dir)
        .args(["--compromised-since", "2026-10-20T00:00:00Z"]));
    assert_eq!(code, 0, "{out}");
    let packet = tmp.path().join("packet");
    let (code, out) = run(Command::new(BIN)
        .args(["packet", "--month", "2026-10", "--at", "2026-11-05T00:00:00Z", "--evidence-dir"])
        .arg(&evidence)
        .arg("--key-dir")
        .arg(&keys_dir)
        .arg("--out")
        .arg(&packet));
    assert_eq!(code, 0, "{out}");
    let m: serde_json::Value = serde_json::from_slice(&fs::read(packet.join("manifest.json")).unwrap()).unwrap();
    let listed = m["bundles"].as_array().unwrap();
    let (mut before, mut after) = (0, 0);
    let since = t(2026, 10, 20, 0, 0);
    let key_id = signer.key_id().to_string();
    for e in listed {
        let path = evidence.join(e["path"].as_str().unwrap());
        let b: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let at = DateTime::parse_from_rfc3339(b["generated_at"].as_str().unwrap()).unwrap().with_timezone(&Utc);
        if at > since {
            assert_eq!(e["verified"], false, "{} dated after the compromise still verified", path.display());
            let why = e["problem"].as_str().unwrap_or_default();
            assert!(why.contains(&format!("signed by key {key_id} after its compromise at 2026-10-20T00:00:00Z")), "{why}");
            after += 1;
        } else {
            assert_eq!(e["verified"], true, "{} before the compromise no longer verifies: {e}", path.display());
            before += 1;
        }
    }
    assert!(before > 100 && after > 50, "before {before}, after {after}");
}
