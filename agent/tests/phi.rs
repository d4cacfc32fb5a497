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
