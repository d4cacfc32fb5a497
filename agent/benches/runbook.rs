//! `cargo bench --bench runbook`: how fast the executor gets a step running, against a bare
//! `bash -c` spawned with std (the floor for any executor that runs bash).
//!
//! Measures, over N runs each:
//! * call → script start: from just before `execute()` (or `spawn()`) to the moment bash
//!   starts the script text (`$EPOCHREALTIME`, read by the script itself). DESIGN.md 6 targets
//!   "incident → first step started < 50 ms p99"; this is the executor's share of it.
//! * whole run: `execute()` of a one-step runbook (step + verification + artifacts dir)
//!   against spawn + wait of one bare `bash -c true`.

use std::process::Command;
use std::time::{Duration, Instant};

use msp_agent::incident::{Incident, IncidentSource, Severity};
use msp_agent::runbook::{execute, ExecConfig, Runbook};

const N: usize = 200;

const RUNBOOK: &str = r#"id: RB-BENCH-001
name: bench
version: "1"
description: bench
hipaa_controls: ["x"]
severity: low
sla_minutes: 1
trigger_conditions:
  event_types: [service_crash]
steps:
  - id: stamp
    action: print the start time
    timeout_seconds: 5
    script: printf '%s' "$EPOCHREALTIME"
rollback: []
verification:
  id: verify
  action: nothing
  timeout_seconds: 5
  script: "true"
"#;

fn now_us() -> f64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    d.as_secs_f64() * 1e6
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let rb = Runbook::from_bytes(std::path::Path::new("bench.yaml"), RUNBOOK.as_bytes()).expect("bench runbook");
    let params = rb.bind_params(None, &[]).expect("params");
    let incident = Incident {
        incident_id: "INC-BENCH".into(),
        event_type: "service_crash".into(),
        severity: Severity::Low,
        host: "bench".into(),
        detected_at: chrono::Utc::now(),
        source: IncidentSource::Manual,
        unit: None,
        details: Default::default(),
    };
    let bash = msp_agent::runbook::exec::find_bash().expect("bash");

    let (mut exec_start, mut exec_total, mut raw_start, mut raw_total) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..N {
        let work = tempfile::tempdir().expect("tempdir");
        let cfg = ExecConfig::new(work.path()).expect("config");
        let t0 = Instant::now();
        let called = now_us();
        let report = execute(&rb, &params, &incident, &cfg).expect("execute");
        exec_total.push(t0.elapsed().as_secs_f64() * 1e3);
        let started: f64 = report.steps[0].stdout_excerpt.replace('.', "").parse::<f64>().expect("stamp");
        exec_start.push((started - called) / 1e3);

        let t0 = Instant::now();
        let called = now_us();
        let out = Command::new(&bash).args(["-c", "printf '%s' \"$EPOCHREALTIME\""]).output().expect("bash");
        raw_total.push(t0.elapsed().as_secs_f64() * 1e3);
        let started: f64 = String::from_utf8_lossy(&out.stdout).replace('.', "").parse::<f64>().expect("stamp");
        raw_start.push((started - called) / 1e3);
        std::thread::sleep(Duration::from_millis(2));
    }
    println!("runbook executor, {N} runs each (ms)");
    println!("{:<44} {:>8} {:>8} {:>8}", "", "p50", "p99", "max");
    for (name, v) in [
        ("call -> script start, execute()", &mut exec_start),
        ("call -> script start, bare bash -c (std)", &mut raw_start),
        ("one-step runbook + verification, execute()", &mut exec_total),
        ("spawn + wait one bare bash -c (std)", &mut raw_total),
    ] {
        let max = v.iter().cloned().fold(0.0, f64::max);
        println!("{:<44} {:>8.2} {:>8.2} {:>8.2}", name, pct(v, 0.5), pct(v, 0.99), max);
    }
    println!(
        "ratio script start execute()/bare p50: {:.2}x; whole run execute()/(2 bare bash) p50: {:.2}x",
        pct(&mut exec_start, 0.5) / pct(&mut raw_start, 0.5),
        pct(&mut exec_total, 0.5) / (2.0 * pct(&mut raw_total, 0.5))
    );
}
