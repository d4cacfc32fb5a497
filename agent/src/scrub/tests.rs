//! Per-pattern tests: what each kind removes, and near-misses from real system output that
//! must come through unchanged.

use super::*;

fn filter() -> Arc<PhiFilter> {
    PhiFilter::embedded()
}

fn same(s: &str) {
    assert_eq!(filter().scrub(s), s, "must survive unchanged");
    assert_eq!(filter().find(s).total(), 0, "{s}");
}

/// Near-misses every kind must leave alone: lines as systemd, restic, df and friends print them.
const SYSTEM_LINES: &[&str] = &[
    // Timestamps (journald short-iso, RFC 3339, syslog, epoch).
    "2026-11-22T15:32:19+0000 clinic-srv systemd[1]: nginx.service: Main process exited, code=exited, status=1/FAILURE",
    "2026-11-22T15:32:19.123456+01:00 host kernel: eth0: link up",
    "Nov 22 15:32:19 host sshd[4242]: Accepted publickey for admin from 10.0.0.5 port 52144",
    "ExecMainExitTimestamp=Sun 2026-11-22 15:32:19 UTC",
    "snapshot_epoch=1764633600",
    // Version strings.
    "restic 0.17.3 compiled with go1.23.4 on linux/amd64",
    "nginx/1.25.3 openssl-3.0.15 systemd 252 (252.33-1~deb12u1)",
    "msp-agent 0.1.0; bundle_version 1.1; kernel 6.1.0-27-amd64",
    // Unit names, including instance units that look like addresses.
    "user@1000.service getty@tty1.service systemd-fsck@dev-sda1.service restic-backups-nas.service",
    "Started session-3.scope - Session 3 of User root.",
    // Hashes and ids.
    "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "snapshot 4f2d1c9a saved; tree 9b1e0c3f2a7d; InvocationID=5a1f0e9d3c2b4a8e9f7d6c5b4a3e2d1c",
    // IP addresses, ports.
    "listening on 192.168.100.200:8443 and [fe80::1]:22; peer 10.123.45.67",
    // PIDs, exit codes, restart counts, byte counts, sizes.
    "pid 1234567 exited; MainPID=0 ExecMainStatus=203 NRestarts=5",
    "pid 1234567890 exited",
    "MemoryCurrent=4194304 IOReadBytes=1073741824 TasksCurrent=12",
    "Filesystem 1K-blocks Used Available Use% Mounted on",
    "/dev/sda1 41152736 30011220 9028084 77% /",
    "Added to the repository: 512.000 MiB (301.2 MiB stored); processed 1234 files, 5.123 GiB in 0:42",
    // Dates in log timestamps and ISO dates without a birth word.
    "certificate notAfter=2027-03-14 valid since 2026-03-14; next run 2026-12-01 03:00:00",
    // Durations and times.
    "took 00:01:42.123, 15:32:19, 123-45 ms",
    // Email-like things that are not addresses.
    "ssh root@localhost; git@server1; nothing@",
];

#[test]
fn system_output_survives() {
    for s in SYSTEM_LINES {
        same(s);
    }
}

#[test]
fn email() {
    let f = filter();
    assert_eq!(f.scrub("mail alice.smith+x@clinic-example.org now"), "mail [email×1] now");
    assert_eq!(f.scrub("cc a@x.org, b@y.co.uk; c@z.net"), "cc [email×3]");
    assert_eq!(f.scrub("JANE.DOE@CLINIC.ORG"), "[email×1]");
    // Near-misses.
    same("user@1000.service");
    same("root@localhost");
}

#[test]
fn phone() {
    let f = filter();
    for p in ["(555) 123-4567", "555-123-4567", "555.123.4567", "+1 555 123 4567", "+44 20 7946 0958", "+15551234567"] {
        assert_eq!(f.scrub(&format!("call {p} today")), "call [phone×1] today", "{p}");
    }
    assert_eq!(f.scrub("phone: 555 123 4567"), "[phone×1]");
    assert_eq!(f.scrub("tel=0201234567"), "[phone×1]");
    // Near-misses: IPs, time zones, sizes in columns, dates.
    same("10.123.456.7 192.168.100.200");
    same("2026-11-22T15:32:19+0000 2026-11-22T15:32:19+05:30");
    same("512 256 1024 4096");
    same("2026-11-22");
}

#[test]
fn ssn() {
    let f = filter();
    assert_eq!(f.scrub("ssn 123-45-6789."), "[ssn×1].");
    assert_eq!(f.scrub("SSN: 123456789"), "[ssn×1]");
    assert_eq!(f.scrub("id 123-45-6789"), "id [ssn×1]");
    // Near-misses: dates, version-ish triples.
    same("2026-11-22 1.2.3 12-34-56");
}

#[test]
fn mrn() {
    let f = filter();
    assert_eq!(f.scrub("patient MRN: 00123456 seen"), "patient [mrn×1] seen");
    assert_eq!(f.scrub("mrn#1234567"), "[mrn×1]");
    assert_eq!(f.scrub("MRN=A1234567"), "[mrn×1]");
    assert_eq!(f.scrub("medical record number 7788123"), "[mrn×1]");
    assert_eq!(f.scrub("patient_id=884422"), "[mrn×1]");
    // Near-misses: a unit called like the thing, a word containing the letters.
    same("mrn-sync.service started; smrnx 1234");
}

#[test]
fn dob() {
    let f = filter();
    for d in [
        "DOB: 1962-03-14",
        "dob=03/14/1962",
        "D.O.B. 14.03.1962",
        "date of birth 1962-03-14",
        "date_of_birth=1962-3-4",
        "birthdate: March 14, 1962",
        "born 14 Mar 1962",
        "born on 1962/03/14",
    ] {
        assert_eq!(f.scrub(d), "[dob×1]", "{d}");
    }
    // Bare dates in the forms people type (and logs do not use).
    assert_eq!(f.scrub("seen 03/14/1962"), "seen [dob×1]");
    assert_eq!(f.scrub("seen 14.03.1962"), "seen [dob×1]");
    // Near-misses: every ISO and syslog timestamp; a bare ISO date has no birth word.
    same("2026-11-22T15:32:19Z Nov 22 15:32:19 1962-03-14");
    same("reborn 1962 unborn");
}

#[test]
fn digits() {
    let f = filter();
    // A Visa test number (Luhn-valid), bare and grouped.
    assert_eq!(f.scrub("card 4111111111111111 declined"), "[digits×1] declined");
    assert_eq!(f.scrub("paid with 4111 1111 1111 1111"), "paid with [digits×1]");
    assert_eq!(f.scrub("n=4111111111111111"), "n=[digits×1]");
    assert_eq!(f.scrub("account no. 12345678"), "[digits×1]");
    assert_eq!(f.scrub("acct#987654321"), "[digits×1]");
    // Near-misses: long counters that fail Luhn, shorter ids, hex.
    same("ActiveEnterTimestampMonotonic=1234567890123");
    same("__REALTIME_TIMESTAMP=1764633600000001 pid 4194304");
}

#[test]
fn a_patient_line_loses_every_identifier() {
    let line = "2026-11-22T15:32:19+0000 portal[812]: ERROR loading chart: patient Jane Q. Doe DOB 1962-03-14 MRN 00481516 jane.doe@example.com (555) 867-5309 card 4111111111111111";
    let (out, r) = filter().scrub_counted(line);
    for needle in ["1962-03-14", "00481516", "jane.doe@example.com", "867-5309", "4111111111111111"] {
        assert!(!out.contains(needle), "{needle} in {out}");
    }
    // The timestamp survives; the name does not match any pattern (hence metadata-only).
    assert!(out.starts_with("2026-11-22T15:32:19+0000 portal[812]:"), "{out}");
    assert!(out.contains("Jane Q. Doe"), "names are not regex-findable: {out}");
    assert_eq!(r.summary(), "dob×1, mrn×1, email×1, phone×1, digits×1");
}

#[test]
fn embedded_baseline_builds_the_filter() {
    let f = PhiFilter::from_embedded_baseline().unwrap();
    assert_eq!(f.bounds().excerpt_max_bytes, 2048);
    let names: Vec<&str> = f.kinds().iter().map(|k| k.as_str()).collect();
    assert_eq!(names, ["dob", "mrn", "ssn", "email", "phone", "digits"]);
}

#[test]
fn unknown_pattern_names_are_errors() {
    let e = PhiFilter::new(&["email", "passport"], Bounds::default()).unwrap_err();
    assert!(format!("{e:#}").contains("unknown PHI scrub pattern `passport`"), "{e:#}");
    let (file, text) = crate::packet::EMBEDDED_BASELINE;
    let text = text.replace("value: [email, phone, ssn, mrn]", "value: [email, phone, ssn, mrn, names]");
    let mut findings = crate::baseline::report::Findings::default();
    let b = crate::baseline::model::load(file, &text, &mut findings).unwrap();
    let e = PhiFilter::from_baseline(&b).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("phi.scrub_patterns (line ") && msg.contains("`names`"), "{msg}");
}

#[test]
fn only_the_baseline_kinds_plus_always_on() {
    let f = PhiFilter::new(&["email"], Bounds::default()).unwrap();
    assert_eq!(f.scrub("a@b.org 555-123-4567 DOB 1962-03-14"), "[email×1] 555-123-4567 [dob×1]");
}

#[test]
fn total_on_invalid_utf8() {
    let s = filter().scrub_bytes(b"\xff\xfe 123-45-6789 \xc3");
    assert!(s.contains("[ssn×1]"), "{s}");
    assert!(!s.contains("6789"));
}

#[test]
fn excerpt_is_bounded_by_the_baseline_scrubbed_and_keeps_the_end() {
    let mut out = Vec::new();
    for i in 0..2000 {
        out.extend_from_slice(format!("line {i} ssn 123-45-6789 bob@example.com\n").as_bytes());
    }
    let e = filter().excerpt(&out);
    assert!(e.len() <= 2048, "{}", e.len());
    assert!(e.starts_with('…'));
    assert!(e.contains("line 1999 "));
    assert!(!e.contains("6789") && !e.contains("example.com"), "{e}");
    assert_eq!(filter().excerpt(b"ok\n"), "ok\n");
}

#[test]
fn excerpt_cut_never_leaves_a_fragment_of_a_token() {
    let mut out = vec![b'x'; 5000];
    out.extend_from_slice(b" 123-45-6789");
    out.extend(std::iter::repeat_n(b'y', 2042));
    let e = filter().excerpt(&out);
    assert!(!e.contains("45-6789") && !e.contains("-6789"), "{e}");
}

#[test]
fn artifact_is_scrubbed_counted_and_bounded() {
    let f = filter();
    let a = f.artifact(b"Result=exit-code\nowner jane@clinic.org\n", 1 << 20);
    assert_eq!(String::from_utf8(a.bytes).unwrap(), "Result=exit-code\nowner [email×1]\n");
    assert_eq!(a.redactions.to_map(), BTreeMap::from([("email".to_string(), 1)]));
    assert!(!a.truncated);
    let mut big = Vec::new();
    for i in 0..10_000 {
        big.extend_from_slice(format!("row {i} MRN 00{i:06}\n").as_bytes());
    }
    let a = f.artifact(&big, 4096);
    let text = String::from_utf8(a.bytes).unwrap();
    assert!(a.truncated && text.len() <= 4096, "{}", text.len());
    assert!(text.starts_with("row 0 [mrn×1]\n"), "{text}");
    assert!(text.ends_with(&format!("original {} bytes]\n", big.len())), "{text}");
    assert_eq!(a.redactions.get(Kind::Mrn), 10_000);
    // The filter's own artifact bound caps any larger request.
    assert!(f.artifact(&big, usize::MAX).bytes.len() <= DEFAULT_ARTIFACT_MAX_BYTES);
}

#[test]
fn a_replacement_that_uncovers_another_identifier_is_scrubbed_too() {
    // `+1 555…` right after `…516` reads as a UTC offset and is left; once the MRN is a
    // placeholder it follows `]`, and the re-check takes it.
    let f = filter();
    let out = f.scrub("MRN 00481516+1 555 123 4567");
    assert_eq!(out, "[mrn×1][phone×1]");
    assert_eq!(f.find(&out).total(), 0);
}
