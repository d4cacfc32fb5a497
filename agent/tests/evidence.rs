//! Evidence store and `evidence verify`, checked with the real binaries: bundles written by the
//! store are verified with stock `ssh-keygen -Y verify` and `openssl pkeyutl -verify`, tampering
//! is detected and named, a writer SIGKILLed mid-write never leaves a partial bundle.

mod common {
    pub mod stock;
}

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use msp_agent::evidence::bundle::{Bundle, GENESIS_PREV_HASH};
use msp_agent::evidence::sample::{sample_new_bundle, SAMPLE_RUNBOOK};
use msp_agent::evidence::store::{sha256_hex, EvidenceStore, Written};
use msp_agent::keys::{self, Signer};

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msp-agent"))
}

fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// Keys valid from 2026-11-01 and a store under one temp dir.
struct Fixture {
    _tmp: tempfile::TempDir,
    keys: PathBuf,
    root: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    keys::generate(&keys, t(2026, 11, 1, 0, 0)).unwrap();
    let root = tmp.path().join("evidence");
    Fixture {
        keys,
        root,
        _tmp: tmp,
    }
}

/// Write `n` sample bundles on 2026-11-22, one a minute from 10:00; bundle 2 gets artifacts.
fn write_bundles(f: &Fixture, n: u64) -> Vec<Written> {
    let signer = Signer::load(&f.keys).unwrap();
    let mut store = EvidenceStore::open(&f.root).unwrap();
    let art_dir = f.root.parent().unwrap().join("artifacts-src");
    fs::create_dir_all(&art_dir).unwrap();
    fs::write(art_dir.join("df.txt"), "Filesystem Use%\n/srv/data 93%\n").unwrap();
    fs::write(art_dir.join("du.txt"), "2.1G /srv/data/tmp\n").unwrap();
    (1..=n)
        .map(|i| {
            let arts = if i == 2 {
                vec![art_dir.join("df.txt"), art_dir.join("du.txt")]
            } else {
                vec![]
            };
            store
                .append(
                    sample_new_bundle(i, arts),
                    &signer,
                    t(2026, 11, 22, 10, i as u32),
                )
                .unwrap()
        })
        .collect()
}

/// `msp-agent evidence verify --keys K ARGS...` → (exit code, stdout, stderr).
fn verify(keys: &Path, args: &[&Path], extra: &[&str]) -> (i32, String, String) {
    let out = agent()
        .args(["evidence", "verify", "--keys"])
        .arg(keys)
        .args(extra)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Assert verification fails (exit 1) and the first bad bundle is `name` for `why`.
fn assert_rejects(keys: &Path, root: &Path, name: &str, why: &str) {
    let (code, out, err) = verify(keys, &[root], &[]);
    assert_eq!(code, 1, "expected exit 1\nstdout:\n{out}\nstderr:\n{err}");
    let first = err
        .lines()
        .find(|l| l.contains("first bad bundle"))
        .unwrap_or("");
    assert!(
        first.contains(&format!("first bad bundle {name}: ")) && first.contains(why),
        "expected first bad bundle {name} ({why}), got:\n{err}\nstdout:\n{out}"
    );
    let (code, json, _) = verify(keys, &[root], &["--json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_problem"]["bundle"], name, "{json}");
}

/// Stock `ssh-keygen -Y verify` at `verify_time`: (accepted, its output).
fn ssh_keygen_verify(keys: &Path, bundle: &Path, verify_time: &str) -> (bool, String) {
    outcome(common::stock::ssh_keygen_verify_at(keys, bundle, Some(verify_time)))
}

/// Stock `openssl pkeyutl -verify -rawin` with the key at `pem`: (accepted, its output).
fn openssl_verify(pem: &Path, bundle: &Path) -> (bool, String) {
    outcome(common::stock::openssl_verify_pem(pem, bundle))
}

fn outcome(r: Result<(), String>) -> (bool, String) {
    match r {
        Ok(()) => (true, String::new()),
        Err(e) => (false, e),
    }
}

fn sidecar(bundle: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", bundle.display()))
}

/// `generated_at` of a bundle as ssh-keygen's `-Overify-time` wants it.
fn verify_time(bundle: &Path) -> String {
    let b: Bundle = serde_json::from_slice(&fs::read(bundle).unwrap()).unwrap();
    DateTime::parse_from_rfc3339(&b.generated_at)
        .unwrap()
        .format("%Y%m%d%H%M%S")
        .to_string()
}

fn bundle_path(root: &Path, day: &str, n: u32) -> PathBuf {
    root.join(&day[..4])
        .join(&day[4..6])
        .join(format!("EB-{day}-{n:04}.json"))
}

/// Every EB-*.json under `root`.
fn all_bundles(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        // The crash test lists the store while a writer creates it.
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if n.starts_with("EB-") && n.ends_with(".json") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn store_layout_chain_schema_and_stock_tools() {
    let f = fixture();
    let signer = Signer::load(&f.keys).unwrap();
    let written = write_bundles(&f, 3);
    // A new day restarts NNNN; a new month gets its own directory.
    let mut store = EvidenceStore::open(&f.root).unwrap();
    let w4 = store
        .append(sample_new_bundle(4, vec![]), &signer, t(2026, 11, 23, 9, 0))
        .unwrap();
    let w5 = store
        .append(sample_new_bundle(5, vec![]), &signer, t(2026, 12, 1, 0, 0))
        .unwrap();
    drop(store);
    let ids: Vec<_> = written
        .iter()
        .chain([&w4, &w5])
        .map(|w| w.bundle_id.clone())
        .collect();
    assert_eq!(
        ids,
        [
            "EB-20261122-0001",
            "EB-20261122-0002",
            "EB-20261122-0003",
            "EB-20261123-0001",
            "EB-20261201-0001"
        ]
    );
    assert_eq!(w5.path, f.root.join("2026/12/EB-20261201-0001.json"));

    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../schema/evidence-bundle.schema.json")).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();

    let mut prev = GENESIS_PREV_HASH.to_string();
    for (i, w) in written.iter().chain([&w4, &w5]).enumerate() {
        let bytes = fs::read(&w.path).unwrap();
        assert_eq!(sha256_hex(&bytes), w.sha256);
        assert!(bytes.ends_with(b"}\n"));
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", w.path.display());
        let b: Bundle = serde_json::from_value(value).unwrap();
        // Deterministic serialisation: the parsed bundle re-serialises to the same bytes.
        assert_eq!(
            msp_agent::evidence::store::serialize_bundle(&b).unwrap(),
            bytes
        );
        assert_eq!(b.chain.sequence, i as u64 + 1);
        assert_eq!(b.chain.prev_bundle_sha256, prev);
        assert_eq!(b.signing.key_id, signer.key_id());
        assert_eq!(fs::read(sidecar(&w.path, ".sig")).unwrap().len(), 64);
        prev = w.sha256.clone();

        let (ok, text) = ssh_keygen_verify(&f.keys, &w.path, &verify_time(&w.path));
        assert!(ok, "ssh-keygen rejected {}: {text}", w.path.display());
        let (ok, text) = openssl_verify(&f.keys.join("evidence-signing.pub.pem"), &w.path);
        assert!(ok, "openssl rejected {}: {text}", w.path.display());
    }

    // Artifacts are copied beside the bundle and listed with hash and size.
    let b2: Bundle = serde_json::from_slice(&fs::read(&written[1].path).unwrap()).unwrap();
    let names: Vec<_> = b2.artifacts.iter().map(|a| a.filename.as_str()).collect();
    assert_eq!(names, ["df.txt", "du.txt"]);
    let df = fs::read(f.root.join("2026/11/EB-20261122-0002.artifacts/df.txt")).unwrap();
    assert_eq!(b2.artifacts[0].sha256, sha256_hex(&df));
    assert_eq!(b2.artifacts[0].size_bytes, df.len() as u64);
    // sha256sum agrees (what an auditor runs).
    let out = Command::new("sha256sum")
        .arg(f.root.join("2026/11/EB-20261122-0002.artifacts/df.txt"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&b2.artifacts[0].sha256));

    let (code, out, err) = verify(&f.keys, &[&f.root], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("OK, 5 bundle(s) verified"), "{err}");
    let (code, json, _) = verify(&f.keys, &[&f.root], &["--json"]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(report["bundles_checked"], 5);
    assert_eq!(report["chains"][0]["last_sequence"], 5);
    assert_eq!(report["chains"][0]["head_sha256"], w5.sha256.as_str());

    // Paths may be single files; a part of a chain needs --partial.
    let (code, _, err) = verify(&f.keys, &[&written[1].path], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("the chain starts at sequence 2"), "{err}");
    let (code, out, err) = verify(
        &f.keys,
        &[&written[1].path, &written[2].path],
        &["--partial"],
    );
    assert_eq!(code, 0, "{out}{err}");
    // Like a shell glob over a month directory: signatures and artifact dirs are skipped.
    let mut glob: Vec<PathBuf> = fs::read_dir(f.root.join("2026/11"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    glob.sort();
    let glob: Vec<&Path> = glob.iter().map(PathBuf::as_path).collect();
    let (code, out, err) = verify(&f.keys, &glob, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("OK, 4 bundle(s) verified"), "{err}");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let f = fixture();
    write_bundles(&f, 1);
    let (code, _, err) = verify(&f.keys, &[&f.root.join("nope")], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nope"), "{err}");
    let (code, _, err) = verify(&f.root.join("no-keys"), &[&f.root], &[]);
    assert_eq!(code, 2, "{err}");
    let empty = f.root.parent().unwrap().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = verify(&f.keys, &[&empty], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no evidence bundles"), "{err}");
    let out = agent()
        .args(["evidence", "verify", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn reopen_continues_the_chain_and_a_second_writer_is_refused() {
    let f = fixture();
    let signer = Signer::load(&f.keys).unwrap();
    let written = write_bundles(&f, 2);
    let mut store = EvidenceStore::open(&f.root).unwrap();
    assert_eq!(store.head(), Some((2, written[1].sha256.as_str())));
    let err = format!("{:#}", EvidenceStore::open(&f.root).unwrap_err());
    assert!(err.contains("in use by another writer"), "{err}");
    let w3 = store
        .append(
            sample_new_bundle(3, vec![]),
            &signer,
            t(2026, 11, 22, 11, 0),
        )
        .unwrap();
    assert_eq!(
        (w3.sequence, w3.bundle_id.as_str()),
        (3, "EB-20261122-0003")
    );
    drop(store);

    // Without the signed head the store is refused: the head (and perhaps the newest
    // bundles) were deleted. Put back, it opens again.
    let head_dir = f.root.join("head");
    let saved = f.root.join("head.saved");
    fs::rename(&head_dir, &saved).unwrap();
    let err = format!("{:#}", EvidenceStore::open(&f.root).unwrap_err());
    assert!(err.contains("no chain head"), "{err}");
    fs::rename(&saved, &head_dir).unwrap();
    let mut store = EvidenceStore::open(&f.root).unwrap();
    assert_eq!(store.head(), Some((3, w3.sha256.as_str())));
    // The clock going back to an earlier day still continues the chain, dated at the head's
    // time: time never goes backwards along the chain.
    let w4 = store
        .append(
            sample_new_bundle(4, vec![]),
            &signer,
            t(2026, 11, 21, 23, 0),
        )
        .unwrap();
    assert_eq!(
        (w4.sequence, w4.bundle_id.as_str()),
        (4, "EB-20261122-0004")
    );
    drop(store);
    let store = EvidenceStore::open(&f.root).unwrap();
    assert_eq!(store.head(), Some((4, w4.sha256.as_str())));
    drop(store);
    let (code, out, err) = verify(&f.keys, &[&f.root], &[]);
    assert_eq!(code, 0, "{out}{err}");

    // A head hint naming a deleted bundle stops the writer: evidence was removed.
    fs::remove_file(&w4.path).unwrap();
    let err = format!("{:#}", EvidenceStore::open(&f.root).unwrap_err());
    assert!(err.contains("evidence was deleted"), "{err}");
}

#[test]
fn orphaned_signatures_from_an_interrupted_append_are_set_aside() {
    let f = fixture();
    let written = write_bundles(&f, 2);
    // What a crash between publishing the signatures and the bundle leaves behind.
    let next = bundle_path(&f.root, "20261122", 3);
    fs::write(sidecar(&next, ".sig"), [0u8; 64]).unwrap();
    fs::write(sidecar(&next, ".sshsig"), "x").unwrap();
    fs::create_dir(f.root.join("2026/11/EB-20261122-0003.artifacts")).unwrap();
    fs::write(f.root.join("2026/11/.tmp-EB-20261122-0003.json.1.1"), "{").unwrap();
    let (code, out, err) = verify(&f.keys, &[&f.root], &[]);
    assert_eq!(code, 0, "orphans are not evidence: {out}{err}");

    let signer = Signer::load(&f.keys).unwrap();
    let mut store = EvidenceStore::open(&f.root).unwrap();
    assert_eq!(store.head(), Some((2, written[1].sha256.as_str())));
    let w3 = store
        .append(
            sample_new_bundle(3, vec![]),
            &signer,
            t(2026, 11, 22, 11, 0),
        )
        .unwrap();
    assert_eq!(w3.path, next);
    let orphans: Vec<_> = fs::read_dir(f.root.join(".orphans"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(orphans.len(), 3, "{orphans:?}");
    assert!(!f
        .root
        .join("2026/11/.tmp-EB-20261122-0003.json.1.1")
        .exists());
    drop(store);
    let (code, out, err) = verify(&f.keys, &[&f.root], &[]);
    assert_eq!(code, 0, "{out}{err}");
}

/// A pristine store of 5 bundles, copied fresh for each tampering.
fn tamper_case(pristine: &Fixture, case: &str, tamper: impl FnOnce(&Path)) -> PathBuf {
    let dir = pristine.root.parent().unwrap().join(format!("case-{case}"));
    copy_tree(&pristine.root, &dir);
    tamper(&dir);
    dir
}

fn flip_byte(path: &Path, pos: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[pos] ^= 0x01;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(path, bytes).unwrap();
}

#[test]
fn one_flipped_byte_anywhere_is_detected_and_named() {
    let f = fixture();
    let written = write_bundles(&f, 5);
    let len = fs::read(&written[2].path).unwrap().len();
    // Start, inside a value, in the chain section, in the signing key id, the final newline.
    let text = fs::read_to_string(&written[2].path).unwrap();
    let in_chain = text.find("\"sequence\"").unwrap() + 12; // the digit: sequence 3 becomes 2
    let in_key = text.find("SHA256:").unwrap() + 10;
    let in_text = text.find("removed 412").unwrap() + 9; // "412" becomes "402": still valid JSON
    for pos in [
        0,
        1,
        40,
        len / 2,
        in_chain,
        in_key,
        in_text,
        len - 2,
        len - 1,
    ] {
        let dir = tamper_case(&f, &format!("flip-{pos}"), |d| {
            flip_byte(&bundle_path(d, "20261122", 3), pos)
        });
        assert_rejects(&f.keys, &dir, "EB-20261122-0003.json", "");
    }
    // The stock tools agree on the case that keeps the JSON valid.
    let dir = f
        .root
        .parent()
        .unwrap()
        .join(format!("case-flip-{in_text}"));
    let b = bundle_path(&dir, "20261122", 3);
    assert!(!openssl_verify(&f.keys.join("evidence-signing.pub.pem"), &b).0);
    assert!(
        !ssh_keygen_verify(
            &f.keys,
            &b,
            &verify_time(&bundle_path(&f.root, "20261122", 3))
        )
        .0
    );
    let (_, out, _) = verify(&f.keys, &[&dir], &[]);
    assert!(
        out.contains("EB-20261122-0003.json: raw signature"),
        "{out}"
    );
    assert!(out.contains("EB-20261122-0004.json: chain broken: prev_bundle_sha256 does not match EB-20261122-0003.json"), "{out}");

    // A flipped byte in a signature or an artifact.
    let dir = tamper_case(&f, "sig", |d| {
        flip_byte(&sidecar(&bundle_path(d, "20261122", 4), ".sig"), 7)
    });
    assert_rejects(
        &f.keys,
        &dir,
        "EB-20261122-0004.json",
        "raw signature (EB-20261122-0004.json.sig) does not verify",
    );
    let dir = tamper_case(&f, "sshsig", |d| {
        let p = sidecar(&bundle_path(d, "20261122", 4), ".sshsig");
        let text = fs::read_to_string(&p).unwrap();
        // Flip a base64 character near the end of the armoured signature.
        let pos = text.rfind("\n-----END").unwrap() - 5;
        let mut bytes = text.into_bytes();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(&p, bytes).unwrap();
    });
    assert_rejects(&f.keys, &dir, "EB-20261122-0004.json", "SSH signature");
    let dir = tamper_case(&f, "artifact", |d| {
        flip_byte(&d.join("2026/11/EB-20261122-0002.artifacts/du.txt"), 3)
    });
    assert_rejects(
        &f.keys,
        &dir,
        "EB-20261122-0002.json",
        "artifact du.txt sha256 does not match",
    );
    let dir = tamper_case(&f, "artifact-gone", |d| {
        fs::remove_file(d.join("2026/11/EB-20261122-0002.artifacts/df.txt")).unwrap()
    });
    assert_rejects(
        &f.keys,
        &dir,
        "EB-20261122-0002.json",
        "artifact df.txt is missing",
    );
    let dir = tamper_case(&f, "artifact-extra", |d| {
        fs::write(d.join("2026/11/EB-20261122-0002.artifacts/extra.txt"), "x").unwrap()
    });
    assert_rejects(&f.keys, &dir, "EB-20261122-0002.json", "artifact extra.txt");
}

#[test]
fn deleted_inserted_reordered_and_forked_bundles_are_named() {
    let f = fixture();
    write_bundles(&f, 5);
    let remove_bundle = |d: &Path, n: u32| {
        let p = bundle_path(d, "20261122", n);
        for q in [sidecar(&p, ".sig"), sidecar(&p, ".sshsig"), p] {
            fs::remove_file(q).unwrap();
        }
    };

    let dir = tamper_case(&f, "deleted", |d| remove_bundle(d, 3));
    assert_rejects(
        &f.keys,
        &dir,
        "EB-20261122-0004.json",
        "chain broken: sequence 4 follows sequence 2 (EB-20261122-0002.json): 1 bundle(s) missing",
    );
    let dir = tamper_case(&f, "deleted-first", |d| remove_bundle(d, 1));
    assert_rejects(
        &f.keys,
        &dir,
        "EB-20261122-0002.json",
        "the chain starts at sequence 2",
    );
    let dir = tamper_case(&f, "deleted-last", |d| remove_bundle(d, 5));
    assert_rejects(&f.keys, &dir, "EB-20261122-0005.json", "chain truncated");

    // Reordered: bundles 2 and 3 swap places (with their signatures).
    let dir = tamper_case(&f, "reordered", |d| {
        let (a, b) = (bundle_path(d, "20261122", 2), bundle_path(d, "20261122", 3));
        for s in ["", ".sig", ".sshsig"] {
            let (pa, pb) = (
                PathBuf::from(format!("{}{s}", a.display())),
                PathBuf::from(format!("{}{s}", b.display())),
            );
            let tmp = d.join("swap");
            fs::rename(&pa, &tmp).unwrap();
            fs::rename(&pb, &pa).unwrap();
            fs::rename(&tmp, &pb).unwrap();
        }
    });
    assert_rejects(
        &f.keys,
        &dir,
        "EB-20261122-0002.json",
        "bundle_id EB-20261122-0003 does not match the file name",
    );

    // Inserted: a copy of bundle 3 under a new name.
    let dir = tamper_case(&f, "inserted-copy", |d| {
        let src = bundle_path(d, "20261122", 3);
        let dst = bundle_path(d, "20261122", 6);
        for s in ["", ".sig", ".sshsig"] {
            fs::copy(
                format!("{}{s}", src.display()),
                format!("{}{s}", dst.display()),
            )
            .unwrap();
        }
    });
    assert_rejects(
        &f.keys,
        &dir,
        "EB-20261122-0006.json",
        "bundle_id EB-20261122-0003 does not match the file name",
    );

    // Forked: a second store with the same key and host (say, a restored backup that kept
    // writing) contributes a validly signed bundle with an already used sequence.
    let other = f.root.parent().unwrap().join("other-store");
    {
        let signer = Signer::load(&f.keys).unwrap();
        let mut store = EvidenceStore::open(&other).unwrap();
        for i in 1..=3 {
            store
                .append(
                    sample_new_bundle(100 + i, vec![]),
                    &signer,
                    t(2026, 11, 25, 8, i as u32),
                )
                .unwrap();
        }
    }
    let dir = tamper_case(&f, "forked", |d| {
        let src = bundle_path(&other, "20261125", 2);
        let dst = bundle_path(d, "20261125", 2);
        for s in ["", ".sig", ".sshsig"] {
            fs::copy(
                format!("{}{s}", src.display()),
                format!("{}{s}", dst.display()),
            )
            .unwrap();
        }
    });
    assert_rejects(
        &f.keys,
        &dir,
        "EB-20261125-0002.json",
        "fork: sequence 2 is also used by EB-20261122-0002.json",
    );
    // The same bundle in the middle of its own chain's successor: same predecessor claimed.
    let dir = tamper_case(&f, "forked-both", |d| {
        for n in [1, 2] {
            let src = bundle_path(&other, "20261125", n);
            let dst = bundle_path(d, "20261125", n);
            for s in ["", ".sig", ".sshsig"] {
                fs::copy(
                    format!("{}{s}", src.display()),
                    format!("{}{s}", dst.display()),
                )
                .unwrap();
            }
        }
    });
    assert_rejects(
        &f.keys,
        &dir,
        "EB-20261125-0001.json",
        "fork: sequence 1 is also used by EB-20261122-0001.json",
    );
}

#[test]
fn a_signature_from_another_key_is_rejected() {
    let f = fixture();
    write_bundles(&f, 4);
    let stranger_dir = f.root.parent().unwrap().join("stranger");
    keys::generate(&stranger_dir, t(2026, 11, 1, 0, 0)).unwrap();
    let stranger = Signer::load(&stranger_dir).unwrap();

    // Re-signed in place with another key: both signature files replaced.
    let dir = tamper_case(&f, "resigned", |d| {
        let p = bundle_path(d, "20261122", 3);
        let bytes = fs::read(&p).unwrap();
        for (s, content) in [
            (".sig", stranger.sign_raw(&bytes).to_vec()),
            (
                ".sshsig",
                stranger.sign_sshsig(&bytes).unwrap().into_bytes(),
            ),
        ] {
            let q = sidecar(&p, s);
            fs::set_permissions(&q, fs::Permissions::from_mode(0o644)).unwrap();
            fs::write(&q, content).unwrap();
        }
    });
    assert_rejects(
        &f.keys,
        &dir,
        "EB-20261122-0003.json",
        "SSH signature (EB-20261122-0003.json.sshsig) was made by a different key",
    );
    let (_, out, _) = verify(&f.keys, &[&dir], &[]);
    assert!(out.contains("EB-20261122-0003.json: raw signature (EB-20261122-0003.json.sig) does not verify with key"), "{out}");
    let b = bundle_path(&dir, "20261122", 3);
    assert!(!openssl_verify(&f.keys.join("evidence-signing.pub.pem"), &b).0);
    assert!(!ssh_keygen_verify(&f.keys, &b, &verify_time(&b)).0);

    // A whole chain written with the other key: unknown key.
    let other = f.root.parent().unwrap().join("stranger-store");
    let mut store = EvidenceStore::open(&other).unwrap();
    store
        .append(
            sample_new_bundle(1, vec![]),
            &stranger,
            t(2026, 11, 22, 10, 0),
        )
        .unwrap();
    drop(store);
    assert_rejects(
        &f.keys,
        &other,
        "EB-20261122-0001.json",
        &format!("signed by unknown key {}", stranger.key_id()),
    );
}

#[test]
fn rotation_historical_bundles_verify_against_the_key_of_their_time() {
    let f = fixture();
    let old = Signer::load(&f.keys).unwrap();
    let mut store = EvidenceStore::open(&f.root).unwrap();
    store
        .append(sample_new_bundle(1, vec![]), &old, t(2026, 11, 10, 9, 0))
        .unwrap();
    store
        .append(sample_new_bundle(2, vec![]), &old, t(2026, 11, 12, 9, 0))
        .unwrap();
    keys::rotate(&f.keys, t(2026, 11, 15, 0, 0)).unwrap();
    let new = Signer::load(&f.keys).unwrap();
    assert_ne!(old.key_id(), new.key_id());
    store
        .append(sample_new_bundle(3, vec![]), &new, t(2026, 11, 16, 9, 0))
        .unwrap();
    store
        .append(sample_new_bundle(4, vec![]), &new, t(2026, 11, 17, 9, 0))
        .unwrap();

    let (code, out, err) = verify(&f.keys, &[&f.root], &[]);
    assert_eq!(code, 0, "{out}{err}");
    for b in all_bundles(&f.root) {
        let (ok, text) = ssh_keygen_verify(&f.keys, &b, &verify_time(&b));
        assert!(
            ok,
            "ssh-keygen -Overify-time={} {}: {text}",
            verify_time(&b),
            b.display()
        );
    }
    // ssh-keygen itself refuses the old key's bundle at a time after its window...
    let b1 = bundle_path(&f.root, "20261110", 1);
    let (ok, text) = ssh_keygen_verify(&f.keys, &b1, "20261116000000");
    assert!(
        !ok,
        "ssh-keygen accepted an old-key bundle after rotation: {text}"
    );
    // ...and openssl checks it with the archived public key.
    let archived = f
        .keys
        .join("archive")
        .join(format!("{}.pub.pem", keys::key_id_file_stem(old.key_id())));
    assert!(openssl_verify(&archived, &b1).0);

    // A bundle signed with the retired key after its window is rejected.
    store
        .append(sample_new_bundle(5, vec![]), &old, t(2026, 11, 18, 9, 0))
        .unwrap();
    drop(store);
    assert_rejects(
        &f.keys,
        &f.root,
        "EB-20261118-0001.json",
        &format!("signed by key {} outside its validity window", old.key_id()),
    );
    let b5 = bundle_path(&f.root, "20261118", 1);
    assert!(
        !ssh_keygen_verify(&f.keys, &b5, &verify_time(&b5)).0,
        "ssh-keygen accepted the retired key"
    );

    // And a bundle dated before the current key's window, signed by it, is rejected too.
    let tmp = tempfile::tempdir().unwrap();
    let mut early = EvidenceStore::open(tmp.path()).unwrap();
    early
        .append(sample_new_bundle(1, vec![]), &new, t(2026, 11, 14, 9, 0))
        .unwrap();
    drop(early);
    assert_rejects(
        &f.keys,
        tmp.path(),
        "EB-20261114-0001.json",
        "outside its validity window",
    );
}

#[test]
fn runbook_hashes_are_checked_against_the_runbook_directory() {
    let f = fixture();
    write_bundles(&f, 3);
    let rb = f.root.parent().unwrap().join("runbooks");
    fs::create_dir_all(rb.join("templates")).unwrap();
    fs::write(rb.join("RB-DISK-001.yaml"), SAMPLE_RUNBOOK).unwrap();
    fs::write(rb.join("templates/RB-TEMPLATE.yaml"), "id: RB-TEMPLATE\n").unwrap();
    fs::write(rb.join("README.md"), "not a runbook\n").unwrap();
    let (code, out, err) = verify(&f.keys, &[&f.root], &["--runbooks", rb.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");

    fs::write(
        rb.join("RB-DISK-001.yaml"),
        format!("{SAMPLE_RUNBOOK}# edited\n"),
    )
    .unwrap();
    let (code, _, err) = verify(&f.keys, &[&f.root], &["--runbooks", rb.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("first bad bundle EB-20261122-0001.json: runbook_hash"),
        "{err}"
    );
    fs::remove_file(rb.join("RB-DISK-001.yaml")).unwrap();
    let (code, _, err) = verify(&f.keys, &[&f.root], &["--runbooks", rb.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("runbook RB-DISK-001 is not in the runbook directory"),
        "{err}"
    );
}

#[test]
fn the_writer_refuses_a_private_key_readable_by_others() {
    let f = fixture();
    let key = f.keys.join("evidence-signing.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = agent()
        .args(["evidence", "write-test-bundles", "--count", "1", "--root"])
        .arg(&f.root)
        .arg("--keys")
        .arg(&f.keys)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{} has mode 0644; it must not be readable by group or others (chmod 0400)",
            key.display()
        )),
        "{err}"
    );
    assert!(
        !f.root.exists(),
        "nothing may be written with a refused key"
    );
}

#[test]
fn sigkilled_writer_never_leaves_a_partial_bundle() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use rand_core::RngCore;

    let f = fixture();
    let mut rng = rand_core::OsRng;
    let mut counts = Vec::new();
    for round in 0..6 {
        let mut child = agent()
            .args([
                "evidence",
                "write-test-bundles",
                "--count",
                "1000000",
                "--with-artifact",
            ])
            .args(["--now", "2026-11-22T12:00:00Z", "--root"])
            .arg(&f.root)
            .arg("--keys")
            .arg(&f.keys)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Let it get going (it must have written something), then kill at a random point.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while all_bundles(&f.root).len() <= counts.last().copied().unwrap_or(0) {
            assert!(
                std::time::Instant::now() < deadline,
                "round {round}: the writer wrote nothing"
            );
            if let Some(st) = child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
                panic!("round {round}: writer exited early ({st}): {err}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_micros(u64::from(rng.next_u32() % 150_000)));
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        let st = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&st),
            Some(9),
            "round {round}: {st}"
        );

        // What is published verifies as is (orphans and temporaries are not evidence)...
        let (code, out, err) = verify(&f.keys, &[&f.root], &[]);
        assert_eq!(code, 0, "round {round} after SIGKILL:\n{out}{err}");
        // ...every bundle has both signatures...
        let bundles = all_bundles(&f.root);
        for b in &bundles {
            assert!(
                sidecar(b, ".sig").is_file() && sidecar(b, ".sshsig").is_file(),
                "{}",
                b.display()
            );
        }
        counts.push(bundles.len());
        let orphans = fs::read_dir(f.root.join(".orphans"))
            .map(|d| d.count())
            .unwrap_or(0);
        eprintln!(
            "round {round}: {} bundles published, {orphans} orphan(s) set aside so far",
            bundles.len()
        );
        // ...and the store reopens and continues the chain.
        let signer = Signer::load(&f.keys).unwrap();
        let mut store = EvidenceStore::open(&f.root).unwrap();
        let (seq, _) = store.head().unwrap();
        assert_eq!(seq as usize, bundles.len(), "round {round}");
        let w = store
            .append(
                sample_new_bundle(0, vec![]),
                &signer,
                t(2026, 11, 22, 12, 0),
            )
            .unwrap();
        assert_eq!(w.sequence as usize, bundles.len() + 1);
        counts.push(bundles.len() + 1);
        drop(store);
        let (code, out, err) = verify(&f.keys, &[&f.root], &[]);
        assert_eq!(code, 0, "round {round} after reopening:\n{out}{err}");
        // No temporaries survive a reopen.
        for b in all_bundles(&f.root) {
            let dir = b.parent().unwrap();
            for e in fs::read_dir(dir).unwrap() {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                assert!(
                    !n.starts_with(".tmp-"),
                    "round {round}: temporary {n} left in {}",
                    dir.display()
                );
            }
        }
    }
    // The stock tools agree on a sample of the result.
    let all = all_bundles(&f.root);
    assert!(all.len() >= 12, "{counts:?}");
    for b in all.iter().step_by(all.len() / 6) {
        assert!(
            ssh_keygen_verify(&f.keys, b, &verify_time(b)).0,
            "{}",
            b.display()
        );
        assert!(
            openssl_verify(&f.keys.join("evidence-signing.pub.pem"), b).0,
            "{}",
            b.display()
        );
    }
}
