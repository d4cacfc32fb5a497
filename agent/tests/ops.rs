//! Operations on bad days, against real parts: a `moto_server` process on loopback, the real
//! `msp-agent` binary (SIGKILLed for the pruner), `ssh-keygen`/`openssl`/`sha256sum` for
//! every piece of evidence produced.

#[path = "worm_support/mod.rs"]
mod support;
#[path = "common/stock.rs"]
mod stock;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use msp_agent::worm::Uploader;
use support::{signer, BundleMaker, Moto, BUCKET};

const BIN: &str = env!("CARGO_BIN_EXE_msp-agent");
const HOST_PREFIX: &str = "msp-evidence/clinic-001/clinic-001-srv-primary/";

struct Env {
    dir: tempfile::TempDir,
    evidence: PathBuf,
    state: PathBuf,
    keys: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    Env {
        evidence: dir.path().join("evidence"),
        state: dir.path().join("state"),
        keys: dir.path().join("keys"),
        dir,
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `msp-agent ARGS --endpoint ... --bucket B --path-style --evidence-dir ... --state-dir ...`.
fn worm(m: &Moto, e: &Env, bucket: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--endpoint", &m.endpoint(), "--bucket", bucket, "--path-style"])
        .arg("--evidence-dir")
        .arg(&e.evidence)
        .arg("--state-dir")
        .arg(&e.state)
        .env("AWS_ACCESS_KEY_ID", &m.creds.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &m.creds.secret_access_key)
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap()
}

fn evidence_verify(keys: &Path, dir: &Path) -> Output {
    Command::new(BIN)
        .args(["evidence", "verify", "--keys"])
        .arg(keys)
        .arg(dir)
        .output()
        .unwrap()
}

/// A store of `n` bundles, all uploaded to moto (real uploader), receipts written.
fn synced_store(m: &Moto, e: &Env, n: usize) {
    synced_store_in(m, e, n, BUCKET)
}

fn synced_store_in(m: &Moto, e: &Env, n: usize, bucket: &str) {
    let s = signer(&e.keys);
    let mut maker = BundleMaker::new(&e.evidence, s.clone());
    for _ in 0..n {
        maker.next();
    }
    let mut cfg = m.config();
    cfg.bucket = bucket.into();
    let mut up = Uploader::new(cfg, m.creds.clone(), &e.evidence, &e.state, s).unwrap();
    let r = up.sync_once().unwrap();
    assert_eq!(r.confirmed.len(), n, "{:?}", r.error);
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn worm_init_on_a_fresh_moto_bucket_then_worm_verify() {
    let m = Moto::start();
    let e = env();
    synced_store(&m, &e, 3);

    // The bucket the other tests use has Object Lock only: verify names what is missing.
    let o = worm(&m, &e, BUCKET, &["worm", "verify"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for s in ["object_lock: Object Lock enabled but no default retention", "public_access_block", "encryption", "lifecycle"] {
        assert!(out.contains(&format!("bucket setting missing: {s}")), "{s}: {}", text(&o));
    }
    assert!(!out.contains("bucket setting missing: versioning"), "{out}");
    let o = worm(&m, &e, BUCKET, &["worm", "init", "--check"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // A fresh bucket: init creates it and sets everything; verify is then clean.
    let fresh = "ops-fresh-bucket";
    let o = worm(&m, &e, fresh, &["worm", "init"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(out.contains("changed: created bucket ops-fresh-bucket with Object Lock"), "{out}");
    assert!(out.contains("ok      object_lock: default retention COMPLIANCE 2555 days (required: COMPLIANCE, at least 2190 days)"), "{out}");
    // The printed policies parse and never allow a delete.
    let policies: Vec<serde_json::Value> = out
        .split("\n# ")
        .skip(1)
        .map(|chunk| serde_json::from_str(chunk.split_once('\n').unwrap().1.trim()).unwrap())
        .collect();
    assert_eq!(policies.len(), 2, "{out}");
    for p in &policies {
        for st in p["Statement"].as_array().unwrap() {
            if st["Effect"] == "Allow" {
                assert!(!st["Action"].to_string().contains("Delete"), "{st}");
            }
        }
    }
    assert!(policies[0].to_string().contains("s3:PutObject") && !policies[1].to_string().contains("s3:PutObject"));
    // A second init changes nothing.
    let o = worm(&m, &e, fresh, &["worm", "init"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).contains("changed:"), "{}", text(&o));
    // A store uploaded into it: objects and settings verify together.
    let e2 = env();
    synced_store_in(&m, &e2, 3, fresh);
    let o = worm(&m, &e2, fresh, &["worm", "verify", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["bucket_settings"]["settings"].as_array().unwrap().len(), 5);
    assert!(v["bucket_settings"]["settings"].as_array().unwrap().iter().all(|s| s["ok"] == true), "{v}");

    // A default retention below the baseline floor is refused before anything is sent.
    let o = worm(&m, &e, "ops-short-bucket", &["worm", "init", "--default-retention-days", "30"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("below the baseline's floor of 2190 days"), "{}", text(&o));
}

#[test]
fn local_store_deleted_and_restored_from_moto_verifies_and_matches_the_receipts() {
    let m = Moto::start();
    let e = env();
    synced_store(&m, &e, 7);

    // With the local store present: restore compares against it and its receipts.
    let to = e.dir.path().join("restored");
    let o = worm(&m, &e, BUCKET, &["worm", "restore", "--to", to.to_str().unwrap(), "--keys", e.keys.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("7 bundle(s) verified") && err.contains("0 missing, 0 differing, 0 tampered"), "{err}");
    assert_eq!(files_under(&to.join("2026")).len(), files_under(&e.evidence.join("2026")).len());

    // Keep the receipts (the operator's copy of what the bucket confirmed), lose the store.
    let receipts: Vec<serde_json::Value> = files_under(&e.evidence.join("receipts"))
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".receipt.json"))
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    assert_eq!(receipts.len(), 7);
    std::fs::remove_dir_all(&e.evidence).unwrap();
    std::fs::remove_dir_all(&e.state).unwrap();

    let to2 = e.dir.path().join("restored-after-loss");
    let o = worm(&m, &e, BUCKET, &["worm", "restore", "--to", to2.to_str().unwrap(), "--keys", e.keys.to_str().unwrap(), "--client", "clinic-001", "--host", "clinic-001-srv-primary"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // The restored store verifies with msp-agent and, bundle by bundle, with the stock tools.
    let v = evidence_verify(&e.keys, &to2);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert_eq!(stock::verify_all_with_stock_tools(&e.keys, &to2), 7);
    // Every object the receipts name is restored with the receipted SHA-256.
    let mut n = 0;
    for r in &receipts {
        for obj in r["objects"].as_array().unwrap() {
            let key = obj["key"].as_str().unwrap();
            let rel = key.strip_prefix(HOST_PREFIX).unwrap();
            let bytes = std::fs::read(to2.join(rel)).unwrap();
            assert_eq!(sha256_hex(&bytes), obj["sha256"].as_str().unwrap(), "{key}");
            n += 1;
        }
    }
    // Everything else in the copy is the signed head `worm restore` wrote with the key, and
    // the writer's lock it took for that.
    let others: Vec<_> = files_under(&to2).into_iter().filter(|p| !p.starts_with(to2.join("head")) && !p.ends_with(".lock")).collect();
    assert_eq!(n, others.len(), "{others:?}");
    assert!(to2.join("head/head.json.sshsig").is_file());

    // One month only.
    let to3 = e.dir.path().join("restored-month");
    let o = worm(&m, &e, BUCKET, &["worm", "restore", "--to", to3.to_str().unwrap(), "--keys", e.keys.to_str().unwrap(), "--client", "clinic-001", "--host", "clinic-001-srv-primary", "--month", "2026-11"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    // A month with nothing is a failed restore, not a silent success.
    let to4 = e.dir.path().join("restored-empty");
    let o = worm(&m, &e, BUCKET, &["worm", "restore", "--to", to4.to_str().unwrap(), "--keys", e.keys.to_str().unwrap(), "--client", "clinic-001", "--host", "clinic-001-srv-primary", "--month", "2026-10"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

/// A delete marker on top of `key` (plain DeleteObject, which Object Lock allows).
fn delete_marker(m: &Moto, key: &str) {
    let py = "import boto3,sys\nboto3.client('s3',endpoint_url=sys.argv[1],region_name='us-east-1',aws_access_key_id='t',aws_secret_access_key='t').delete_object(Bucket=sys.argv[2],Key=sys.argv[3])";
    let o = Command::new("python3").args(["-c", py, &m.endpoint(), BUCKET, key]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_tampered_object_found_by_restore_is_named_and_the_original_restored() {
    let m = Moto::start();
    let e = env();
    synced_store(&m, &e, 4);
    let c = m.client_for(BUCKET);
    let until = chrono::Utc::now() + chrono::TimeDelta::days(1);
    // Object Lock stops overwriting and deleting, not adding: a second version, a delete marker.
    let k3 = format!("{HOST_PREFIX}2026/11/EB-20261122-0003.json");
    c.put_object(&k3, b"{\"forged\": true}".to_vec(), until).unwrap();
    let k2 = format!("{HOST_PREFIX}2026/11/EB-20261122-0002.json.sshsig");
    delete_marker(&m, &k2);

    let to = e.dir.path().join("restored");
    let o = worm(&m, &e, BUCKET, &["worm", "restore", "--to", to.to_str().unwrap(), "--keys", e.keys.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("tampered: {k3}: 2 versions, the uploader writes exactly one")), "{}", text(&o));
    assert!(out.contains(&format!("tampered: {k2}: latest version is a delete marker")), "{}", text(&o));
    // The receipted versions were restored: the store itself is intact.
    let v = evidence_verify(&e.keys, &to);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert_eq!(std::fs::read(to.join("2026/11/EB-20261122-0003.json")).unwrap(), std::fs::read(e.evidence.join("2026/11/EB-20261122-0003.json")).unwrap());

    // The monthly restore test over every bundle fails, names the key, and records it signed.
    let o = worm(&m, &e, BUCKET, &["worm", "restore-test", "--sample", "100", "--key-dir", e.keys.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("failed: {k3}: 2 versions")), "{}", text(&o));
    let rec = last_bundle(&e.evidence);
    assert_eq!(rec["incident"]["event_type"], "worm_restore_test");
    assert_eq!(rec["incident"]["details"]["result"], "failed");
    assert!(rec["incident"]["details"]["failures"].to_string().contains("EB-20261122-0003.json"), "{rec}");
    // A failed test is no evidence for the packet's `worm_restore_test` rule.
    assert!(!counts_for_packet(&rec));
}

/// Does the record count under the controls map's `worm_restore_test` evidence rule?
fn counts_for_packet(rec: &serde_json::Value) -> bool {
    let b: msp_agent::evidence::bundle::Bundle = serde_json::from_value(rec.clone()).unwrap();
    let rule = msp_agent::baseline::controls::EvidenceRule::parse("worm_restore_test").unwrap();
    msp_agent::packet::assess::qualifies(&rule, &b, "")
}

fn last_bundle(root: &Path) -> serde_json::Value {
    let p = stock::bundles(root).into_iter().max().unwrap();
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

#[test]
fn restore_test_samples_verifies_and_records_signed_evidence() {
    let m = Moto::start();
    let e = env();
    synced_store(&m, &e, 6);
    let o = worm(&m, &e, BUCKET, &["worm", "restore-test", "--sample", "3", "--key-dir", e.keys.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("3 of 6 bundle(s) sampled"), "{}", text(&o));
    let rec = last_bundle(&e.evidence);
    assert_eq!(rec["incident"]["event_type"], "worm_restore_test");
    assert_eq!(rec["incident"]["details"]["result"], "passed");
    assert_eq!(rec["incident"]["details"]["sampled"].as_array().unwrap().len(), 3);
    assert!(rec["incident"]["hipaa_controls"].to_string().contains("§164.308(a)(7)(ii)(D)"));
    assert!(counts_for_packet(&rec));
    let v = evidence_verify(&e.keys, &e.evidence);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert_eq!(stock::verify_all_with_stock_tools(&e.keys, &e.evidence), 7);
}

fn exists_whole(root: &Path, id: &str) -> bool {
    // The bundle's own month directory, from its id (EB-YYYYMMDD-NNNN): bundles are dated by
    // the clock that made them, and the prune record by `--now`.
    let d = root.join(&id[3..7]).join(&id[7..9]);
    ["json", "json.sig", "json.sshsig"].iter().all(|s| d.join(format!("{id}.{s}")).is_file())
}

fn prune_cmd(e: &Env) -> Command {
    let mut c = Command::new(BIN);
    c.args(["evidence", "prune", "--local-retention-days", "90", "--disk-alert-percent", "100", "--now", "2027-06-01T00:00:00Z"])
        .arg("--evidence-dir")
        .arg(&e.evidence)
        .arg("--state-dir")
        .arg(&e.state)
        .arg("--key-dir")
        .arg(&e.keys)
        .arg("--config")
        .arg(e.dir.path().join("no-config.yaml"));
    c
}

#[test]
fn pruner_under_a_kill_9_loop_never_removes_an_unconfirmed_bundle_and_the_store_verifies() {
    let m = Moto::start();
    let e = env();
    synced_store(&m, &e, 20);
    // Ten more, never uploaded.
    let s = std::sync::Arc::new(msp_agent::keys::Signer::load(&e.keys).unwrap());
    {
        let mut maker = BundleMaker::new(&e.evidence, s);
        for _ in 0..20 {
            maker.next();
        }
    }
    let all: Vec<PathBuf> = stock::bundles(&e.evidence);
    assert_eq!(all.len(), 40);
    let unconfirmed: Vec<String> = all[20..].iter().map(|p| p.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    let mut kills = 0;
    for i in 0..40u64 {
        let mut child = prune_cmd(&e).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(500 + (i * 7919) % 25_000));
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
            kills += 1;
        }
        let _ = child.wait();
        for id in &unconfirmed {
            assert!(exists_whole(&e.evidence, id), "after kill {i}: unconfirmed {id} was touched");
        }
        // Any bundle still there is whole: removal starts with the .json, never a signature.
        for p in stock::bundles(&e.evidence) {
            let id = p.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(exists_whole(&e.evidence, &id), "after kill {i}: {id} lost a signature file");
        }
    }
    assert!(kills > 0);
    let o = prune_cmd(&e).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    for id in &unconfirmed {
        assert!(exists_whole(&e.evidence, id), "unconfirmed {id} was removed");
    }
    // Confirmed, old bundles are gone (all twenty: the head is unconfirmed), receipts kept.
    let left = stock::bundles(&e.evidence);
    assert!(left.len() <= 22, "{left:?}\n{}", text(&o));
    assert!(!e.evidence.join("2026/11/EB-20261122-0001.json").exists());
    assert_eq!(files_under(&e.evidence.join("receipts")).len(), 60);
    // The pruned store verifies; the prune record verifies with ssh-keygen too.
    let v = evidence_verify(&e.keys, &e.evidence);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let rec = files_under(&e.evidence.join("pruned")).into_iter().filter(|p| p.extension().is_some_and(|x| x == "json")).max().unwrap();
    stock::ssh_keygen_verify(&e.keys, &rec).unwrap();
    stock::openssl_verify(&e.keys, &rec).unwrap();
    // worm verify counts the pruned objects as pruned, not extra.
    let o = worm(&m, &e, BUCKET, &["worm", "verify", "--objects-only", "--json"]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(j["extra"].as_array().unwrap().is_empty(), "{j}");
    assert!(j["pruned"].as_u64().unwrap() > 0, "{j}");

    // Deleting the first retained bundle is not covered by the record: named.
    let first = left.iter().min().unwrap().clone();
    let tampered = e.dir.path().join("tampered");
    copy_dir(&e.evidence, &tampered);
    let name = first.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::remove_file(tampered.join("2026/11").join(&name)).unwrap();
    let v = evidence_verify(&e.keys, &tampered);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    assert!(text(&v).contains("but the prune record keeps history from sequence"), "{}", text(&v));
    // A forged prune record (one byte changed) does not verify, so the prefix counts as deleted.
    let forged = e.dir.path().join("forged");
    copy_dir(&e.evidence, &forged);
    let frec = forged.join(rec.strip_prefix(&e.evidence).unwrap());
    let mut b = std::fs::read(&frec).unwrap();
    let i = b.iter().position(|c| *c == b'9').unwrap_or(10);
    b[i] = if b[i] == b'9' { b'8' } else { b'x' };
    std::fs::set_permissions(&frec, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&frec, b).unwrap();
    let v = evidence_verify(&e.keys, &forged);
    assert_eq!(v.status.code(), Some(1), "{}", text(&v));
    assert!(text(&v).contains("prune record"), "{}", text(&v));
}

fn copy_dir(from: &Path, to: &Path) {
    let o = Command::new("cp").arg("-a").arg(from).arg(to).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn export_for_offboarding_is_signed_complete_and_checks_with_stock_tools() {
    let m = Moto::start();
    let e = env();
    synced_store(&m, &e, 5);
    let packet = e.dir.path().join("packet-2026-11");
    std::fs::create_dir_all(&packet).unwrap();
    std::fs::write(packet.join("packet.html"), "<html>packet</html>").unwrap();
    let to = e.dir.path().join("export");
    let o = Command::new(BIN)
        .args(["evidence", "export", "--client", "clinic-001"])
        .arg("--to")
        .arg(&to)
        .arg("--evidence-dir")
        .arg(&e.evidence)
        .arg("--key-dir")
        .arg(&e.keys)
        .arg("--packets")
        .arg(&packet)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("5 bundle(s), 15 receipt file(s), 1 packet(s)"), "{}", text(&o));
    // Never the private key.
    assert!(files_under(&to).iter().all(|p| !p.to_string_lossy().ends_with(".key")));
    assert!(to.join("README.txt").is_file() && to.join("packets/packet-2026-11/packet.html").is_file());
    // The recipient's checks, as the README gives them.
    let sums = std::fs::File::open(to.join("SHA256SUMS")).unwrap();
    let o = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f", "keys/allowed_signers", "-I", "msp-evidence", "-n", "msp-evidence", "-s", "SHA256SUMS.sshsig"])
        .current_dir(&to)
        .stdin(sums)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let o = Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&to).output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v = evidence_verify(&to.join("keys"), &to.join("evidence"));
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert_eq!(stock::verify_all_with_stock_tools(&to.join("keys"), &to.join("evidence")), 5);
    // A changed file is caught by sha256sum -c.
    let f = to.join("evidence/2026/11/EB-20261122-0002.json");
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::write(&f, b"{}").unwrap();
    let o = Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&to).output().unwrap();
    assert!(!o.status.success());
    // An unknown client is an error, not an empty export.
    let o = Command::new(BIN)
        .args(["evidence", "export", "--client", "clinic-999"])
        .arg("--to")
        .arg(e.dir.path().join("export2"))
        .arg("--evidence-dir")
        .arg(&e.evidence)
        .arg("--key-dir")
        .arg(&e.keys)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// #14 must-show, the bucket side: an application logs a realistic patient line; a repair
/// records what it did (the application's log as a count and a SHA-256, as the shipped
/// runbooks do, plus output that echoes identifiers, which the PHI filter must catch), the real
/// uploader puts everything in the Object Lock bucket, and no object there (bundle, signature,
/// artifact) holds any field of the patient line. Receipts and the local store are grepped too.
#[test]
fn patient_text_never_reaches_the_bucket() {
    let m = Moto::start();
    let e = env();
    let k = Command::new(BIN).args(["key", "generate", "--out"]).arg(&e.keys).output().unwrap();
    assert_eq!(k.status.code(), Some(0), "{}", text(&k));
    let name = "Jane Q Doe";
    let dob = "03/14/1962";
    let mrn = "00481516";
    let email = "jane.doe@example.com";
    let phone = "(555) 867-5309";
    let app_log = e.dir.path().join("ehr.log");
    std::fs::write(&app_log, format!("chart opened for {name} DOB {dob} MRN {mrn} {email} {phone}\nsaving chart\n")).unwrap();
    let runbooks = e.dir.path().join("runbooks");
    std::fs::create_dir_all(&runbooks).unwrap();
    let script = format!(
        "log={log}\n      \
         printf 'lines=%s sha256=%s\\n' \"$(wc -l < \"$log\")\" \"$(sha256sum < \"$log\" | cut -d' ' -f1)\" > \"$MSP_ARTIFACTS/app-log-summary.txt\"\n      \
         echo \"contact on file: MRN {mrn} {email} {phone} DOB {dob}\"\n      \
         echo \"callback {phone}\" >&2\n      \
         echo \"note: DOB {dob} MRN {mrn}\" > \"$MSP_ARTIFACTS/note.txt\"",
        log = app_log.display()
    );
    std::fs::write(
        runbooks.join("RB-PHI-001.yaml"),
        format!(
            r#"id: RB-PHI-001
name: PHI boundary test
version: "1.0.0"
description: Summarises an application log as metadata; its output echoes identifiers.
hipaa_controls: ["§164.308(a)(1)(ii)(D)"]
severity: low
sla_minutes: 15
parameters: {{}}
trigger_conditions:
  event_types: [service_crash]
steps:
  - id: summarise
    action: Record the application's log as a count and a hash
    timeout_seconds: 30
    script: |
      {script}
    evidence_capture: [app-log-summary.txt, note.txt]
rollback: []
verification:
  id: check
  action: Nothing to check
  timeout_seconds: 10
  script: "true"
"#
        ),
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["runbook", "run", "RB-PHI-001", "--client-id", "clinic-001", "--host", "clinic-001-srv-primary", "--runbooks"])
        .arg(&runbooks)
        .arg("--evidence-dir")
        .arg(&e.evidence)
        .arg("--key-dir")
        .arg(&e.keys)
        .arg("--state-dir")
        .arg(&e.state)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = worm(&m, &e, BUCKET, &["worm", "sync", "--key-dir", e.keys.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    let client = m.client_for(BUCKET);
    let objects = client.list_object_versions(HOST_PREFIX).unwrap();
    assert!(objects.iter().any(|v| v.key.ends_with(".json")), "no bundle uploaded: {objects:?}");
    assert!(objects.iter().any(|v| v.key.ends_with("note.txt")), "no artifact uploaded: {objects:?}");
    let mut scanned = 0;
    let mut texts: Vec<(String, Vec<u8>)> = Vec::new();
    for v in objects.iter().filter(|v| !v.delete_marker) {
        let got = client.get_object(&v.key, Some(&v.version_id)).unwrap();
        texts.push((format!("s3://{BUCKET}/{}", v.key), got.body));
        scanned += 1;
    }
    for p in files_under(&e.evidence) {
        texts.push((p.display().to_string(), std::fs::read(&p).unwrap()));
    }
    assert!(scanned >= 4, "{scanned} objects");
    for (where_, body) in &texts {
        let body = String::from_utf8_lossy(body);
        for s in [name, dob, mrn, email, phone, "555", "867-5309"] {
            assert!(!body.contains(s), "{s:?} found in {where_}");
        }
    }
    // What was recorded instead: the log as metadata, the identifiers as typed placeholders.
    let bundle = texts.iter().find(|(w, _)| w.starts_with("s3://") && w.ends_with(".json") && !w.contains(".artifacts")).unwrap();
    let b: serde_json::Value = serde_json::from_slice(&bundle.1).unwrap();
    let out = b["actions_taken"][0]["stdout_excerpt"].as_str().unwrap();
    assert!(out.contains("[mrn×1]") && out.contains("[email×1]") && out.contains("[phone×1]") && out.contains("[dob×1]"), "{out}");
    let note = b["artifacts"].as_array().unwrap().iter().find(|a| a["filename"].as_str().unwrap().ends_with("note.txt")).unwrap();
    assert_eq!(note["scrubbed"], true, "{note}");
    // The uploaded evidence still verifies with the stock tools.
    assert!(stock::verify_all_with_stock_tools(&e.keys, &e.evidence) >= 1);
}
