//! Runbook engine: loader errors (exact messages), parameter refusal, the executor's process
//! handling (timeouts kill the whole group, output capture, artifacts), rollback and
//! verification, the shipped runbooks (lint, JSON Schema, shellcheck) and the CLI.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use msp_agent::incident::{Incident, IncidentSource, Severity};
use msp_agent::runbook::{execute, to_new_bundle, BundleContext, ExecConfig, ResolutionStatus, ResolutionType, Runbook, StepResult};
use sha2::{Digest, Sha256};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_msp-agent")
}

/// A minimal valid runbook; `steps`, `rollback`, `verification` and `params` are YAML
/// fragments at the right indentation.
fn runbook_yaml(params: &str, steps: &str, rollback: &str, verification: &str) -> String {
    format!(
        r#"id: RB-TEST-001
name: Test runbook
version: "1.0.0"
description: Used by the tests.
hipaa_controls: ["§164.308(a)(1)(ii)(D)"]
severity: high
sla_minutes: 30
parameters:
{params}
trigger_conditions:
  event_types: [service_crash]
  unit_patterns: ["*.service"]
steps:
{steps}
rollback:
{rollback}
verification:
{verification}
"#
    )
}

const NO_PARAMS: &str = "  {}";
const OK_VERIFY: &str = "  id: verify\n  action: check\n  timeout_seconds: 5\n  script: \"true\"\n";

fn load(dir: &Path, text: &str) -> Result<Runbook, String> {
    let p = dir.join("RB-TEST-001.yaml");
    std::fs::write(&p, text).unwrap();
    Runbook::load_file(&p).map_err(|e| e.to_string())
}

fn incident() -> Incident {
    Incident {
        incident_id: "INC-20261122-0001".into(),
        event_type: "service_crash".into(),
        severity: Severity::High,
        host: "clinic-001-srv-primary".into(),
        detected_at: Utc::now(),
        source: IncidentSource::Journal { cursor: "s=abc".into(), realtime_usec: 1 },
        unit: Some("nginx.service".into()),
        details: BTreeMap::new(),
    }
}

struct Run {
    _work: tempfile::TempDir,
    cfg: ExecConfig,
}

fn run_cfg() -> Run {
    let work = tempfile::tempdir().unwrap();
    let mut cfg = ExecConfig::new(work.path()).unwrap();
    cfg.kill_grace = std::time::Duration::from_millis(500);
    Run { _work: work, cfg }
}

fn step(id: &str, timeout: u64, script: &str, extra: &str) -> String {
    let script = script.replace('\n', "\n      ");
    format!("  - id: {id}\n    action: {id}\n    timeout_seconds: {timeout}\n    script: |\n      {script}\n{extra}")
}

// ---------------------------------------------------------------- loader errors

#[test]
fn loader_reports_wrong_type_with_file_line_and_field() {
    let d = tempfile::tempdir().unwrap();
    let text = runbook_yaml(NO_PARAMS, "  - id: a\n    action: x\n    timeout_seconds: ten\n    script: \"true\"\n", "  []", OK_VERIFY);
    let err = load(d.path(), &text).unwrap_err();
    let file = d.path().join("RB-TEST-001.yaml");
    assert_eq!(err, format!("{}:16: steps[0].timeout_seconds: invalid type: string \"ten\", expected u64", file.display()));
}

#[test]
fn loader_reports_unknown_and_missing_fields() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("RB-TEST-001.yaml");
    let text = runbook_yaml(NO_PARAMS, "  - id: a\n    action: x\n    timeout_seconds: 5\n    script: \"true\"\n    colour: red\n", "  []", OK_VERIFY);
    assert_eq!(
        load(d.path(), &text).unwrap_err(),
        format!("{}:18: steps[0]: unknown field `colour`, expected one of `id`, `action`, `timeout_seconds`, `script`, `success_criteria`, `evidence_capture`, `continue_on_failure`", f.display())
    );
    let text = runbook_yaml(NO_PARAMS, "  - id: a\n    action: x\n    timeout_seconds: 5\n", "  []", OK_VERIFY);
    assert_eq!(load(d.path(), &text).unwrap_err(), format!("{}:14: steps[0]: missing field `script`", f.display()));
    let text = runbook_yaml(NO_PARAMS, &step("a", 5, "true", ""), "  []", OK_VERIFY).replace("severity: high\n", "");
    assert_eq!(load(d.path(), &text).unwrap_err(), format!("{}:1: missing field `severity`", f.display()));
    let text = runbook_yaml(NO_PARAMS, &step("a", 5, "true", ""), "  []", OK_VERIFY).replace("severity: high", "severity: urgent");
    assert_eq!(
        load(d.path(), &text).unwrap_err(),
        format!("{}:6: severity: unknown variant `urgent`, expected one of `critical`, `high`, `medium`, `low`", f.display())
    );
    let text = runbook_yaml(NO_PARAMS, &step("a", 5, "true", ""), "  []", OK_VERIFY).replace("bogus_top", "").replace("sla_minutes: 30", "sla_minutes: 30\nowner: bob");
    assert_eq!(
        load(d.path(), &text).unwrap_err(),
        format!("{}:8: unknown field `owner`, expected one of `id`, `name`, `version`, `description`, `hipaa_controls`, `severity`, `sla_minutes`, `parameters`, `trigger_conditions`, `steps`, `rollback`, `verification`", f.display())
    );
}

#[test]
fn loader_reports_duplicate_step_ids_at_the_second_one() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("RB-TEST-001.yaml");
    let steps = format!("{}{}", step("restart", 5, "true", ""), step("check", 5, "true", ""));
    let text = runbook_yaml(NO_PARAMS, &steps, &step("restart", 5, "true", ""), OK_VERIFY);
    assert_eq!(
        load(d.path(), &text).unwrap_err(),
        format!("{}:26: rollback[0].id: duplicate step id \"restart\" (already used by steps[0].id)", f.display())
    );
    let text = runbook_yaml(NO_PARAMS, &step("verify", 5, "true", ""), "  []", OK_VERIFY);
    assert_eq!(
        load(d.path(), &text).unwrap_err(),
        format!("{}:23: verification.id: duplicate step id \"verify\" (already used by steps[0].id)", f.display())
    );
}

#[test]
fn loader_reports_bad_expressions_and_parameter_specs() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("RB-TEST-001.yaml");
    let text = runbook_yaml(NO_PARAMS, &step("a", 5, "true", "    success_criteria: exit_code = 0\n"), "  []", OK_VERIFY);
    assert_eq!(
        load(d.path(), &text).unwrap_err(),
        format!("{}:19: steps[0].success_criteria: invalid success criteria \"exit_code = 0\": unknown operator `=` (use ==, !=, <, <=, >, >=) (at column 11 of the expression)", f.display())
    );
    let text = runbook_yaml("  repo:\n    type: path\n    default: /srv/repo\n", &step("a", 5, "true", ""), "  []", OK_VERIFY);
    assert_eq!(load(d.path(), &text).unwrap_err(), format!("{}:10: parameters.repo: a path parameter needs a non-empty `allowed_roots`", f.display()));
    let text = runbook_yaml("  unit:\n    type: unit\n    default: \"nginx.service; rm -rf /\"\n", &step("a", 5, "true", ""), "  []", OK_VERIFY);
    let err = load(d.path(), &text).unwrap_err();
    assert!(err.starts_with(&format!("{}:10: parameters.unit: default \"nginx.service; rm -rf /\": not a systemd unit name", f.display())), "{err}");
    let text = runbook_yaml("  Bad-Name:\n    type: string\n", &step("a", 5, "true", ""), "  []", OK_VERIFY);
    let err = load(d.path(), &text).unwrap_err();
    assert!(err.starts_with(&format!("{}:9: parameters: invalid parameter name \"Bad-Name\"", f.display())), "{err}");
    let text = runbook_yaml(NO_PARAMS, &step("a", 5, "true", ""), "  []", OK_VERIFY).replace("[service_crash]", "[kernel_panic]");
    let err = load(d.path(), &text).unwrap_err();
    assert!(err.starts_with(&format!("{}:11: trigger_conditions.event_types[0]: unknown event type \"kernel_panic\"", f.display())), "{err}");
    let text = runbook_yaml(NO_PARAMS, &step("a", 5, "true", "    evidence_capture: [../../etc/shadow]\n"), "  []", OK_VERIFY);
    let err = load(d.path(), &text).unwrap_err();
    assert!(err.starts_with(&format!("{}:19: steps[0].evidence_capture[0]: invalid evidence_capture name \"../../etc/shadow\"", f.display())), "{err}");
    let text = runbook_yaml(NO_PARAMS, &step("a", 0, "true", ""), "  []", OK_VERIFY);
    assert_eq!(load(d.path(), &text).unwrap_err(), format!("{}:16: steps[0].timeout_seconds: timeout_seconds 0 is outside 1..=21600", f.display()));
    let text = "id: RB-TEST-001\nname: [unclosed\n";
    let err = load(d.path(), text).unwrap_err();
    assert!(err.starts_with(&format!("{}:", f.display())), "{err}");
}

#[test]
fn runbook_hash_is_sha256_of_file_bytes_and_matches_works() {
    let d = tempfile::tempdir().unwrap();
    let text = runbook_yaml(NO_PARAMS, &step("a", 5, "true", ""), "  []", OK_VERIFY);
    let rb = load(d.path(), &text).unwrap();
    assert_eq!(rb.runbook_hash, hex::encode(Sha256::digest(text.as_bytes())));
    let mut inc = incident();
    assert!(rb.matches(&inc));
    inc.unit = Some("restic-backups-daily.timer".into());
    assert!(!rb.matches(&inc), "unit pattern *.service");
    inc.unit = None;
    assert!(!rb.matches(&inc), "pattern given but incident has no unit");
    let mut inc = incident();
    inc.event_type = "disk_full".into();
    assert!(!rb.matches(&inc));
}

// ---------------------------------------------------------------- parameters

const HOSTILE_PARAMS: &str = "  unit:\n    type: unit\n    from_incident: unit\n    default: nginx.service\n  repo:\n    type: path\n    allowed_roots: [/var/lib/restic]\n    default: /var/lib/restic/repo\n";

#[test]
fn hostile_parameters_are_refused_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let marker = d.path().join("marker");
    let script = format!("touch {}", marker.display());
    let rb = load(d.path(), &runbook_yaml(HOSTILE_PARAMS, &step("a", 5, &script, ""), "  []", OK_VERIFY)).unwrap();

    // From the incident (journal data is hostile).
    let mut inc = incident();
    inc.unit = Some("nginx.service; rm -rf /".into());
    let err = rb.bind_params(Some(&inc), &[]).unwrap_err().to_string();
    assert!(err.starts_with("parameter `unit` (incident unit): not a systemd unit name"), "{err}");
    // From a manual override.
    let err = rb.bind_params(None, &[("repo".into(), "../../etc/shadow".into())]).unwrap_err().to_string();
    assert_eq!(err, "parameter `repo` (--param): not an absolute path");
    let err = rb.bind_params(None, &[("repo".into(), "/var/lib/restic/../../etc/shadow".into())]).unwrap_err().to_string();
    assert_eq!(err, "parameter `repo` (--param): `..` is not allowed in paths");
    let err = rb.bind_params(None, &[("nope".into(), "x".into())]).unwrap_err().to_string();
    assert_eq!(err, "parameter `nope` (--param): this runbook has no such parameter (it has: repo, unit)");

    // Through the CLI: refused with exit 2 and the marker was never created.
    let out = Command::new(bin())
        .args(["runbook", "run", "RB-TEST-001", "--runbooks"])
        .arg(d.path())
        .args(["--param", "unit=nginx.service; rm -rf /", "--evidence-dir"])
        .arg(d.path().join("ev"))
        .arg("--key-dir")
        .arg(d.path().join("keys"))
        .arg("--state-dir")
        .arg(d.path().join("state"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(!d.path().join("state").exists(), "refused before anything ran, not even the id counter");
    assert!(stderr.contains("parameter `unit` (--param): not a systemd unit name"), "{stderr}");
    assert!(!marker.exists(), "a step ran despite a hostile parameter");
    assert!(!d.path().join("ev").exists(), "nothing may be written either");

    // Good values bind, with the incident's unit winning over the default.
    let mut inc = incident();
    inc.unit = Some("postgresql.service".into());
    let p = rb.bind_params(Some(&inc), &[("repo".into(), "/var/lib/restic//b/.".into())]).unwrap();
    assert_eq!(p.get("unit"), Some("postgresql.service"));
    assert_eq!(p.get("repo"), Some("/var/lib/restic/b"));
}

#[test]
fn parameters_reach_scripts_only_as_env_and_the_env_is_clean() {
    let d = tempfile::tempdir().unwrap();
    let script = "env | cut -d= -f1 | sort > \"$MSP_ARTIFACTS/env.txt\"\nprintf '%s' \"$MSP_PARAM_UNIT\" > \"$MSP_ARTIFACTS/unit.txt\"";
    let rb = load(
        d.path(),
        &runbook_yaml(HOSTILE_PARAMS, &step("a", 5, script, "    evidence_capture: [env.txt, unit.txt]\n"), "  []", OK_VERIFY),
    )
    .unwrap();
    let params = rb.bind_params(Some(&incident()), &[]).unwrap();
    std::env::set_var("MSP_TEST_LEAK", "secret");
    let run = run_cfg();
    let report = execute(&rb, &params, &incident(), &run.cfg).unwrap();
    assert_eq!(report.steps[0].result, StepResult::Success, "{:?}", report.steps[0]);
    let env = std::fs::read_to_string(run.cfg.artifacts_dir().join("env.txt")).unwrap();
    let names: Vec<&str> = env.lines().filter(|n| !["PWD", "SHLVL", "_", "OLDPWD"].contains(n)).collect();
    assert_eq!(
        names,
        ["HOME", "LANG", "LC_ALL", "MSP_ARTIFACTS", "MSP_INCIDENT_ID", "MSP_PARAM_REPO", "MSP_PARAM_UNIT", "MSP_RUNBOOK_ID", "MSP_STEP_ID", "PATH", "TMPDIR"]
    );
    assert_eq!(std::fs::read_to_string(run.cfg.artifacts_dir().join("unit.txt")).unwrap(), "nginx.service");
}

// ---------------------------------------------------------------- executor

fn pid_alive(pid: i32) -> bool {
    // A zombie waiting for its (re)parent to reap it is dead for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(s) => {
            let state = s.rsplit_once(") ").map(|(_, r)| r.chars().next().unwrap_or('?')).unwrap_or('?');
            state != 'Z' && state != 'X'
        }
    }
}

#[test]
fn hanging_step_is_killed_with_its_children_then_rollback_and_verification_run() {
    let d = tempfile::tempdir().unwrap();
    let hang = "sleep 1000 &\necho $! > \"$MSP_ARTIFACTS/sleeper.pid\"\necho started\nsleep 1000";
    let steps = format!("{}{}", step("hang", 1, hang, "    evidence_capture: [sleeper.pid]\n"), step("after", 5, "touch \"$MSP_ARTIFACTS/after\"", ""));
    let rollback = step("undo", 5, "echo rolled back", "");
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &steps, &rollback, OK_VERIFY)).unwrap();
    let run = run_cfg();
    let t0 = std::time::Instant::now();
    let report = execute(&rb, &Default::default(), &incident(), &run.cfg).unwrap();
    let took = t0.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");

    let hang = &report.steps[0];
    assert_eq!(hang.result, StepResult::Timeout);
    assert_eq!(hang.exit_code, None);
    assert_eq!(hang.error_message.as_deref(), Some("timed out after 1 s; process group killed"));
    assert_eq!(hang.stdout_excerpt, "started\n");
    assert!(hang.duration_ms >= 1000, "{}", hang.duration_ms);
    let pid: i32 = std::fs::read_to_string(run.cfg.artifacts_dir().join("sleeper.pid")).unwrap().trim().parse().unwrap();
    assert!(!pid_alive(pid), "background child {pid} survived the timeout");

    assert_eq!(report.steps[1].result, StepResult::Skipped);
    assert!(!run.cfg.artifacts_dir().join("after").exists());
    assert_eq!(report.steps_executed(), 1);
    assert_eq!(report.rollback.len(), 1);
    assert_eq!(report.rollback[0].result, StepResult::Success);
    assert_eq!(report.rollback[0].stdout_excerpt, "rolled back\n");
    assert_eq!(report.verification.result, StepResult::Success);
    assert_eq!(report.status, ResolutionStatus::RolledBack);
    assert!(!report.sla_met);
}

#[test]
fn stragglers_of_a_finished_step_are_killed_too() {
    let d = tempfile::tempdir().unwrap();
    // The step exits at once but leaves a sleeper holding no pipe (redirected).
    let s = "sleep 1000 >/dev/null 2>&1 &\necho $! > \"$MSP_ARTIFACTS/pid\"";
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &step("a", 5, s, ""), "  []", OK_VERIFY)).unwrap();
    let run = run_cfg();
    let report = execute(&rb, &Default::default(), &incident(), &run.cfg).unwrap();
    assert_eq!(report.status, ResolutionStatus::Resolved);
    let pid: i32 = std::fs::read_to_string(run.cfg.artifacts_dir().join("pid")).unwrap().trim().parse().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(!pid_alive(pid), "straggler {pid} survived its step");
}

#[test]
fn output_is_hashed_whole_and_excerpts_are_scrubbed_and_bounded() {
    let d = tempfile::tempdir().unwrap();
    let s = "printf 'abc'\nprintf 'def' >&2";
    let big = "for i in $(seq 1 20000); do echo \"row $i patient MRN: 12345678 ssn 123-45-6789 mail jane.doe@example.org call (555) 123-4567\"; done\necho 'tail ssn 987-65-4321' >&2";
    let steps = format!("{}{}", step("small", 5, s, ""), step("big", 20, big, ""));
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &steps, "  []", OK_VERIFY)).unwrap();
    let run = run_cfg();
    let report = execute(&rb, &Default::default(), &incident(), &run.cfg).unwrap();
    let small = &report.steps[0];
    assert_eq!(small.output_hash, hex::encode(Sha256::digest(b"abcdef")));
    assert_eq!(small.script_hash, hex::encode(Sha256::digest(format!("{s}\n").as_bytes())));
    assert_eq!((small.stdout_excerpt.as_str(), small.stderr_excerpt.as_str()), ("abc", "def"));

    let big_rec = &report.steps[1];
    assert_eq!(big_rec.result, StepResult::Success);
    // The whole output (about 2 MB) was hashed: recompute it.
    let mut expected = Vec::new();
    for i in 1..=20000 {
        expected.extend_from_slice(format!("row {i} patient MRN: 12345678 ssn 123-45-6789 mail jane.doe@example.org call (555) 123-4567\n").as_bytes());
    }
    expected.extend_from_slice(b"tail ssn 987-65-4321\n");
    assert_eq!(big_rec.output_hash, hex::encode(Sha256::digest(&expected)));
    let ex = &big_rec.stdout_excerpt;
    // The baseline's phi.evidence_excerpt_max_bytes (2048), not the old hard-coded 4096.
    assert!(ex.len() <= 2048, "{}", ex.len());
    assert_eq!(run.cfg.phi.bounds().excerpt_max_bytes, 2048);
    assert!(ex.contains("row 20000 "), "keeps the end");
    for phi in ["12345678", "6789", "jane.doe", "example.org", "4567"] {
        assert!(!ex.contains(phi), "{phi} leaked into {ex}");
    }
    assert!(ex.contains("patient [mrn×1] [ssn×1] mail [email×1] call [phone×1]\n"), "{ex}");
    assert_eq!(big_rec.stderr_excerpt, "tail [ssn×1]\n");
}

#[test]
fn output_beyond_the_cap_fails_the_step() {
    let d = tempfile::tempdir().unwrap();
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &step("flood", 20, "yes | head -c 100000000", ""), "  []", OK_VERIFY)).unwrap();
    let mut run = run_cfg();
    run.cfg.output_cap = 64 * 1024;
    let report = execute(&rb, &Default::default(), &incident(), &run.cfg).unwrap();
    assert_eq!(report.steps[0].result, StepResult::Failed);
    assert_eq!(
        report.steps[0].error_message.as_deref(),
        Some("output exceeded 65536 bytes on a stream; process group killed (write large output to $MSP_ARTIFACTS)")
    );
    assert_eq!(report.status, ResolutionStatus::Failed, "no rollback defined: failed, not rolled back");
}

#[test]
fn artifacts_are_collected_with_hashes_and_symlinks_refused() {
    let d = tempfile::tempdir().unwrap();
    let s = "printf 'report\\n' > \"$MSP_ARTIFACTS/report.txt\"\nln -s /etc/passwd \"$MSP_ARTIFACTS/passwd.txt\"";
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &step("a", 5, s, "    evidence_capture: [report.txt, passwd.txt, missing.txt]\n"), "  []", OK_VERIFY)).unwrap();
    let run = run_cfg();
    let report = execute(&rb, &Default::default(), &incident(), &run.cfg).unwrap();
    let rec = &report.steps[0];
    assert_eq!(rec.result, StepResult::Success, "missing evidence is noted, not a failure");
    assert_eq!(rec.artifacts.len(), 1);
    assert_eq!(rec.artifacts[0].filename, "report.txt");
    assert_eq!(rec.artifacts[0].sha256, hex::encode(Sha256::digest(b"report\n")));
    assert_eq!(rec.artifacts[0].size_bytes, 7);
    assert_eq!(
        rec.error_message.as_deref(),
        Some("evidence passwd.txt: not collected: is a symlink; evidence missing.txt: not collected: No such file or directory (os error 2)")
    );
    // The bundle keeps the PHI filter's copy, not the step's file.
    assert_eq!(report.artifact_files(), vec![run.cfg.scrubbed_dir().join("report.txt")]);
}

#[test]
fn artifacts_are_scrubbed_and_bounded_before_the_bundle_sees_them() {
    let d = tempfile::tempdir().unwrap();
    // A step that writes a patient line into an artifact, and one far past the artifact bound.
    let s = "printf 'state=failed\\nowner jane.doe@example.com DOB 1962-03-14 MRN 00481516\\n' > \"$MSP_ARTIFACTS/a.txt\"\n\
             for i in $(seq 1 20000); do echo \"row $i 555-867-5309\"; done > \"$MSP_ARTIFACTS/big.txt\"\n\
             cat \"$MSP_ARTIFACTS/a.txt\"";
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &step("a", 20, s, "    evidence_capture: [a.txt, big.txt]\n"), "  []", OK_VERIFY)).unwrap();
    let run = run_cfg();
    let report = execute(&rb, &Default::default(), &incident(), &run.cfg).unwrap();
    let rec = &report.steps[0];
    assert_eq!(rec.result, StepResult::Success, "{:?}", rec.error_message);
    let a = &rec.artifacts[0];
    let stored = std::fs::read_to_string(&a.path).unwrap();
    assert_eq!(stored, "state=failed\nowner [email×1] [dob×1] [mrn×1]\n");
    assert_eq!(a.sha256, hex::encode(Sha256::digest(stored.as_bytes())));
    assert_eq!(a.redactions, std::collections::BTreeMap::from([("dob".into(), 1), ("email".into(), 1), ("mrn".into(), 1)]));
    assert!(!a.truncated);
    // The step's own file is untouched (later steps read it).
    assert!(std::fs::read_to_string(run.cfg.artifacts_dir().join("a.txt")).unwrap().contains("jane.doe@example.com"));
    // The excerpt went through the same filter and the baseline's 2048-byte bound.
    assert!(!rec.stdout_excerpt.contains("jane.doe") && rec.stdout_excerpt.contains("[email×1]"), "{}", rec.stdout_excerpt);
    let big = &rec.artifacts[1];
    assert!(big.truncated && big.size_bytes as usize <= msp_agent::scrub::DEFAULT_ARTIFACT_MAX_BYTES, "{big:?}");
    assert!(big.original_size_bytes > big.size_bytes);
    assert!(!std::fs::read_to_string(&big.path).unwrap().contains("867-5309"));
    // The store records it: scrubbed, counts, original size.
    let sources = report.artifact_sources();
    let scrub = sources[0].scrub.as_ref().unwrap();
    assert_eq!(scrub.redactions.get("email"), Some(&1));
    assert_eq!(scrub.original_size_bytes, a.original_size_bytes);
}

#[test]
fn the_bundle_budget_cuts_later_artifacts() {
    let d = tempfile::tempdir().unwrap();
    let s = "for f in a b c d e f; do head -c 70000 /dev/zero | tr '\\0' 'x' | fold -w 100 > \"$MSP_ARTIFACTS/$f.txt\"; done";
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &step("a", 20, s, "    evidence_capture: [a.txt, b.txt, c.txt, d.txt, e.txt, f.txt]\n"), "  []", OK_VERIFY)).unwrap();
    let run = run_cfg();
    let report = execute(&rb, &Default::default(), &incident(), &run.cfg).unwrap();
    let sizes: Vec<u64> = report.steps[0].artifacts.iter().map(|a| a.size_bytes).collect();
    assert_eq!(sizes.len(), 6, "{:?}", report.steps[0].error_message);
    let total: u64 = sizes.iter().sum();
    assert!(total as usize <= msp_agent::scrub::DEFAULT_BUNDLE_ARTIFACTS_MAX_BYTES, "{sizes:?}");
    assert!(sizes[5] < sizes[0], "the last artifact gets what is left of the budget: {sizes:?}");
    assert!(report.steps[0].artifacts.iter().all(|a| a.truncated));
}

#[test]
fn continue_on_failure_keeps_going_and_criteria_decide() {
    let d = tempfile::tempdir().unwrap();
    let steps = format!(
        "{}{}{}",
        step("soft", 5, "exit 3", "    continue_on_failure: true\n"),
        step("grep", 5, "echo 'state: active'", "    success_criteria: 'exit_code in [0, 3] and stdout contains \"active\"'\n"),
        step("expected-fail", 5, "echo oops >&2; exit 1", "    success_criteria: exit_code == 1 and stderr contains \"oops\"\n")
    );
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &steps, "  []", OK_VERIFY)).unwrap();
    let run = run_cfg();
    let report = execute(&rb, &Default::default(), &incident(), &run.cfg).unwrap();
    let results: Vec<_> = report.steps.iter().map(|s| s.result).collect();
    assert_eq!(results, [StepResult::Failed, StepResult::Success, StepResult::Success]);
    assert_eq!(report.steps[0].exit_code, Some(3));
    assert_eq!(report.steps[0].error_message.as_deref(), Some("success criteria not met: exit_code == 0 (exit code 3)"));
    assert!(report.rollback.is_empty(), "no rollback after a tolerated failure");
    assert_eq!(report.status, ResolutionStatus::Resolved);
    assert!(report.sla_met);
}

#[test]
fn failed_verification_means_failed_and_failed_rollback_means_failed() {
    let d = tempfile::tempdir().unwrap();
    let bad_verify = "  id: verify\n  action: check\n  timeout_seconds: 5\n  script: echo down\n  success_criteria: stdout contains \"up\"\n";
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &step("a", 5, "true", ""), "  []", bad_verify)).unwrap();
    let run = run_cfg();
    let report = execute(&rb, &Default::default(), &incident(), &run.cfg).unwrap();
    assert_eq!(report.steps[0].result, StepResult::Success);
    assert_eq!(report.verification.result, StepResult::Failed);
    assert_eq!(report.status, ResolutionStatus::Failed);

    let rollback = format!("{}{}", step("undo1", 5, "exit 1", ""), step("undo2", 5, "true", ""));
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &step("a", 5, "false", ""), &rollback, OK_VERIFY)).unwrap();
    let report = execute(&rb, &Default::default(), &incident(), &run.cfg).unwrap();
    let rolled: Vec<_> = report.rollback.iter().map(|s| s.result).collect();
    assert_eq!(rolled, [StepResult::Failed, StepResult::Skipped]);
    assert_eq!(report.status, ResolutionStatus::Failed);
}

#[test]
fn report_converts_to_a_bundle() {
    let d = tempfile::tempdir().unwrap();
    let s = "echo hi > \"$MSP_ARTIFACTS/out.txt\"";
    let rb = load(d.path(), &runbook_yaml(NO_PARAMS, &step("a", 5, s, "    evidence_capture: [out.txt]\n"), "  []", OK_VERIFY)).unwrap();
    let run = run_cfg();
    let inc = incident();
    let report = execute(&rb, &Default::default(), &inc, &run.cfg).unwrap();
    let ctx = BundleContext {
        client_id: "clinic-001".into(),
        hostname: "clinic-001-srv-primary".into(),
        operator: "msp-agent".into(),
        resolution_type: ResolutionType::Automatic,
        provenance: msp_agent::runbook::provenance(),
    };
    let b = to_new_bundle(&report, &inc, &rb, &ctx);
    assert_eq!(b.outputs.resolution_status, "resolved");
    assert_eq!(b.execution.resolution_type, "automatic");
    assert_eq!(b.execution.sla_target_seconds, 1800);
    assert!(b.execution.sla_met);
    assert_eq!(b.runbook.runbook_hash, rb.runbook_hash);
    assert_eq!((b.runbook.steps_total, b.runbook.steps_executed), (1, 1));
    assert_eq!(b.incident.source, "journal");
    assert_eq!(b.incident.details["unit"], "nginx.service");
    assert_eq!(b.incident.hipaa_controls, ["§164.308(a)(1)(ii)(D)"]);
    assert_eq!(b.actions_taken.len(), 1);
    assert_eq!(b.actions_taken[0].result, "success");
    assert_eq!(b.verification["step_id"], "verify");
    assert_eq!(b.verification["result"], "success");
    assert_eq!(b.artifact_files.len(), 1);
    assert_eq!(b.artifact_files[0].path, run.cfg.scrubbed_dir().join("out.txt"));
    assert!(b.artifact_files[0].scrub.is_some(), "executor artifacts are recorded as scrubbed");
}

// ---------------------------------------------------------------- shipped runbooks

fn shipped_runbooks() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("runbooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v.push(repo_root().join("runbooks/templates/runbook-template.yaml"));
    v
}

#[test]
fn the_seven_runbooks_and_the_template_load() {
    let files = shipped_runbooks();
    let ids: Vec<String> = files.iter().map(|f| Runbook::load_file(f).unwrap_or_else(|e| panic!("{e}")).id).collect();
    assert_eq!(ids, ["RB-BACKUP-001", "RB-CERT-001", "RB-CPU-001", "RB-DISK-001", "RB-DRIFT-001", "RB-RESTORE-001", "RB-SERVICE-001", "RB-TEMPLATE-001"]);
    let param_re = regex::Regex::new(r"MSP_PARAM_([A-Z0-9_]+)").unwrap();
    for f in &files {
        let rb = Runbook::load_file(f).unwrap();
        assert_eq!(f.file_stem().unwrap().to_str().unwrap() == rb.id, rb.id != "RB-TEMPLATE-001", "file name = id");
        assert!(!rb.hipaa_controls.is_empty());
        // Every parameter a script uses is declared (and every declared one is used).
        let scripts: String = rb.all_steps().map(|s| s.script.as_str()).collect::<Vec<_>>().join("\n");
        let used: std::collections::BTreeSet<String> = param_re
            .captures_iter(&scripts)
            .map(|c| c[1].to_ascii_lowercase())
            .collect();
        let declared: std::collections::BTreeSet<String> = rb.parameters.keys().cloned().collect();
        assert_eq!(used, declared, "{}", f.display());
        // Defaults bind without an incident; required parameters get a sample value.
        let samples: Vec<(String, String)> = rb
            .parameters
            .iter()
            .filter(|(_, spec)| spec.required && spec.default.is_none())
            .map(|(name, spec)| {
                let v = match spec.kind {
                    msp_agent::runbook::params::ParamType::Unit => "nginx.service".to_string(),
                    msp_agent::runbook::params::ParamType::Path => format!("{}/cert.pem", spec.allowed_roots[0].display()),
                    // RB-DRIFT-001's hashes: a file that must be absent.
                    msp_agent::runbook::params::ParamType::String => "absent".to_string(),
                    other => panic!("{}: no sample for a required {other} parameter", f.display()),
                };
                (name.clone(), v)
            })
            .collect();
        rb.bind_params(None, &samples).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn lint_cli_exit_codes() {
    let out = Command::new(bin()).args(["runbook", "lint"]).arg(repo_root().join("runbooks")).arg(repo_root().join("runbooks/templates")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // No shipped runbook stores an application's raw output.
    assert!(String::from_utf8_lossy(&out.stderr).contains(", 0 invalid, 0 warning(s)"), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // A capture of a unit's raw journal is a warning (named with file, line and step), not an error.
    let d = tempfile::tempdir().unwrap();
    let raw = "journalctl --unit=\"$MSP_PARAM_UNIT\" --lines=200 > \"$MSP_ARTIFACTS/j.txt\"";
    std::fs::write(d.path().join("RB-RAW-001.yaml"), runbook_yaml(NO_PARAMS, &step("grab", 5, raw, "    evidence_capture: [j.txt]\n"), "  []", OK_VERIFY).replace("RB-TEST-001", "RB-RAW-001")).unwrap();
    let out = Command::new(bin()).args(["runbook", "lint"]).arg(d.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let file = d.path().join("RB-RAW-001.yaml");
    assert!(stdout.starts_with(&format!("{}:", file.display())) && stdout.contains(": steps[0].script: warning: `journalctl --unit="), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 warning(s)"));

    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("RB-A-001.yaml"), runbook_yaml(NO_PARAMS, &step("a", 5, "true", ""), "  []", OK_VERIFY).replace("RB-TEST-001", "RB-A-001").replace("sla_minutes: 30", "sla_minutes: thirty")).unwrap();
    std::fs::write(d.path().join("RB-B-001.yaml"), runbook_yaml(NO_PARAMS, &step("a", 5, "true", "    success_criteria: stdout has \"x\"\n"), "  []", OK_VERIFY).replace("RB-TEST-001", "RB-B-001")).unwrap();
    let out = Command::new(bin()).args(["runbook", "lint"]).arg(d.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "every error printed: {stdout}");
    assert_eq!(lines[0], format!("{}:7: sla_minutes: invalid type: string \"thirty\", expected u64", d.path().join("RB-A-001.yaml").display()));
    assert!(lines[1].starts_with(&format!("{}:19: steps[0].success_criteria: invalid success criteria", d.path().join("RB-B-001.yaml").display())), "{stdout}");

    let out = Command::new(bin()).args(["runbook", "lint", "/nonexistent/RB-X-001.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reading /nonexistent/RB-X-001.yaml"));
}

fn yaml_to_json(path: &Path) -> serde_json::Value {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::to_value(v).unwrap()
}

#[test]
fn json_schema_accepts_the_shipped_runbooks_and_rejects_what_the_loader_rejects() {
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo_root().join("agent/schema/runbook.schema.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for f in shipped_runbooks() {
        let inst = yaml_to_json(&f);
        let errors: Vec<String> = validator.iter_errors(&inst).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
    let d = tempfile::tempdir().unwrap();
    let good = runbook_yaml("  unit:\n    type: unit\n    default: nginx.service\n", &step("a", 5, "true", ""), "  []", OK_VERIFY);
    let bad = [
        ("unknown field", good.replace("sla_minutes: 30", "sla_minutes: 30\nowner: bob")),
        ("wrong type", good.replace("timeout_seconds: 5\n    script: |", "timeout_seconds: ten\n    script: |")),
        ("missing field", good.replace("severity: high\n", "")),
        ("bad severity", good.replace("severity: high", "severity: urgent")),
        ("unknown event type", good.replace("[service_crash]", "[kernel_panic]")),
        ("unknown param type", good.replace("type: unit", "type: float")),
        ("path without roots", good.replace("type: unit\n    default: nginx.service", "type: path")),
        ("bad artifact name", good.replace("    script: |", "    evidence_capture: [/etc/shadow]\n    script: |")),
        ("empty steps", good.replace(&step("a", 5, "true", ""), "  []\n")),
    ];
    let p = d.path().join("RB-TEST-001.yaml");
    std::fs::write(&p, &good).unwrap();
    assert!(validator.is_valid(&yaml_to_json(&p)), "the baseline case must be valid for both");
    Runbook::load_file(&p).unwrap();
    for (what, text) in bad {
        std::fs::write(&p, &text).unwrap();
        assert!(Runbook::load_file(&p).is_err(), "loader accepted {what}");
        assert!(!validator.is_valid(&yaml_to_json(&p)), "schema accepted {what}");
    }
}

#[test]
fn shipped_scripts_pass_shellcheck() {
    let Ok(out) = Command::new("shellcheck").arg("--version").output() else {
        // scripts/setup-machine installs shellcheck; say loudly when it is not there.
        eprintln!("SKIPPED shipped_scripts_pass_shellcheck: shellcheck is not installed (run scripts/setup-machine)");
        return;
    };
    assert!(out.status.success());
    let d = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for f in shipped_runbooks() {
        let rb = Runbook::load_file(&f).unwrap();
        for s in rb.all_steps() {
            let p = d.path().join(format!("{}-{}.sh", rb.id, s.id.0));
            // The header mirrors how the executor runs scripts (bash -euo pipefail).
            std::fs::write(&p, format!("#!/usr/bin/env bash\nset -euo pipefail\n{}", s.script)).unwrap();
            let out = Command::new("shellcheck").args(["-s", "bash", "-S", "style"]).arg(&p).output().unwrap();
            if !out.status.success() {
                failures.push(format!("{} {}:\n{}", rb.id, s.id.0, String::from_utf8_lossy(&out.stdout)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------- shipped runbooks, for real

/// A real restic repository in a temporary directory, with a backed-up source tree.
struct ResticFixture {
    dir: tempfile::TempDir,
}

impl ResticFixture {
    fn new(backup_time: Option<&str>) -> ResticFixture {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().to_path_buf();
        std::fs::create_dir_all(t.join("secrets")).unwrap();
        std::fs::write(t.join("secrets/pw"), "correct horse battery staple\n").unwrap();
        std::fs::create_dir_all(t.join("src/sub")).unwrap();
        std::fs::write(t.join("src/a.txt"), "alpha\n").unwrap();
        std::fs::write(t.join("src/sub/b.bin"), vec![7u8; 100_000]).unwrap();
        std::fs::write(t.join("src/changes.txt"), "before\n").unwrap();
        // Old mtimes: "unchanged since the snapshot" for the comparison.
        for f in ["src/a.txt", "src/sub/b.bin", "src/changes.txt"] {
            assert!(Command::new("touch").args(["-d", "2 days ago"]).arg(t.join(f)).status().unwrap().success());
        }
        let f = ResticFixture { dir };
        f.restic(&["init"]);
        let src = t.join("src");
        let mut args = vec!["backup", src.to_str().unwrap()];
        if let Some(time) = backup_time {
            args.extend(["--time", time]);
        }
        f.restic(&args);
        f
    }

    fn restic(&self, args: &[&str]) {
        let out = Command::new("restic")
            .args(["--no-cache", "-q"])
            .args(args)
            .env("RESTIC_REPOSITORY", self.dir.path().join("repo"))
            .env("RESTIC_PASSWORD_FILE", self.dir.path().join("secrets/pw"))
            .output()
            .unwrap();
        assert!(out.status.success(), "restic {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).to_str().unwrap().to_string()
    }

    /// Load a shipped runbook with its secret and restore roots pointed into this fixture
    /// (the scripts are unchanged: that is what is under test).
    fn runbook(&self, id: &str) -> Runbook {
        let mut rb = Runbook::load_file(&repo_root().join(format!("runbooks/{id}.yaml"))).unwrap();
        for name in ["password_file", "environment_file"] {
            rb.parameters.get_mut(name).unwrap().allowed_roots = vec![self.dir.path().join("secrets")];
        }
        if let Some(spec) = rb.parameters.get_mut("restore_root") {
            spec.allowed_roots = vec![self.dir.path().join("restore")];
        }
        rb
    }
}

fn restic_available() -> bool {
    let ok = Command::new("restic").arg("version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: restic is not installed (scripts/setup-machine installs it)");
    }
    ok
}

#[test]
fn restore_runbook_restores_verifies_compares_and_cleans_up_with_real_restic() {
    if !restic_available() {
        return;
    }
    let fx = ResticFixture::new(None);
    // Changed after the snapshot (new content, new mtime): reported, not a mismatch.
    std::fs::write(fx.path("src/changes.txt"), "after\n").unwrap();
    let rb = fx.runbook("RB-RESTORE-001");
    let overrides: Vec<(String, String)> = [
        ("repository", fx.path("repo")),
        ("password_file", fx.path("secrets/pw")),
        ("sample_path", fx.path("src")),
        ("restore_root", fx.path("restore")),
        ("read_data_subset", "100%".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let params = rb.bind_params(None, &overrides).unwrap();
    let run = run_cfg();
    let mut inc = incident();
    inc.event_type = "restore_test_due".into();
    let report = execute(&rb, &params, &inc, &run.cfg).unwrap();
    for s in &report.steps {
        assert_eq!(s.result, StepResult::Success, "{} failed: {:?} / {} / {}", s.step_id, s.error_message, s.stdout_excerpt, s.stderr_excerpt);
    }
    assert_eq!(report.status, ResolutionStatus::Resolved, "{:?}", report.verification);
    let compare = std::fs::read_to_string(run.cfg.artifacts_dir().join("restore-compare.tsv")).unwrap();
    let a_hash = hex::encode(Sha256::digest(b"alpha\n"));
    // Paths are recorded as their SHA-256 (file names in clinic data can be PHI).
    let path_hash = |p: &str| hex::encode(Sha256::digest(fx.path(p).as_bytes()));
    assert!(compare.contains(&format!("match\t{a_hash}\t{}", path_hash("src/a.txt"))), "{compare}");
    assert!(compare.contains(&format!("match\t{}\t{}", hex::encode(Sha256::digest(vec![7u8; 100_000])), path_hash("src/sub/b.bin"))), "{compare}");
    assert!(compare.contains(&format!("changed-since-snapshot\t{}\t{}", hex::encode(Sha256::digest(b"before\n")), path_hash("src/changes.txt"))), "{compare}");
    assert!(!compare.contains("src/a.txt"), "no path in the artifact: {compare}");
    assert_eq!(report.steps[3].stdout_excerpt, "restored=3 matched=2 mismatched=0 changed=1 missing_live=0\n");
    // The restored copy is gone; only the (empty) restore root remains.
    assert_eq!(std::fs::read_dir(fx.path("restore")).unwrap().count(), 0);
    let collected: Vec<String> = report.artifact_files().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert!(collected.contains(&"restore-compare.tsv".to_string()) && collected.contains(&"restic-check-data.txt".to_string()), "{collected:?}");
}

#[test]
fn restore_runbook_detects_a_mismatch_and_rolls_back_the_restored_copy() {
    if !restic_available() {
        return;
    }
    let fx = ResticFixture::new(None);
    // Same mtime as before, different content: the live file no longer matches the backup.
    std::fs::write(fx.path("src/a.txt"), "tampered\n").unwrap();
    assert!(Command::new("touch").args(["-d", "2 days ago", &fx.path("src/a.txt")]).status().unwrap().success());
    let rb = fx.runbook("RB-RESTORE-001");
    let overrides: Vec<(String, String)> = [
        ("repository", fx.path("repo")),
        ("password_file", fx.path("secrets/pw")),
        ("sample_path", fx.path("src")),
        ("restore_root", fx.path("restore")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let params = rb.bind_params(None, &overrides).unwrap();
    let run = run_cfg();
    let report = execute(&rb, &params, &incident(), &run.cfg).unwrap();
    let compare = &report.steps[3];
    assert_eq!((compare.step_id.as_str(), compare.result), ("compare", StepResult::Failed));
    assert!(compare.stdout_excerpt.contains("mismatched=1"), "{}", compare.stdout_excerpt);
    assert_eq!(report.steps[4].result, StepResult::Skipped);
    assert_eq!(report.rollback.len(), 1);
    assert_eq!(report.rollback[0].result, StepResult::Success, "{:?}", report.rollback[0]);
    assert_eq!(std::fs::read_dir(fx.path("restore")).unwrap().count(), 0, "rollback removed the restored copy");
    assert_eq!(report.verification.result, StepResult::Failed);
    assert_eq!(report.status, ResolutionStatus::Failed);
}

#[test]
fn backup_runbook_repository_steps_and_verification_with_real_restic() {
    if !restic_available() {
        return;
    }
    // The unit steps need systemd; the repository steps and the verification are run here
    // against a real repository, unchanged.
    for (backup_time, expect) in [(None, StepResult::Success), (Some("2020-01-01 00:00:00"), StepResult::Failed)] {
        let fx = ResticFixture::new(backup_time);
        std::fs::write(fx.path("secrets/env"), "AWS_ACCESS_KEY_ID=\"AKIDEXAMPLE\"\nPATH=/evil\nRESTIC_PASSWORD=nope\n").unwrap();
        let mut rb = fx.runbook("RB-BACKUP-001");
        let ids: Vec<&str> = rb.steps.iter().map(|s| s.id.0.as_str()).collect();
        assert_eq!(ids, ["capture-failure", "check-repository", "rerun-backup", "check-repository-structure"]);
        rb.steps = vec![rb.steps[1].clone(), rb.steps[3].clone()];
        let overrides: Vec<(String, String)> = [
            ("repository", fx.path("repo")),
            ("password_file", fx.path("secrets/pw")),
            ("environment_file", fx.path("secrets/env")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let params = rb.bind_params(None, &overrides).unwrap();
        let run = run_cfg();
        let report = execute(&rb, &params, &incident(), &run.cfg).unwrap();
        for s in &report.steps {
            assert_eq!(s.result, StepResult::Success, "{}: {:?} {}", s.step_id, s.error_message, s.stderr_excerpt);
        }
        assert!(report.steps[0].stdout_excerpt.contains("repository reachable"));
        assert_eq!(report.verification.result, expect, "{:?} {}", report.verification.error_message, report.verification.stdout_excerpt);
        assert!(report.verification.stdout_excerpt.starts_with("latest_snapshot="), "{}", report.verification.stdout_excerpt);
    }
}

// ---------------------------------------------------------------- end to end: runbook run

fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn runbook_run_writes_a_bundle_that_stock_tools_verify() {
    let d = tempfile::tempdir().unwrap();
    let (rb_dir, ev, keys) = (d.path().join("runbooks"), d.path().join("evidence"), d.path().join("keys"));
    std::fs::create_dir_all(&rb_dir).unwrap();
    // The template is safe anywhere: its step prints its parameters into an artifact.
    let template = std::fs::read(repo_root().join("runbooks/templates/runbook-template.yaml")).unwrap();
    std::fs::write(rb_dir.join("RB-TEMPLATE-001.yaml"), &template).unwrap();
    // A failing one, to check exit 1 and the recorded status.
    let failing = runbook_yaml(NO_PARAMS, &step("a", 5, "echo 'patient ssn 123-45-6789' >&2; exit 4", ""), &step("undo", 5, "true", ""), OK_VERIFY);
    std::fs::write(rb_dir.join("RB-TEST-001.yaml"), &failing).unwrap();
    run_ok(Command::new(bin()).args(["key", "generate", "--out"]).arg(&keys));

    let run = |id: &str, extra: &[&str]| {
        Command::new(bin())
            .args(["runbook", "run", id, "--runbooks"])
            .arg(&rb_dir)
            .arg("--evidence-dir")
            .arg(&ev)
            .arg("--key-dir")
            .arg(&keys)
            .arg("--state-dir")
            .arg(d.path().join("state"))
            .args(["--client-id", "clinic-001"])
            .args(extra)
            .env("SUDO_USER", "alice")
            .output()
            .unwrap()
    };
    let out = run("RB-TEMPLATE-001", &["--param", "mode=fix", "--param", "unit=postgresql.service"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let bundle_path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(bundle_path.starts_with(&ev) && bundle_path.is_file(), "{bundle_path:?}");

    // Stock tools, exactly as DESIGN.md 3 gives them to auditors.
    let bundle_bytes = std::fs::read(&bundle_path).unwrap();
    let sshsig = format!("{}.sshsig", bundle_path.display());
    run_ok(
        Command::new("ssh-keygen")
            .args(["-Y", "verify", "-f"])
            .arg(keys.join("allowed_signers"))
            .args(["-I", "msp-evidence", "-n", "msp-evidence", "-s", &sshsig])
            .stdin(std::fs::File::open(&bundle_path).unwrap()),
    );
    run_ok(
        Command::new("openssl")
            .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(keys.join("evidence-signing.pub.pem"))
            .args(["-rawin", "-in"])
            .arg(&bundle_path)
            .arg("-sigfile")
            .arg(format!("{}.sig", bundle_path.display())),
    );
    // And our own verifier, including the runbook hash against the runbook files.
    run_ok(Command::new(bin()).args(["evidence", "verify", "--keys"]).arg(&keys).arg("--runbooks").arg(&rb_dir).arg(&ev));

    let b: serde_json::Value = serde_json::from_slice(&bundle_bytes).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo_root().join("agent/schema/evidence-bundle.schema.json")).unwrap()).unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v.iter_errors(&b).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(b["client_id"], "clinic-001");
    assert_eq!(b["execution"]["resolution_type"], "manual");
    assert_eq!(b["execution"]["operator"], "alice");
    assert_eq!(b["incident"]["source"], "manual");
    // The host's incident counter in --state-dir: the first incident of the day.
    let day = chrono::Utc::now().format("%Y%m%d");
    assert_eq!(b["incident"]["incident_id"], format!("INC-{day}-0001"));
    assert_eq!(b["outputs"]["resolution_status"], "resolved");
    assert_eq!(b["runbook"]["runbook_hash"], hex::encode(Sha256::digest(&template)));
    assert_eq!(b["actions_taken"][0]["stdout_excerpt"], "unit=postgresql.service mode=fix\n");
    assert_eq!(b["verification"]["result"], "success");
    assert_eq!(b["artifacts"][0]["filename"], "report.txt");
    assert_eq!(b["artifacts"][0]["sha256"], hex::encode(Sha256::digest(b"unit=postgresql.service mode=fix\n")));

    // A failing runbook: exit 1, a valid signed bundle that says so, with the PHI scrubbed.
    let out = run("RB-TEST-001", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let failed_path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let f: serde_json::Value = serde_json::from_slice(&std::fs::read(&failed_path).unwrap()).unwrap();
    assert_eq!(f["outputs"]["resolution_status"], "rolled_back");
    assert_eq!(f["actions_taken"][0]["result"], "failed");
    assert_eq!(f["actions_taken"][0]["exit_code"], 4);
    assert_eq!(f["actions_taken"][0]["stderr_excerpt"], "patient [ssn×1]\n");
    assert_eq!(f["rollback"][0]["result"], "success");
    assert_eq!(f["chain"]["sequence"], 2);
    assert_eq!(f["incident"]["incident_id"], format!("INC-{day}-0002"));
    assert_eq!(f["chain"]["prev_bundle_sha256"], hex::encode(Sha256::digest(&bundle_bytes)));
    run_ok(Command::new(bin()).args(["evidence", "verify", "--keys"]).arg(&keys).arg(&ev));
}

// ---------------------------------------------------------------- shipped runbooks on a real systemd

/// Where `scripts/setup-machine` caches a debootstrapped Debian with systemd (DESIGN.md 5).
const ROOTFS: &str = "/var/cache/msp-flake/rootfs-bookworm-systemd-v2";

/// A real systemd (PID 1 of its own PID, mount, UTS and IPC namespaces) booted from an
/// overlay over the cached rootfs, so the cache stays pristine and tests do not share state.
/// Steps run inside it through a bash wrapper (`ExecConfig::bash`) that enters its namespaces
/// and chroot; the run directory is bind-mounted at the same path inside.
struct SystemdContainer {
    unshare: std::process::Child,
    pid1: i32,
    merged: PathBuf,
    tmp: tempfile::TempDir,
}

impl SystemdContainer {
    /// Boot one with `units` (name, unit file text) installed in /etc/systemd/system. `None`
    /// (with a loud message) when this machine cannot: no cached rootfs or not root.
    fn start(units: &[(&str, &str)]) -> Option<SystemdContainer> {
        SystemdContainer::start_with(units, &[])
    }

    /// [`SystemdContainer::start`], also copying host files (`(path inside, host path)`) in.
    fn start_with(units: &[(&str, &str)], files: &[(&str, &Path)]) -> Option<SystemdContainer> {
        if !Path::new(ROOTFS).join("lib/systemd/systemd").exists() {
            eprintln!("SKIPPED: no systemd rootfs at {ROOTFS} (scripts/setup-machine builds it with debootstrap)");
            return None;
        }
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: booting a systemd container needs root (unshare, mount)");
            return None;
        }
        let tmp = tempfile::Builder::new().prefix("msp-systemd-").tempdir_in("/var/tmp").unwrap();
        let (upper, work, merged, xchg) = (tmp.path().join("upper"), tmp.path().join("work"), tmp.path().join("merged"), tmp.path().join("xchg"));
        for d in [&upper, &work, &merged, &xchg] {
            std::fs::create_dir_all(d).unwrap();
        }
        let unit_dir = upper.join("etc/systemd/system");
        std::fs::create_dir_all(&unit_dir).unwrap();
        for (name, text) in units {
            std::fs::write(unit_dir.join(name), text).unwrap();
        }
        for (inside, host) in files {
            let dest = upper.join(inside.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(host, &dest).unwrap();
        }
        let launcher = tmp.path().join("launch.sh");
        std::fs::write(
            &launcher,
            r#"set -euo pipefail
lower=$1 upper=$2 work=$3 root=$4 xchg=$5
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$root"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs -o mode=755 tmpfs "$root/dev"
for n in null zero random urandom tty full; do touch "$root/dev/$n"; mount --bind "/dev/$n" "$root/dev/$n"; done
mkdir -p "$root$xchg"
mount --bind "$xchg" "$root$xchg"
exec chroot "$root" /usr/bin/env container=other /lib/systemd/systemd --system
"#,
        )
        .unwrap();
        let unshare = Command::new("unshare")
            .args(["--pid", "--fork", "--mount", "--uts", "--ipc", "bash"])
            .arg(&launcher)
            .args([Path::new(ROOTFS), &upper, &work, &merged, &xchg])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The container's PID 1 is unshare's only child.
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let mut pid1 = None;
        for _ in 0..200 {
            if let Some(p) = std::fs::read_to_string(&children).ok().and_then(|s| s.split_whitespace().next().map(|p| p.parse::<i32>().unwrap())) {
                pid1 = Some(p);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let c = SystemdContainer { unshare, pid1: pid1.expect("container PID 1 appeared"), merged, tmp };
        // Wait for boot: `running`, or `degraded` (some units of a minimal rootfs fail here).
        for _ in 0..240 {
            let out = c.sh("systemctl is-system-running 2>/dev/null || true");
            let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if state == "running" || state == "degraded" {
                return Some(c);
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!("systemd in the container did not finish booting");
    }

    fn enter(&self) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.args(["-t", &self.pid1.to_string(), "-m", "-p", "-u", "-i", "chroot"]).arg(&self.merged);
        cmd
    }

    /// Run a shell snippet inside.
    fn sh(&self, script: &str) -> std::process::Output {
        self.enter().args(["/bin/bash", "-c", script]).output().unwrap()
    }

    fn sh_ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(out.status.success(), "{script}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An executor configuration whose steps run inside the container.
    fn exec_config(&self, name: &str) -> ExecConfig {
        let work = self.tmp.path().join("xchg").join(name);
        std::fs::create_dir_all(&work).unwrap();
        let wrapper = self.tmp.path().join(format!("bash-in-container-{name}"));
        std::fs::write(
            &wrapper,
            format!("#!/bin/bash\nexec /usr/bin/nsenter -t {} -m -p -u -i /usr/sbin/chroot {} /bin/bash \"$@\"\n", self.pid1, self.merged.display()),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut cfg = ExecConfig::new(&work).unwrap();
        cfg.bash = wrapper;
        cfg
    }
}

impl Drop for SystemdContainer {
    fn drop(&mut self) {
        // SIGKILL to a PID namespace's init kills every process in it; then reap unshare.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid1), nix::sys::signal::Signal::SIGKILL);
        let _ = self.unshare.wait();
    }
}

/// A service that logs a patient line (as an EHR might before it crashes), then sleeps. The
/// line comes from a file so that it is not in the unit's command line (`systemctl status`
/// prints that, and it is the operator's configuration, not application output).
const PATIENT_LOGGER_UNIT: &str = "[Service]\nExecStart=/bin/sh -c 'cat /etc/patient-line; exec sleep infinity'\n";
const PATIENT_LINE: &str = "ERROR chart load failed: patient Jane Q. Doe DOB 1962-03-14 MRN 00481516 jane.doe@example.com (555) 867-5309";

/// Nothing the unit's own processes wrote to the journal appears in any artifact (the step's
/// files or the scrubbed copies) or excerpt: shipped runbooks store metadata, not text.
fn assert_application_text_absent(c: &SystemdContainer, unit: &str, report: &msp_agent::runbook::exec::ExecutionReport, cfg: &ExecConfig, extra: &[&str]) {
    let own = c.sh_ok(&format!("journalctl _SYSTEMD_UNIT={unit} --no-pager --output=cat"));
    let mut needles: Vec<String> = own.lines().filter(|l| l.trim().len() >= 12).map(str::to_string).collect();
    needles.extend(extra.iter().map(|s| s.to_string()));
    assert!(!needles.is_empty(), "the unit wrote nothing to look for");
    let mut stored = Vec::new();
    for dir in [cfg.artifacts_dir(), cfg.scrubbed_dir()] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            stored.push((p.display().to_string(), String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()));
        }
    }
    for s in report.steps.iter().chain(&report.rollback).chain(std::iter::once(&report.verification)) {
        let text = format!("{}\n{}\n{}", s.stdout_excerpt, s.stderr_excerpt, s.error_message.clone().unwrap_or_default());
        stored.push((format!("step {}", s.step_id), text));
    }
    for n in &needles {
        for (name, text) in &stored {
            assert!(!text.contains(n.as_str()), "application text {n:?} stored in {name}:\n{text}");
        }
    }
}
const FLAKY_UNIT: &str = "[Service]\nExecStart=/bin/sh -c 'sleep 1; exit 1'\n";
const HOG_UNIT: &str = "[Service]\nExecStart=/bin/sh -c 'while :; do :; done'\nCPUQuota=150%\n";

#[test]
fn service_and_cpu_runbooks_against_a_real_systemd() {
    let Some(c) = SystemdContainer::start(&[("crashy.service", PATIENT_LOGGER_UNIT), ("flaky.service", FLAKY_UNIT), ("hog.service", HOG_UNIT)]) else {
        return;
    };
    let service = Runbook::load_file(&repo_root().join("runbooks/RB-SERVICE-001.yaml")).unwrap();

    // A crash: the unit is killed and left failed. The runbook binds the unit from the incident.
    c.sh_ok(&format!("echo '{PATIENT_LINE}' > /etc/patient-line"));
    c.sh_ok("systemctl start crashy.service && sleep 0.5 && systemctl kill -s KILL crashy.service; sleep 0.5; systemctl is-failed crashy.service");
    // What the application wrote before the crash (the restart writes the line again).
    let own = c.sh_ok("journalctl _SYSTEMD_UNIT=crashy.service --no-pager --output=cat");
    let mut inc = incident();
    inc.unit = Some("crashy.service".into());
    let params = service.bind_params(Some(&inc), &[("settle_seconds".into(), "2".into())]).unwrap();
    let cfg = c.exec_config("service-ok");
    let report = execute(&service, &params, &inc, &cfg).unwrap();
    for s in &report.steps {
        assert_eq!(s.result, StepResult::Success, "{}: {:?} {} {}", s.step_id, s.error_message, s.stdout_excerpt, s.stderr_excerpt);
    }
    assert_eq!(report.status, ResolutionStatus::Resolved, "{:?}", report.verification);
    assert_eq!(report.verification.stdout_excerpt, "active\n");
    let before = std::fs::read_to_string(cfg.artifacts_dir().join("service-state-before.txt")).unwrap();
    assert!(before.contains("ActiveState=failed") && before.contains("Result=signal"), "{before}");
    // systemd's account of the crash is kept; the application's line only as count and hash.
    let systemd = std::fs::read_to_string(cfg.scrubbed_dir().join("service-systemd-before.txt")).unwrap();
    assert!(systemd.contains("crashy.service: Main process exited, code=killed, status=9/KILL"), "{systemd}");
    let app = std::fs::read_to_string(cfg.scrubbed_dir().join("service-app-output-before.txt")).unwrap();
    assert!(app.contains("app_journal_lines=1\n") && app.contains("app_journal_err_lines=0\n"), "{app}");
    assert!(own.contains("Jane Q. Doe"), "the unit did log the patient line: {own}");
    assert!(app.contains(&format!("app_journal_sha256={}\n", hex::encode(Sha256::digest(own.as_bytes())))), "{app}");
    assert_application_text_absent(&c, "crashy.service", &report, &cfg, &["Jane Q. Doe", "1962-03-14", "00481516", "jane.doe@example.com", "867-5309"]);
    assert_eq!(c.sh_ok("systemctl is-active crashy.service"), "active\n");

    // A unit that dies again right after every restart: the settle check catches it.
    c.sh_ok("systemctl start flaky.service; sleep 1.5; systemctl is-failed flaky.service");
    let mut inc = incident();
    inc.unit = Some("flaky.service".into());
    let params = service.bind_params(Some(&inc), &[("settle_seconds".into(), "4".into())]).unwrap();
    let report = execute(&service, &params, &inc, &c.exec_config("service-flaky")).unwrap();
    let results: Vec<_> = report.steps.iter().map(|s| (s.step_id.as_str(), s.result)).collect();
    assert_eq!(
        results,
        [("capture-state", StepResult::Success), ("reset-failed", StepResult::Success), ("restart", StepResult::Success), ("settle", StepResult::Failed)],
        "{:?}",
        report.steps
    );
    assert!(report.steps[3].stderr_excerpt.contains("flaky.service left the active state"), "{}", report.steps[3].stderr_excerpt);
    assert!(report.rollback.is_empty());
    assert_eq!(report.verification.result, StepResult::Failed);
    assert_eq!(report.status, ResolutionStatus::Failed);

    // Protected units are refused before anything is done to them.
    let mut inc = incident();
    inc.unit = Some("msp-agent.service".into());
    let params = service.bind_params(Some(&inc), &[]).unwrap();
    let report = execute(&service, &params, &inc, &c.exec_config("service-protected")).unwrap();
    assert_eq!(report.steps[0].result, StepResult::Failed);
    assert!(report.steps[0].stderr_excerpt.starts_with("refusing to restart msp-agent.service"), "{}", report.steps[0].stderr_excerpt);
    assert_eq!(report.steps[2].result, StepResult::Skipped);

    // CPU hog: throttled to 20 %, the quota recorded before (150 % from the unit file) is the
    // one the rollback restores.
    c.sh_ok("systemctl start hog.service");
    let cpu = Runbook::load_file(&repo_root().join("runbooks/RB-CPU-001.yaml")).unwrap();
    let mut inc = incident();
    inc.event_type = "high_cpu".into();
    inc.unit = Some("hog.service".into());
    let params = cpu.bind_params(Some(&inc), &[("cpu_quota_percent".into(), "20".into()), ("sample_seconds".into(), "3".into())]).unwrap();
    // Rollback first (the quota is still the unit file's 150 %): a failing step after the
    // throttle makes the rollback put the recorded quota back.
    let mut cpu_fail = cpu.clone();
    let mut boom = cpu.steps[1].clone();
    boom.id = msp_agent::runbook::model::StepId("boom".into());
    boom.script = "exit 1\n".into();
    cpu_fail.steps.push(boom);
    let cfg = c.exec_config("cpu-rollback");
    let report = execute(&cpu_fail, &params, &inc, &cfg).unwrap();
    assert_eq!(report.steps[2].result, StepResult::Failed);
    assert_eq!(report.rollback[0].result, StepResult::Success, "{:?} {}", report.rollback[0].error_message, report.rollback[0].stderr_excerpt);
    assert_eq!(c.sh_ok("systemctl show -p CPUQuotaPerSecUSec --value hog.service"), "1.500000s\n");
    let restore = std::fs::read_to_string(cfg.artifacts_dir().join("cpu-quota-restore.txt")).unwrap();
    assert_eq!(restore, "CPUQuota=150%\n");

    // Then the real thing: throttled to 20 % and verified within it.
    let cfg = c.exec_config("cpu");
    let report = execute(&cpu, &params, &inc, &cfg).unwrap();
    for s in &report.steps {
        assert_eq!(s.result, StepResult::Success, "{}: {:?} {} {}", s.step_id, s.error_message, s.stdout_excerpt, s.stderr_excerpt);
    }
    assert_eq!(c.sh_ok("systemctl show -p CPUQuotaPerSecUSec --value hog.service"), "200ms\n");
    assert_eq!(report.status, ResolutionStatus::Resolved, "{:?} {}", report.verification.error_message, report.verification.stdout_excerpt);
    // The closed loop measures the unit's CPU use (CPUUsageNSec over the window) where systemd
    // can account CPU; on this host's cgroup v1 layout (cpu and cpuacct mounted apart) it
    // cannot, and the verification says so and checks the quota instead.
    let v = &report.verification.stdout_excerpt;
    if let Some(rest) = v.strip_prefix("cpu_used_percent=") {
        let used: u64 = rest.split(' ').next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{v}"));
        assert!(used <= 22, "{v}");
    } else {
        assert!(v.starts_with("CPU accounting unavailable") && v.contains("CPUQuotaPerSecUSec=200ms"), "{v}");
        eprintln!("NOTE: CPU use not measurable in this container (no cpuacct for systemd); quota checked only");
    }

    c.sh_ok("systemctl stop hog.service");
}

#[test]
fn disk_and_cert_runbooks_against_a_real_systemd() {
    // Port on the shared loopback for the served-certificate check (the container shares the
    // host's network namespace); derived from our pid to keep parallel runs apart.
    let port = 20000 + std::process::id() % 20000;
    let tls_unit = format!(
        "[Service]\nExecStart=/usr/bin/openssl s_server -accept {port} -cert /etc/ssl/msp-test/cert.pem -key /etc/ssl/msp-test/key.pem -www\n"
    );
    let renew = |days: u32| {
        format!("[Service]\nType=oneshot\nExecStart=/usr/bin/openssl req -x509 -newkey ed25519 -nodes -keyout /etc/ssl/msp-test/key.pem -out /etc/ssl/msp-test/cert.pem -days {days} -subj /CN=clinic.test\n")
    };
    let (renew_good, renew_bad) = (renew(90), renew(2));
    let Some(c) = SystemdContainer::start(&[("tls-test.service", &tls_unit), ("renew-good.service", &renew_good), ("renew-bad.service", &renew_bad)]) else {
        return;
    };

    // ---- RB-DISK-001: cleans what it may, never the journal, audit logs or evidence.
    c.sh_ok(
        "set -e; mkdir -p /var/log/audit /var/log/journal/abc /var/log/nginx /var/lib/msp/evidence /var/lib/systemd/coredump
         for f in /var/log/audit/audit.log.1.gz /var/log/journal/abc/old.gz /var/log/nginx/access.log.2.gz /var/log/nginx/error.log.1 \
                  /var/log/nginx/access.log /var/lib/msp/evidence/old.gz /var/lib/systemd/coredump/core.x.zst; do
           echo x > \"$f\"; touch -d '400 days ago' \"$f\"
         done
         echo recent > /var/log/nginx/access.log.1.gz",
    );
    let disk = Runbook::load_file(&repo_root().join("runbooks/RB-DISK-001.yaml")).unwrap();
    let mut inc = incident();
    inc.event_type = "disk_full".into();
    inc.unit = None;
    inc.details.insert("mount".into(), serde_json::json!("/"));
    inc.details.insert("used_pct".into(), serde_json::json!(93.5));
    let params = disk.bind_params(Some(&inc), &[("threshold_percent".into(), "99".into())]).unwrap();
    assert_eq!(params.get("mount"), Some("/"));
    let cfg = c.exec_config("disk");
    let report = execute(&disk, &params, &inc, &cfg).unwrap();
    for s in &report.steps {
        if s.step_id != "clean-tmpfiles" {
            assert_eq!(s.result, StepResult::Success, "{}: {:?} {} {}", s.step_id, s.error_message, s.stdout_excerpt, s.stderr_excerpt);
        }
    }
    assert_eq!(report.status, ResolutionStatus::Resolved, "{:?}", report.verification);
    let deleted = std::fs::read_to_string(cfg.artifacts_dir().join("deleted-logs.txt")).unwrap();
    let mut deleted: Vec<&str> = deleted.lines().collect();
    deleted.sort();
    assert_eq!(deleted, ["/var/log/nginx/access.log.2.gz", "/var/log/nginx/error.log.1"]);
    assert_eq!(std::fs::read_to_string(cfg.artifacts_dir().join("deleted-coredumps.txt")).unwrap(), "/var/lib/systemd/coredump/core.x.zst\n");
    c.sh_ok(
        "set -e; for f in /var/log/audit/audit.log.1.gz /var/log/journal/abc/old.gz /var/log/nginx/access.log \
                          /var/log/nginx/access.log.1.gz /var/lib/msp/evidence/old.gz; do test -f \"$f\"; done",
    );
    assert!(std::fs::read_to_string(cfg.artifacts_dir().join("df-before.txt")).unwrap().contains("Filesystem"));
    assert!(report.verification.stdout_excerpt.starts_with("used_percent="), "{}", report.verification.stdout_excerpt);

    // ---- RB-CERT-001: a certificate valid for one more day, served by an `openssl s_server` unit.
    c.sh_ok(
        "set -e; mkdir -p /etc/ssl/msp-test
         openssl req -x509 -newkey ed25519 -nodes -keyout /etc/ssl/msp-test/key.pem -out /etc/ssl/msp-test/cert.pem -days 1 -subj /CN=clinic.test 2>/dev/null
         systemctl start tls-test.service",
    );
    let original = c.sh_ok("cat /etc/ssl/msp-test/cert.pem /etc/ssl/msp-test/key.pem");
    let cert = Runbook::load_file(&repo_root().join("runbooks/RB-CERT-001.yaml")).unwrap();
    let mut inc = incident();
    inc.event_type = "cert_expiry".into();
    inc.unit = None;
    inc.details.insert("path".into(), serde_json::json!("/etc/ssl/msp-test/cert.pem"));
    let overrides = |renew_unit: &str| -> Vec<(String, String)> {
        [
            ("key_path", "/etc/ssl/msp-test/key.pem".to_string()),
            ("renew_unit", renew_unit.to_string()),
            ("reload_unit", "tls-test.service".to_string()),
            ("served_port", port.to_string()),
            ("server_name", "clinic.test".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };

    // A renewal that yields a certificate still inside the window: validation fails, the
    // rollback puts the original pair back and reloads; verification then fails (the original
    // still expires), so the run is `failed`, not `resolved`.
    let params = cert.bind_params(Some(&inc), &overrides("renew-bad.service")).unwrap();
    assert_eq!(params.get("cert_path"), Some("/etc/ssl/msp-test/cert.pem"));
    let report = execute(&cert, &params, &inc, &c.exec_config("cert-bad")).unwrap();
    let results: Vec<_> = report.steps.iter().map(|s| (s.step_id.as_str(), s.result)).collect();
    assert_eq!(
        results,
        [("inspect-and-backup", StepResult::Success), ("renew", StepResult::Success), ("validate", StepResult::Failed), ("reload", StepResult::Skipped)],
        "{:?}",
        report.steps
    );
    assert_eq!(report.rollback[0].result, StepResult::Success, "{:?}", report.rollback[0]);
    assert!(report.rollback[0].stdout_excerpt.contains("certificate restored") && report.rollback[0].stdout_excerpt.contains("key restored"));
    assert_eq!(c.sh_ok("cat /etc/ssl/msp-test/cert.pem /etc/ssl/msp-test/key.pem"), original, "original pair restored");
    assert_eq!(report.status, ResolutionStatus::Failed);

    // A good renewal: new certificate, key matches, reloaded, and the served certificate is
    // the new one.
    let params = cert.bind_params(Some(&inc), &overrides("renew-good.service")).unwrap();
    let cfg = c.exec_config("cert-good");
    let report = execute(&cert, &params, &inc, &cfg).unwrap();
    for s in &report.steps {
        assert_eq!(s.result, StepResult::Success, "{}: {:?} {} {}", s.step_id, s.error_message, s.stdout_excerpt, s.stderr_excerpt);
    }
    assert_eq!(report.status, ResolutionStatus::Resolved, "{:?}", report.verification);
    assert!(report.steps[2].stdout_excerpt.contains("key matches certificate"));
    assert!(report.verification.stdout_excerpt.contains("served: sha256 Fingerprint="), "{}", report.verification.stdout_excerpt);
    assert_ne!(c.sh_ok("cat /etc/ssl/msp-test/cert.pem /etc/ssl/msp-test/key.pem"), original);
    // The public certificate is evidence; the key never is.
    let names: Vec<String> = report.artifact_files().iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["cert-before.txt", "cert-before.pem", "cert-after.txt"]);
    for p in report.artifact_files() {
        assert!(!std::fs::read_to_string(p).unwrap().contains("PRIVATE KEY"));
    }
    // Re-running is a no-op: the certificate is now outside the renewal window.
    let report = execute(&cert, &params, &inc, &c.exec_config("cert-again")).unwrap();
    assert_eq!(report.status, ResolutionStatus::Resolved);
    assert!(report.steps[1].stdout_excerpt.contains("renewal not needed"), "{}", report.steps[1].stdout_excerpt);
}

#[test]
fn backup_runbook_end_to_end_against_a_real_systemd() {
    // The host's restic (Go, linked against libc only) runs in the Debian container as is.
    let Ok(restic) = which_restic() else {
        eprintln!("SKIPPED: restic is not installed (scripts/setup-machine installs it)");
        return;
    };
    let unit = "[Service]\nType=oneshot\nEnvironment=RESTIC_REPOSITORY=/srv/restic-repo\n\
                Environment=RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password\n\
                ExecStart=/usr/bin/restic --no-cache backup /srv/data\n";
    let Some(c) = SystemdContainer::start_with(&[("restic-backups-daily.service", unit)], &[("/usr/bin/restic", &restic)]) else {
        return;
    };
    // The backup fails once (its data directory is not there yet, as after a late mount)...
    c.sh_ok(
        "set -e; mkdir -p /etc/msp/secrets; echo 'correct horse' > /etc/msp/secrets/restic-password
         RESTIC_REPOSITORY=/srv/restic-repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password restic --no-cache -q init
         ! systemctl start --wait restic-backups-daily.service
         systemctl is-failed restic-backups-daily.service
         mkdir -p /srv/data; echo 'appointment schedule export' > /srv/data/export.csv",
    );
    // ...and the runbook, bound from the incident's unit, recovers it.
    let rb = Runbook::load_file(&repo_root().join("runbooks/RB-BACKUP-001.yaml")).unwrap();
    let mut inc = incident();
    inc.event_type = "backup_failure".into();
    inc.unit = Some("restic-backups-daily.service".into());
    assert!(rb.matches(&inc));
    let overrides = vec![
        ("repository".to_string(), "/srv/restic-repo".to_string()),
        ("password_file".to_string(), "/etc/msp/secrets/restic-password".to_string()),
    ];
    let params = rb.bind_params(Some(&inc), &overrides).unwrap();
    let cfg = c.exec_config("backup");
    let report = execute(&rb, &params, &inc, &cfg).unwrap();
    for s in &report.steps {
        assert_eq!(s.result, StepResult::Success, "{}: {:?} {} {}", s.step_id, s.error_message, s.stdout_excerpt, s.stderr_excerpt);
    }
    assert_eq!(report.status, ResolutionStatus::Resolved, "{:?}", report.verification);
    let state = std::fs::read_to_string(cfg.artifacts_dir().join("backup-unit-state.txt")).unwrap();
    assert!(state.contains("Result=exit-code"), "{state}");
    // restic's own output (it names the clinic's files) only as counts and a hash.
    let app = std::fs::read_to_string(cfg.scrubbed_dir().join("backup-app-output.txt")).unwrap();
    assert!(app.contains("app_journal_sha256=") && !app.contains("app_journal_lines=0\n"), "{app}");
    let systemd = std::fs::read_to_string(cfg.scrubbed_dir().join("backup-systemd.txt")).unwrap();
    assert!(systemd.contains("restic-backups-daily.service: Main process exited, code=exited"), "{systemd}");
    assert_application_text_absent(&c, "restic-backups-daily.service", &report, &cfg, &[]);
    assert!(report.steps[2].stdout_excerpt.contains("Result=success"));
    assert!(report.verification.stdout_excerpt.contains("age_hours=0 "), "{}", report.verification.stdout_excerpt);
    c.sh_ok("RESTIC_REPOSITORY=/srv/restic-repo RESTIC_PASSWORD_FILE=/etc/msp/secrets/restic-password restic --no-cache snapshots --json | grep -q /srv/data");
}

fn which_restic() -> Result<PathBuf, ()> {
    ["/usr/bin/restic", "/usr/local/bin/restic"].iter().map(PathBuf::from).find(|p| p.is_file()).ok_or(())
}

/// RB-DRIFT-001 in a real systemd with a stand-in NixOS generation: with `reapply` the
/// current generation's `switch-to-configuration switch` puts the governed file back and the
/// verification passes; without it the drift is recorded (hash and stat, never the content),
/// logged at crit to the real journal, and the verification fails "still drifted".
#[test]
fn drift_runbook_reapplies_the_generation_against_a_real_systemd() {
    let Some(c) = SystemdContainer::start(&[]) else {
        return;
    };
    let rb = Runbook::load_file(&repo_root().join("runbooks/RB-DRIFT-001.yaml")).unwrap();
    let good = "PasswordAuthentication no\n";
    let expected = hex::encode(Sha256::digest(good.as_bytes()));
    // The generation: its etc holds the good file; switching copies it back, as activation
    // re-links /etc from the generation, and (as msp-audit-rules-pending.service does under
    // audit lock when the rules changed) leaves the audit-rules-pending marker.
    let pending = "4f".repeat(32);
    c.sh_ok("rm -f /run/msp/audit-rules.pending.sha256");
    c.sh_ok(&format!(
        "mkdir -p /run/current-system/bin /run/current-system/etc/ssh /etc/ssh && printf '{good}' > /run/current-system/etc/ssh/sshd_config && \
         printf '#!/bin/sh\\nset -e\\n[ \"$1\" = switch ]\\ncp /run/current-system/etc/ssh/sshd_config /etc/ssh/sshd_config\\nmkdir -p /run/msp && echo {pending} > /run/msp/audit-rules.pending.sha256\\necho activated\\n' > /run/current-system/bin/switch-to-configuration && \
         chmod +x /run/current-system/bin/switch-to-configuration"
    ));
    let drifted = "PasswordAuthentication yes\n";
    let actual = hex::encode(Sha256::digest(drifted.as_bytes()));
    let drift = |reapply: bool| {
        let mut inc = incident();
        inc.event_type = "config_drift".into();
        inc.source = IncidentSource::Inotify;
        inc.details = BTreeMap::from([
            ("path".to_string(), serde_json::json!("/etc/ssh/sshd_config")),
            ("expected_sha256".to_string(), serde_json::json!(expected)),
            ("actual_sha256".to_string(), serde_json::json!(actual)),
            ("expected_from".to_string(), serde_json::json!("manifest")),
            ("reapply".to_string(), serde_json::json!(reapply)),
        ]);
        inc
    };

    // Not configured to re-apply: recorded, alerted, still drifted.
    c.sh_ok(&format!("printf '{drifted}' > /etc/ssh/sshd_config"));
    let inc = drift(false);
    let params = rb.bind_params(Some(&inc), &[]).unwrap();
    let cfg = c.exec_config("drift-record");
    let report = execute(&rb, &params, &inc, &cfg).unwrap();
    let results: Vec<_> = report.steps.iter().map(|s| (s.step_id.as_str(), s.result)).collect();
    assert_eq!(results, [("record-state", StepResult::Success), ("alert", StepResult::Success), ("reapply", StepResult::Success)], "{:?}", report.steps);
    assert!(report.steps[2].stdout_excerpt.contains("re-apply not configured"), "{}", report.steps[2].stdout_excerpt);
    assert_eq!(report.status, ResolutionStatus::Failed);
    assert!(report.verification.stderr_excerpt.contains("still drifted"), "{:?}", report.verification);
    let state = std::fs::read_to_string(cfg.artifacts_dir().join("drift-state.txt")).unwrap();
    assert!(state.contains(&format!("sha256_now: {actual}")) && state.contains("mode: "), "{state}");
    assert!(!state.contains("PasswordAuthentication"), "content copied into evidence: {state}");
    assert!(state.contains("audit_rules_pending_reboot: no"), "{state}");
    // The crit line reached the container's journal.
    let logged = c.sh_ok("journalctl -p crit -t msp-agent-drift --no-pager -o cat || true");
    assert!(logged.contains("drift of /etc/ssh/sshd_config"), "journal: {logged}; step: {}", report.steps[1].stdout_excerpt);

    // Configured: the generation is re-applied and the verification passes.
    let inc = drift(true);
    let params = rb.bind_params(Some(&inc), &[]).unwrap();
    let report = execute(&rb, &params, &inc, &c.exec_config("drift-reapply")).unwrap();
    assert!(report.steps[2].stdout_excerpt.contains("current generation re-applied"), "{:?}", report.steps[2]);
    // The evidence says the new audit rules wait for a reboot (the marker's existence, never
    // its contents).
    assert!(report.steps[2].stdout_excerpt.contains("audit rules pending reboot: yes"), "{:?}", report.steps[2]);
    assert!(!report.steps[2].stdout_excerpt.contains(&pending), "{:?}", report.steps[2]);
    assert_eq!(report.status, ResolutionStatus::Resolved, "{:?}", report.verification);
    assert_eq!(c.sh_ok("cat /etc/ssh/sshd_config"), good);
}

#[test]
fn backup_runbook_waits_for_a_repository_that_comes_back_and_gives_up_on_one_that_does_not() {
    if !restic_available() {
        return;
    }
    let fx = ResticFixture::new(None);
    let mut rb = fx.runbook("RB-BACKUP-001");
    rb.steps = vec![rb.steps[1].clone()]; // check-repository
    let repo = PathBuf::from(fx.path("repo"));
    let away = PathBuf::from(fx.path("repo.away"));
    let bind = |wait: &str| {
        let overrides: Vec<(String, String)> = [
            ("repository", fx.path("repo")),
            ("password_file", fx.path("secrets/pw")),
            ("repository_wait_seconds", wait.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        rb.bind_params(None, &overrides).unwrap()
    };

    // The NAS is away for three seconds: the step waits for it, then goes on.
    std::fs::rename(&repo, &away).unwrap();
    let (a, r) = (away.clone(), repo.clone());
    let back = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(3));
        std::fs::rename(&a, &r).unwrap();
    });
    let run = run_cfg();
    let report = execute(&rb, &bind("30"), &incident(), &run.cfg).unwrap();
    back.join().unwrap();
    let s = &report.steps[0];
    assert_eq!(s.result, StepResult::Success, "{:?} {}", s.error_message, s.stderr_excerpt);
    assert!(s.stdout_excerpt.contains("repository unreachable; retrying"), "it waited: {}", s.stdout_excerpt);
    assert!(s.stdout_excerpt.contains("repository reachable"), "{}", s.stdout_excerpt);

    // Away for good: the step gives up after the wait and says why.
    std::fs::rename(&repo, &away).unwrap();
    let run = run_cfg();
    let report = execute(&rb, &bind("2"), &incident(), &run.cfg).unwrap();
    let s = &report.steps[0];
    assert_eq!(s.result, StepResult::Failed);
    assert!(s.stderr_excerpt.contains("repository unreachable after waiting 2s"), "{}", s.stderr_excerpt);
}
