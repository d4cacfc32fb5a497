//! Fuzz targets (issue 18), run as ordinary tests with proptest on stable Rust: the YAML
//! loaders (config, runbook, baseline, exceptions), the journal export parser, the criteria
//! parser and bundle verification. Each target feeds both arbitrary bytes and mutations of a
//! real, valid input (the shipped runbooks and baseline, a real signed bundle), so the cases
//! reach past the first syntax check.
//!
//! Properties: nothing panics (proptest turns a panic into a failing, shrunk case); a stack
//! overflow or abort fails the whole test binary. For verification also: mutated or arbitrary
//! bytes are never accepted.
//!
//! Budget: `MSP_FUZZ_CASES` cases per target (default 256, a few seconds in all, for CI);
//! e.g. `MSP_FUZZ_CASES=200000 cargo test --release --test fuzz` for a long run.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use proptest::prelude::*;
use proptest::test_runner::{Config as PtConfig, TestRunner};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn cases() -> u32 {
    std::env::var("MSP_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256)
}

fn runner() -> TestRunner {
    TestRunner::new(PtConfig { cases: cases(), failure_persistence: None, ..PtConfig::default() })
}

/// One edit of a byte string: (position as a fraction of the length, kind, byte).
type Edit = (u32, u8, u8);

/// Bytes that matter to YAML, JSON and the export format, plus anything at all.
fn interesting_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => prop::sample::select(b":-[]{},'\"#&*!|>?%@`\n\r\t \\0123456789.~=".to_vec()),
        1 => Just(0u8),
        1 => Just(0xffu8),
        2 => any::<u8>(),
    ]
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec((any::<u32>(), 0u8..6, interesting_byte()), 1..8)
}

/// Apply edits: replace, insert, delete, duplicate a chunk (repeats structure: nesting,
/// duplicate keys), truncate, or flip one bit.
fn mutate(base: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = base.to_vec();
    for &(pos, kind, byte) in edits {
        let at = if v.is_empty() { 0 } else { pos as usize % v.len() };
        match kind {
            0 if !v.is_empty() => v[at] = byte,
            1 => v.insert(at, byte),
            2 if !v.is_empty() => {
                v.remove(at);
            }
            3 => {
                let end = (at + 1 + byte as usize).min(v.len());
                let chunk = v[at..end].to_vec();
                v.splice(at..at, chunk);
            }
            4 => v.truncate(at),
            _ if !v.is_empty() => v[at] ^= 1 << (byte % 8),
            _ => v.push(byte),
        }
    }
    v
}

/// Either arbitrary bytes or a mutation of one of `bases`.
fn input(bases: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = bases.len();
    prop_oneof![
        1 => prop::collection::vec(interesting_byte(), 0..600),
        4 => (0..n, edits()).prop_map(move |(i, e)| mutate(&bases[i], &e)),
    ]
}

fn read(rel: &str) -> Vec<u8> {
    fs::read(repo().join(rel)).unwrap()
}

fn shipped_runbooks() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = fs::read_dir(repo().join("runbooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| fs::read(p).unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn fuzz_config_loader() {
    let bases = vec![
        Vec::new(),
        b"client_id: clinic-001\nhostname: srv\nclient_permissions:\n  RB-DISK-001: auto\n  RB-CPU-001: deny\napproved_runbooks:\n  RB-DISK-001: 0000000000000000000000000000000000000000000000000000000000000000\nguard:\n  cooldown_seconds: 300\n  max_backoff_multiplier: 8\nprobes:\n  interval_seconds: 30\n  disk: {enabled: true, threshold_percent: 90, mounts: [/]}\nheartbeat:\n  interval_seconds: 900\nbaseline:\n  version: 1.0.0\n  sha256: 0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a\nworm:\n  bucket: b\n  retention_days: 2555\nrunbook_parameters:\n  RB-CERT-001:\n    renew_unit: a.service\n".to_vec(),
    ];
    runner()
        .run(&input(bases), |bytes| {
            if let Ok(text) = msp_agent::yamlutil::decode(&bytes) {
                let _ = msp_agent::config::Config::parse(Path::new("agent.yaml"), text);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_runbook_loader() {
    runner()
        .run(&input(shipped_runbooks()), |bytes| {
            let _ = msp_agent::runbook::Runbook::from_bytes(Path::new("RB-FUZZ-001.yaml"), &bytes);
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_baseline_loader() {
    use msp_agent::baseline::{model, report::Findings};
    let base = read("baseline/hipaa-v1.yaml");
    // Cut it in pieces so mutations land all over it with few edits.
    let bases: Vec<Vec<u8>> = vec![base.clone(), base[..base.len() / 3].to_vec(), base[base.len() / 2..].to_vec()];
    runner()
        .run(&input(bases), |bytes| {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let mut out = Findings::default();
                let _ = model::load("hipaa-v1.yaml", text, &mut out);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_exceptions_loader() {
    use msp_agent::baseline::{exceptions, model, report::Findings};
    let baseline_text = String::from_utf8(read("baseline/hipaa-v1.yaml")).unwrap();
    let mut out = Findings::default();
    let baseline = model::load("hipaa-v1.yaml", &baseline_text, &mut out).expect("the shipped baseline loads");
    let bases = vec![read("baseline/exceptions/clinic-001.yaml")];
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
    runner()
        .run(&(input(bases), -400_000i32..400_000), |(bytes, shift)| {
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let mut out = Findings::default();
                if let Some(c) = exceptions::load("clinic-001.yaml", "clinic-001", text, &mut out) {
                    let clients = vec![c];
                    exceptions::check_consistency(&clients, Some(&baseline), &mut out);
                    let at = day.checked_add_signed(chrono::TimeDelta::days(shift.into())).unwrap_or(day);
                    exceptions::check_dates(&clients, at, &mut out);
                    exceptions::check_dates(&clients, chrono::NaiveDate::MAX, &mut out);
                    exceptions::check_dates(&clients, chrono::NaiveDate::MIN, &mut out);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_journal_export_parser() {
    use msp_agent::journal::export::{ExportReader, Limits};
    let mut bases = vec![read("agent/tests/fixtures/journal/failures.export")];
    // A binary field (the export format's length-prefixed form) to mutate too.
    let mut bin = b"__CURSOR=s=1;i=1\n__REALTIME_TIMESTAMP=1\nMESSAGE\n".to_vec();
    bin.extend(5u64.to_le_bytes());
    bin.extend(b"he\nlo\n_SYSTEMD_UNIT=a.service\n\n");
    bases.push(bin);
    let limits = Limits { max_value_bytes: 64, max_fields: 8, max_entry_bytes: 256 };
    runner()
        .run(&input(bases), |bytes| {
            let mut r = ExportReader::new(BufReader::new(&bytes[..]), limits);
            // Each entry consumes at least one byte, so this ends; the bound is a backstop.
            for _ in 0..=bytes.len() {
                match r.next_entry() {
                    Ok(Some(e)) => {
                        prop_assert!(e.len() <= limits.max_fields, "{} fields kept", e.len());
                        let kept: usize = e.fields().map(|(n, v)| n.len() + v.len()).sum();
                        prop_assert!(kept <= limits.max_entry_bytes, "{kept} bytes kept");
                        let _ = (e.cursor(), e.realtime_usec());
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_criteria_parser() {
    use msp_agent::runbook::expr::{Criteria, Observed};
    let words = prop::sample::select(vec![
        "exit_code", "stdout", "stderr", "contains", "matches", "not", "in", "and", "or", "(", ")", "[", "]", ",", "==",
        "!=", "<", "<=", ">", ">=", "0", "-1", "99999999999999999999", "\"x\"", "\"(a+)+$\"", "\"\\\\\"", "\"[\"", "\"",
        "\\q", "é", "\u{0}",
    ]);
    let tokens = prop::collection::vec(words, 0..40).prop_map(|w| w.join(" "));
    let strategy = prop_oneof![3 => tokens, 1 => ".{0,80}"];
    runner()
        .run(&strategy, |src| {
            if let Ok(c) = Criteria::parse(&src) {
                for code in [None, Some(0), Some(-1), Some(i32::MAX)] {
                    let _ = c.eval(&Observed { exit_code: code, stdout: "ok\n", stderr: "" });
                }
            }
            Ok(())
        })
        .unwrap();
}

/// A real signed bundle (key generated and bundle written by the agent binary), verified by
/// the library as `evidence verify` does.
struct SignedBundle {
    _dir: tempfile::TempDir,
    keys: msp_agent::evidence::keyring::Keyring,
    /// Path relative to the store root.
    rel: PathBuf,
    json: Vec<u8>,
    sig: Vec<u8>,
    sshsig: Vec<u8>,
}

fn signed_bundle() -> SignedBundle {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_msp-agent");
    let keys = dir.path().join("keys");
    let store = dir.path().join("store");
    let ok = |c: &mut Command| assert!(c.status().unwrap().success());
    ok(Command::new(bin).args(["key", "generate", "--out"]).arg(&keys));
    ok(Command::new(bin).args(["evidence", "write-test-bundles", "--count", "1", "--root"]).arg(&store).arg("--keys").arg(&keys));
    let json = walk(&store).into_iter().find(|p| p.extension().is_some_and(|e| e == "json") && p.file_name().unwrap().to_string_lossy().starts_with("EB-")).unwrap();
    let rel = json.strip_prefix(&store).unwrap().to_path_buf();
    let read_companion = |suffix: &str| fs::read(format!("{}{suffix}", json.display())).unwrap();
    SignedBundle {
        keys: msp_agent::evidence::keyring::Keyring::load(&keys).unwrap(),
        json: fs::read(&json).unwrap(),
        sig: read_companion(".sig"),
        sshsig: read_companion(".sshsig"),
        rel,
        _dir: dir,
    }
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn fuzz_bundle_verification() {
    use msp_agent::evidence::verify::{verify_files, VerifyOptions};
    let b = signed_bundle();
    let opts = VerifyOptions { keys: b.keys.clone(), partial: true, threads: 1, ..VerifyOptions::default() };
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join(&b.rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let write = |json: &[u8], sig: &[u8], sshsig: &[u8]| {
        fs::write(&path, json).unwrap();
        fs::write(format!("{}.sig", path.display()), sig).unwrap();
        fs::write(format!("{}.sshsig", path.display()), sshsig).unwrap();
    };
    // The untouched bundle verifies: the harness itself is sound.
    write(&b.json, &b.sig, &b.sshsig);
    let report = verify_files(std::slice::from_ref(&path), &[], &opts).unwrap();
    assert!(report.ok, "{:?}", report.problems);

    // Which file gets the hostile bytes: the bundle, the raw signature, or the SSH signature.
    let strategy = (0u8..3, input(vec![b.json.clone()]), input(vec![b.sig.clone()]), input(vec![b.sshsig.clone()]));
    runner()
        .run(&strategy, |(which, json, sig, sshsig)| {
            let (j, s, ss) = match which {
                0 => (&json[..], &b.sig[..], &b.sshsig[..]),
                1 => (&b.json[..], &sig[..], &b.sshsig[..]),
                _ => (&b.json[..], &b.sig[..], &sshsig[..]),
            };
            let unchanged = j == b.json.as_slice() && s == b.sig.as_slice() && ss == b.sshsig.as_slice();
            write(j, s, ss);
            // An I/O error (`Err`) is exit 2, not acceptance.
            if let Ok(report) = verify_files(std::slice::from_ref(&path), &[], &opts) {
                prop_assert!(unchanged || !report.ok, "accepted a modified bundle or signature (file {which})");
            }
            Ok(())
        })
        .unwrap();
}
