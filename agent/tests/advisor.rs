//! The planner's LLM advisor end to end: the real `msp-agent run` on real journal files,
//! consulting a **stand-in** OpenAI-compatible server (a scripted `std::net` HTTP server on
//! loopback, not a model: no model can be served in CI) that answers per incident unit:
//! an id outside the candidates, JSON inside markdown, an object ignoring the schema, a 500,
//! an answer slower than the timeout, a refusal, `escalate`, and correct answers above and
//! below the confidence threshold. Each ends as specified, with a signed record that stock
//! `ssh-keygen` and `openssl` verify and the JSON Schema accepts. Also `msp-agent plan`.

mod common {
    pub mod agent_fixture;
    #[path = "../fixtures/journal/helpers.rs"]
    pub mod helpers;
    pub mod stock;
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::agent_fixture::{crash_entry, now_usec, publish_journal, sha256_hex, sigterm_and_wait, test_runbook, wait_until, Fixture};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_msp-agent");
const API_KEY: &str = "sk-standin-0123456789abcdef";

/// One request the stand-in received.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    body: Value,
}

/// The stand-in: a scripted OpenAI-compatible `POST /v1/chat/completions` on loopback. Its
/// answer depends on the incident unit named in the prompt. NOT a model.
struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StandIn {
    fn start() -> StandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://127.0.0.1:{}/v1", listener.local_addr().unwrap().port());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = Arc::clone(&s);
                std::thread::spawn(move || serve(conn, &s));
            }
        });
        StandIn { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve(conn: TcpStream, seen: &Mutex<Vec<Seen>>) {
    let mut r = BufReader::new(conn.try_clone().unwrap());
    let (mut len, mut auth, mut request_line) = (0usize, None, String::new());
    r.read_line(&mut request_line).unwrap_or(0);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("authorization:") {
            auth = Some(line["authorization:".len()..].trim().to_string());
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock().unwrap().push(Seen { authorization: auth, body: body.clone() });
    let user: Value = serde_json::from_str(body["messages"][1]["content"].as_str().unwrap_or("{}")).unwrap_or(Value::Null);
    let unit = user["incident"]["unit"].as_str().unwrap_or("").to_string();
    let answer = |id: &str, confidence: f64| json!({"runbook_id": id, "confidence": confidence, "reasoning": format!("stand-in answer for {unit}")}).to_string();
    let content: Option<String> = match unit.as_str() {
        "test-outside.service" => Some(answer("RB-EVIL-001", 0.99)),
        "test-markdown.service" => Some(format!("```json\n{}\n```", answer("RB-TEST-002", 0.95))),
        "test-schema.service" => Some(json!({"runbook": "RB-TEST-002", "certainty": "high"}).to_string()),
        "test-escalate.service" => Some(answer("escalate", 0.9)),
        "test-sure.service" => Some(answer("RB-TEST-002", 0.95)),
        "test-unsure.service" => Some(answer("RB-TEST-002", 0.4)),
        "test-manual.service" => Some(answer("RB-TEST-003", 0.99)),
        "other.socket" => Some(answer("RB-TEST-001", 0.9)),
        _ => None,
    };
    let mut w = conn;
    let reply = |w: &mut TcpStream, status: &str, body: &str| {
        let _ = write!(w, "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
    };
    match unit.as_str() {
        "test-500.service" => reply(&mut w, "500 Internal Server Error", r#"{"error":"stand-in failure"}"#),
        "test-slow.service" => {
            std::thread::sleep(Duration::from_secs(4));
            reply(&mut w, "200 OK", &completion(&answer("RB-TEST-002", 0.99)));
        }
        "test-refusal.service" => {
            let b = json!({"model": "stand-in", "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]});
            reply(&mut w, "200 OK", &b.to_string())
        }
        _ => match content {
            Some(c) => reply(&mut w, "200 OK", &completion(&c)),
            None => reply(&mut w, "404 Not Found", r#"{"error":"unscripted"}"#),
        },
    }
}

fn completion(content: &str) -> String {
    json!({"id": "x", "object": "chat.completion", "model": "stand-in",
           "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]})
    .to_string()
}

/// Two more runbooks for `test-*.service` beside the fixture's RB-TEST-001, so every test
/// crash is ambiguous: RB-TEST-002 (approved, `auto`) and RB-TEST-003 (approved, `manual`).
fn add_runbooks(f: &Fixture) {
    for (id, perm) in [("RB-TEST-002", "auto"), ("RB-TEST-003", "manual")] {
        let rb = test_runbook(&f.marker, &f.root, 0)
            .replace("RB-TEST-001", id)
            .replace("name: Record a crashed test service", &format!("name: {id} records a crashed test service"));
        std::fs::write(f.root.join(format!("runbooks/{id}.yaml")), &rb).unwrap();
        let cfg = std::fs::read_to_string(&f.config)
            .unwrap()
            .replace("approved_runbooks:\n", &format!("approved_runbooks:\n  {id}: {}\n", sha256_hex(rb.as_bytes())))
            .replace("client_permissions:\n", &format!("client_permissions:\n  {id}: {perm}\n"));
        std::fs::write(&f.config, cfg).unwrap();
    }
}

fn advisor_config(f: &Fixture, url: &str, policy: &str) {
    let key = f.root.join("advisor-api-key");
    std::fs::write(&key, format!("{API_KEY}\n")).unwrap();
    f.add_config(&format!(
        "advisor:\n  policy: {policy}\n  url: {url}\n  model: stand-in-model\n  api_key_file: {}\n  confidence_threshold: 0.8\n  timeout_seconds: 1\n  retries: 1\n",
        key.display()
    ));
}

/// The bundle whose incident names `unit`.
fn bundle_for<'a>(bundles: &'a [Value], unit: &str) -> &'a Value {
    bundles.iter().find(|b| b["incident"]["details"]["unit"] == unit).unwrap_or_else(|| panic!("no bundle for {unit}"))
}

fn check_schema_signatures_and_secrets(f: &Fixture) {
    let schema: Value = serde_json::from_str(include_str!("../schema/evidence-bundle.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for b in f.all_bundles() {
        let errors: Vec<String> = validator.iter_errors(&b).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", b["bundle_id"]);
    }
    let n = common::stock::verify_all_with_stock_tools(&f.keys, &f.evidence);
    assert!(n > 1, "{n} bundles verified");
    f.verify_cli();
    // The API key is a credential: never in evidence nor in the agent's log.
    for p in common::agent_fixture::files_under(&f.evidence) {
        let bytes = std::fs::read(&p).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains(API_KEY), "API key in {}", p.display());
    }
    assert!(!f.log_text().contains(API_KEY), "API key in the agent log");
}

fn crashes(f: &Fixture, units: &[&str]) {
    let t0 = now_usec();
    let mut batch = vec![];
    for (i, u) in units.iter().enumerate() {
        batch.extend(crash_entry(u.as_bytes(), t0 + i as u64 * 1000));
    }
    publish_journal(f, "crashes.journal", &batch);
}

#[test]
fn auto_policy_every_stand_in_answer_ends_as_specified_with_a_signed_record() {
    let standin = StandIn::start();
    let f = Fixture::new(0, 300);
    add_runbooks(&f);
    advisor_config(&f, &standin.url, "auto");
    let units = [
        "test-outside.service", "test-markdown.service", "test-schema.service", "test-500.service",
        "test-slow.service", "test-refusal.service", "test-escalate.service", "test-unsure.service",
        "test-manual.service", "test-sure.service",
    ];
    let child = f.spawn();
    crashes(&f, &units);
    wait_until(&f, "a record for every crash", Duration::from_secs(90), || {
        let b = f.bundles();
        units.iter().all(|u| b.iter().any(|x| x["incident"]["details"]["unit"] == *u))
    });
    assert!(sigterm_and_wait(child).success(), "{}", f.log_text());
    let bundles = f.bundles();

    // Each failure: deterministic escalation, with what the advisor said and why it was not used.
    for (unit, kind, attempts) in [
        ("test-outside.service", "unknown_id", 1),
        ("test-markdown.service", "malformed", 1),
        ("test-schema.service", "malformed", 1),
        ("test-500.service", "http_error", 2),
        ("test-slow.service", "timeout", 2),
        ("test-refusal.service", "refusal", 1),
    ] {
        let b = bundle_for(&bundles, unit);
        assert_eq!(b["execution"]["resolution_type"], "escalated", "{unit}: {b}");
        assert_eq!(b["runbook"]["runbook_id"], "none", "{unit}");
        assert!(b["verification"]["reason"].as_str().unwrap().starts_with("ambiguous: 3 runbooks match"), "{unit}: {b}");
        let p = &b["planner"];
        assert_eq!(p["decided_by"], "deterministic", "{unit}");
        assert_eq!(p["advisor"]["decision"], "not_used", "{unit}");
        assert_eq!(p["advisor"]["rejected"]["kind"], kind, "{unit}: {p}");
        assert_eq!(p["advisor"]["attempts"], attempts, "{unit}: {p}");
        assert!(p["advisor"]["answer"].is_null(), "{unit}");
    }
    let slow = &bundle_for(&bundles, "test-slow.service")["planner"]["advisor"];
    assert!(slow["latency_ms"].as_u64().unwrap() >= 2000, "two attempts of 1 s each: {slow}");

    // The model's own escalation, and a valid answer below the threshold: escalated.
    let esc = &bundle_for(&bundles, "test-escalate.service")["planner"]["advisor"];
    assert_eq!((esc["decision"].as_str(), esc["answer"]["runbook_id"].as_str()), (Some("not_used"), Some("escalate")));
    let unsure = bundle_for(&bundles, "test-unsure.service");
    assert_eq!(unsure["execution"]["resolution_type"], "escalated");
    assert_eq!(unsure["planner"]["advisor"]["answer"]["confidence"], 0.4);
    assert!(unsure["planner"]["advisor"]["reason"].as_str().unwrap().contains("below the threshold 0.80"), "{unsure}");

    // Above the threshold: run through the guard — automatic, planner advisor.
    let sure = bundle_for(&bundles, "test-sure.service");
    assert_eq!(sure["execution"]["resolution_type"], "automatic", "{sure}");
    assert_eq!(sure["runbook"]["runbook_id"], "RB-TEST-002");
    assert_eq!(sure["outputs"]["resolution_status"], "resolved");
    assert_eq!(sure["planner"]["decided_by"], "advisor");
    assert_eq!(sure["planner"]["advisor"]["decision"], "used");
    assert_eq!(std::fs::read_to_string(&f.marker).unwrap(), "test-sure.service\n", "only the advisor's confident choice ran");

    // The guard still decides: RB-TEST-003 is `manual` for this client, so it escalates.
    let manual = bundle_for(&bundles, "test-manual.service");
    assert_eq!(manual["execution"]["resolution_type"], "escalated");
    assert_eq!(manual["runbook"]["runbook_id"], "RB-TEST-003");
    assert!(manual["verification"]["reason"].as_str().unwrap().contains("only when run by an operator"), "{manual}");
    assert_eq!(manual["planner"]["decided_by"], "advisor");

    // What was recorded and what was sent: model, endpoint, parameters, prompt and its hash.
    let a = &sure["planner"]["advisor"];
    assert_eq!(a["model"], "stand-in-model");
    assert_eq!(a["model_reported"], "stand-in");
    assert_eq!(a["endpoint"], standin.url.as_str());
    assert_eq!(a["authenticated"], true);
    assert_eq!(a["parameters"]["timeout_seconds"], 1);
    assert_eq!(a["candidates"], json!(["RB-TEST-001", "RB-TEST-002", "RB-TEST-003"]));
    let prompt = format!("{}\n{}", a["prompt"]["system"].as_str().unwrap(), a["prompt"]["user"].as_str().unwrap());
    assert_eq!(a["prompt_sha256"], sha256_hex(prompt.as_bytes()));
    let seen = standin.seen();
    assert_eq!(seen.len(), 12, "10 incidents, 2 retried");
    for s in &seen {
        assert_eq!(s.authorization.as_deref(), Some(format!("Bearer {API_KEY}").as_str()));
        assert_eq!(s.body["model"], "stand-in-model");
        let rf = &s.body["response_format"];
        assert_eq!(rf["type"], "json_schema");
        assert_eq!(rf["json_schema"]["schema"]["properties"]["runbook_id"]["enum"], json!(["RB-TEST-001", "RB-TEST-002", "RB-TEST-003", "escalate"]));
        let text = s.body.to_string();
        // Raw journal text never reaches the prompt (the crash line's MESSAGE).
        assert!(!text.contains("Main process exited"), "{text}");
        assert!(!text.contains("MSP_PARAM") && !text.contains("printf"), "runbook scripts never reach the prompt: {text}");
    }
    assert!(seen.iter().any(|s| s.body["messages"][1]["content"].as_str().unwrap().contains(r#""rule":"#)));
    check_schema_signatures_and_secrets(&f);
}

#[test]
fn suggest_policy_records_the_suggestion_in_the_escalation_and_the_alert() {
    let standin = StandIn::start();
    let f = Fixture::new(0, 300);
    add_runbooks(&f);
    advisor_config(&f, &standin.url, "suggest");
    let child = f.spawn();
    crashes(&f, &["test-sure.service"]);
    wait_until(&f, "the escalation", Duration::from_secs(60), || !f.bundles().is_empty());
    assert!(sigterm_and_wait(child).success(), "{}", f.log_text());
    let bundles = f.bundles();
    let b = bundle_for(&bundles, "test-sure.service");
    assert_eq!(b["execution"]["resolution_type"], "escalated", "a person runs it: {b}");
    assert_eq!(b["runbook"]["runbook_id"], "RB-TEST-002", "the suggestion is named");
    assert_eq!(b["runbook"]["steps_executed"], 0);
    assert_eq!(b["planner"]["decided_by"], "deterministic");
    assert_eq!(b["planner"]["advisor"]["decision"], "suggested");
    assert!(b["verification"]["reason"].as_str().unwrap().contains("advisor suggests RB-TEST-002 (confidence 0.95)"), "{b}");
    assert!(!f.marker.exists(), "nothing ran");
    let log = f.log_text();
    assert!(log.lines().any(|l| l.contains("ALERT escalation") && l.contains("advisor suggests RB-TEST-002")), "{log}");
    check_schema_signatures_and_secrets(&f);
}

#[test]
fn advisor_off_is_the_deterministic_planner_with_no_planner_section() {
    let f = Fixture::new(0, 300);
    add_runbooks(&f);
    let child = f.spawn();
    crashes(&f, &["test-sure.service"]);
    wait_until(&f, "the escalation", Duration::from_secs(60), || !f.bundles().is_empty());
    assert!(sigterm_and_wait(child).success(), "{}", f.log_text());
    let b = &f.bundles()[0];
    assert_eq!(b["execution"]["resolution_type"], "escalated");
    assert!(b.get("planner").is_none(), "{b}");
    check_schema_signatures_and_secrets(&f);
}

/// An incident line as `msp-agent detect --json` prints it.
fn incident_line(dir: &Path, unit: &str) -> std::path::PathBuf {
    let line = json!({
        "incident_id": "INC-20261202-0001", "event_type": "service_crash", "severity": "high",
        "runbook_id": null, "escalation": "x", "unit": unit, "host": "srv",
        "__CURSOR": "s=abc;i=1", "__REALTIME_TIMESTAMP": "1764640000000000",
        "detected_at": "2026-12-02T01:00:00Z",
        "details": {"rule": "systemd_main_process_exited", "exit_status": "1", "message": format!("{unit}: Main process exited")},
    });
    let p = dir.join(format!("{unit}.json"));
    std::fs::write(&p, format!("{line}\n")).unwrap();
    p
}

fn plan(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(BIN).arg("plan").args(args).output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn plan_command_shows_the_choice_and_why_and_executes_nothing() {
    let standin = StandIn::start();
    let f = Fixture::new(0, 300);
    add_runbooks(&f);
    let rbs = f.root.join("runbooks");
    let rbs = rbs.to_str().unwrap();
    let dir = f.root.as_path();
    let one = f.root.join("one");
    std::fs::create_dir(&one).unwrap();
    std::fs::copy(f.root.join("runbooks/RB-TEST-001.yaml"), one.join("RB-TEST-001.yaml")).unwrap();

    // Exactly one match: deterministic, no advisor consulted even when given.
    let inc = incident_line(dir, "test-sure.service");
    let (code, v, err) = plan(&["--incident", inc.to_str().unwrap(), "--runbooks", one.to_str().unwrap(), "--advisor", &standin.url, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!((v["runbook_id"].as_str(), v["planner"].as_str()), (Some("RB-TEST-001"), Some("deterministic")), "{v}");
    assert!(v["advisor"].is_null());
    assert!(standin.seen().is_empty());

    // Ambiguous without an advisor: escalate.
    let (code, v, err) = plan(&["--incident", inc.to_str().unwrap(), "--runbooks", rbs, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(v["runbook_id"].is_null(), "{v}");
    assert_eq!(v["candidates"], json!(["RB-TEST-001", "RB-TEST-002", "RB-TEST-003"]));

    // Ambiguous with the advisor: its confident answer.
    let (code, v, err) = plan(&["--incident", inc.to_str().unwrap(), "--runbooks", rbs, "--advisor", &standin.url, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!((v["runbook_id"].as_str(), v["planner"].as_str()), (Some("RB-TEST-002"), Some("advisor")), "{v}");
    assert_eq!(v["advisor"]["answer"]["confidence"], 0.95);

    // No match (a unit no pattern covers): the event type's runbooks are the candidates.
    let other = incident_line(dir, "other.socket");
    let (code, v, err) = plan(&["--incident", other.to_str().unwrap(), "--runbooks", rbs, "--advisor", &standin.url, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(v["advisor"]["candidates"], json!(["RB-TEST-001", "RB-TEST-002", "RB-TEST-003"]), "{v}");
    assert_eq!(v["runbook_id"], "RB-TEST-001");
    assert!(v["reason"].as_str().unwrap().starts_with("no runbook's trigger_conditions match"), "{v}");

    // A failing advisor: deterministic, and the record says why.
    let bad = incident_line(dir, "test-outside.service");
    let (_, v, _) = plan(&["--incident", bad.to_str().unwrap(), "--runbooks", rbs, "--advisor", &standin.url, "--json"]);
    assert!(v["runbook_id"].is_null());
    assert_eq!(v["advisor"]["rejected"]["kind"], "unknown_id");
    assert!(!f.marker.exists(), "plan executes nothing");

    // Bad input: the file and line are named; exit 2.
    let two = dir.join("two.json");
    std::fs::write(&two, "{}\n{}\n").unwrap();
    let (code, _, err) = plan(&["--incident", two.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("two.json: expected exactly one incident line"), "{err}");
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "\n{\"incident_id\": \"I\"}\n").unwrap();
    let (code, _, err) = plan(&["--incident", broken.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("broken.json:2: missing field `event_type`"), "{err}");
}
