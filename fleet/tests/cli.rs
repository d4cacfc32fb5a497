//! `msp-fleet` end to end, as an operator runs it: a mirror of the bucket filled by the real
//! `msp-agent evidence sample-month` (3 hosts of 2 clients), `check-config`, `index` twice
//! (the second finds nothing), `index --rebuild` gives the same `dump`, `status --json` exits 1
//! for the silent host, `packet` writes a manifest the stock tools verify, and `serve` answers
//! on loopback (login required, bearer API, clean stop on SIGTERM). When the browser is
//! installed, the chromium driver (`tests/browser/run.mjs`) also clicks through the real index.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use msp_fleet::web::auth::hash_token;
use serde_json::Value;

const TOKEN: &str = "cli-test-operator-token-7c4e";
const CLIENT_TOKEN: &str = "cli-test-clinic-002-token-19aa";
/// Judged at the end of November: the sample months are October and November 2026.
const NOW: &str = "2026-12-01T00:00:00Z";

fn bin(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let p = dir.join("debug").join(name);
    assert!(p.exists(), "{} is missing: run `cargo build --bins` first (scripts/test does)", p.display());
    p
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap();
    eprintln!("{:?}\n{}{}", cmd, String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    o
}

fn fleet(args: &[&str], cfg: &Path) -> Output {
    run(Command::new(bin("msp-fleet")).args(args).arg("--config").arg(cfg))
}

/// The server, killed if the test fails before it stops it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A host's month in the mirror, with a key made for it.
fn sample(root: &Path, client: &str, host: &str, month: &str, extra: &[&str]) {
    let o = run(Command::new(bin("msp-agent"))
        .args(["evidence", "sample-month", "--month", month, "--client", client, "--host", host, "--heartbeat-minutes", "360", "--new-key"])
        .arg("--store")
        .arg(root.join("mirror/msp-evidence").join(client).join(host))
        .arg("--key-dir")
        .arg(root.join("keys").join(host))
        .args(extra));
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn an_operator_indexes_a_mirror_checks_status_makes_a_packet_and_serves_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    sample(root, "clinic-001", "clinic-001-srv-primary", "2026-11", &[]);
    sample(root, "clinic-001", "clinic-001-srv-backup", "2026-11", &["--no-worm-restore-test"]);
    sample(root, "clinic-002", "clinic-002-srv-01", "2026-10", &[]);
    // The fleet view holds public keys only.
    for h in ["clinic-001-srv-primary", "clinic-001-srv-backup", "clinic-002-srv-01"] {
        std::fs::remove_file(root.join("keys").join(h).join("evidence-signing.key")).unwrap();
    }
    let host = |id: &str| serde_json::json!({"id": id, "heartbeat_interval_seconds": 21600, "key_dir": format!("keys/{id}")});
    let inv = serde_json::json!({"version": 1, "clients": [
        {"id": "clinic-001", "hosts": [host("clinic-001-srv-primary"), host("clinic-001-srv-backup")]},
        {"id": "clinic-002", "name": "Clinic 002", "hosts": [host("clinic-002-srv-01")]},
    ]});
    std::fs::write(root.join("inventory.json"), serde_json::to_vec_pretty(&inv).unwrap()).unwrap();
    std::fs::write(
        root.join("tokens"),
        format!("operator {}\nclient:clinic-002 {}\n", hash_token(TOKEN), hash_token(CLIENT_TOKEN)),
    )
    .unwrap();
    let cfg = root.join("fleet.yaml");
    std::fs::write(
        &cfg,
        format!(
            "source:\n  local: {r}/mirror\nindex: {r}/state/index.sqlite\ninventory: {r}/inventory.json\nlisten: 127.0.0.1:0\npoll_interval_seconds: 1\nauth:\n  tokens_file: {r}/tokens\n",
            r = root.display()
        ),
    )
    .unwrap();

    // A typo in the config is named with its line; the valid one passes.
    let bad = root.join("bad.yaml");
    std::fs::write(&bad, std::fs::read_to_string(&cfg).unwrap().replace("poll_interval_seconds", "poll_intervall_seconds")).unwrap();
    let o = run(Command::new(bin("msp-fleet")).args(["check-config", "--config"]).arg(&bad));
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.yaml") && err.contains("poll_intervall_seconds") && err.contains("line"), "{err}");
    assert_eq!(fleet(&["check-config"], &cfg).status.code(), Some(0));

    // Index, then an unchanged poll that finds nothing new.
    let o = fleet(&["index", "--now", NOW], &cfg);
    assert_eq!(o.status.code(), Some(0), "no integrity errors in freshly generated evidence");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(text.contains("3 hosts, 3 listing calls") && text.contains(" 0 integrity errors"), "{text}");
    let o = fleet(&["index", "--now", NOW], &cfg);
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 new objects, 0 bundles verified"));
    let dump = fleet(&["dump"], &cfg).stdout;
    assert!(!dump.is_empty());
    assert_eq!(fleet(&["index", "--rebuild", "--now", NOW], &cfg).status.code(), Some(0));
    assert_eq!(fleet(&["dump"], &cfg).stdout, dump, "a rebuilt index gives the same dump");

    // status: clinic-002's host stopped in October → silent → exit 1; the JSON says why.
    let o = fleet(&["status", "--json", "--now", NOW], &cfg);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let silence = |h: &str| {
        v["hosts"].as_array().unwrap().iter().find(|x| x["host_id"] == h).unwrap()["silence"].as_str().unwrap().to_string()
    };
    assert_eq!(silence("clinic-002-srv-01"), "page");
    assert_eq!(silence("clinic-001-srv-primary"), "reporting");

    // The per-client packet, signed with the MSP's key, verified by the stock tools.
    let msp_keys = root.join("msp-keys");
    assert_eq!(run(Command::new(bin("msp-agent")).args(["key", "generate", "--out"]).arg(&msp_keys)).status.code(), Some(0));
    let out = root.join("packet");
    let o = fleet(&["packet", "--client", "clinic-001", "--month", "2026-11", "--now", NOW, "--key-dir", msp_keys.to_str().unwrap(), "--out", out.to_str().unwrap()], &cfg);
    assert_eq!(o.status.code(), Some(0));
    let manifest = out.join("fleet-manifest.json");
    let html = std::fs::read_to_string(out.join("packet.html")).unwrap();
    assert!(html.contains("clinic-001-srv-primary") && html.contains("clinic-001-srv-backup"), "both hosts in the client's packet");
    let ssh = run(Command::new("sh").arg("-c").arg(format!(
        "ssh-keygen -Y verify -f {k}/allowed_signers -I msp-evidence -n msp-evidence -s {m}.sshsig < {m}",
        k = msp_keys.display(),
        m = manifest.display()
    )));
    assert!(ssh.status.success(), "ssh-keygen verifies the fleet manifest");
    let ossl = run(Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
        .arg(msp_keys.join("evidence-signing.pub.pem"))
        .arg("-rawin")
        .arg("-in")
        .arg(&manifest)
        .arg("-sigfile")
        .arg(manifest.with_extension("json.sig")));
    assert!(ossl.status.success(), "openssl verifies the fleet manifest");

    // serve: prints its URL, requires a login, answers the API with a bearer token, keeps
    // polling, and stops cleanly on SIGTERM.
    let mut child = KillOnDrop(Command::new(bin("msp-fleet"))
        .args(["serve", "--no-alerts", "--now", NOW, "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("serve exited before printing its URL").unwrap();
        if let Some(u) = line.strip_prefix("msp-fleet: serving ") {
            break u.trim_end_matches('/').to_string();
        }
    };
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    assert_eq!(http.get(format!("{url}/healthz")).send().unwrap().status(), 200);
    assert_eq!(http.get(format!("{url}/")).send().unwrap().status(), 303, "login required");
    assert_eq!(http.get(format!("{url}/api/v1/fleet")).send().unwrap().status(), 401);
    let fleet_json: Value = http.get(format!("{url}/api/v1/fleet")).bearer_auth(TOKEN).send().unwrap().text().unwrap().parse::<Value>().unwrap();
    assert_eq!(fleet_json["clients"].as_array().unwrap().len(), 2);
    assert_eq!(fleet_json["as_of"], "2026-12-01T00:00:00Z");
    // clinic-002's own token sees clinic-002 only.
    let scoped: Value = http.get(format!("{url}/api/v1/fleet")).bearer_auth(CLIENT_TOKEN).send().unwrap().text().unwrap().parse::<Value>().unwrap();
    let ids: Vec<&str> = scoped["clients"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["clinic-002"]);
    assert_eq!(http.get(format!("{url}/api/v1/c/clinic-001")).bearer_auth(CLIENT_TOKEN).send().unwrap().status(), 404);
    // Packets per month: the client page links each month's packet document.
    let page = http.get(format!("{url}/c/clinic-001")).bearer_auth(TOKEN).send().unwrap().text().unwrap();
    assert!(page.contains("/api/v1/c/clinic-001/packet/2026-11"), "the client page links the month's packet");
    let pk: Value = http.get(format!("{url}/api/v1/c/clinic-001/packet/2026-11")).bearer_auth(TOKEN).send().unwrap().text().unwrap().parse().unwrap();
    assert_eq!(pk["month"], "2026-11");
    assert_eq!(pk["as_of"], "2026-12-01T00:00:00Z");
    assert_eq!(pk["hosts"].as_array().unwrap().len(), 2);
    assert_eq!(http.get(format!("{url}/api/v1/c/clinic-001/packet/2026-11")).bearer_auth(CLIENT_TOKEN).send().unwrap().status(), 404);
    assert_eq!(http.get(format!("{url}/api/v1/c/clinic-001/packet/2026-13")).bearer_auth(TOKEN).send().unwrap().status(), 400);
    assert_eq!(http.get(format!("{url}/api/v1/c/clinic-001/packet/2027-01")).bearer_auth(TOKEN).send().unwrap().status(), 400);
    // The contingency rows of the host whose month lacks its WORM restore test fail.
    let host: Value = http
        .get(format!("{url}/api/v1/c/clinic-001/h/clinic-001-srv-backup"))
        .bearer_auth(TOKEN)
        .send()
        .unwrap()
        .text()
        .unwrap()
        .parse()
        .unwrap();
    let state = |id: &str| host["controls"].as_array().unwrap().iter().find(|c| c["control_id"] == id).unwrap()["state"].clone();
    assert_eq!(state("§164.308(a)(7)(ii)(D)"), "failing");
    assert_eq!(state("§164.308(a)(7)(ii)(A)"), "passing", "its backups are there");
    // Heartbeats every 6 h against §164.312(b)'s freshness of 1 h: stale, never passing.
    assert_eq!(state("§164.312(b)"), "stale");

    // The real browser over the real index, when it is installed (browser.rs is the test that
    // insists on it under MSP_BROWSER_REQUIRED=1).
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if Path::new("/usr/bin/chromium").exists() && dir.join("node_modules/playwright-core/package.json").exists() {
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts/browser-real-index");
        let _ = std::fs::remove_dir_all(&shots);
        let o = run(Command::new("node")
            .arg("run.mjs")
            .current_dir(&dir)
            .env("MSP_FLEET_URL", &url)
            .env("MSP_FLEET_TOKEN", TOKEN)
            .env("MSP_BROWSER_OUT", &shots));
        assert!(o.status.success(), "chromium over the real index");
        assert!(shots.join("03-host.png").exists());
    } else if std::env::var("MSP_BROWSER_REQUIRED").as_deref() == Ok("1") {
        panic!("chromium or tests/browser/node_modules missing (MSP_BROWSER_REQUIRED=1)");
    }

    assert!(Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap().success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "serve stops cleanly on SIGTERM: {status:?}");
}
