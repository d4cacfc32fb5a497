//! The fleet index against real parts: a `moto_server` S3 with Object Lock on loopback, filled
//! by the real `msp-agent worm sync` from three hosts of two clients (each a sample month
//! signed with its own key), indexed from S3 and from a mirror directory; planted objects
//! with a bad signature and a broken chain; a rebuild from scratch; an unchanged poll.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use msp_agent::packet::period::Month;
use msp_agent::packet::sample::{write_month, MonthSpec};
use msp_evidence::bundle::Bundle;
use msp_evidence::keys::Signer;
use msp_evidence::s3::{Credentials, Endpoint, S3Client};
use msp_fleet::index::{embedded_baseline_sha256, Index, Settings};
use msp_fleet::inventory::Inventory;
use msp_fleet::model::{ControlState, FleetQuery, Scope, Silence};
use msp_fleet::source::{LocalSource, S3Source, Source};

mod webhook_sink;

const BUCKET: &str = "fleet-index-test";
const PREFIX: &str = "msp-evidence";
/// Heartbeats every 6 h keep the months small enough for moto (each bundle is 3 PUT + 3 HEAD).
const INTERVAL: i64 = 21600;

/// `moto_server` on 127.0.0.1 (no signature checking), killed by pid on drop.
struct Moto {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Moto {
    fn start() -> Moto {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("moto.log")).unwrap();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server ({e}): install it with scripts/setup-machine (pip install 'moto[server]')"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server on port {port} did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        let m = Moto { child, port, _dir: dir };
        m.client().create_bucket_with_object_lock().unwrap();
        m
    }
    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    fn creds() -> Credentials {
        Credentials { access_key_id: "testing".into(), secret_access_key: "testing".into(), session_token: None }
    }
    fn client(&self) -> S3Client {
        let ep = Endpoint { url: self.endpoint(), bucket: BUCKET.into(), region: "us-east-1".into(), path_style: true, request_timeout_seconds: 10 };
        S3Client::new(&ep, Moto::creds()).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/msp-agent");
    assert!(p.is_file(), "{} is missing: build it with `cargo build -j 1 -p msp-agent`", p.display());
    p
}

struct HostFixture {
    host: &'static str,
    keys: PathBuf,
    evidence: PathBuf,
    bundles: usize,
}

/// A host: its own key, a sample month in a store directory, uploaded by `msp-agent worm sync`.
fn make_host(m: &Moto, root: &Path, client: &'static str, host: &'static str, month: &str, baseline_sha: &str) -> HostFixture {
    let keys = root.join(host).join("keys");
    let evidence = root.join(host).join("evidence");
    let state = root.join(host).join("state");
    std::fs::create_dir_all(&evidence).unwrap();
    std::fs::create_dir_all(&state).unwrap();
    msp_agent::keys::generate(&keys, Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap()).unwrap();
    let signer = Signer::load(&keys).unwrap();
    let mut spec = MonthSpec::new(Month::parse(month).unwrap(), "hipaa-v1", baseline_sha);
    spec.client_id = client.into();
    spec.hostname = host.into();
    spec.heartbeat_interval = INTERVAL;
    spec.incidents_per_day = 1;
    let tally = write_month(&evidence, &spec, &signer).unwrap();
    let out = Command::new(agent_bin())
        .args(["worm", "sync", "--path-style", "--bucket", BUCKET, "--endpoint", &m.endpoint(), "--region", "us-east-1", "--prefix", PREFIX])
        .arg("--key-dir")
        .arg(&keys)
        .arg("--evidence-dir")
        .arg(&evidence)
        .arg("--state-dir")
        .arg(&state)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_SESSION_TOKEN")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "worm sync of {host}: {text}");
    assert!(text.contains(&format!("{} confirmed", tally.bundles)), "worm sync of {host}: {text}");
    HostFixture { host, keys, evidence, bundles: tally.bundles }
}

fn key_info_json(keys: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(keys.join("key-info.json")).unwrap()).unwrap()
}

fn state_of(q: &dyn FleetQuery, client: &str, host: &str, control: &str, now: DateTime<Utc>) -> (ControlState, String, Option<String>) {
    let v = q.host(&Scope::Operator, client, host, now).unwrap().unwrap();
    let l = v.controls.iter().find(|l| l.control_id == control).unwrap_or_else(|| panic!("no control {control}"));
    (l.state, l.reason.clone(), l.evidence.as_ref().map(|e| e.event_type.clone()))
}

fn remove_index(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{suffix}", path.display()));
        if p.exists() {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

/// The newest bundle file of a store (by chain sequence) and its parsed form.
fn newest_bundle(evidence: &Path) -> (Vec<u8>, Bundle) {
    let mut best: Option<(Vec<u8>, Bundle)> = None;
    for e in walk(evidence) {
        // Receipts (`receipts/YYYY/MM/EB-….receipt.json`) are outside the chain.
        if e.starts_with(evidence.join("receipts")) {
            continue;
        }
        if e.extension().and_then(|x| x.to_str()) == Some("json") && e.file_name().unwrap().to_str().unwrap().starts_with("EB-") {
            let bytes = std::fs::read(&e).unwrap();
            let b: Bundle = serde_json::from_slice(&bytes).unwrap();
            if best.as_ref().is_none_or(|(_, x)| x.chain.sequence < b.chain.sequence) {
                best = Some((bytes, b));
            }
        }
    }
    best.unwrap()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Upload a made-up bundle (JSON + raw signature) the way an intruder with bucket write
/// access could: new keys only (Object Lock forbids replacing).
fn plant(client: &S3Client, host_prefix: &str, b: &Bundle, sig: &[u8]) -> String {
    let bytes = msp_evidence::store::serialize_bundle(b).unwrap();
    let key = format!("{host_prefix}{}/{}/{}.json", &b.bundle_id[3..7], &b.bundle_id[7..9], b.bundle_id);
    let until = Utc::now() + chrono::TimeDelta::days(1);
    client.put_object(&key, bytes, until).unwrap();
    client.put_object(&format!("{key}.sig"), sig.to_vec(), until).unwrap();
    key
}

#[test]
fn index_from_s3_verifies_judges_rebuilds_and_polls_incrementally() {
    let started = Instant::now();
    let m = Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let baseline = embedded_baseline_sha256();
    // Two hosts of clinic-001 with this month and the fleet's baseline; clinic-002's host
    // stopped sending in October and ran another baseline.
    let hosts = [
        make_host(&m, root, "clinic-001", "clinic-001-srv-primary", "2026-11", &baseline),
        make_host(&m, root, "clinic-001", "clinic-001-srv-backup", "2026-11", &baseline),
        make_host(&m, root, "clinic-002", "clinic-002-srv-primary", "2026-10", &"ab".repeat(32)),
    ];
    eprintln!("filled the bucket in {:?}", started.elapsed());
    let total: usize = hosts.iter().map(|h| h.bundles).sum();

    // The inventory: inline keys for clinic-001, a key directory (relative) for clinic-002.
    let inv_dir = root.join("inv");
    std::fs::create_dir_all(&inv_dir).unwrap();
    let inv = serde_json::json!({
        "version": 1,
        "clients": [
            {"id": "clinic-001", "name": "Clinic 001", "hosts": [
                {"id": hosts[0].host, "heartbeat_interval_seconds": INTERVAL, "keys": [key_info_json(&hosts[0].keys)]},
                {"id": hosts[1].host, "heartbeat_interval_seconds": INTERVAL, "keys": [key_info_json(&hosts[1].keys)]},
            ]},
            {"id": "clinic-002", "hosts": [
                {"id": hosts[2].host, "heartbeat_interval_seconds": INTERVAL, "key_dir": "../clinic-002-srv-primary/keys"},
            ]},
        ]
    });
    let inv_path = inv_dir.join("inventory.json");
    std::fs::write(&inv_path, serde_json::to_string_pretty(&inv).unwrap()).unwrap();
    let inventory = Inventory::load(&inv_path).unwrap();
    // The repository's exceptions for clinic-001 (ssh.client_alive_interval_seconds, firewall ports).
    let exc_dir = root.join("exceptions");
    std::fs::create_dir_all(&exc_dir).unwrap();
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("../baseline/exceptions/clinic-001.yaml"), exc_dir.join("clinic-001.yaml")).unwrap();
    let settings = Settings::embedded(Some(&exc_dir)).unwrap();

    let s3 = Arc::new(S3Source::new(m.client(), PREFIX));
    let index_path = root.join("fleet-index.sqlite");
    let index = Index::open(&index_path, inventory.clone(), settings.clone()).unwrap().with_source(s3.clone());
    let t0 = Instant::now();
    // Last heartbeat of November (6 h interval from 00:04) is 2026-11-30T18:04:00Z.
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 18, 30, 0).unwrap();
    let r = index.poll(s3.as_ref(), now).unwrap();
    eprintln!("first poll {:?}: {r:?}", t0.elapsed());
    assert_eq!(r.bundles_indexed, total, "{r:?}");
    assert_eq!(r.integrity_errors, 0, "{r:?}");
    assert_eq!(r.pending, 0);

    // (a) Known cases.
    let (p, s) = ("clinic-001-srv-primary", "clinic-002-srv-primary");
    let st = |c: &str, h: &str, ctl: &str| state_of(&index, c, h, ctl, now);
    assert_eq!(st("clinic-001", p, "§164.312(b)").0, ControlState::Passing, "{:?}", st("clinic-001", p, "§164.312(b)"));
    assert_eq!(st("clinic-001", p, "§164.312(b)").2.as_deref(), Some("heartbeat"));
    assert_eq!(st("clinic-001", p, "§164.308(a)(7)(ii)(A)").0, ControlState::Passing, "{:?}", st("clinic-001", p, "§164.308(a)(7)(ii)(A)"));
    assert_eq!(st("clinic-001", p, "§164.308(a)(7)(ii)(A)").2.as_deref(), Some("backup_completed"));
    assert_eq!(st("clinic-001", p, "§164.308(a)(7)(ii)(B)").0, ControlState::Passing, "{:?}", st("clinic-001", p, "§164.308(a)(7)(ii)(B)"));
    assert_eq!(st("clinic-001", p, "§164.312(a)(1)").0, ControlState::Passing, "{:?}", st("clinic-001", p, "§164.312(a)(1)"));
    let logoff = st("clinic-001", "clinic-001-srv-backup", "§164.312(a)(2)(iii)");
    assert_eq!(logoff.0, ControlState::Excepted, "{logoff:?}");
    assert!(logoff.1.contains("EXC-clinic-001-001") && logoff.1.contains("Clinic-001 Security Official"), "{logoff:?}");
    // clinic-002: evidence from October is stale, its heartbeats name another baseline
    // (provenance fails), it has no exception, and it has been silent for weeks.
    assert_eq!(st("clinic-002", s, "§164.312(b)").0, ControlState::Stale, "{:?}", st("clinic-002", s, "§164.312(b)"));
    assert_eq!(st("clinic-002", s, "§164.308(a)(7)(ii)(A)").0, ControlState::Stale);
    assert_eq!(st("clinic-002", s, "§164.312(a)(1)").0, ControlState::Failing, "{:?}", st("clinic-002", s, "§164.312(a)(1)"));
    assert_eq!(st("clinic-002", s, "§164.312(a)(2)(iii)").0, ControlState::Failing);
    let hv = index.host(&Scope::Operator, "clinic-002", s, now).unwrap().unwrap();
    assert_eq!(hv.summary.silence, Silence::Page);
    let hv = index.host(&Scope::Operator, "clinic-001", p, now).unwrap().unwrap();
    assert_eq!(hv.summary.silence, Silence::Reporting);
    assert_eq!(hv.summary.last_heartbeat_at.as_deref(), Some("2026-11-30T18:04:00Z"));
    assert!(hv.summary.worm_lag_seconds.is_some());
    assert!(hv.controls.iter().all(|l| l.state == ControlState::Excepted || l.evidence.is_some()), "every status links to evidence");
    // Scope: a clinic sees only itself.
    let scoped = Scope::Client("clinic-002".into());
    let f = index.fleet(&scoped, now).unwrap();
    assert_eq!(f.clients.iter().map(|c| c.client_id.as_str()).collect::<Vec<_>>(), ["clinic-002"]);
    assert!(index.host(&scoped, "clinic-001", p, now).unwrap().is_none());
    assert!(index.bundle(&scoped, "clinic-001", p, "EB-20261101-0001").unwrap().is_none());
    let f = index.fleet(&Scope::Operator, now).unwrap();
    assert_eq!(f.clients.len(), 2);
    assert_eq!(f.attention.first().map(|h| h.host_id.as_str()), Some(s), "silent host first");
    // The bundle page: JSON from the source, and stock commands that really verify it.
    let bv = index.bundle(&Scope::Operator, "clinic-001", p, "EB-20261101-0001").unwrap().unwrap();
    assert_eq!(bv.verification, "verified");
    assert!(bv.json.contains("\"bundle_id\": \"EB-20261101-0001\""));
    assert_eq!(bv.signature_objects.len(), 2);
    let work = root.join("auditor");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("EB-20261101-0001.json"), s3.get(&bv.bundle.object_key).unwrap()).unwrap();
    for o in &bv.signature_objects {
        std::fs::write(work.join(o.rsplit('/').next().unwrap()), s3.get(o).unwrap()).unwrap();
    }
    for f in ["allowed_signers", "evidence-signing.pub.pem"] {
        std::fs::copy(hosts[0].keys.join(f), work.join(f)).unwrap();
    }
    for cmd in &bv.stock_commands {
        let out = Command::new("sh").arg("-c").arg(cmd).current_dir(&work).output().unwrap();
        assert!(out.status.success(), "{cmd}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }

    // A view is judged as of its time: in mid-November nothing after that moment counts.
    let mid = Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap();
    let hv = index.host(&Scope::Operator, "clinic-001", p, mid).unwrap().unwrap();
    let last: DateTime<Utc> = hv.summary.last_evidence_at.as_deref().unwrap().parse().unwrap();
    assert!(last <= mid && mid - last < chrono::TimeDelta::hours(7), "last evidence as of mid-month: {last}");
    assert!(hv.controls.iter().filter_map(|l| l.evidence.as_ref()).all(|b| b.generated_at.parse::<DateTime<Utc>>().unwrap() <= mid));

    // Silence, judged off the box from the real index: the uploads stopped (the bucket holds
    // nothing after November 30th); as the clock advances each tier alerts exactly once,
    // through a real webhook on loopback, and a client whose hosts all went quiet alerts once.
    let hook = webhook_sink::sink();
    let alerts_cfg = msp_fleet::config::AlertsConfig::default();
    let ledger = root.join("alert-ledger.json");
    let mut esc = msp_fleet::alert::Escalator::open(&ledger, Some(hook.url.clone()), &alerts_cfg).unwrap();
    // Silence counts from the newest evidence of any kind (an incident can follow the last
    // heartbeat); the later of the two clinic-001 hosts.
    let last_hb: DateTime<Utc> = [p, "clinic-001-srv-backup"]
        .iter()
        .map(|h| index.host(&Scope::Operator, "clinic-001", h, now + chrono::TimeDelta::days(30)).unwrap().unwrap().summary.last_evidence_at.unwrap().parse().unwrap())
        .max()
        .unwrap();
    let tick = |esc: &mut msp_fleet::alert::Escalator, t: DateTime<Utc>| esc.run_once(&index, t).unwrap().len();
    // Now: clinic-002's host has been silent since October (straight to the page tier).
    assert_eq!(tick(&mut esc, now), 1);
    assert_eq!(tick(&mut esc, now + chrono::TimeDelta::minutes(5)), 0, "once per outage");
    // Two intervals without evidence: both clinic-001 hosts warn, and clinic-001 as a whole.
    let warn_at = last_hb + chrono::TimeDelta::seconds(2 * INTERVAL + 60);
    assert_eq!(tick(&mut esc, warn_at), 3);
    assert_eq!(tick(&mut esc, warn_at + chrono::TimeDelta::hours(1)), 0);
    // A restart of the fleet view (the ledger re-read) sends nothing again.
    let mut esc = msp_fleet::alert::Escalator::open(&ledger, Some(hook.url.clone()), &alerts_cfg).unwrap();
    assert_eq!(tick(&mut esc, warn_at + chrono::TimeDelta::hours(2)), 0);
    // Four intervals: the page tier, once per host.
    let page_at = last_hb + chrono::TimeDelta::seconds(4 * INTERVAL + 60);
    assert_eq!(tick(&mut esc, page_at), 2);
    assert_eq!(tick(&mut esc, page_at + chrono::TimeDelta::hours(3)), 0);
    let k = |kind: &str, host: &str| (kind.to_string(), host.to_string());
    assert_eq!(
        hook.kinds(),
        vec![
            k("host_silent_page", s),
            k("host_silent_warn", p),
            k("host_silent_warn", "clinic-001-srv-backup"),
            k("client_silent", "*"),
            k("host_silent_page", p),
            k("host_silent_page", "clinic-001-srv-backup"),
        ]
    );
    for body in hook.bodies.lock().unwrap().iter() {
        let keys: Vec<&str> = body.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["at", "bundle_id", "client_id", "host", "incident_id", "kind", "runbook_id", "summary"], "the agent's webhook format");
    }

    // (d) An unchanged bucket: one LIST per host, nothing indexed.
    let before = s3.requests_sent();
    let t1 = Instant::now();
    let r = index.poll(s3.as_ref(), now).unwrap();
    eprintln!("unchanged poll {:?}: {r:?}", t1.elapsed());
    assert_eq!(s3.requests_sent() - before, 3, "{r:?}");
    assert_eq!((r.list_calls, r.listed, r.new_objects, r.bundles_indexed, r.integrity_errors), (3, 0, 0, 0, 0));

    // (b) Planted objects. On the backup host: a newer heartbeat signed by a key that is not
    // its own (bad signature). On the primary: a heartbeat signed with the host's real key but
    // linking to the wrong predecessor (broken chain).
    let (_, mut forged) = newest_bundle(&hosts[1].evidence);
    forged.bundle_id = "EB-20261130-0900".into();
    forged.generated_at = "2026-11-30T18:20:00Z".into();
    forged.chain.sequence += 1;
    let intruder = root.join("intruder");
    msp_agent::keys::generate(&intruder, Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap()).unwrap();
    let intruder = Signer::load(&intruder).unwrap();
    let forged_sig = intruder.sign_raw(&msp_evidence::store::serialize_bundle(&forged).unwrap());
    let forged_key = plant(&m.client(), &format!("{PREFIX}/clinic-001/clinic-001-srv-backup/"), &forged, &forged_sig);
    let (last_bytes, mut broken) = newest_bundle(&hosts[0].evidence);
    assert_eq!(sha256_hex(&last_bytes).len(), 64);
    broken.bundle_id = "EB-20261130-0900".into();
    broken.generated_at = "2026-11-30T18:20:00Z".into();
    broken.chain.sequence += 1;
    broken.chain.prev_bundle_sha256 = "cd".repeat(32);
    let real = Signer::load(&hosts[0].keys).unwrap();
    let broken_sig = real.sign_raw(&msp_evidence::store::serialize_bundle(&broken).unwrap());
    let broken_key = plant(&m.client(), &format!("{PREFIX}/clinic-001/clinic-001-srv-primary/"), &broken, &broken_sig);
    let r = index.poll(s3.as_ref(), now).unwrap();
    assert_eq!((r.bundles_indexed, r.integrity_errors), (0, 2), "{r:?}");
    for (host, key, says) in [("clinic-001-srv-backup", &forged_key, "does not verify"), (p, &broken_key, "does not match SHA-256")] {
        let hv = index.host(&Scope::Operator, "clinic-001", host, now).unwrap().unwrap();
        assert_eq!(hv.integrity.len(), 1, "{:?}", hv.integrity);
        assert_eq!(&hv.integrity[0].object_key, key);
        assert!(hv.integrity[0].problem.contains(says), "{:?}", hv.integrity[0]);
        let hb = hv.controls.iter().find(|l| l.control_id == "§164.312(b)").unwrap();
        assert_eq!(hb.state, ControlState::IntegrityError, "{hb:?}");
        assert!(hb.reason.contains(key.as_str()), "{hb:?}");
        assert_eq!(hb.evidence.as_ref().map(|b| &b.object_key), Some(key), "the status links to the object that failed");
        assert!(hv.controls.iter().all(|l| l.state != ControlState::Passing), "an integrity error never shows as passing: {:?}", hv.controls);
        assert_eq!(hv.summary.integrity_errors, 1);
    }
    let bv = index.bundle(&Scope::Operator, "clinic-001", p, "EB-20261130-0900").unwrap().unwrap();
    assert!(bv.verification.starts_with("integrity error"), "{}", bv.verification);
    // The untouched host is unaffected.
    assert_eq!(st("clinic-002", s, "§164.312(b)").0, ControlState::Stale);

    // (c) Delete the index, rebuild from the bucket: the same dump.
    let dump = index.dump().unwrap();
    assert!(dump.contains(&format!("integrity {forged_key}")));
    drop(index);
    remove_index(&index_path);
    let rebuilt = Index::open(&index_path, inventory.clone(), settings.clone()).unwrap();
    let r = rebuilt.poll(s3.as_ref(), now).unwrap();
    assert_eq!((r.bundles_indexed, r.integrity_errors), (total, 2));
    assert_eq!(rebuilt.dump().unwrap(), dump, "a rebuilt index must dump the same");
    drop(rebuilt);

    // (e) A mirror directory of the bucket gives the same dump.
    let mirror = root.join("mirror");
    let client = m.client();
    let objects = client.list_objects_v2(&format!("{PREFIX}/"), None).unwrap();
    assert!(objects.len() >= total * 3);
    for o in &objects {
        let p = mirror.join(&o.key);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, client.get_object(&o.key, None).unwrap().body).unwrap();
    }
    let local = LocalSource::new(&mirror, PREFIX);
    let from_mirror = Index::open(&root.join("mirror-index.sqlite"), inventory, settings).unwrap();
    let r = from_mirror.poll(&local, now).unwrap();
    assert_eq!((r.bundles_indexed, r.integrity_errors), (total, 2));
    assert_eq!(from_mirror.dump().unwrap(), dump, "mirror and bucket must dump the same");
    let r = from_mirror.poll(&local, now).unwrap();
    assert_eq!((r.list_calls, r.listed, r.bundles_indexed), (3, 0, 0));
    eprintln!("whole test {:?}", started.elapsed());
}

#[test]
fn paged_listing_follows_continuation_tokens() {
    // More than one page of ListObjectsV2 (1000 keys) under one prefix, and start-after.
    let m = Moto::start();
    let c = m.client();
    let until = Utc::now() + chrono::TimeDelta::days(1);
    let body = b"x".to_vec();
    let keys: Vec<String> = (0..1005).map(|i| format!("p/c/h/2026/11/k{i:05}")).collect();
    for k in &keys {
        c.put_object(k, body.clone(), until).unwrap();
    }
    let all = c.list_objects_v2("p/c/h/", None).unwrap();
    assert_eq!(all.iter().map(|o| o.key.clone()).collect::<Vec<_>>(), keys);
    let after = c.list_objects_v2("p/c/h/", Some(&keys[1002])).unwrap();
    assert_eq!(after.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), [keys[1003].as_str(), keys[1004].as_str()]);
    assert!(after.iter().all(|o| o.size == 1 && o.last_modified.is_some()));
}

#[test]
fn malformed_inventory_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    msp_agent::keys::generate(&keys, Utc.with_ymd_and_hms(2026, 9, 1, 0, 0, 0).unwrap()).unwrap();
    let info = key_info_json(&keys);
    let path = dir.path().join("inventory.json");
    let write = |v: &serde_json::Value| std::fs::write(&path, serde_json::to_string_pretty(v).unwrap()).unwrap();
    // An unknown field: file, line, column and the field.
    write(&serde_json::json!({"version": 1, "clients": [{"id": "c1", "hosts": [{"id": "h1", "heartbeat_interval_seconds": 900, "keys": [info], "heartbeat_intervall": 5}]}]}));
    let err = format!("{:#}", Inventory::load(&path).unwrap_err());
    assert!(err.contains(&path.display().to_string()) && err.contains("heartbeat_intervall") && err.contains("line "), "{err}");
    // A key whose public key does not hash to its id.
    let mut bad = info.clone();
    bad["key_id"] = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into();
    write(&serde_json::json!({"version": 1, "clients": [{"id": "c1", "hosts": [{"id": "h1", "heartbeat_interval_seconds": 900, "keys": [bad]}]}]}));
    let err = format!("{:#}", Inventory::load(&path).unwrap_err());
    assert!(err.contains("clients[0].hosts[0].keys") && err.contains("fingerprint"), "{err}");
    // Duplicate hosts.
    let h = serde_json::json!({"id": "h1", "heartbeat_interval_seconds": 900, "keys": [info]});
    write(&serde_json::json!({"version": 1, "clients": [{"id": "c1", "hosts": [h.clone()]}, {"id": "c2", "hosts": [h]}]}));
    let err = format!("{:#}", Inventory::load(&path).unwrap_err());
    assert!(err.contains("clients[1].hosts[0].id") && err.contains("listed twice"), "{err}");
    // A missing required field.
    write(&serde_json::json!({"version": 1, "clients": [{"id": "c1", "hosts": [{"id": "h1", "keys": [info]}]}]}));
    let err = format!("{:#}", Inventory::load(&path).unwrap_err());
    assert!(err.contains("heartbeat_interval_seconds") && err.contains("line "), "{err}");
    // key_dir relative to the inventory file.
    write(&serde_json::json!({"version": 1, "clients": [{"id": "c1", "hosts": [{"id": "h1", "heartbeat_interval_seconds": 900, "key_dir": "keys"}]}]}));
    let inv = Inventory::load(&path).unwrap();
    assert_eq!(inv.host("c1", "h1").unwrap().key_ids(), vec![info["key_id"].as_str().unwrap().to_string()]);
}
