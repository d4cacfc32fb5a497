//! The PHI boundary: old bundles still verify after the 1.1 bump, and the filter holds its
//! promises on any input (property tests with proptest).

mod common {
    pub mod stock;
}

use std::path::{Path, PathBuf};
use std::process::Command;

use msp_agent::evidence::bundle::Bundle;
use msp_agent::scrub::{Bounds, PhiFilter};
use proptest::prelude::*;

fn fixture_v10() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bundle-v1.0")
}

/// A copy (git does not keep the 0444 modes; the verifier does not need them).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Six bundles written by the previous release (bundle_version 1.0: `msp-agent demo` of the
/// commit before the bump), with their signatures, artifacts and public keys.
#[test]
fn bundles_of_the_previous_version_still_verify() {
    let d = tempfile::tempdir().unwrap();
    copy_dir(&fixture_v10(), d.path());
    let (keys, evidence) = (d.path().join("keys"), d.path().join("evidence"));
    let all = common::stock::bundles(&evidence);
    assert_eq!(all.len(), 6);
    let schema: serde_json::Value = serde_json::from_str(include_str!("../schema/evidence-bundle.schema.json")).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    let mut artifacts = 0;
    for b in &all {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(b).unwrap()).unwrap();
        assert_eq!(v["bundle_version"], "1.0", "{}", b.display());
        let errors: Vec<String> = validator.iter_errors(&v).map(|e| format!("{e} at {}", e.instance_path)).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", b.display());
        let parsed: Bundle = serde_json::from_value(v).unwrap();
        for a in &parsed.artifacts {
            // 1.0 did not scrub artifacts; the reader says so rather than inventing a record.
            assert!(!a.scrubbed && a.redactions.is_empty() && a.original_size_bytes.is_none(), "{a:?}");
            artifacts += 1;
        }
    }
    assert!(artifacts >= 3, "the fixture has artifacts to check");
    // The stock tools, and the agent's own verifier (signatures, chain, artifact hashes).
    assert_eq!(common::stock::verify_all_with_stock_tools(&keys, &evidence), 6);
    let out = Command::new(env!("CARGO_BIN_EXE_msp-agent"))
        .args(["evidence", "verify", "--keys"])
        .arg(&keys)
        .arg(&evidence)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("6 bundle(s) verified"), "{text}");
}

/// Text that looks like system output with identifiers planted in it.
fn planted() -> impl Strategy<Value = (String, Vec<String>)> {
    let token = prop_oneof![
        "[a-z]{1,8}\\.[a-z]{1,8}@[a-z]{2,8}\\.(org|com|net)",
        "\\([2-9][0-9]{2}\\) [2-9][0-9]{2}-[0-9]{4}",
        "[2-9][0-9]{2}-[2-9][0-9]{2}-[0-9]{4}",
        "[0-8][0-9]{2}-[0-9]{2}-[0-9]{4}",
        "MRN:? ?[0-9]{6,10}",
        "DOB:? (19[0-9]{2}-0[1-9]-[12][0-9]|0[1-9]/[12][0-9]/19[0-9]{2})",
    ];
    let filler = prop_oneof![
        Just("2026-11-22T15:32:19+0000".to_string()),
        Just("nginx.service: Main process exited, code=exited, status=1/FAILURE".to_string()),
        Just("user@1000.service".to_string()),
        Just("10.0.0.5:8443".to_string()),
        Just("pid 4242".to_string()),
        "[a-z]{1,12}",
        "[0-9]{1,6}",
    ];
    (proptest::collection::vec((filler, proptest::option::of(token)), 0..24)).prop_map(|parts| {
        let mut text = String::new();
        let mut tokens = Vec::new();
        for (f, t) in parts {
            text.push_str(&f);
            text.push(' ');
            if let Some(t) = t {
                text.push_str(&t);
                text.push_str(if tokens.len() % 2 == 0 { "\n" } else { " " });
                tokens.push(t);
            }
        }
        (text, tokens)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes: no panic, excerpts and artifacts within their bounds, and nothing the
    /// filter would report survives in what it lets through.
    #[test]
    fn arbitrary_bytes_are_bounded_and_clean(bytes in proptest::collection::vec(any::<u8>(), 0..6000), bound in 16usize..3000) {
        let f = PhiFilter::embedded();
        let e = f.excerpt_bounded(&bytes, bound);
        prop_assert!(e.len() <= bound.min(2048), "excerpt {} > {}", e.len(), bound);
        prop_assert_eq!(f.find(&e).total(), 0);
        let s = f.scrub_bytes(&bytes);
        prop_assert_eq!(f.find(&s).total(), 0);
        let line = f.summary(&String::from_utf8_lossy(&bytes));
        prop_assert!(line.len() <= 2048);
        prop_assert_eq!(f.find(&line).total(), 0);
        let a = f.artifact(&bytes, bound.max(256));
        prop_assert!(a.bytes.len() <= bound.max(256));
        prop_assert_eq!(f.find(&String::from_utf8_lossy(&a.bytes)).total(), 0);
    }

    /// Digit-heavy text (where cuts can form new identifiers): still bounded and clean.
    #[test]
    fn digit_soup_is_bounded_and_clean(text in "[0-9 .()+/-]{0,3000}", bound in 16usize..2048) {
        let f = PhiFilter::embedded();
        let e = f.excerpt_bounded(text.as_bytes(), bound);
        prop_assert!(e.len() <= bound);
        prop_assert_eq!(f.find(&e).total(), 0);
        prop_assert_eq!(f.find(&f.scrub(&text)).total(), 0);
    }

    /// Identifiers glued together (no separators: where a replacement changes a neighbour's
    /// context) still leave nothing `find` reports.
    #[test]
    fn glued_identifiers_leave_nothing(parts in proptest::collection::vec(prop_oneof![
        Just("MRN 00481516"), Just("+1 555 123 4567"), Just("+0000"), Just("4111111111111111"),
        Just("jane.doe@example.com"), Just("_"), Just("(555) 123-4567"), Just("123-45-6789"),
        Just("DOB 1962-03-14"), Just("03/14/1962"), Just("12"), Just("x"), Just("@"), Just("."),
        Just("user@1000.service"), Just("-"), Just(" "),
    ], 0..16)) {
        let f = PhiFilter::embedded();
        let text: String = parts.concat();
        let out = f.scrub(&text);
        prop_assert_eq!(f.find(&out).total(), 0, "{:?} -> {:?}", text, out);
    }

    /// Planted identifiers never survive scrubbing, whole or as their digits.
    #[test]
    fn planted_identifiers_never_survive((text, tokens) in planted()) {
        let f = PhiFilter::embedded();
        let (out, counts) = f.scrub_counted(&text);
        for t in &tokens {
            prop_assert!(!out.contains(t.as_str()), "{:?} survived in {:?}", t, out);
        }
        prop_assert!(counts.total() >= tokens.len() as u64, "{} found for {} planted", counts.total(), tokens.len());
        let big = f.with_bounds(Bounds { artifact_max_bytes: 1 << 20, ..f.bounds() }).unwrap();
        let a = big.artifact(text.as_bytes(), 1 << 20);
        let stored = String::from_utf8_lossy(&a.bytes);
        for t in &tokens {
            prop_assert!(!stored.contains(t.as_str()), "{:?} survived in the artifact", t);
        }
    }
}

fn agent(args: &[&str], extra: &[&Path]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_msp-agent")).args(args).args(extra).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn packet(evidence: &Path, keys: &Path, month: &str, work: &Path) -> (String, serde_json::Value) {
    let signing = work.join("packet-keys");
    if !signing.exists() {
        let (ok, o, e) = agent(&["key", "generate", "--out"], &[&signing]);
        assert!(ok, "{o}{e}");
    }
    let out = work.join(format!("packet-{month}"));
    let (ok, o, e) = agent(
        &["packet", "--month", month, "--at", "2027-01-15T00:00:00Z", "--evidence-dir"],
        &[evidence, Path::new("--keys"), keys, Path::new("--key-dir"), &signing, Path::new("--out"), &out],
    );
    assert!(ok, "{o}{e}");
    assert!(e.contains("PHI check: "), "{e}");
    let html = std::fs::read_to_string(out.join("packet.html")).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    // The PDF carries the same statement (pdftotext is from poppler-utils, scripts/setup-machine).
    match Command::new("pdftotext").arg(out.join("packet.pdf")).arg("-").output() {
        Ok(txt) => assert!(String::from_utf8_lossy(&txt.stdout).contains("PHI boundary"), "PDF lacks the PHI check"),
        Err(e) => eprintln!("SKIPPED: pdftotext not runnable ({e}; apt-get install poppler-utils): PDF text not checked"),
    }
    (html, manifest["summary"]["phi_check"].clone())
}

/// The packet's no-PHI statement is a check over the month's evidence: clean evidence (the
/// previous version's real bundles) passes and says how much was scanned.
#[test]
fn packet_phi_check_passes_on_clean_evidence() {
    let d = tempfile::tempdir().unwrap();
    copy_dir(&fixture_v10(), &d.path().join("fx"));
    let (html, phi) = packet(&d.path().join("fx/evidence"), &d.path().join("fx/keys"), "2026-12", d.path());
    assert!(html.contains("PHI boundary (baseline phi.boundary: metadata-only)."), "{html}");
    assert!(html.contains("found no identifier"), "{html}");
    assert_eq!(phi["identifiers_found"], 0, "{phi}");
    assert_eq!(phi["bundles_scanned"], 6);
    assert!(phi["artifacts_scanned"].as_u64().unwrap() >= 3, "{phi}");
    assert_eq!(phi["artifacts_scanned"], phi["artifacts_unscrubbed"], "1.0 artifacts are counted as unscrubbed: {phi}");
    assert_eq!(phi["patterns"], serde_json::json!(["dob", "mrn", "ssn", "email", "phone", "digits"]));
}

/// A valid, signed bundle whose artifact carries identifiers (as a writer that bypassed the
/// filter would leave it) makes the check fail, by file, kind and count, never by content.
#[test]
fn packet_phi_check_names_files_with_identifiers_without_quoting_them() {
    use msp_agent::evidence::sample::sample_new_bundle;
    use msp_agent::evidence::store::EvidenceStore;
    let d = tempfile::tempdir().unwrap();
    let keys = d.path().join("keys");
    let (ok, o, e) = agent(&["key", "generate", "--out"], &[&keys]);
    assert!(ok, "{o}{e}");
    let signer = msp_agent::keys::Signer::load(&keys).unwrap();
    let file = d.path().join("portal-error.txt");
    std::fs::write(&file, "chart load failed for MRN 00481516, jane.doe@example.com\n").unwrap();
    let root = d.path().join("evidence");
    let mut store = EvidenceStore::open(&root).unwrap();
    let t = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().with_timezone(&chrono::Utc);
    store.append(sample_new_bundle(1, vec![file]), &signer, t).unwrap();
    drop(store);
    assert_eq!(common::stock::verify_all_with_stock_tools(&keys, &root), 1);
    let (html, phi) = packet(&root, &keys, "2026-11", d.path());
    assert_eq!(phi["identifiers_found"], 2, "{phi}");
    assert_eq!(phi["files_with_findings"][0]["file"], "2026/11/EB-20261122-0001.artifacts/portal-error.txt");
    assert_eq!(phi["files_with_findings"][0]["found"], serde_json::json!({"mrn": 1, "email": 1}));
    assert!(html.contains("NOT MET") && html.contains("mrn×1, email×1"), "{html}");
    assert!(!html.contains("00481516") && !html.contains("jane.doe"), "the packet never quotes a finding");
}
