//! Daemon bench: `cargo bench --bench daemon`.
//!
//! Runs the real `msp-agent run` (release build) on a journal directory and prints:
//! * incident → first step started: from the incident's `detected_at` to the first action's
//!   `timestamp`, both taken from the signed bundles (millisecond resolution), p50/p99 over
//!   `MSP_BENCH_INCIDENTS` (default 200) crashes arriving two at a time;
//! * RSS of the agent idle (after start-up) and its peak while it ingests
//!   `MSP_BENCH_LOAD_ENTRIES` (default 300,000) ordinary entries, with the ingest rate and
//!   `journalctl -o export` reading the same file in the same run for comparison.
//!
//! With `MSP_BENCH_AB_ROUNDS=N` it measures only incident → first step started, as an
//! interleaved A/B so that machine load falls on every variant alike: N rounds, each running
//! every variant once (a fresh agent, `MSP_BENCH_INCIDENTS` crashes, default 100), the order
//! rotated from round to round. Variants: this build with no `advisor:` section, with
//! `advisor: {policy: off}`, with `policy: auto` configured (never consulted: every crash
//! matches exactly one runbook, checked from the bundles), and each binary in
//! `MSP_BENCH_AB_BINS` (`label=/path/to/msp-agent,...`, e.g. built at the commit before the
//! advisor) with no `advisor:` section. Prints each run and, per variant, the median over
//! rounds of the per-run p50 and p99, and p50/p99 over all its incidents pooled.

// `#[path]` on top-level modules: the paths of nested ones resolve through a directory
// (`benches/common/`) that does not exist.
#[path = "../tests/common/agent_fixture.rs"]
mod agent_fixture;
#[path = "../tests/fixtures/journal/helpers.rs"]
mod helpers;
#[path = "../tests/common/stock.rs"]
mod stock;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_fixture::{crash_entry, now_usec, sigterm_and_wait, wait_until, Agent, Fixture};
use helpers::{text, write_journal, BOOT_A};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn parse_ms(ts: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts).map(|t| t.timestamp_millis()).unwrap_or(0)
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Ordinary traffic: sshd logins, cron, nginx access lines. Nothing an incident is made of.
fn ordinary_entries(n: usize, t0: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 200);
    for i in 0..n {
        let t = t0 + i as u64;
        out.extend(text("__REALTIME_TIMESTAMP", &t.to_string()));
        out.extend(text("__MONOTONIC_TIMESTAMP", &(t % 1_000_000_000_000).to_string()));
        out.extend(text("_BOOT_ID", BOOT_A));
        out.extend(text("_TRANSPORT", "syslog"));
        out.extend(text("PRIORITY", "6"));
        let (ident, msg) = match i % 3 {
            0 => ("sshd", format!("Accepted publickey for mspadmin from 10.0.0.{} port {} ssh2: ED25519-CERT", i % 250, 40000 + i % 20000)),
            1 => ("CRON", format!("(root) CMD (/usr/local/bin/housekeeping {i})")),
            _ => ("nginx", format!("10.0.0.{} - - \"GET /portal/{i} HTTP/1.1\" 200 5123", i % 250)),
        };
        out.extend(text("SYSLOG_IDENTIFIER", ident));
        out.extend(text("MESSAGE", &msg));
        out.push(b'\n');
    }
    out
}

/// Crashes arrive two at a time (= max_concurrent_runbooks), 300 ms apart; returns the
/// sorted incident → first step started latencies (ms) of the automatic runs.
fn latencies(f: &Fixture, incidents: usize) -> Vec<i64> {
    for b in 0..incidents.div_ceil(2) {
        let t0 = now_usec();
        let mut batch = crash_entry(format!("test-lat-{b}-a.service").as_bytes(), t0);
        if b * 2 + 1 < incidents {
            batch.extend(crash_entry(format!("test-lat-{b}-b.service").as_bytes(), t0 + 10));
        }
        agent_fixture::publish_journal(f, &format!("lat-{b}.journal"), &batch);
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_until(f, "all latency incidents handled", Duration::from_secs(300), || {
        f.bundles().iter().filter(|b| b["execution"]["resolution_type"] == "automatic").count() >= incidents
    });
    let mut lat: Vec<i64> = f
        .bundles()
        .iter()
        .filter(|b| b["execution"]["resolution_type"] == "automatic")
        .map(|b| {
            let detected = parse_ms(b["incident"]["detected_at"].as_str().unwrap_or(""));
            let first = parse_ms(b["actions_taken"][0]["timestamp"].as_str().unwrap_or(""));
            first - detected
        })
        .collect();
    lat.sort_unstable();
    lat
}

/// One A/B variant: a binary (`None`: this build) and what is appended to the config.
struct Variant {
    label: String,
    bin: Option<PathBuf>,
    config: &'static str,
}

/// `f`'s agent started from `bin` as `Fixture::spawn` starts this build's, ready.
fn spawn_bin(f: &Fixture, bin: &std::path::Path) -> Agent {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(&f.log).unwrap();
    let agent = Agent(
        Command::new(bin)
            .args(["run", "--config"])
            .arg(&f.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display())),
    );
    wait_until(f, "the agent to be ready", Duration::from_secs(60), || f.log_text().contains("msp-agent ready"));
    agent
}

fn median(v: &mut [i64]) -> i64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn ab(rounds: usize) {
    let incidents = env_usize("MSP_BENCH_INCIDENTS", 100);
    let mut variants = vec![
        Variant { label: "this build, no advisor section".into(), bin: None, config: "" },
        Variant { label: "this build, advisor policy off".into(), bin: None, config: "advisor:\n  policy: off\n" },
        Variant {
            label: "this build, advisor auto (never consulted)".into(),
            bin: None,
            config: "advisor:\n  policy: auto\n  url: http://127.0.0.1:9/v1\n",
        },
    ];
    for spec in std::env::var("MSP_BENCH_AB_BINS").unwrap_or_default().split(',').filter(|s| !s.is_empty()) {
        let (label, path) = spec.split_once('=').unwrap_or_else(|| panic!("MSP_BENCH_AB_BINS: {spec}: want label=/path/to/msp-agent"));
        assert!(std::path::Path::new(path).is_file(), "MSP_BENCH_AB_BINS: {path} is not a file");
        variants.push(Variant { label: format!("{label}, no advisor section"), bin: Some(path.into()), config: "" });
    }
    println!("daemon A/B bench: {rounds} rounds x {} variants, {incidents} incidents per run, order rotated each round", variants.len());
    let mut per_run: Vec<Vec<(i64, i64)>> = vec![Vec::new(); variants.len()];
    let mut pooled: Vec<Vec<i64>> = vec![Vec::new(); variants.len()];
    for r in 0..rounds {
        for k in 0..variants.len() {
            let i = (r + k) % variants.len();
            let v = &variants[i];
            let f = Fixture::new(0, 300);
            f.add_config(v.config);
            let agent = match &v.bin {
                None => f.spawn(),
                Some(bin) => spawn_bin(&f, bin),
            };
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            let lat = latencies(&f, incidents);
            assert!(sigterm_and_wait(agent).success());
            // The advisor must not have been consulted in any variant: every crash matched.
            let consulted = f.bundles().iter().filter(|b| !b["planner"]["advisor"].is_null()).count();
            assert_eq!(consulted, 0, "{}: the advisor was consulted", v.label);
            let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
            println!(
                "round {} {:<50} p50 {p50:>3} ms, p99 {p99:>3} ms, max {:>3} ms (n {}, load {})",
                r + 1,
                v.label,
                lat.last().copied().unwrap_or(0),
                lat.len(),
                load.split_whitespace().next().unwrap_or("?")
            );
            per_run[i].push((p50, p99));
            pooled[i].extend(lat);
        }
    }
    println!("summary (median over {rounds} rounds of each run's p50 / p99; pooled p50 / p99 over all its incidents):");
    for (i, v) in variants.iter().enumerate() {
        let mut p50s: Vec<i64> = per_run[i].iter().map(|x| x.0).collect();
        let mut p99s: Vec<i64> = per_run[i].iter().map(|x| x.1).collect();
        pooled[i].sort_unstable();
        println!(
            "  {:<50} median p50 {:>3} ms, median p99 {:>3} ms; pooled p50 {:>3} ms, p99 {:>3} ms (n {})",
            v.label,
            median(&mut p50s),
            median(&mut p99s),
            percentile(&pooled[i], 0.5),
            percentile(&pooled[i], 0.99),
            pooled[i].len()
        );
    }
}

fn main() {
    if let Some(rounds) = std::env::var("MSP_BENCH_AB_ROUNDS").ok().and_then(|v| v.parse().ok()).filter(|&n: &usize| n > 0) {
        ab(rounds);
        return;
    }
    let incidents = env_usize("MSP_BENCH_INCIDENTS", 200);
    let load_entries = env_usize("MSP_BENCH_LOAD_ENTRIES", 300_000);
    let f = Fixture::new(0, 300);
    let agent = f.spawn();
    let pid = agent.0.id();

    std::thread::sleep(Duration::from_secs(3));
    let (idle_rss, _) = rss_kib(pid);

    let lat = latencies(&f, incidents);

    // Load: a journal file of ordinary entries appears in the watched directory, with one crash
    // at its end so we know when the agent has read all of it.
    let staging = f.root.join("staging.journal");
    let t0 = now_usec();
    let mut load = ordinary_entries(load_entries, t0);
    load.extend(crash_entry(b"test-load-end.service", t0 + load_entries as u64 + 1));
    write_journal(&staging, &load);
    let jc_start = Instant::now();
    let o = std::process::Command::new("journalctl")
        .arg(format!("--file={}", staging.display()))
        .args(["-o", "export", "--no-pager"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(o.success());
    let jc_secs = jc_start.elapsed().as_secs_f64();
    let start = Instant::now();
    std::fs::rename(&staging, f.journal.join("load.journal")).unwrap();
    let mut peak = 0;
    let done = |f: &Fixture| {
        f.bundles().iter().any(|b| b["incident"]["details"]["unit"] == "test-load-end.service")
    };
    while !done(&f) {
        peak = peak.max(rss_kib(pid).0);
        assert!(start.elapsed() < Duration::from_secs(600), "load not ingested in 600 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let agent_secs = start.elapsed().as_secs_f64();
    let (_, hwm) = rss_kib(pid);
    let status = sigterm_and_wait(agent);
    assert!(status.success());

    println!("daemon bench ({} incidents, {} load entries)", lat.len(), load_entries);
    println!(
        "incident -> first step started: p50 {} ms, p99 {} ms, max {} ms (target < 50 ms p99)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().copied().unwrap_or(0)
    );
    println!("RSS idle: {:.1} MiB (target < 20 MiB)", idle_rss as f64 / 1024.0);
    println!(
        "RSS under load: peak sampled {:.1} MiB, VmHWM {:.1} MiB (target < 60 MiB)",
        peak as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!(
        "ingest through the daemon: {:.0} entries/s (incl. detection, guard, one runbook); journalctl -o export same file: {:.0} entries/s; ratio {:.2}",
        load_entries as f64 / agent_secs,
        load_entries as f64 / jc_secs,
        jc_secs / agent_secs
    );
}
