//! Hostile files and values (issue 18, items 5, 7, 8, 10, 11, 13, 14, 15, 16): every test is
//! named after its item and failed before the fix. Each drives the real loaders, the real
//! binary where the item is about the CLI, and real `pdftotext` for the PDF.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use msp_agent::config::Config;
use msp_agent::runbook::Runbook;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn agent(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msp-agent")).args(args).current_dir(cwd).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn config_err(text: &str) -> String {
    match Config::parse(Path::new("/etc/msp/agent.yaml"), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => format!("{e:#}"),
    }
}

/// A valid runbook; `params` and `criteria` are spliced in.
fn runbook(params: &str, criteria: &str) -> String {
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
steps:
  - id: a
    action: a
    timeout_seconds: 5
    script: "true"
    success_criteria: '{criteria}'
rollback: []
verification:
  id: verify
  action: check
  timeout_seconds: 5
  script: "true"
"#
    )
}

fn load_runbook(dir: &Path, bytes: &[u8]) -> Result<Runbook, String> {
    let p = dir.join("RB-TEST-001.yaml");
    fs::write(&p, bytes).unwrap();
    Runbook::load_file(&p).map_err(|e| e.to_string())
}

/// A temp copy of the repository's baseline files, laid out so `baseline check`'s defaults
/// apply (runbooks: `id:` stubs for the ids the baseline names).
struct BaselineFixture {
    dir: tempfile::TempDir,
}

impl BaselineFixture {
    fn new() -> BaselineFixture {
        let dir = tempfile::tempdir().unwrap();
        let b = dir.path().join("baseline");
        fs::create_dir_all(b.join("exceptions")).unwrap();
        for f in ["hipaa-v1.yaml", "controls-map.csv", "exceptions/clinic-001.yaml"] {
            fs::copy(repo().join("baseline").join(f), b.join(f)).unwrap();
        }
        let rb = dir.path().join("runbooks");
        fs::create_dir_all(&rb).unwrap();
        for entry in fs::read_dir(repo().join("runbooks")).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "yaml") {
                fs::copy(&p, rb.join(p.file_name().unwrap())).unwrap();
            }
        }
        BaselineFixture { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }
    fn check_at(&self, at: &str) -> Output {
        agent(&["baseline", "check", "--at", at], self.dir.path())
    }
}

const EXC: &str = "baseline/exceptions/clinic-001.yaml";
const CHECK_DAY: &str = "2026-11-22";

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("`{needle}` not found")) + 1
}

// ---------------------------------------------------------------- item 5

#[test]
fn item_5_duplicate_keys_rejected_at_every_depth() {
    // Config: a runbook listed as deny and then as auto used to run (last wins).
    let err = config_err("client_id: c\nclient_permissions:\n  RB-DISK-001: deny\n  RB-DISK-001: auto\n");
    assert_eq!(
        err,
        "/etc/msp/agent.yaml:4: client_permissions.RB-DISK-001: duplicate key (first on line 3, again on line 4)"
    );
    // Deeper: a host parameter given twice.
    let err = config_err("client_id: c\nrunbook_parameters:\n  RB-CERT-001:\n    renew_unit: a.service\n    renew_unit: b.service\n");
    assert!(err.contains(":5: runbook_parameters.RB-CERT-001.renew_unit: duplicate key (first on line 4, again on line 5)"), "{err}");
    // Flow style and quoting do not hide a duplicate.
    let err = config_err("client_id: c\nclient_permissions: {RB-DISK-001: deny, \"RB-DISK-001\": auto}\n");
    assert!(err.contains("duplicate key"), "{err}");

    // Runbook: a parameter declared twice, the second without its pattern.
    let d = tempfile::tempdir().unwrap();
    let params = "  unit:\n    type: string\n    pattern: '[a-z]+'\n    default: nginx\n  unit:\n    type: string\n    default: nginx\n";
    let text = runbook(params, "exit_code == 0");
    let line2 = line_of(&text, "  unit:") + 4;
    let err = load_runbook(d.path(), text.as_bytes()).unwrap_err();
    assert!(err.ends_with(&format!(":{line2}: parameters.unit: duplicate key (first on line {}, again on line {line2})", line2 - 4)), "{err}");
    // ... and inside a step (the whole runbook is scanned, not only the top level).
    let text = runbook("  {}", "exit_code == 0").replace("    script: \"true\"\n    success", "    script: \"true\"\n    script: \"rm -rf /\"\n    success");
    let err = load_runbook(d.path(), text.as_bytes()).unwrap_err();
    assert!(err.contains("steps[0].script: duplicate key"), "{err}");
    // `runbook lint` says the same (exit 1).
    let out = agent(&["runbook", "lint", d.path().join("RB-TEST-001.yaml").to_str().unwrap()], d.path());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("duplicate key") || stderr(&out).contains("duplicate key"));

    // Exceptions: both lines named.
    let fx = BaselineFixture::new();
    let text = fx.read(EXC).replacen("    risk_level: low\n", "    risk_level: low\n    risk_level: critical\n", 1);
    fs::write(fx.path(EXC), &text).unwrap();
    let l = line_of(&text, "risk_level: critical");
    let out = fx.check_at(CHECK_DAY);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!("{EXC}:{l}: (syntax): duplicate key `risk_level` (first on line {}, again on line {l})", l - 1)),
        "{}",
        stdout(&out)
    );

    // The `worm:` section read by `worm sync --config`.
    let cfg = d.path().join("agent.yaml");
    fs::write(&cfg, "client_id: c\nworm:\n  bucket: a\n  bucket: b\n").unwrap();
    let err = format!("{:#}", msp_agent::worm::load_config_section(&cfg).unwrap_err());
    assert!(err.contains(":4: worm.bucket: duplicate key (first on line 3, again on line 4)"), "{err}");
}

// ---------------------------------------------------------------- item 7

#[test]
fn item_7_numeric_config_values_are_bounded_at_parse_time() {
    let max = u64::MAX.to_string();
    let u32max = u32::MAX.to_string();
    let cases: &[(&str, &str, &str)] = &[
        ("guard:\n  cooldown_seconds: {}\n", &max, "guard.cooldown_seconds"),
        ("guard:\n  max_backoff_multiplier: {}\n", &u32max, "guard.max_backoff_multiplier"),
        ("heartbeat:\n  interval_seconds: {}\n", &max, "heartbeat.interval_seconds"),
        ("probes:\n  interval_seconds: {}\n", &max, "probes.interval_seconds"),
        ("probes:\n  cpu:\n    sustained_seconds: {}\n", &max, "probes.cpu.sustained_seconds"),
        ("probes:\n  certs:\n    warn_days: {}\n", &u32max, "probes.certs.warn_days"),
        ("probes:\n  restore_test:\n    interval_days: {}\n", &u32max, "probes.restore_test.interval_days"),
        ("alert:\n  timeout_seconds: {}\n", &max, "alert.timeout_seconds"),
        ("alert:\n  retries: {}\n", &u32max, "alert.retries"),
        ("journal:\n  down_record_after_seconds: {}\n", &max, "journal.down_record_after_seconds"),
        ("journal:\n  dedupe_window_seconds: {}\n", &max, "journal.dedupe_window_seconds"),
        ("max_concurrent_runbooks: {}\n", &max, "max_concurrent_runbooks"),
        ("worm:\n  bucket: b\n  retention_days: {}\n", "99999999", "worm.retention_days"),
        ("worm:\n  bucket: b\n  request_timeout_seconds: {}\n", &max, "worm.request_timeout_seconds"),
        ("worm:\n  bucket: b\n  outage_alert_after_seconds: {}\n", &max, "worm.outage_alert_after_seconds"),
    ];
    for (tmpl, value, key) in cases {
        let section = tmpl.replace("{}", value);
        let text = format!("client_id: c\n{section}");
        let err = config_err(&text);
        let line = text.lines().count();
        assert!(
            err.starts_with(&format!("/etc/msp/agent.yaml:{line}: {key}: {value} is outside the allowed range ")),
            "{key}: {err}"
        );
    }
    // The defaults and ordinary values still pass.
    Config::parse(Path::new("a.yaml"), "client_id: c\nguard:\n  cooldown_seconds: 86400\nworm:\n  bucket: b\n  retention_days: 2555\n").unwrap();

    // The CLI flag: clap refuses it (exit 2) naming the flag and the range.
    let d = tempfile::tempdir().unwrap();
    let out = agent(&["worm", "sync", "--bucket", "b", "--endpoint", "http://127.0.0.1:9", "--retention-days", "99999999"], d.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--retention-days") && stderr(&out).contains("1..=36500"), "{}", stderr(&out));
}

// ---------------------------------------------------------------- item 8

#[test]
fn item_8_deeply_nested_success_criterion_is_an_error_not_a_stack_overflow() {
    let d = tempfile::tempdir().unwrap();
    for (what, expr, column) in [
        ("not", format!("{}exit_code == 0", "not ".repeat(10_000)), 129),
        ("parentheses", format!("{}exit_code == 0{}", "(".repeat(10_000), ")".repeat(10_000)), 33),
    ] {
        let text = runbook("  {}", &expr);
        let file = d.path().join("RB-TEST-001.yaml");
        fs::write(&file, &text).unwrap();
        let line = line_of(&text, "success_criteria:");
        let out = agent(&["runbook", "lint", file.to_str().unwrap()], d.path());
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{what}: not a clean lint failure (a signal?): {all}");
        assert!(all.contains(&format!("RB-TEST-001.yaml:{line}: steps[0].success_criteria: invalid success criteria")), "{what}: {all}");
        assert!(all.contains(&format!("nested deeper than 32 levels of `not` and parentheses (at column {column} of the expression)")), "{what}: {all}");
        assert!(all.len() < 2000, "the error quotes a bounded excerpt, not the whole expression: {} bytes", all.len());
    }
    // A long flat chain is bounded too (it is as deep a tree as it is long).
    let chain = vec!["exit_code == 0"; 5000].join(" or ");
    let err = load_runbook(d.path(), runbook("  {}", &chain).as_bytes()).unwrap_err();
    assert!(err.contains("more than 256 tests in one expression"), "{err}");
}

// ---------------------------------------------------------------- item 10

#[test]
fn item_10_deep_yaml_nesting_fails_fast_in_every_loader() {
    let d = tempfile::tempdir().unwrap();
    let block_maps: String = (0..600).map(|i| format!("{}k:\n", "  ".repeat(i))).collect();
    let block_seqs = format!("x:\n{}1\n", "- ".repeat(100_000));
    let flow = format!("x: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    for (name, body) in [("block mappings", &block_maps), ("block sequences", &block_seqs), ("flow", &flow)] {
        let t = Instant::now();
        let cfg_err = config_err(&format!("client_id: c\n{body}"));
        let rb_err = load_runbook(d.path(), format!("{body}id: RB-TEST-001\n").as_bytes()).unwrap_err();
        let doc_err = msp_agent::baseline::yaml::parse(body).unwrap_err();
        let took = t.elapsed();
        for e in [&cfg_err, &rb_err, &doc_err.to_string()] {
            assert!(e.contains("nested deeper than 64 levels") || e.contains("recursion limit exceeded"), "{name}: {e}");
        }
        assert!(took < Duration::from_secs(3), "{name}: {took:?}");
    }
}

// ---------------------------------------------------------------- item 11

#[test]
fn item_11_nul_and_invalid_utf8_rejected_with_file_and_line() {
    // The exceptions file: a NUL before the second exception used to drop it silently.
    let fx = BaselineFixture::new();
    let text = fx.read(EXC);
    let l = line_of(&text, "id: EXC-clinic-001-002");
    let bytes = text.replacen("  - id: EXC-clinic-001-002", "\0 - id: EXC-clinic-001-002", 1);
    fs::write(fx.path(EXC), bytes).unwrap();
    let out = fx.check_at(CHECK_DAY);
    assert_ne!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stderr(&out).contains(&format!("{EXC}:{l}: NUL byte at column 1")), "{}{}", stdout(&out), stderr(&out));
    let out = agent(&["baseline", "render", "--out", fx.path("rendered").to_str().unwrap()], fx.dir.path());
    assert_ne!(out.status.code(), Some(0), "render must refuse it too: {}", stdout(&out));

    // The baseline: invalid UTF-8 names the line.
    let fx = BaselineFixture::new();
    let f = "baseline/hipaa-v1.yaml";
    let mut bytes = fx.read(f).into_bytes();
    let at = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(9).unwrap().0 + 1;
    bytes.insert(at, 0xff);
    fs::write(fx.path(f), &bytes).unwrap();
    let out = fx.check_at(CHECK_DAY);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{f}:11: not valid UTF-8 (byte 0xff at column 1)")), "{}", stderr(&out));

    // The controls map (CSV).
    let fx = BaselineFixture::new();
    let f = "baseline/controls-map.csv";
    let text = fx.read(f);
    fs::write(fx.path(f), text.replacen('\n', "\n\0", 2)).unwrap();
    let out = fx.check_at(CHECK_DAY);
    assert!(stderr(&out).contains(&format!("{f}:2: NUL byte at column 1")), "{}", stderr(&out));

    // Config and runbook.
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("agent.yaml");
    fs::write(&cfg, b"client_id: c\nhostname: a\0b\n").unwrap();
    let err = format!("{:#}", Config::load(&cfg).unwrap_err());
    assert!(err.contains("agent.yaml:2: NUL byte at column 12"), "{err}");
    let mut rb = runbook("  {}", "exit_code == 0").into_bytes();
    rb.splice(0..0, b"# \xc3\x28\n".iter().copied());
    assert!(load_runbook(d.path(), &rb).unwrap_err().ends_with(":1: not valid UTF-8 (byte 0xc3 at column 3)"));
}

// ---------------------------------------------------------------- item 13

#[test]
fn item_13_last_reviewed_in_the_future_is_rejected() {
    // clinic-001's first exception was last reviewed 2026-11-15: checked that UTC day it is
    // fine, checked the day before the review is dated in the future.
    let fx = BaselineFixture::new();
    let text = fx.read(EXC);
    let l = line_of(&text, "last_reviewed: 2026-11-15");
    let same_day = fx.check_at("2026-11-15");
    assert!(!stdout(&same_day).contains("last_reviewed"), "{}", stdout(&same_day));
    let before = fx.check_at("2026-11-14");
    assert_eq!(before.status.code(), Some(1));
    assert!(
        stdout(&before).contains(&format!("{EXC}:{l}: exceptions[0].last_reviewed: EXC-clinic-001-001: last_reviewed 2026-11-15 is after the check date 2026-11-14")),
        "{}",
        stdout(&before)
    );
    // Against the real clock (UTC): today is fine, tomorrow is an error.
    let today = chrono::Utc::now().date_naive();
    for (day, bad) in [(today, false), (today.succ_opt().unwrap(), true)] {
        let fx = BaselineFixture::new();
        fs::write(fx.path(EXC), text.replacen("last_reviewed: 2026-11-15", &format!("last_reviewed: {day}"), 1)).unwrap();
        let out = agent(&["baseline", "check"], fx.dir.path());
        assert_eq!(stdout(&out).contains(&format!("last_reviewed {day} is after the check date")), bad, "{day}: {}", stdout(&out));
    }
}

// ---------------------------------------------------------------- item 14

#[test]
fn item_14_right_lines_for_repeated_key_names_bom_and_utf8() {
    // `interval_seconds` is a key of heartbeat and of probes: the error names probes' line.
    let err = config_err("client_id: c\nheartbeat:\n  interval_seconds: 900\nprobes:\n  interval_seconds: 0\n");
    assert_eq!(err, "/etc/msp/agent.yaml:5: probes.interval_seconds: 0 is outside the allowed range 1..=86400");
    let err = config_err("client_id: c\nalert:\n  timeout_seconds: 5\nworm:\n  bucket: b\n  request_timeout_seconds: 99999\n");
    assert!(err.starts_with("/etc/msp/agent.yaml:6: worm.request_timeout_seconds"), "{err}");
    // An approved hash whose id also appears elsewhere (client_permissions before it).
    let err = config_err("client_id: c\nclient_permissions:\n  RB-DISK-001: auto\napproved_runbooks:\n  RB-DISK-001: abc\n");
    assert_eq!(err, "/etc/msp/agent.yaml:5: approved_runbooks.RB-DISK-001: expected a SHA-256 in hex (64 characters)");

    // A byte-order mark: one clear error at line 1 in every YAML file.
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("agent.yaml");
    fs::write(&cfg, b"\xEF\xBB\xBFclient_id: c\n").unwrap();
    let err = format!("{:#}", Config::load(&cfg).unwrap_err());
    assert!(err.contains("agent.yaml:1: the file starts with a UTF-8 byte-order mark: save it as UTF-8 without a BOM"), "{err}");
    let mut rb = b"\xEF\xBB\xBF".to_vec();
    rb.extend(runbook("  {}", "exit_code == 0").into_bytes());
    assert!(load_runbook(d.path(), &rb).unwrap_err().ends_with(":1: the file starts with a UTF-8 byte-order mark: save it as UTF-8 without a BOM"));
    let fx = BaselineFixture::new();
    let mut exc = b"\xEF\xBB\xBF".to_vec();
    exc.extend(fx.read(EXC).into_bytes());
    fs::write(fx.path(EXC), exc).unwrap();
    let out = fx.check_at(CHECK_DAY);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&format!("{EXC}:1: (syntax): the file starts with a UTF-8 byte-order mark")), "{}{}", stdout(&out), stderr(&out));

    // Invalid UTF-8 in the config names its line.
    fs::write(&cfg, b"client_id: c\nhostname: caf\xe9\n").unwrap();
    let err = format!("{:#}", Config::load(&cfg).unwrap_err());
    assert!(err.contains("agent.yaml:2: not valid UTF-8 (byte 0xe9 at column 14)"), "{err}");
}

// ---------------------------------------------------------------- item 15

#[test]
fn item_15_pdf_splits_a_table_row_taller_than_a_page() {
    use msp_agent::packet::doc::{Block, Doc, Tone};
    // 3000 numbered words in one cell: about 20 pages' worth of lines in a narrow column.
    let words: Vec<String> = (0..3000).map(|i| format!("w{i:05}")).collect();
    let doc = Doc {
        title: "Tall row".into(),
        subtitle: vec![],
        blocks: vec![
            // A figure value taller than a page (same defect, next to it).
            Block::Figures(vec![("Figure".into(), (0..3000).map(|i| format!("f{i:05}")).collect::<Vec<_>>().join(" "), Tone::Normal)]),
            Block::Table {
            columns: vec![("Item".into(), 1.0), ("Details".into(), 1.0)],
            rows: vec![
                (vec!["first".into(), "short".into()], Tone::Normal),
                (vec!["tall".into(), words.join(" ")], Tone::Bad),
                (vec!["after".into(), "the end".into()], Tone::Normal),
            ],
            empty: String::new(),
        },
        ],
    };
    let figure_words: Vec<String> = (0..3000).map(|i| format!("f{i:05}")).collect();
    let d = tempfile::tempdir().unwrap();
    let pdf = d.path().join("p.pdf");
    let pages = msp_agent::packet::pdf::write(&doc, "footer", &pdf).unwrap();
    assert!(pages > 2, "{pages} pages");
    let out = Command::new("pdftotext").args(["-layout"]).arg(&pdf).arg("-").output().expect("pdftotext (poppler-utils) must be installed");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let missing: Vec<&String> = words.iter().filter(|w| !text.contains(w.as_str())).collect();
    assert!(missing.is_empty(), "{} of {} words missing from the PDF, first {:?}", missing.len(), words.len(), missing.first());
    assert!(text.contains("the end"));
    let missing = figure_words.iter().filter(|w| !text.contains(w.as_str())).count();
    assert_eq!(missing, 0, "figure words missing from the PDF");
}

// ---------------------------------------------------------------- item 16

#[test]
fn item_16_version_number_roots_symlink_baseline_ref_and_fifo() {
    let d = tempfile::tempdir().unwrap();
    // `version: 1.0` (a YAML number) is refused, as the template says.
    let text = runbook("  {}", "exit_code == 0").replace("version: \"1.0.0\"", "version: 1.0");
    let err = load_runbook(d.path(), text.as_bytes()).unwrap_err();
    assert!(err.contains(":3: version: invalid type: floating point `1.0`, expected a quoted version string"), "{err}");
    let text = runbook("  {}", "exit_code == 0").replace("version: \"1.0.0\"", "version: \"1.0\\n$(id)\"");
    assert!(load_runbook(d.path(), text.as_bytes()).unwrap_err().contains("invalid version"));

    // allowed_roots: a symlink inside the root must not reach outside it.
    let root = d.path().join("root");
    fs::create_dir_all(root.join("sub")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
    let params = format!("  target:\n    type: path\n    allowed_roots: [{}]\n", root.display());
    let rb = load_runbook(d.path(), runbook(&params, "exit_code == 0").as_bytes()).unwrap();
    let bind = |v: &str| rb.bind_params(None, &[("target".into(), v.into())]);
    let err = bind(&format!("{}/link/passwd", root.display())).unwrap_err().to_string();
    assert!(err.contains("resolves to /etc/passwd, outside the allowed roots"), "{err}");
    // A dangling link to outside (to be created later) is refused too.
    std::os::unix::fs::symlink("/nonexistent-dir", root.join("dangling")).unwrap();
    let err = bind(&format!("{}/dangling/x", root.display())).unwrap_err().to_string();
    assert!(err.contains("is a symlink"), "{err}");
    // A path that does not exist yet, inside the root, is fine; so is a symlink whose
    // target is inside the root (the resolved path is what the script gets).
    let p = bind(&format!("{}/sub/new-file", root.display())).unwrap();
    assert_eq!(p.get("target").unwrap(), format!("{}/sub/new-file", root.canonicalize().unwrap().display()));
    std::os::unix::fs::symlink(root.join("sub"), root.join("inside")).unwrap();
    let p2 = bind(&format!("{}/inside/f", root.display())).unwrap();
    assert_eq!(p2.get("target").unwrap(), format!("{}/sub/f", root.canonicalize().unwrap().display()));
    p.recheck_paths().unwrap();
    // Swapped for a symlink after binding: the check before each step refuses it.
    fs::remove_dir(root.join("sub")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("sub")).unwrap();
    let err = p.recheck_paths().unwrap_err();
    assert!(err.contains("sub is a symlink (changed since the parameters were bound)"), "{err}");

    // baseline.sha256 and baseline.version reach heartbeats: validated at config load.
    let err = config_err("client_id: c\nbaseline:\n  sha256: \"abc\\u2028injected\"\n");
    assert_eq!(err, "/etc/msp/agent.yaml:3: baseline.sha256: expected 64 lower-case hex digits (a SHA-256)");
    let upper = "A".repeat(64);
    assert!(config_err(&format!("client_id: c\nbaseline:\n  sha256: {upper}\n")).contains("baseline.sha256"));
    let err = config_err("client_id: c\nbaseline:\n  version: \"1.0.0 <script>\"\n");
    assert!(err.starts_with("/etc/msp/agent.yaml:3: baseline.version: \"1.0.0 <script>\" must be a version like 1.0.0"), "{err}");
    let ok = format!("client_id: c\nbaseline:\n  version: 1.0.0\n  sha256: {}\n", "0a".repeat(32));
    Config::parse(Path::new("a.yaml"), &ok).unwrap();

    // A FIFO as --journal-file: said what it is, and nothing blocks on it.
    let fifo = d.path().join("j.journal");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let t = Instant::now();
    let out = agent(&["detect", "--journal-file", fifo.to_str().unwrap()], d.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("journal file {}: not a regular file (a FIFO)", fifo.display())), "{}", stderr(&out));
    assert!(t.elapsed() < Duration::from_secs(10));
    let out = agent(&["detect", "--journal-file", d.path().to_str().unwrap()], d.path());
    assert!(stderr(&out).contains("not a regular file (a directory)"), "{}", stderr(&out));
    // The same for every text file the agent reads: a FIFO is named, never read (it would
    // block forever).
    let err = format!("{:#}", Config::load(&fifo).unwrap_err());
    assert!(err.contains("j.journal is not a regular file (a FIFO)"), "{err}");
    let fifo_rb = d.path().join("RB-FIFO-001.yaml");
    nix::unistd::mkfifo(&fifo_rb, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = Runbook::load_file(&fifo_rb).unwrap_err().to_string();
    assert_eq!(err, format!("{}: not a regular file (a FIFO)", fifo_rb.display()));
    let out = agent(&["runbook", "lint", d.path().to_str().unwrap()], d.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("RB-FIFO-001.yaml: not a regular file (a FIFO)"), "{}", stdout(&out));
    let out = agent(&["runbook", "lint", fifo_rb.to_str().unwrap()], d.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RB-FIFO-001.yaml is not a regular file (a FIFO)"), "{}", stderr(&out));
}

// ---------------------------------------------------------------- fuzz findings

/// Found by `fuzz_bundle_verification` (200,000-case run): an `.sshsig` whose signature
/// length field was changed to run past the end of the blob still verified with
/// `evidence verify`, because `ssh-key`'s decoder is lenient; `ssh-keygen -Y verify` refuses
/// it. The verifier now accepts only the canonical encoding.
#[test]
fn fuzz_finding_sshsig_with_a_length_past_its_end_is_refused_like_ssh_keygen_does() {
    use base64::Engine;
    let d = tempfile::tempdir().unwrap();
    let (keys, store) = (d.path().join("keys"), d.path().join("store"));
    assert!(agent(&["key", "generate", "--out", keys.to_str().unwrap()], d.path()).status.success());
    let out = agent(&["evidence", "write-test-bundles", "--count", "1", "--root", store.to_str().unwrap(), "--keys", keys.to_str().unwrap()], d.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let verify = || agent(&["evidence", "verify", "--keys", keys.to_str().unwrap(), store.to_str().unwrap()], d.path());
    assert_eq!(verify().status.code(), Some(0), "{}", stdout(&verify()));
    let bundle = find_bundle(&store).expect("a bundle in the store");
    let sshsig_path = PathBuf::from(format!("{}.sshsig", bundle.display()));
    let pem = fs::read_to_string(&sshsig_path).unwrap();
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut blob = base64::engine::general_purpose::STANDARD.decode(&b64).unwrap();
    // The signature's length field follows the hash algorithm name.
    let at = blob.windows(6).position(|w| w == b"sha512").unwrap() + 6;
    assert_eq!(&blob[at..at + 4], &[0, 0, 0, 0x53]);
    blob[at + 2] = 0x20;
    let enc = base64::engine::general_purpose::STANDARD.encode(&blob);
    let lines: Vec<&str> = enc.as_bytes().chunks(70).map(|c| std::str::from_utf8(c).unwrap()).collect();
    fs::write(&sshsig_path, format!("-----BEGIN SSH SIGNATURE-----\n{}\n-----END SSH SIGNATURE-----\n", lines.join("\n"))).unwrap();
    // The stock tool refuses it ...
    let stock = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-f"])
        .arg(keys.join("allowed_signers"))
        .args(["-I", "msp-evidence", "-n", "msp-evidence", "-s"])
        .arg(&sshsig_path)
        .stdin(fs::File::open(&bundle).unwrap())
        .output()
        .unwrap();
    assert!(!stock.status.success(), "ssh-keygen accepted it: {}", String::from_utf8_lossy(&stock.stdout));
    // ... and so does the agent.
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("is not in the canonical SSHSIG encoding"), "{}", stdout(&out));
}

fn find_bundle(dir: &Path) -> Option<PathBuf> {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if let Some(found) = find_bundle(&p) {
                return Some(found);
            }
        } else if name.starts_with("EB-") && name.ends_with(".json") {
            return Some(p);
        }
    }
    None
}
