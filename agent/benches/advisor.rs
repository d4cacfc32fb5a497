//! Advisor accuracy runner: `cargo bench --bench advisor -- --endpoint URL [--model NAME]`
//! (or `--stand-in` to prove the runner itself works against a scripted loopback server that
//! is NOT a model: it always answers the first candidate with confidence 0.5).
//!
//! Reads the labelled set `benches/data/advisor-incidents.jsonl` (51 incidents written for
//! this: event type, unit, rule, exit status, severity, and the right answer: a runbook id
//! or `escalate`), plans each with the deterministic planner over the shipped `runbooks/`,
//! and asks the advisor about every one of them, with the candidates the daemon would give it
//! for a no-match (the runbooks of the incident's event type). The daemon itself consults
//! the advisor only when planning is unsure; asking about every incident is what makes
//! agreement with the deterministic planner measurable. Prints per-incident lines and:
//! agreement with the deterministic planner (where it picks a runbook), agreement with the
//! labels, answers rejected by our checks (by kind), latency p50/p99, and what the daemon's
//! `auto` policy would have done with each answer at the confidence threshold (`--threshold`,
//! default the config's default): how many it would have run, and how many of those runs
//! the labels call wrong.
//!
//! `--timeout-seconds N` (default 60) bounds each request: CPU inference of a small model on
//! a loaded machine takes seconds, and a timeout here would measure the machine, not the
//! model. The daemon's own default (`advisor.timeout_seconds`, 10 s) is unchanged.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use msp_agent::advisor::{prompt::Candidate, Action, Advisor};
use msp_agent::config::{AdvisorConfig, AdvisorPolicy};
use msp_agent::incident::{Incident, IncidentSource, Severity};
use msp_agent::plan::{advisor_candidates, plan, Plan};
use serde_json::{json, Value};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

/// The scripted stand-in (not a model): the first candidate of the schema's enum, 0.5.
fn stand_in() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://127.0.0.1:{}/v1", listener.local_addr().expect("addr").port());
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut r = BufReader::new(conn.try_clone().expect("clone"));
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let first = req["response_format"]["json_schema"]["schema"]["properties"]["runbook_id"]["enum"][0].clone();
            let content = json!({"runbook_id": first, "confidence": 0.5, "reasoning": "stand-in: first candidate"}).to_string();
            let b = json!({"model": "stand-in", "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}).to_string();
            let _ = write!(conn, "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}", b.len());
        }
    });
    url
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, what) = match (arg(&args, "--endpoint").or_else(|| std::env::var("MSP_ADVISOR_ENDPOINT").ok()), args.iter().any(|a| a == "--stand-in")) {
        (Some(u), _) => (u, "endpoint"),
        (None, true) => (stand_in(), "STAND-IN (scripted loopback server, NOT a model)"),
        (None, false) => {
            eprintln!("advisor bench: give --endpoint URL (an OpenAI-compatible /v1 base) or --stand-in; nothing measured");
            return;
        }
    };
    let model = arg(&args, "--model").unwrap_or_else(|| "local".into());
    let timeout: u64 = arg(&args, "--timeout-seconds").and_then(|t| t.parse().ok()).unwrap_or(60);
    let threshold: f64 =
        arg(&args, "--threshold").and_then(|t| t.parse().ok()).unwrap_or_else(|| AdvisorConfig::default().confidence_threshold);
    let cfg = AdvisorConfig {
        policy: AdvisorPolicy::Auto,
        url: Some(url.clone()),
        model: model.clone(),
        api_key_file: arg(&args, "--api-key-file").map(Into::into),
        timeout_seconds: timeout,
        retries: 0,
        confidence_threshold: threshold,
        ..Default::default()
    };
    let advisor = Advisor::from_config(&cfg).expect("advisor config").expect("policy auto");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (runbooks, errors) = msp_agent::runbook::model::load_dir(&root.join("../runbooks")).expect("runbooks/");
    assert!(errors.is_empty(), "{errors:?}");
    let data = std::fs::read_to_string(root.join("benches/data/advisor-incidents.jsonl")).expect("labelled set");

    let (mut n, mut with_det, mut agree_det, mut agree_label, mut det_label) = (0, 0, 0, 0, 0);
    let mut rejected: BTreeMap<String, u32> = BTreeMap::new();
    let mut rejected_example: BTreeMap<String, String> = BTreeMap::new();
    let mut latencies = Vec::new();
    // What `auto` would have done: (ran a runbook, of which the label agrees, of which the
    // label says escalate, of which the label names another runbook).
    let (mut auto_ran, mut auto_right, mut auto_should_escalate, mut auto_other) = (0, 0, 0, 0);
    let mut reported_models: BTreeMap<String, u32> = BTreeMap::new();
    println!("advisor accuracy run against {what}: {url} model {model}");
    for (i, line) in data.lines().enumerate() {
        let row: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("advisor-incidents.jsonl:{}: {e}", i + 1));
        let mut details = BTreeMap::new();
        for k in ["rule", "exit_status"] {
            if let Some(v) = row[k].as_str() {
                details.insert(k.to_string(), json!(v));
            }
        }
        let incident = Incident {
            incident_id: format!("INC-BENCH-{:04}", i + 1),
            event_type: row["event_type"].as_str().unwrap_or_default().into(),
            severity: serde_json::from_value::<Severity>(row["severity"].clone()).unwrap_or(Severity::High),
            host: "bench".into(),
            detected_at: chrono::Utc::now(),
            source: IncidentSource::Manual,
            unit: row["unit"].as_str().map(str::to_string),
            details,
        };
        let label = row["label"].as_str().unwrap_or_default();
        let det = match plan(&incident, &runbooks) {
            Plan::Run(rb) => rb.id.clone(),
            Plan::Escalate { .. } => "escalate".into(),
        };
        det_label += u32::from(det == label);
        let cands: Vec<Candidate> = advisor_candidates(&incident, &runbooks, &[]).into_iter().map(Candidate::of).collect();
        n += 1;
        let (answer, shown) = if cands.is_empty() {
            // Nothing to choose from: the daemon would not ask; the answer is escalate.
            ("escalate".to_string(), "escalate (no candidates, not asked)".to_string())
        } else {
            let rec = advisor.consult(&incident, &cands);
            latencies.push(Duration::from_millis(rec.latency_ms));
            if let Some(m) = &rec.model_reported {
                *reported_models.entry(m.clone()).or_default() += 1;
            }
            if let Action::Run(id) = rec.action() {
                auto_ran += 1;
                if id == label {
                    auto_right += 1;
                } else if label == "escalate" {
                    auto_should_escalate += 1;
                } else {
                    auto_other += 1;
                }
            }
            match (&rec.answer, &rec.rejected) {
                (Some(a), _) => (a.runbook_id.clone(), format!("{} ({:.2})", a.runbook_id, a.confidence)),
                (None, Some(r)) => {
                    *rejected.entry(r.kind.clone()).or_default() += 1;
                    rejected_example.entry(r.kind.clone()).or_insert_with(|| r.detail.clone());
                    (format!("rejected:{}", r.kind), format!("rejected:{}", r.kind))
                }
                _ => ("rejected".into(), "rejected".into()),
            }
        };
        if det != "escalate" {
            with_det += 1;
            agree_det += u32::from(answer == det);
        }
        agree_label += u32::from(answer == label);
        println!("{:>2} {:<20} {:<32} label={:<15} deterministic={:<15} advisor={shown}", i + 1, incident.event_type, incident.unit.as_deref().unwrap_or("-"), label, det);
    }
    latencies.sort();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 - 1.0) * p).round() as usize).map_or(0, |d| d.as_millis());
    println!("incidents: {n}; deterministic planner agrees with the labels on {det_label}/{n}");
    println!("advisor agrees with the deterministic planner on {agree_det}/{with_det} (incidents where it picks a runbook)");
    println!("advisor agrees with the labels on {agree_label}/{n}");
    println!("answers rejected by our checks: {rejected:?}");
    for (kind, detail) in &rejected_example {
        println!("  first {kind}: {detail}");
    }
    println!(
        "auto at confidence threshold {threshold:.2}: would run {auto_ran} of {} asked; of those the label agrees with {auto_right}, says escalate for {auto_should_escalate}, names another runbook for {auto_other}",
        latencies.len()
    );
    println!("models the server reported: {reported_models:?}");
    println!("advisor latency: p50 {} ms, p99 {} ms over {} requests", pct(0.5), pct(0.99), latencies.len());
}
