//! Fleet view benchmark: `cargo bench -p msp-fleet --bench index`.
//!
//! Against DESIGN.md §6 ("fleet indexing (verify + index) ≥ 0.5× of `msp-agent evidence
//! verify` over the same files; incremental poll of an unchanged fleet < 1 s for 500 hosts";
//! "fleet page p99 < 100 ms server time at 500 hosts"):
//!
//! 1. Generates a mirror (`ROOT/msp-evidence/CLIENT/HOST/YYYY/MM/…`, the bucket's layout) of
//!    `MSP_BENCH_HOSTS` hosts (default 100; 10 clients), each with its own key and one sample
//!    month (`packet::sample::write_month`) with heartbeats every hour (not the default 15
//!    minutes) to keep it to ~1,000 bundles per host.
//! 2. Indexes it from the mirror into a fresh SQLite file (`Index::open` + one `poll`) and, in
//!    the same rounds, runs the real `target/release/msp-agent evidence verify --keys KEYDIR
//!    STORE/2026/11` once per host (the month directory: a mirror has no chain head file) (keys differ per host, so one process each; wall times summed) over
//!    the same files. Median of `MSP_BENCH_ROUNDS` (default 3) interleaved rounds each.
//! 3. Times a poll that finds nothing new (median of 5) at N hosts, and at
//!    `MSP_BENCH_PAGE_HOSTS` hosts (default 500) over a second mirror of small months
//!    (heartbeats every 6 h, 1 incident a day: cheap to generate, and a poll of an unchanged
//!    fleet costs one listing per host whatever the month holds).
//! 4. Fleet page at `MSP_BENCH_PAGE_HOSTS` hosts: `tower` is only a transitive dependency of
//!    msp-fleet (no `ServiceExt::oneshot` without adding it), so the real `web::serve` runs on
//!    127.0.0.1:0 and a blocking reqwest client (keep-alive) times `GET /`, `/api/v1/fleet` and
//!    one host page with `Authorization: Bearer`: server + loopback time, 200 warm-up then
//!    `MSP_BENCH_REQUESTS` (default 1000) requests each (stopping after
//!    `MSP_BENCH_PAGE_BUDGET_S`, default 45 s, of measured requests, at least 100), p50/p99.
//!    Also the query alone
//!    (`FleetQuery::fleet` in process, no HTTP).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Days, Utc};
use msp_agent::keys::{self, Signer};
use msp_agent::packet::period::Month;
use msp_agent::packet::sample::{write_month, MonthSpec};
use msp_fleet::index::{embedded_baseline_sha256, Index, Settings};
use msp_fleet::inventory::Inventory;
use msp_fleet::model::{FleetQuery, Scope};
use msp_fleet::source::LocalSource;
use msp_fleet::web::{self, auth, WebState};

const PREFIX: &str = "msp-evidence";
const CLIENTS: usize = 10;
const TOKEN: &str = "bench-operator-token-0123456789";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// (utime + stime, cutime + cstime) of this process in seconds (`/proc/self/stat`, 100 Hz ticks).
fn cpu_times() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    // Fields after the comm: state(0) ... utime(11) stime(12) cutime(13) cstime(14).
    let g = |i: usize| f.get(i).copied().unwrap_or(0.0) / 100.0;
    (g(11) + g(12), g(13) + g(14))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

struct HostDef {
    client: String,
    host: String,
}

struct Fleet {
    root: PathBuf,
    hosts: Vec<HostDef>,
    bundles: usize,
    inventory_path: PathBuf,
    inventory_text: String,
    month_dir: PathBuf,
}

impl Fleet {
    fn store(&self, h: &HostDef) -> PathBuf {
        self.root.join(PREFIX).join(&h.client).join(&h.host)
    }
    fn keys(&self, h: &HostDef) -> PathBuf {
        self.root.join("keys").join(&h.host)
    }
    fn inventory(&self) -> Inventory {
        Inventory::parse(&self.inventory_path, &self.inventory_text).expect("inventory")
    }
}

/// `n` hosts in 10 clients, each with its own key and one sample month; two threads.
fn generate(root: &Path, n: usize, month: Month, heartbeat: i64, incidents_per_day: u32, tag: &str) -> Fleet {
    let per_client = n.div_ceil(CLIENTS);
    let mut hosts = Vec::new();
    for c in 0..CLIENTS {
        for h in 0..per_client {
            if hosts.len() == n {
                break;
            }
            let client = format!("clinic-{:03}", c + 1);
            hosts.push(HostDef {
                host: format!("{client}-{tag}-{:03}", h + 1),
                client,
            });
        }
    }
    let baseline_sha = embedded_baseline_sha256();
    let t = Instant::now();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(4);
    let bundles: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|ti| {
                let hosts = &hosts;
                let baseline_sha = &baseline_sha;
                s.spawn(move || {
                    let mut total = 0;
                    for h in hosts.iter().skip(ti).step_by(threads) {
                        let key_dir = root.join("keys").join(&h.host);
                        std::fs::create_dir_all(key_dir.parent().unwrap()).unwrap();
                        keys::generate(&key_dir, month.start() - Days::days(1)).expect("keys");
                        let signer = Signer::load(&key_dir).expect("signer");
                        let mut spec = MonthSpec::new(month, "hipaa-v1", baseline_sha);
                        spec.client_id = h.client.clone();
                        spec.hostname = h.host.clone();
                        spec.heartbeat_interval = heartbeat;
                        spec.incidents_per_day = incidents_per_day;
                        let store = root.join(PREFIX).join(&h.client).join(&h.host);
                        total += write_month(&store, &spec, &signer).expect("write_month").bundles;
                    }
                    total
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let mut clients: Vec<serde_json::Value> = Vec::new();
    for c in 0..CLIENTS {
        let id = format!("clinic-{:03}", c + 1);
        let hs: Vec<serde_json::Value> = hosts
            .iter()
            .filter(|h| h.client == id)
            .map(|h| serde_json::json!({"id": h.host, "heartbeat_interval_seconds": heartbeat, "key_dir": format!("keys/{}", h.host)}))
            .collect();
        if !hs.is_empty() {
            clients.push(serde_json::json!({"id": id, "hosts": hs}));
        }
    }
    let inventory_text = serde_json::to_string_pretty(&serde_json::json!({"version": 1, "clients": clients})).unwrap();
    let inventory_path = root.join("inventory.json");
    std::fs::write(&inventory_path, &inventory_text).unwrap();
    println!(
        "generated {n} hosts ({CLIENTS} clients), heartbeat every {heartbeat} s, {incidents_per_day} incidents/day: {bundles} bundles ({:.0}/host) in {:.1} s",
        bundles as f64 / n as f64,
        t.elapsed().as_secs_f64()
    );
    Fleet {
        root: root.to_path_buf(),
        hosts,
        bundles,
        inventory_path,
        inventory_text,
        month_dir: month.dir(),
    }
}

fn fresh_index(fleet: &Fleet, path: &Path) -> Index {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Index::open(path, fleet.inventory(), Settings::embedded(None).expect("settings")).expect("index")
}

/// Index from scratch: (wall s, CPU s of this process, index).
fn index_once(fleet: &Fleet, path: &Path, now: DateTime<Utc>) -> (f64, f64, Index) {
    let source = LocalSource::new(&fleet.root, PREFIX);
    let cpu0 = cpu_times().0;
    let t = Instant::now();
    let index = fresh_index(fleet, path);
    let r = index.poll(&source, now).expect("poll");
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_times().0 - cpu0;
    assert_eq!(r.integrity_errors, 0, "bench evidence must verify: {r:?}");
    assert_eq!(r.bundles_indexed, fleet.bundles, "{r:?}");
    (wall, cpu, index)
}

/// `msp-agent evidence verify KEYS STORE/YYYY/MM` once per host: (summed wall s, children's CPU s).
fn verify_once(fleet: &Fleet, agent: &Path) -> (f64, f64) {
    let cpu0 = cpu_times().1;
    let mut wall = 0.0;
    for h in &fleet.hosts {
        let t = Instant::now();
        let out = Command::new(agent)
            .args(["evidence", "verify", "--keys"])
            .arg(fleet.keys(h))
            // The month directory, not the store root: a mirror of the bucket has no chain
            // head file (the store root would be checked for one); the chain is still checked
            // from sequence 1.
            .arg(fleet.store(h).join(&fleet.month_dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("msp-agent evidence verify");
        wall += t.elapsed().as_secs_f64();
        assert!(
            out.status.success(),
            "msp-agent evidence verify {}: {}",
            fleet.store(h).display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (wall, cpu_times().1 - cpu0)
}

/// Poll of an unchanged fleet, median of 5 (s).
fn unchanged_poll(fleet: &Fleet, index: &Index, now: DateTime<Utc>) -> (f64, f64) {
    let source = LocalSource::new(&fleet.root, PREFIX);
    let mut v = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let r = index.poll(&source, now).expect("poll");
        v.push(t.elapsed().as_secs_f64());
        assert_eq!((r.listed, r.new_objects, r.bundles_indexed), (0, 0, 0), "{r:?}");
        assert_eq!(r.list_calls, fleet.hosts.len());
    }
    let best = v.iter().cloned().fold(f64::MAX, f64::min);
    (median(&mut v), best)
}

fn main() {
    let n = env_usize("MSP_BENCH_HOSTS", 100);
    let page_hosts = env_usize("MSP_BENCH_PAGE_HOSTS", 500);
    let rounds = env_usize("MSP_BENCH_ROUNDS", 3).max(1);
    let requests = env_usize("MSP_BENCH_REQUESTS", 1000).max(1);
    let month = Month::parse("2026-11").expect("month");
    let now = month.end() + Days::minutes(30);
    let agent = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/msp-agent");
    assert!(
        agent.is_file(),
        "{} is missing: build it with `cargo build --release -j 2 -p msp-agent`",
        agent.display()
    );
    let tmp = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    println!(
        "fleet bench: {n} hosts, page at {page_hosts} hosts, {rounds} rounds; {} cores; load average {}; tmp {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        load_average(),
        tmp.path().display()
    );

    // 1. The mirror.
    let fleet = generate(&tmp.path().join("fleet"), n, month, 3600, 3, "srv");
    let bytes: u64 = walk_size(&fleet.root.join(PREFIX));
    println!("  mirror {:.1} MiB (bundle JSON + .sig + .sshsig)", bytes as f64 / 1048576.0);

    // 2. Index vs verify, interleaved rounds, fresh index each round.
    let index_path = tmp.path().join("index.sqlite");
    let (mut iw, mut ic, mut vw, mut vc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Warm the page cache once (both sides then read from memory).
    let _ = verify_once(&fleet, &agent);
    let mut last = None;
    for r in 0..rounds {
        drop(last.take());
        let (w, c, index) = index_once(&fleet, &index_path, now);
        let (w2, c2) = verify_once(&fleet, &agent);
        println!(
            "  round {}: index {:.2} s ({:.0} bundles/s, CPU {:.2} s); verify {:.2} s ({:.0} bundles/s, CPU {:.2} s); load {}",
            r + 1,
            w,
            fleet.bundles as f64 / w,
            c,
            w2,
            fleet.bundles as f64 / w2,
            c2,
            load_average()
        );
        iw.push(w);
        ic.push(c);
        vw.push(w2);
        vc.push(c2);
        last = Some(index);
    }
    let index = last.take().unwrap();
    let (iw, ic, vw, vc) = (median(&mut iw), median(&mut ic), median(&mut vw), median(&mut vc));
    let b = fleet.bundles as f64;
    let index_size = std::fs::metadata(&index_path).map(|m| m.len()).unwrap_or(0);

    // 3. Unchanged poll at N hosts.
    let (poll_n, poll_n_best) = unchanged_poll(&fleet, &index, now);
    drop(index);

    // 3b. The 500-host fleet of small months.
    let big = generate(&tmp.path().join("fleet-500"), page_hosts, month, 21600, 1, "ws");
    let big_index_path = tmp.path().join("index-500.sqlite");
    let (bw, _, big_index) = index_once(&big, &big_index_path, now);
    println!(
        "  indexed {page_hosts} hosts ({} bundles) in {:.2} s ({:.0} bundles/s)",
        big.bundles,
        bw,
        big.bundles as f64 / bw
    );
    let (poll_big, poll_big_best) = unchanged_poll(&big, &big_index, now);

    // 4. Pages at 500 hosts.
    let big_index: Arc<Index> = Arc::new(big_index.with_source(Arc::new(LocalSource::new(&big.root, PREFIX))));
    let query: Arc<dyn FleetQuery> = big_index.clone();
    let mut q = Vec::new();
    let started = Instant::now();
    for i in 0..400 {
        if i >= 220 && started.elapsed() > Duration::from_secs(20) {
            break;
        }
        let t = Instant::now();
        let v = query.fleet(&Scope::Operator, now).expect("fleet");
        if i >= 20 {
            q.push(t.elapsed());
        }
        assert_eq!(v.clients.iter().map(|c| c.hosts).sum::<usize>(), page_hosts);
    }
    q.sort();
    let budget = Duration::from_secs(env_usize("MSP_BENCH_PAGE_BUDGET_S", 45) as u64);
    let pages = serve_and_time(query, now, &big.hosts[big.hosts.len() / 2], requests, budget);

    println!();
    println!("load average at the end: {}", load_average());
    println!("| what | figure | reference, same run | target (DESIGN.md 6) | met? |");
    println!("|---|---|---|---|---|");
    let ratio = vw / iw;
    println!(
        "| fleet indexing, {n} hosts, {} bundles (verify + index into fresh SQLite; checks on every core, records in chain order) | {:.0} bundles/s wall ({:.2} s), {:.0} bundles per CPU-second | `msp-agent evidence verify` per host ({n} processes): {:.0} bundles/s wall ({:.2} s), {:.0} per CPU-second | ≥ 0.5× of verify | {}: {:.2}× wall, {:.2}× CPU |",
        fleet.bundles,
        b / iw,
        iw,
        b / ic.max(1e-9),
        b / vw,
        vw,
        b / vc.max(1e-9),
        if ratio >= 0.5 { "yes" } else { "NO" },
        ratio,
        vc / ic.max(1e-9)
    );
    println!(
        "| unchanged poll, {n} hosts | median {:.1} ms (best {:.1} ms) | — | < 1 s for 500 hosts | — |",
        poll_n * 1000.0,
        poll_n_best * 1000.0
    );
    println!(
        "| unchanged poll, {page_hosts} hosts (6 h heartbeats, 1 incident/day: {} bundles) | median {:.1} ms (best {:.1} ms) | — | < 1 s | {} |",
        big.bundles,
        poll_big * 1000.0,
        poll_big_best * 1000.0,
        if poll_big < 1.0 { "yes" } else { "NO" }
    );
    println!(
        "| `FleetQuery::fleet` in process, {page_hosts} hosts (no HTTP) | p50 {:.1} ms, p99 {:.1} ms ({} calls after 20 warm-up) | — | — | — |",
        percentile(&q, 0.5),
        percentile(&q, 0.99),
        q.len()
    );
    for (path, v, size) in &pages {
        println!(
            "| GET {path}, {page_hosts} hosts (server + loopback, keep-alive; {size} bytes) | p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} requests) | — | p99 < 100 ms server time | {} |",
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.last().unwrap().as_secs_f64() * 1000.0,
            v.len(),
            if percentile(v, 0.99) < 100.0 { "yes" } else { "NO" }
        );
    }
    println!(
        "index file after {n} hosts: {:.1} MiB; mirror {:.1} MiB",
        index_size as f64 / 1048576.0,
        bytes as f64 / 1048576.0
    );
}

fn walk_size(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                total += walk_size(&e.path());
            } else {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

/// `web::serve` on loopback, a blocking keep-alive client: (path, sorted latencies, body size).
fn serve_and_time(query: Arc<dyn FleetQuery>, now: DateTime<Utc>, host: &HostDef, requests: usize, budget: Duration) -> Vec<(String, Vec<Duration>, usize)> {
    let tokens = auth::TokenStore::parse(&format!("operator {}\n", auth::hash_token(TOKEN)), "bench").expect("tokens");
    let clock: web::Clock = Arc::new(move || now);
    let state = WebState::new(query, tokens, clock);
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            addr_tx.send(l.local_addr()?).unwrap();
            web::serve(l, state, async move {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    let addr = addr_rx.recv().expect("server address");
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut out = Vec::new();
    for path in [
        "/".to_string(),
        "/api/v1/fleet".to_string(),
        format!("/c/{}/h/{}", host.client, host.host),
    ] {
        let url = format!("http://{addr}{path}");
        let mut v = Vec::with_capacity(requests);
        let mut size = 0;
        // 200 warm-up requests (at most 10 s of them), then `requests`, stopping early once
        // the measured ones took `budget` (a slow page must not hold the run for an hour).
        let started = Instant::now();
        let mut warm = 0;
        while warm < 200 && started.elapsed() < Duration::from_secs(10) {
            let resp = http.get(&url).bearer_auth(TOKEN).send().expect("request");
            assert_eq!(resp.status().as_u16(), 200, "GET {path}");
            let _ = resp.bytes();
            warm += 1;
        }
        let measuring = Instant::now();
        for _ in 0..requests {
            if v.len() >= 100 && measuring.elapsed() > budget {
                break;
            }
            let t = Instant::now();
            let resp = http.get(&url).bearer_auth(TOKEN).send().expect("request");
            let status = resp.status();
            let body = resp.bytes().expect("body");
            let d = t.elapsed();
            assert_eq!(status.as_u16(), 200, "GET {path}: {status}");
            size = body.len();
            v.push(d);
        }
        v.sort();
        println!("  GET {path}: {warm} warm-up, {} measured requests", v.len());
        out.push((path, v, size));
    }
    let _ = stop_tx.send(());
    thread.join().expect("server thread").expect("server");
    out
}
