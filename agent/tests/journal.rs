//! Journal source and checkpoint against real journal files (systemd-journal-remote) read by
//! the real journalctl.

#[path = "fixtures/journal/helpers.rs"]
mod helpers;

use std::path::Path;
use std::time::{Duration, Instant};

use helpers::*;
use msp_agent::journal::{Checkpoint, Input, JournalSource, Next, ReaderDied, SourceConfig, StartAt};

fn msg(e: &msp_agent::journal::Entry) -> String {
    e.get_str("MESSAGE").unwrap().to_string()
}

fn read_all(cfg: &SourceConfig) -> Vec<msp_agent::journal::Entry> {
    let mut s = JournalSource::start(cfg).unwrap();
    let mut out = vec![];
    while let Some(e) = s.next().unwrap() {
        out.push(e);
    }
    out
}

fn dir_cfg(dir: &Path) -> SourceConfig {
    SourceConfig::new(Input::Directory(dir.to_path_buf()))
}

#[test]
fn reads_a_real_journal_file_in_order_with_cursor_and_timestamp() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("a.journal");
    write_journal(&f, &simple_entries("m", BOOT_A, 5, 1_700_000_000_000_000));
    let es = read_all(&SourceConfig::new(Input::Files(vec![f])));
    let msgs: Vec<_> = es.iter().map(msg).collect();
    assert_eq!(msgs, ["m 0", "m 1", "m 2", "m 3", "m 4"]);
    assert!(es[0].cursor().unwrap().starts_with("s="), "{:?}", es[0].cursor());
    assert_eq!(es[2].realtime_usec(), Some(1_700_000_000_002_000));
}

#[test]
fn resumes_after_the_committed_cursor_nothing_lost_nothing_repeated() {
    let d = tempfile::tempdir().unwrap();
    let jdir = d.path().join("journal");
    std::fs::create_dir(&jdir).unwrap();
    write_journal(&jdir.join("a.journal"), &simple_entries("m", BOOT_A, 10, 1_700_000_000_000_000));
    let state = d.path().join("cursor");

    // First run: read all 10, but only entries 0..=3 were handled (k = 3).
    let first = read_all(&dir_cfg(&jdir));
    assert_eq!(first.len(), 10);
    let mut cp = Checkpoint::open(&state).unwrap();
    for e in &first[..=3] {
        cp.commit(e.cursor().unwrap()).unwrap();
    }
    drop(cp);

    // Restart: resumes at k+1.
    let cp = Checkpoint::open(&state).unwrap();
    let mut cfg = dir_cfg(&jdir);
    cfg.after_cursor = cp.cursor().map(str::to_string);
    let second = read_all(&cfg);
    let got: Vec<_> = second.iter().map(msg).collect();
    let want: Vec<_> = (4..10).map(|i| format!("m {i}")).collect();
    assert_eq!(got, want);
    // Cursors of the second run are exactly those of the first run's tail.
    let c1: Vec<_> = first[4..].iter().map(|e| e.cursor().unwrap().to_string()).collect();
    let c2: Vec<_> = second.iter().map(|e| e.cursor().unwrap().to_string()).collect();
    assert_eq!(c1, c2);
}

#[test]
fn cursor_file_is_replaced_atomically() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("journal.cursor");
    let mut cp = Checkpoint::open(&p).unwrap();
    cp.commit("s=1;i=1").unwrap();
    let ino1 = std::fs::metadata(&p).unwrap().ino();
    cp.commit("s=1;i=2").unwrap();
    let meta = std::fs::metadata(&p).unwrap();
    // A new inode: the file was renamed over, not rewritten in place (a crash mid-write
    // cannot leave a torn cursor).
    assert_ne!(meta.ino(), ino1);
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "s=1;i=2\n");
    let names: Vec<_> = std::fs::read_dir(d.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "temporaries left: {names:?}");
}

#[test]
fn follow_resumes_across_a_reboot_without_losing_the_end_of_the_previous_boot() {
    // journalctl --follow implies --boot (this boot only) on systemd >= 250; with
    // --after-cursor it then skips the rest of the previous boot. The source uses --merge.
    let d = tempfile::tempdir().unwrap();
    let jdir = d.path().join("j");
    std::fs::create_dir(&jdir).unwrap();
    let f = jdir.join("system.journal");
    write_journal(&f, &simple_entries("a", BOOT_A, 4, 1_700_000_000_000_000));
    write_journal(&f, &simple_entries("b", BOOT_B, 3, 1_700_000_100_000_000));
    let all = read_all(&dir_cfg(&jdir));
    assert_eq!(all.len(), 7);
    let mut cfg = dir_cfg(&jdir);
    cfg.follow = true;
    cfg.after_cursor = Some(all[0].cursor().unwrap().to_string());
    let mut s = JournalSource::start(&cfg).unwrap();
    let mut got = vec![];
    while got.len() < 6 {
        match s.next_timeout(Duration::from_secs(10)).unwrap() {
            Next::Entry(e) => got.push(msg(&e)),
            other => panic!("expected an entry, got {other:?} after {got:?}"),
        }
    }
    assert_eq!(got, ["a 1", "a 2", "a 3", "b 0", "b 1", "b 2"]);
}

#[test]
fn follow_yields_entries_appended_after_start_and_from_new_files() {
    let d = tempfile::tempdir().unwrap();
    let jdir = d.path().join("j");
    std::fs::create_dir(&jdir).unwrap();
    write_journal(&jdir.join("one.journal"), &simple_entries("old", BOOT_A, 2, 1_700_000_000_000_000));
    let mut cfg = dir_cfg(&jdir);
    cfg.follow = true;
    cfg.start_at = StartAt::Head;
    let mut s = JournalSource::start(&cfg).unwrap();
    let next = |s: &mut JournalSource| match s.next_timeout(Duration::from_secs(10)).unwrap() {
        Next::Entry(e) => msg(&e),
        other => panic!("expected an entry, got {other:?}"),
    };
    assert_eq!(next(&mut s), "old 0");
    assert_eq!(next(&mut s), "old 1");
    // Nothing new: Idle, not End and not an error.
    assert!(matches!(s.next_timeout(Duration::from_millis(300)).unwrap(), Next::Idle));
    // Append to the same file while following...
    write_journal(&jdir.join("one.journal"), &simple_entries("appended", BOOT_A, 2, 1_700_000_001_000_000));
    assert_eq!(next(&mut s), "appended 0");
    assert_eq!(next(&mut s), "appended 1");
    // ...and a new file appearing in the watched directory.
    write_journal(&jdir.join("two.journal"), &simple_entries("newfile", BOOT_A, 1, 1_700_000_002_000_000));
    assert_eq!(next(&mut s), "newfile 0");
}

#[test]
fn tail_start_skips_history() {
    let d = tempfile::tempdir().unwrap();
    let jdir = d.path().join("j");
    std::fs::create_dir(&jdir).unwrap();
    write_journal(&jdir.join("one.journal"), &simple_entries("old", BOOT_A, 3, 1_700_000_000_000_000));
    let mut cfg = dir_cfg(&jdir);
    cfg.follow = true;
    cfg.start_at = StartAt::Tail;
    let mut s = JournalSource::start(&cfg).unwrap();
    assert!(matches!(s.next_timeout(Duration::from_millis(500)).unwrap(), Next::Idle));
    write_journal(&jdir.join("one.journal"), &simple_entries("new", BOOT_A, 1, 1_700_000_001_000_000));
    match s.next_timeout(Duration::from_secs(10)).unwrap() {
        Next::Entry(e) => assert_eq!(msg(&e), "new 0"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_dead_reader_is_an_error_with_journalctl_stderr() {
    let d = tempfile::tempdir().unwrap();
    let jdir = d.path().join("j");
    std::fs::create_dir(&jdir).unwrap();
    write_journal(&jdir.join("one.journal"), &simple_entries("m", BOOT_A, 2, 1_700_000_000_000_000));

    // journalctl refuses a malformed cursor: the error carries its stderr.
    let mut cfg = dir_cfg(&jdir);
    cfg.after_cursor = Some("not-a-cursor".into());
    let mut s = JournalSource::start(&cfg).unwrap();
    let err = s.next().unwrap_err();
    let died = err.downcast_ref::<ReaderDied>().unwrap_or_else(|| panic!("not ReaderDied: {err:#}"));
    assert!(died.status.contains("exit status"), "{died:?}");
    assert!(died.stderr.to_lowercase().contains("cursor"), "{died:?}");
    assert!(s.next().unwrap().is_none(), "a dead source stays ended");

    // journalctl killed while following: an error, not a silent stall.
    let mut cfg = dir_cfg(&jdir);
    cfg.follow = true;
    let mut s = JournalSource::start(&cfg).unwrap();
    for _ in 0..2 {
        assert!(matches!(s.next_timeout(Duration::from_secs(10)).unwrap(), Next::Entry(_)));
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.child_pid() as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let t = Instant::now();
    let err = loop {
        match s.next_timeout(Duration::from_secs(10)) {
            Err(e) => break e,
            Ok(Next::Idle) if t.elapsed() < Duration::from_secs(10) => continue,
            Ok(other) => panic!("expected an error, got {other:?}"),
        }
    };
    let died = err.downcast_ref::<ReaderDied>().unwrap();
    assert!(died.status.contains("signal") && died.status.contains('9'), "{died:?}");
}

#[test]
fn a_slow_consumer_blocks_the_reader_instead_of_buffering() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("big.journal");
    let n = 20_000;
    write_journal(&f, &simple_entries(&"x".repeat(200), BOOT_A, n, 1_700_000_000_000_000));
    let mut cfg = SourceConfig::new(Input::Files(vec![f]));
    cfg.channel_capacity = 8;
    let mut s = JournalSource::start(&cfg).unwrap();
    assert!(matches!(s.next_timeout(Duration::from_secs(10)).unwrap(), Next::Entry(_)));
    std::thread::sleep(Duration::from_millis(1500));
    // ~5 MB of export output cannot fit in an 8-entry channel + pipe + read buffer: if the
    // source buffered without bound journalctl would have exited by now.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", s.child_pid())).unwrap();
    let state = stat.rsplit(')').next().unwrap().split_whitespace().next().unwrap().to_string();
    assert!(state == "S" || state == "R", "journalctl should be alive and blocked, state {state}");
    let mut count = 1;
    while s.next().unwrap().is_some() {
        count += 1;
    }
    assert_eq!(count, n, "nothing lost under backpressure");
}

#[test]
fn following_files_is_refused_with_a_clear_error() {
    let mut cfg = SourceConfig::new(Input::Files(vec!["/nonexistent.journal".into()]));
    cfg.follow = true;
    let err = JournalSource::start(&cfg).err().unwrap();
    assert!(format!("{err:#}").contains("cannot follow"), "{err:#}");
    let cfg = SourceConfig::new(Input::Files(vec!["/nonexistent.journal".into()]));
    let err = JournalSource::start(&cfg).err().unwrap();
    assert!(format!("{err:#}").contains("/nonexistent.journal"), "{err:#}");
}

#[test]
fn system_journal_follow_covers_all_boots_of_this_machine_only() {
    let mut cfg = SourceConfig::new(Input::System);
    cfg.follow = true;
    cfg.after_cursor = Some("s=1;i=2".into());
    let args = cfg.journalctl_args().unwrap();
    for want in ["--output=export", "--merge", "--follow", "--after-cursor=s=1;i=2"] {
        assert!(args.iter().any(|a| a == want), "{want} missing from {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--boot") || a == "-b"), "{args:?}");
    match std::fs::read_to_string("/etc/machine-id") {
        Ok(id) if id.trim().len() == 32 => assert!(args.contains(&format!("_MACHINE_ID={}", id.trim())), "{args:?}"),
        _ => eprintln!("NOTE: /etc/machine-id missing or malformed here: the _MACHINE_ID match is not checked"),
    }
}
