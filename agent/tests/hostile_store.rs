//! Issue 18, a hostile local user and hostile files against the evidence store, keys and
//! `runbook run` (items 2, 3, 4, 6, 9, 12). Real files, real FIFOs and symlinks, real chown
//! to a second uid and chmod, a real full filesystem (tmpfs with `size=`), and every
//! signature checked with the stock `ssh-keygen` and `openssl` as an auditor would.
//!
//! Items 4 and 12 need root (chown to another uid, mount); CI runs the tests as root. Without
//! root they print a loud SKIPPED line saying why.

mod common {
    pub mod stock;
}

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use msp_agent::evidence::bundle::Bundle;
use msp_agent::evidence::sample::sample_new_bundle;
use msp_agent::evidence::store::{serialize_bundle, EvidenceStore, Written};
use msp_agent::keys::{self, Signer};

const BIN: &str = env!("CARGO_BIN_EXE_msp-agent");
/// A uid no test machine uses, for "owned by another user".
const OTHER_UID: u32 = 4242;

fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// Run `cmd`, killing it after `secs`: a hang is a test failure, never a hung test.
fn run_timeout(cmd: &mut Command, secs: u64) -> (i32, String, String) {
    let out_path = tempfile::NamedTempFile::new().unwrap();
    let err_path = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out_path.reopen().unwrap())
        .stderr(err_path.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} hung for {secs} s (killed)\nstdout:\n{}\nstderr:\n{}",
                fs::read_to_string(out_path.path()).unwrap_or_default(),
                fs::read_to_string(err_path.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (
        status.code().unwrap_or(-1),
        fs::read_to_string(out_path.path()).unwrap(),
        fs::read_to_string(err_path.path()).unwrap(),
    )
}

fn verify(keys: &Path, root: &Path, extra: &[&str]) -> (i32, String, String) {
    run_timeout(Command::new(BIN).args(["evidence", "verify", "--keys"]).arg(keys).args(extra).arg(root), 60)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    keys: PathBuf,
    root: PathBuf,
}

/// Keys valid from 2026-11-01, an empty store.
fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let keys = dir.join("keys");
    keys::generate(&keys, t(2026, 11, 1, 0, 0)).unwrap();
    let root = dir.join("evidence");
    Fixture { _tmp: tmp, dir, keys, root }
}

/// Append sample bundles `range` on 2026-11-22 at 10:i, bundle 2 with an artifact.
fn write(f: &Fixture, range: std::ops::RangeInclusive<u64>) -> Vec<Written> {
    let signer = Signer::load(&f.keys).unwrap();
    let mut store = EvidenceStore::open(&f.root).unwrap();
    let src = f.dir.join("artifact-src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("df.txt"), "Filesystem Use%\n/srv/data 93%\n").unwrap();
    range
        .map(|i| {
            let arts = if i == 2 { vec![src.join("df.txt")] } else { vec![] };
            store.append(sample_new_bundle(i, arts), &signer, t(2026, 11, 22, 10, i as u32)).unwrap()
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(st.success());
}

fn case(f: &Fixture, name: &str) -> PathBuf {
    let d = f.dir.join(format!("case-{name}"));
    copy_tree(&f.root, &d);
    d
}

fn bundle(root: &Path, n: u32) -> PathBuf {
    root.join(format!("2026/11/EB-20261122-{n:04}.json"))
}

fn sidecar(p: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", p.display()))
}

/// Delete a bundle with its signatures (what a hostile user with write access does).
fn delete_bundle(root: &Path, n: u32) {
    let b = bundle(root, n);
    for p in [sidecar(&b, ".sig"), sidecar(&b, ".sshsig"), b] {
        fs::remove_file(&p).unwrap();
    }
}

/// Both stock tools accept `file` with the current key.
fn stock_ok(keys: &Path, file: &Path) {
    common::stock::openssl_verify(keys, file).unwrap_or_else(|e| panic!("openssl rejected {}: {e}", file.display()));
    common::stock::ssh_keygen_verify(keys, file).unwrap_or_else(|e| panic!("ssh-keygen rejected {}: {e}", file.display()));
}

/// The receipt the uploader writes after a confirmed upload of `id`.
fn write_receipt(f: &Fixture, id: &str, sha: &str) {
    use msp_agent::worm::receipt::{self, Receipt, ReceiptSigning};
    let signer = Signer::load(&f.keys).unwrap();
    let local = msp_agent::worm::local::scan(&f.root).unwrap().into_iter().find(|b| b.id == id).unwrap();
    let r = Receipt {
        receipt_version: receipt::RECEIPT_VERSION,
        bundle_id: id.into(),
        bundle_sha256: sha.into(),
        endpoint: "http://127.0.0.1:9".into(),
        bucket: "evidence".into(),
        lock_mode: "COMPLIANCE".into(),
        retain_until: t(2033, 11, 22, 0, 0),
        confirmed_at: t(2026, 11, 22, 12, 0),
        objects: vec![],
        verification: "read back".into(),
        signing: ReceiptSigning { key_id: signer.key_id().into(), algorithm: "ed25519".into() },
    };
    let p = receipt::write(&f.root, &local, &r, &signer).unwrap();
    stock_ok(&f.keys, &p);
}

#[test]
fn item_2_deleting_newest_bundles_is_detected() {
    let f = fixture();
    let signer = Signer::load(&f.keys).unwrap();
    write(&f, 1..=1);
    // Bundle 2 is a heartbeat of an agent that signs heads, recording its chain position.
    {
        let mut store = EvidenceStore::open(&f.root).unwrap();
        let mut hb = sample_new_bundle(2, vec![]);
        hb.incident.event_type = "heartbeat".into();
        hb.incident.detected_at = "2026-11-22T10:02:00Z".into();
        let mut details = serde_json::json!({"interval_seconds": 900});
        msp_agent::daemon::records::add_chain_position(&mut details, store.head());
        hb.incident.details = details;
        store.append(hb, &signer, t(2026, 11, 22, 10, 2)).unwrap();
    }
    let w3 = write(&f, 3..=3);
    // The signed head: checked by the stock tools exactly like a bundle.
    let head = f.root.join("head/head.json");
    stock_ok(&f.keys, &head);
    let saved_head = f.dir.join("head-at-3");
    copy_tree(&f.root.join("head"), &saved_head);
    let later = write(&f, 4..=5);
    for w in &later {
        write_receipt(&f, &w.bundle_id, &w.sha256);
    }
    let (code, out, err) = verify(&f.keys, &f.root, &[]);
    assert_eq!(code, 0, "pristine store: {out}{err}");
    let hb: serde_json::Value = serde_json::from_slice(&fs::read(bundle(&f.root, 2)).unwrap()).unwrap();
    assert_eq!(hb["incident"]["details"]["chain_head_sequence"], 1, "{hb}");
    assert_eq!(hb["incident"]["details"]["chain_head_sha256"], hb["chain"]["prev_bundle_sha256"]);

    // A: the newest two bundles and the head deleted (receipts too): named, and not continued.
    let a = case(&f, "no-head");
    delete_bundle(&a, 4);
    delete_bundle(&a, 5);
    fs::remove_dir_all(a.join("head")).unwrap();
    fs::remove_dir_all(a.join("receipts")).unwrap();
    let (code, out, err) = verify(&f.keys, &a, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("holds 3 bundle(s) but no chain head"), "{out}");
    let e = format!("{:#}", EvidenceStore::open(&a).unwrap_err());
    assert!(e.contains("no chain head") && e.contains("refusing to continue"), "{e}");

    // B: deleted, and the head rewritten to name bundle 3 (its signatures kept).
    let b = case(&f, "rewritten-head");
    delete_bundle(&b, 4);
    delete_bundle(&b, 5);
    fs::remove_dir_all(b.join("receipts")).unwrap();
    let hp = b.join("head/head.json");
    let mut rec: serde_json::Value = serde_json::from_slice(&fs::read(&hp).unwrap()).unwrap();
    rec["sequence"] = 3.into();
    rec["bundle"] = "2026/11/EB-20261122-0003.json".into();
    rec["sha256"] = w3[0].sha256.clone().into();
    fs::set_permissions(&hp, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&hp, serde_json::to_vec_pretty(&rec).unwrap()).unwrap();
    let (code, out, err) = verify(&f.keys, &b, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("head.json: chain head raw signature (head.json.sig) does not verify"), "{out}");
    assert!(common::stock::openssl_verify(&f.keys, &hp).is_err(), "openssl accepted the rewritten head");
    assert!(common::stock::ssh_keygen_verify(&f.keys, &hp).is_err(), "ssh-keygen accepted the rewritten head");
    let e = format!("{:#}", EvidenceStore::open(&b).unwrap().append(sample_new_bundle(9, vec![]), &signer, t(2026, 11, 22, 11, 0)).unwrap_err());
    assert!(e.contains("the chain head was rewritten"), "{e}");

    // C: deleted, the signed head replaced by an older agent's unsigned head.json: the
    // heartbeat says this store's heads are signed.
    let c = case(&f, "unsigned-head");
    delete_bundle(&c, 4);
    delete_bundle(&c, 5);
    fs::remove_dir_all(c.join("head")).unwrap();
    fs::remove_dir_all(c.join("receipts")).unwrap();
    let legacy = serde_json::json!({"sequence": 3, "bundle": "2026/11/EB-20261122-0003.json", "sha256": w3[0].sha256});
    fs::write(c.join("head.json"), serde_json::to_vec_pretty(&legacy).unwrap()).unwrap();
    let (code, out, err) = verify(&f.keys, &c, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("the chain head is unsigned, but heartbeat EB-20261122-0002 (sequence 2) was written by an agent that signs it"), "{out}");

    // D: deleted, and the old signed head (saved at sequence 3) put back: a valid signature
    // and a chain that reaches it, but the upload receipts name the deleted bundles.
    let d = case(&f, "replayed-head");
    delete_bundle(&d, 4);
    delete_bundle(&d, 5);
    fs::remove_dir_all(d.join("head")).unwrap();
    copy_tree(&saved_head, &d.join("head"));
    stock_ok(&f.keys, &d.join("head/head.json"));
    let (code, out, err) = verify(&f.keys, &d, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("says bundle EB-20261122-0004 (sha256 ") && out.contains("but EB-20261122-0004.json is not in the store"),
        "{out}"
    );
    assert!(out.contains("EB-20261122-0005.receipt.json"), "{out}");

    // E: the chain position: a head far after the last heartbeat shows as a gap naming it.
    let mut store = EvidenceStore::open(&f.root).unwrap();
    store.append(sample_new_bundle(6, vec![]), &signer, t(2026, 11, 22, 14, 0)).unwrap();
    drop(store);
    let (code, out, err) = verify(&f.keys, &f.root, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("warning: heartbeat gap on clinic-001/clinic-001-srv-primary: EB-20261122-0002")
            && out.contains("to EB-20261122-0006 (chain head, sequence 6, 4 bundle(s) after the last heartbeat)"),
        "{out}"
    );
    let (code, _, err) = verify(&f.keys, &f.root, &["--max-heartbeat-gap", "2h"]);
    assert_eq!(code, 1, "{err}");
    for b in common::stock::bundles(&f.root) {
        stock_ok(&f.keys, &b);
    }
}

#[test]
fn item_2_migration_an_older_agents_unsigned_head_is_signed_once() {
    let f = fixture();
    let w = write(&f, 1..=3);
    // What the previous version left: an unsigned ROOT/head.json, no head/.
    fs::remove_dir_all(f.root.join("head")).unwrap();
    let legacy = serde_json::json!({"sequence": 3, "bundle": "2026/11/EB-20261122-0003.json", "sha256": w[2].sha256});
    fs::write(f.root.join("head.json"), serde_json::to_vec_pretty(&legacy).unwrap()).unwrap();
    let (code, out, err) = verify(&f.keys, &f.root, &[]);
    assert_eq!(code, 0, "an older agent's store still verifies: {out}{err}");
    assert!(out.contains("warning:") && out.contains("unsigned chain head of an agent older than signed heads"), "{out}");
    // Truncation is still caught through the unsigned head.
    let t1 = case(&f, "legacy-truncated");
    delete_bundle(&t1, 3);
    let (code, out, _) = verify(&f.keys, &t1, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("chain truncated"), "{out}");

    // The new agent's first start signs it, once, and records that it did.
    let signer = Signer::load(&f.keys).unwrap();
    let mut store = EvidenceStore::open(&f.root).unwrap();
    assert!(store.sign_legacy_head(&signer, t(2026, 11, 23, 0, 0)).unwrap());
    assert!(!store.sign_legacy_head(&signer, t(2026, 11, 23, 0, 0)).unwrap());
    drop(store);
    assert!(!f.root.join("head.json").exists());
    let head = f.root.join("head/head.json");
    stock_ok(&f.keys, &head);
    let rec: serde_json::Value = serde_json::from_slice(&fs::read(&head).unwrap()).unwrap();
    assert_eq!(rec["sequence"], 3);
    assert_eq!(rec["signed_since"]["migrated_from_unsigned"], true, "{rec}");
    assert_eq!(rec["signed_since"]["sequence"], 3);
    let (code, out, err) = verify(&f.keys, &f.root, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("warning:"), "{out}");
    // Later heads keep the record of where signing began.
    write(&f, 4..=4);
    let rec: serde_json::Value = serde_json::from_slice(&fs::read(&head).unwrap()).unwrap();
    assert_eq!((rec["sequence"].as_u64(), rec["signed_since"]["sequence"].as_u64()), (Some(4), Some(3)));
}

#[test]
fn item_3_a_retired_key_cannot_extend_the_chain_by_back_dating() {
    let f = fixture();
    let old = Signer::load(&f.keys).unwrap();
    let mut store = EvidenceStore::open(&f.root).unwrap();
    store.append(sample_new_bundle(1, vec![]), &old, t(2026, 11, 10, 9, 0)).unwrap();
    store.append(sample_new_bundle(2, vec![]), &old, t(2026, 11, 12, 9, 0)).unwrap();
    keys::rotate(&f.keys, t(2026, 11, 15, 0, 0)).unwrap();
    let new = Signer::load(&f.keys).unwrap();
    let w3 = store.append(sample_new_bundle(3, vec![]), &new, t(2026, 11, 16, 9, 0)).unwrap();
    drop(store);

    // The retired key appends a bundle dated inside its old window, after the new key's.
    let mut b: Bundle = serde_json::from_slice(&fs::read(&w3.path).unwrap()).unwrap();
    b.bundle_id = "EB-20261114-0001".into();
    b.generated_at = "2026-11-14T09:00:00Z".into();
    b.chain.sequence = 4;
    b.chain.prev_bundle_sha256 = w3.sha256.clone();
    b.signing.key_id = old.key_id().into();
    let bytes = serialize_bundle(&b).unwrap();
    let forged = f.root.join("2026/11/EB-20261114-0001.json");
    fs::write(&forged, &bytes).unwrap();
    fs::write(sidecar(&forged, ".sig"), old.sign_raw(&bytes)).unwrap();
    fs::write(sidecar(&forged, ".sshsig"), old.sign_sshsig(&bytes).unwrap()).unwrap();
    // On its own the bundle passes the stock tools at its claimed time: only the chain says no.
    let archived = f.keys.join("archive").join(format!("{}.pub.pem", keys::key_id_file_stem(old.key_id())));
    common::stock::openssl_verify_pem(&archived, &forged).unwrap();
    common::stock::ssh_keygen_verify_at(&f.keys, &forged, Some("20261114090000")).unwrap();

    let (code, out, err) = verify(&f.keys, &f.root, &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(&format!(
            "EB-20261114-0001.json: signed by retired key {} after its successor {} signed EB-20261116-0001.json (sequence 3); this is sequence 4",
            old.key_id(),
            new.key_id()
        )),
        "{out}"
    );
    assert!(
        out.contains("EB-20261114-0001.json: time goes backwards: generated_at 2026-11-14T09:00:00.000Z is before 2026-11-16T09:00:00.000Z of EB-20261116-0001.json (sequence 3)"),
        "{out}"
    );

    // The writer itself never dates backwards: a clock behind the head is held at its time.
    let g = fixture();
    let s = Signer::load(&g.keys).unwrap();
    let mut store = EvidenceStore::open(&g.root).unwrap();
    store.append(sample_new_bundle(1, vec![]), &s, t(2026, 11, 22, 12, 0)).unwrap();
    let w = store.append(sample_new_bundle(2, vec![]), &s, t(2026, 11, 22, 11, 0)).unwrap();
    drop(store);
    let b: Bundle = serde_json::from_slice(&fs::read(&w.path).unwrap()).unwrap();
    assert_eq!((b.generated_at.as_str(), w.bundle_id.as_str()), ("2026-11-22T12:00:00Z", "EB-20261122-0002"));
    let (code, out, err) = verify(&g.keys, &g.root, &[]);
    assert_eq!(code, 0, "{out}{err}");
    stock_ok(&g.keys, &w.path);
}

#[test]
fn item_6_a_fork_in_the_middle_is_refused_by_open() {
    let f = fixture();
    let w = write(&f, 1..=5);
    let signer = Signer::load(&f.keys).unwrap();
    // A second bundle with sequence 3 (the middle), validly signed, on another day's name.
    let mut b: Bundle = serde_json::from_slice(&fs::read(&w[2].path).unwrap()).unwrap();
    b.bundle_id = "EB-20261121-0001".into();
    b.generated_at = "2026-11-21T10:03:00Z".into();
    b.incident.incident_id = "INC-20261121-0099".into();
    let bytes = serialize_bundle(&b).unwrap();
    let fork = f.root.join("2026/11/EB-20261121-0001.json");
    fs::write(&fork, &bytes).unwrap();
    fs::write(sidecar(&fork, ".sig"), signer.sign_raw(&bytes)).unwrap();
    fs::write(sidecar(&fork, ".sshsig"), signer.sign_sshsig(&bytes).unwrap()).unwrap();
    stock_ok(&f.keys, &fork);

    let e = format!("{:#}", EvidenceStore::open(&f.root).unwrap_err());
    assert!(
        e.contains("two bundles with sequence 3") && e.contains("EB-20261121-0001") && e.contains("EB-20261122-0003") && e.contains("forked"),
        "{e}"
    );
    // The writer CLI refuses too (exit 2), and verify names the fork.
    let (code, _, err) = run_timeout(
        Command::new(BIN).args(["evidence", "write-test-bundles", "--count", "1", "--root"]).arg(&f.root).arg("--keys").arg(&f.keys),
        60,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("forked"), "{err}");
    let (code, out, _) = verify(&f.keys, &f.root, &[]);
    assert_eq!(code, 1);
    assert!(out.contains("fork: sequence 3 is also used by"), "{out}");

    // A bundle deleted in the middle is refused as well (the count does not add up).
    fs::remove_file(&fork).unwrap();
    let g = case(&f, "middle-gap");
    delete_bundle(&g, 2);
    fs::remove_dir_all(g.join("2026/11/EB-20261122-0002.artifacts")).unwrap();
    let e = format!("{:#}", EvidenceStore::open(&g).unwrap_err());
    assert!(e.contains("no bundle with sequence 2") && e.contains("evidence was deleted"), "{e}");
    EvidenceStore::open(&f.root).unwrap();
}

fn mkfifo(p: &Path) {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
}

fn replace_with_fifo(p: &Path) {
    fs::remove_file(p).unwrap();
    mkfifo(p);
}

#[test]
fn item_9_special_files_are_named_never_read() {
    let f = fixture();
    write(&f, 1..=3);
    let check = |dir: &Path, want: &[&str]| {
        let (code, out, err) = verify(&f.keys, dir, &[]);
        assert_eq!(code, 1, "{out}{err}");
        for w in want {
            assert!(out.contains(w), "expected {w:?} in:\n{out}");
        }
    };
    // A FIFO named like the next bundle.
    let a = case(&f, "fifo-bundle");
    mkfifo(&bundle(&a, 4));
    check(&a, &["EB-20261122-0004.json: not read: ", "EB-20261122-0004.json is a FIFO; only regular files are read"]);
    // A FIFO as a signature.
    let b = case(&f, "fifo-sig");
    replace_with_fifo(&sidecar(&bundle(&b, 1), ".sig"));
    check(&b, &["EB-20261122-0001.json: not read: ", "EB-20261122-0001.json.sig is a FIFO"]);
    // An artifact symlinked to /dev/zero, and one that is a FIFO.
    let c = case(&f, "artifact-devzero");
    let art = c.join("2026/11/EB-20261122-0002.artifacts/df.txt");
    fs::remove_file(&art).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &art).unwrap();
    check(&c, &["EB-20261122-0002.json: artifact df.txt: not read: ", "df.txt is a symbolic link"]);
    let d = case(&f, "artifact-fifo");
    replace_with_fifo(&d.join("2026/11/EB-20261122-0002.artifacts/df.txt"));
    check(&d, &["artifact df.txt: not read: ", "df.txt is a FIFO"]);
    // A 3 GB sparse file named like a bundle: refused by its size, not read.
    let e = case(&f, "sparse");
    let big = fs::File::create(bundle(&e, 4)).unwrap();
    big.set_len(3 << 30).unwrap();
    let started = Instant::now();
    check(&e, &["EB-20261122-0004.json: not read: ", "is 3221225472 bytes, more than the 16777216 bytes allowed"]);
    assert!(started.elapsed() < Duration::from_secs(20), "the sparse file was read: {:?}", started.elapsed());
    // A bundle symlinked to a copy outside the store: not followed.
    let g = case(&f, "symlink-out");
    let outside = f.dir.join("outside.json");
    fs::copy(bundle(&g, 3), &outside).unwrap();
    fs::remove_file(bundle(&g, 3)).unwrap();
    std::os::unix::fs::symlink(&outside, bundle(&g, 3)).unwrap();
    check(&g, &["EB-20261122-0003.json: not read: ", "EB-20261122-0003.json is a symbolic link"]);
    // An archived key that is a FIFO: an error naming it (exit 2), no hang.
    let keys2 = f.dir.join("keys-fifo");
    copy_tree(&f.keys, &keys2);
    fs::create_dir_all(keys2.join("archive")).unwrap();
    mkfifo(&keys2.join("archive/SHA256-x.json"));
    let (code, _, err) = verify(&keys2, &f.root, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("archive/SHA256-x.json is a FIFO"), "{err}");

    // The packet and `runbook run` on the store with the FIFO bundle finish, naming it.
    let out = f.dir.join("packet");
    let (code, pout, perr) = run_timeout(
        Command::new(BIN)
            .args(["packet", "--month", "2026-11", "--at", "2026-12-01T00:00:00Z", "--evidence-dir"])
            .arg(&a)
            .arg("--key-dir")
            .arg(&f.keys)
            .arg("--out")
            .arg(&out),
        120,
    );
    assert!(code == 0 || code == 1, "packet: {code}\n{pout}{perr}");
    let html = fs::read_to_string(out.join("packet.html")).unwrap_or_default()
        + &fs::read_to_string(out.join("index.html")).unwrap_or_default();
    assert!(html.contains("is a FIFO") || perr.contains("is a FIFO") || pout.contains("is a FIFO"), "packet does not name the FIFO:\n{pout}{perr}");
    let runbooks = f.dir.join("runbooks");
    fs::create_dir_all(&runbooks).unwrap();
    fs::write(runbooks.join("RB-NOOP-001.yaml"), noop_runbook("RB-NOOP-001", "true")).unwrap();
    let (code, _, err) = run_timeout(
        Command::new(BIN)
            .args(["runbook", "run", "RB-NOOP-001", "--runbooks"])
            .arg(&runbooks)
            .arg("--evidence-dir")
            .arg(&a)
            .arg("--key-dir")
            .arg(&f.keys)
            .arg("--state-dir")
            .arg(f.dir.join("state")),
        60,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("EB-20261122-0004.json is a FIFO"), "{err}");
    // A FIFO given to `runbook lint`.
    let fifo = f.dir.join("fifo.yaml");
    mkfifo(&fifo);
    let (code, _, err) = run_timeout(Command::new(BIN).args(["runbook", "lint"]).arg(&fifo), 30);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("fifo.yaml is not a regular file"), "{err}");
}

/// A one-step runbook running `script` (shell), with a `fill` path parameter inside `root`.
fn noop_runbook(id: &str, script: &str) -> String {
    format!(
        r#"id: {id}
name: Test step
version: "1.0.0"
description: Test runbook for the hostile-store tests.
hipaa_controls: ["§164.308(a)(1)(ii)(D)"]
severity: low
sla_minutes: 15
parameters: {{}}
trigger_conditions:
  event_types: [service_crash]
steps:
  - id: step
    action: Run the test script
    timeout_seconds: 60
    script: |
      {script}
rollback: []
verification:
  id: check
  action: Nothing to check
  timeout_seconds: 10
  script: "true"
"#
    )
}

/// A runbook that appends to `marker` (proof it ran) and, with `fill`, fills `fill_dir`.
fn marker_runbook(id: &str, marker: &Path, fill: Option<&Path>) -> String {
    let fill = fill.map(|d| format!("dd if=/dev/zero of={}/fill bs=1M 2>/dev/null || true", d.display())).unwrap_or_default();
    noop_runbook(id, &format!("echo ran >> {}\n      {fill}", marker.display()))
}

struct Dirs {
    keys: PathBuf,
    runbooks: PathBuf,
    evidence: PathBuf,
    state: PathBuf,
}

fn runbook_run(d: &Dirs, id: &str) -> (i32, String, String) {
    runbook_run_with(d, id, &[])
}

fn runbook_run_with(d: &Dirs, id: &str, extra: &[&std::ffi::OsStr]) -> (i32, String, String) {
    run_timeout(
        Command::new(BIN)
            .args(["runbook", "run", id, "--host", "test-host", "--client-id", "clinic-test", "--runbooks"])
            .arg(&d.runbooks)
            .arg("--evidence-dir")
            .arg(&d.evidence)
            .arg("--key-dir")
            .arg(&d.keys)
            .arg("--state-dir")
            .arg(&d.state)
            .args(extra),
        120,
    )
}

fn chown(p: &Path, uid: u32) {
    nix::unistd::chown(p, Some(nix::unistd::Uid::from_raw(uid)), None).unwrap();
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn item_4_foreign_owners_and_loose_modes_are_refused_at_start() {
    if !is_root() {
        eprintln!("SKIPPED item_4_foreign_owners_and_loose_modes_are_refused_at_start: needs root to chown files to another uid (CI runs tests as root)");
        return;
    }
    let f = fixture();
    let marker = f.dir.join("marker");
    let d = Dirs { keys: f.keys.clone(), runbooks: f.dir.join("runbooks"), evidence: f.root.clone(), state: f.dir.join("state") };
    fs::create_dir_all(&d.runbooks).unwrap();
    fs::write(d.runbooks.join("RB-MARK-001.yaml"), marker_runbook("RB-MARK-001", &marker, None)).unwrap();
    fs::create_dir_all(&d.state).unwrap();
    chmod(&d.state, 0o700);
    let (code, out, err) = runbook_run(&d, "RB-MARK-001");
    assert_eq!(code, 0, "baseline run: {out}{err}");
    assert_eq!(fs::read_to_string(&marker).unwrap().lines().count(), 1);

    let key_file = f.keys.join("evidence-signing.key");
    let key_info = f.keys.join("key-info.json");
    // (what, path, change, expected words)
    type Change = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, PathBuf, Change, Vec<String>)> = vec![
        ("key dir world-writable", f.keys.clone(), Box::new(|p| chmod(p, 0o777)), vec!["key directory".into(), "has mode 0777".into(), "chmod go-w".into()]),
        ("key dir group-writable", f.keys.clone(), Box::new(|p| chmod(p, 0o775)), vec!["key directory".into(), "has mode 0775".into(), "writable by its group".into()]),
        ("key dir foreign owner", f.keys.clone(), Box::new(|p| chown(p, OTHER_UID)), vec!["key directory".into(), format!("is owned by uid {OTHER_UID}"), "fix: chown 0".into()]),
        ("key file foreign owner", key_file.clone(), Box::new(|p| chown(p, OTHER_UID)), vec!["signing key".into(), "evidence-signing.key".into(), format!("owned by uid {OTHER_UID}")]),
        ("key info writable", key_info.clone(), Box::new(|p| chmod(p, 0o666)), vec!["key file".into(), "key-info.json".into(), "has mode 0666".into()]),
        ("state dir world-writable", d.state.clone(), Box::new(|p| chmod(p, 0o777)), vec!["state directory".into(), "has mode 0777".into()]),
        ("state dir foreign owner", d.state.clone(), Box::new(|p| chown(p, OTHER_UID)), vec!["state directory".into(), format!("owned by uid {OTHER_UID}")]),
        ("evidence dir foreign owner", f.root.clone(), Box::new(|p| chown(p, OTHER_UID)), vec!["evidence directory".into(), format!("owned by uid {OTHER_UID}")]),
        ("evidence dir writable by others", f.root.clone(), Box::new(|p| chmod(p, 0o757)), vec!["evidence directory".into(), "has mode 0757".into(), "writable by other users".into(), "chmod o-w".into()]),
    ];
    for (what, path, change, want) in &cases {
        let before = (mode_of(path), std::os::unix::fs::MetadataExt::uid(&fs::metadata(path).unwrap()));
        change(path);
        let (code, out, err) = runbook_run(&d, "RB-MARK-001");
        assert_eq!(code, 2, "{what}: expected a refusal (exit 2)\n{out}{err}");
        assert!(err.contains(&path.display().to_string()), "{what}: the error does not name {}:\n{err}", path.display());
        for w in want {
            assert!(err.contains(w.as_str()), "{what}: expected {w:?} in:\n{err}");
        }
        assert_eq!(fs::read_to_string(&marker).unwrap().lines().count(), 1, "{what}: the repair ran");
        // Every other command that signs refuses the key directory too.
        if path == &f.keys {
            let (code, _, err) = run_timeout(Command::new(BIN).args(["key", "rotate", "--key-dir"]).arg(&f.keys), 30);
            assert_eq!(code, 2, "{what}: key rotate: {err}");
            assert!(err.contains("key directory"), "{err}");
        }
        if path == &f.root {
            let (code, _, err) = run_timeout(
                Command::new(BIN).args(["packet", "--month", "2026-11", "--evidence-dir"]).arg(&f.root).arg("--key-dir").arg(&f.keys).arg("--out").arg(f.dir.join("pk")),
                60,
            );
            assert_eq!(code, 2, "{what}: packet: {err}");
            assert!(err.contains("evidence directory"), "{err}");
        }
        chmod(path, before.0);
        chown(path, before.1);
    }
    // The daemon refuses at start, naming the state directory.
    let cfg = f.dir.join("agent.yaml");
    fs::write(
        &cfg,
        format!(
            "client_id: clinic-test\nhostname: test-host\nrunbooks_dir: {}\nevidence_dir: {}\nstate_dir: {}\nsigning_key_file: {}\njournal:\n  enabled: false\n\
             probes:\n  disk: {{enabled: false}}\n  cpu: {{enabled: false}}\n  certs: {{enabled: false}}\n  restore_test: {{enabled: false}}\n",
            d.runbooks.display(),
            d.evidence.display(),
            d.state.display(),
            key_file.display()
        ),
    )
    .unwrap();
    chmod(&d.state, 0o777);
    let (code, out, err) = run_timeout(Command::new(BIN).args(["run", "--config"]).arg(&cfg), 60);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("state directory") && err.contains("has mode 0777"), "{err}");
    chmod(&d.state, 0o700);
    chmod(&f.keys, 0o777);
    let (code, out, err) = run_timeout(Command::new(BIN).args(["run", "--config"]).arg(&cfg), 60);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("key directory") && err.contains("has mode 0777"), "{err}");
    chmod(&f.keys, 0o755);
    let (code, out, err) = verify(&f.keys, &f.root, &[]);
    assert_eq!(code, 0, "{out}{err}");
    for b in common::stock::bundles(&f.root) {
        stock_ok(&f.keys, &b);
    }
}

/// A tmpfs of `size` mounted at `dir`, unmounted when dropped.
struct Mount(PathBuf);

impl Mount {
    fn tmpfs(dir: &Path, size: &str) -> Mount {
        fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755"), "tmpfs"]).arg(dir).status().unwrap();
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        Mount(dir.to_path_buf())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn fill(dir: &Path) {
    let _ = Command::new("dd").arg("if=/dev/zero").arg(format!("of={}/fill", dir.display())).args(["bs=1M"]).stderr(Stdio::null()).status();
}

#[test]
fn item_12_a_full_disk_during_runbook_run_keeps_the_record_and_says_the_repair_ran() {
    if !is_root() {
        eprintln!("SKIPPED item_12_a_full_disk_during_runbook_run_keeps_the_record_and_says_the_repair_ran: needs root to mount a small tmpfs (CI runs tests as root)");
        return;
    }
    let f = fixture();
    let disk = f.dir.join("disk");
    let _m = Mount::tmpfs(&disk, "16m");
    let marker = f.dir.join("marker");
    let d = Dirs { keys: f.keys.clone(), runbooks: f.dir.join("runbooks"), evidence: disk.join("evidence"), state: f.dir.join("state") };
    fs::create_dir_all(&d.runbooks).unwrap();
    fs::write(d.runbooks.join("RB-MARK-001.yaml"), marker_runbook("RB-MARK-001", &marker, None)).unwrap();
    fs::write(d.runbooks.join("RB-FILL-001.yaml"), marker_runbook("RB-FILL-001", &marker, Some(&disk))).unwrap();
    let ran = || fs::read_to_string(&marker).map(|s| s.lines().count()).unwrap_or(0);
    let (code, out, err) = runbook_run(&d, "RB-MARK-001");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(ran(), 1);

    // 1. Already full: nothing runs, and the error says why (exit 2).
    fill(&disk);
    let (code, out, err) = runbook_run(&d, "RB-MARK-001");
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("bytes free") && err.contains("nothing was run"), "{err}");
    assert_eq!(ran(), 1, "the repair ran although its evidence could not be written");
    fs::remove_file(disk.join("fill")).unwrap();

    // 2. The step itself fills the disk: the repair ran, its evidence cannot be written.
    // Exit 3 says so, the record is kept, and retries leave nothing behind in the store.
    // The last attempt names an agent config: the lost record is also an alert (journal at
    // crit; here, without a journal, on stderr with its priority prefix).
    let alert_cfg = f.dir.join("agent.yaml");
    fs::write(&alert_cfg, "client_id: clinic-test\nalert: {}\n").unwrap();
    for attempt in 1..=3 {
        let (code, out, err) = if attempt == 3 {
            runbook_run_with(&d, "RB-FILL-001", &["--alert-config".as_ref(), alert_cfg.as_os_str()])
        } else {
            runbook_run(&d, "RB-FILL-001")
        };
        assert_eq!(err.contains("<2>ALERT evidence_unrecorded: runbook RB-FILL-001 ran ("), attempt == 3, "attempt {attempt}: {err}");
        assert_eq!(code, 3, "attempt {attempt}: {out}{err}");
        assert!(err.contains("RB-FILL-001: RAN (") && err.contains("evidence could not be written"), "{err}");
        assert!(err.contains("the repair ran but its evidence bundle could not be written; the unsigned record follows"), "journal record missing:\n{err}");
        assert_eq!(ran(), 1 + attempt, "the repair did not run");
        let kept: Vec<PathBuf> = fs::read_dir(d.state.join("unrecorded")).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(kept.len(), attempt, "{kept:?}");
        let rec: serde_json::Value = kept.iter().map(|p| serde_json::from_slice::<serde_json::Value>(&fs::read(p).unwrap()).unwrap()).next().unwrap();
        assert_eq!(rec["runbook"]["runbook_id"], "RB-FILL-001", "{rec}");
        assert!(rec["error"].as_str().unwrap().contains("No space left on device"), "{rec}");
        let orphans = d.evidence.join(".orphans");
        let n = fs::read_dir(&orphans).map(|r| r.count()).unwrap_or(0);
        assert_eq!(n, 0, "attempt {attempt}: partial evidence piled up in .orphans/");
        let month: Vec<String> = common::stock::bundles(&d.evidence).iter().map(|p| p.display().to_string()).collect();
        assert_eq!(month.len(), 1, "{month:?}");
        fs::remove_file(disk.join("fill")).unwrap();
    }
    // Space again: the next run is recorded, the chain is whole, the stock tools agree.
    let (code, out, err) = runbook_run(&d, "RB-MARK-001");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = verify(&f.keys, &d.evidence, &[]);
    assert_eq!(code, 0, "{out}{err}");
    for b in common::stock::bundles(&d.evidence) {
        stock_ok(&f.keys, &b);
    }
    // No companions without a bundle anywhere in the store.
    for e in fs::read_dir(d.evidence.join(Path::new(&chrono::Utc::now().format("%Y/%m").to_string()))).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        let stem = n.split(".json").next().unwrap().trim_end_matches(".artifacts").to_string();
        assert!(d.evidence.join(chrono::Utc::now().format("%Y/%m").to_string()).join(format!("{stem}.json")).exists(), "{n} has no bundle");
    }
}
