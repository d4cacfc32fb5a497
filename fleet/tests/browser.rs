//! The web UI in a real headless browser: Debian's `/usr/bin/chromium`, driven by
//! playwright-core (`tests/browser/run.mjs`, installed with `npm ci` in `tests/browser`).
//!
//! By default it serves the stand-in `FleetQuery` (`standin_web/`) on loopback. Set
//! `MSP_FLEET_URL` and `MSP_FLEET_TOKEN` to drive an already running `msp-fleet serve` instead
//! (the real index on demo data). Screenshots go to `target/test-artifacts/browser/`.
//!
//! Without chromium, node or `node_modules` the test skips with a loud message, and fails when
//! `MSP_BROWSER_REQUIRED=1` (CI sets it, so a missing browser cannot pass silently).

mod standin_web;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use msp_fleet::web::{self, auth::hash_token, auth::TokenStore, WebState};

const OP: &str = "browser-operator-token-5b1e";

fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("test-artifacts/browser")
}

/// What is missing to run the browser, if anything.
fn missing(dir: &Path) -> Vec<String> {
    let mut m = Vec::new();
    let chromium = std::env::var("MSP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        m.push(format!("{chromium} (apt-get install -y chromium)"));
    }
    if Command::new("node")
        .arg("--version")
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        m.push("node (apt-get install -y nodejs npm)".into());
    }
    if !dir.join("node_modules/playwright-core/package.json").exists() {
        m.push(format!(
            "{}/node_modules/playwright-core (npm ci in {})",
            dir.display(),
            dir.display()
        ));
    }
    m
}

#[test]
fn browser_logs_in_and_clicks_through_to_a_bundle() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let missing = missing(&dir);
    if !missing.is_empty() {
        let msg = format!("browser test cannot run, missing: {}", missing.join("; "));
        if std::env::var("MSP_BROWSER_REQUIRED").as_deref() == Ok("1") {
            panic!("{msg} (MSP_BROWSER_REQUIRED=1)");
        }
        // Straight to stderr, not eprintln!: the test harness captures the macros of a passing test.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPED: {msg}\n!!!!!!!! run scripts/setup-machine; MSP_BROWSER_REQUIRED=1 makes this a failure\n"
        );
        return;
    }

    // Either an external server (the real index) or the stand-in on loopback.
    let external = std::env::var("MSP_FLEET_URL").ok();
    let mut server = None;
    let (url, token, visit) = match external {
        Some(url) => (
            url,
            std::env::var("MSP_FLEET_TOKEN").expect("MSP_FLEET_URL needs MSP_FLEET_TOKEN"),
            String::new(),
        ),
        None => {
            let tokens = TokenStore::parse(&format!("operator {}\n", hash_token(OP)), "test tokens").unwrap();
            let state = WebState::new(Arc::new(standin_web::StandIn::new()), tokens, web::system_clock());
            let (addr_tx, addr_rx) = std::sync::mpsc::channel();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let t = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    addr_tx.send(l.local_addr().unwrap()).unwrap();
                    web::serve(l, state, async move {
                        let _ = stop_rx.await;
                    })
                    .await
                    .unwrap();
                })
            });
            let addr = addr_rx.recv().unwrap();
            server = Some((stop_tx, t));
            // The hostile host's page and bundle (rendered, nothing runs: run.mjs fails on a dialog),
            // a client page and a control page (an encoded `§164.312(b)`).
            let h = web::layout::host_url("clinic-002", standin_web::HOSTILE_HOST);
            let ctl = web::layout::control_url("clinic-001", "clinic-001-srv-primary", standin_web::AUDIT);
            let visit = format!("{h} {h}/b/EB-20261202-0005 /c/clinic-001 {ctl}");
            (format!("http://{addr}"), OP.to_string(), visit)
        }
    };

    let out = artifacts_dir();
    let _ = std::fs::remove_dir_all(&out);
    let start = std::time::Instant::now();
    let o = Command::new("node")
        .arg("run.mjs")
        .current_dir(&dir)
        .env("MSP_FLEET_URL", &url)
        .env("MSP_FLEET_TOKEN", &token)
        .env("MSP_BROWSER_OUT", &out)
        .env("MSP_BROWSER_VISIT", &visit)
        .output()
        .expect("running node");
    let stdout = String::from_utf8_lossy(&o.stdout);
    eprintln!(
        "run.mjs ({:.1} s):\n{stdout}{}",
        start.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "run.mjs failed: {}", o.status);
    assert!(stdout.contains("browser run: ok"));
    for name in ["01-login", "02-fleet", "03-host", "04-bundle"] {
        let f = out.join(format!("{name}.png"));
        let bytes = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n") && bytes.len() > 5000,
            "{} is not a real screenshot",
            f.display()
        );
    }
    if let Some((stop, t)) = server {
        stop.send(()).unwrap();
        t.join().unwrap();
    }
}
