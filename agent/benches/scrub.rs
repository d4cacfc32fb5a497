//! PHI scrubber bench: `cargo bench --bench scrub`.
//!
//! Builds a corpus of journal-like text (`MSP_BENCH_SCRUB_MIB`, default 16 MiB: systemd,
//! sshd, restic and application lines, one in fifty carrying an identifier) and, in the same
//! run, measures MiB/s of:
//! * `PhiFilter::scrub` (the embedded baseline's filter: every kind), one thread, best of 3;
//! * `PhiFilter::find` (what the packet's PHI check runs);
//! * `sed -E` with the same patterns (one `s///gI` per kind, in the filter's order), reading
//!   the corpus from a file and writing to /dev/null (its best case), best of 3. sed's regexes are the same sources
//!   translated to POSIX ERE (`(?:` → `(`, `\d` → `[0-9]`); sed has no Luhn or unit-name check,
//!   so it replaces a little more, never less.
//!
//! DESIGN 6 asks for at least 10× `sed -E`; the ratio is printed.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use msp_agent::scrub::{PhiFilter, ALL_KINDS};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A regex-crate source as POSIX ERE for GNU sed -E.
fn to_ere(src: &str) -> String {
    let mut out = String::new();
    let mut in_class = false;
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('d') if in_class => out.push_str("0-9"),
                Some('d') => out.push_str("[0-9]"),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '(' if !in_class && chars.peek() == Some(&'?') => {
                chars.next();
                // `(?:` → `(`; `(?i)`/`(?-u)` flags are dropped (sed gets `I`).
                if chars.peek() == Some(&':') {
                    chars.next();
                    out.push('(');
                } else {
                    for f in chars.by_ref() {
                        if f == ')' {
                            break;
                        }
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

fn corpus(bytes: usize) -> String {
    let lines = [
        "2026-11-22T15:32:19+0000 clinic-srv systemd[1]: nginx.service: Main process exited, code=exited, status=1/FAILURE",
        "2026-11-22T15:32:19+0000 clinic-srv systemd[1]: Started user@1000.service - User Manager for UID 1000.",
        "2026-11-22T15:32:20+0000 clinic-srv sshd[4242]: Accepted publickey for admin from 10.0.0.5 port 52144 ssh2: ED25519-CERT SHA256:Zp3kq1",
        "2026-11-22T15:32:21+0000 clinic-srv restic[812]: Added to the repository: 512.000 MiB (301.2 MiB stored); processed 1234 files, 5.123 GiB in 0:42",
        "2026-11-22T15:32:22+0000 clinic-srv kernel: EXT4-fs (sda1): mounted filesystem 9b1e0c3f-2a7d-4c1e with ordered data mode",
        "2026-11-22T15:32:23+0000 clinic-srv portal[901]: GET /api/v2/schedule 200 1532 bytes 12 ms",
        "2026-11-22T15:32:24+0000 clinic-srv postgres[777]: checkpoint complete: wrote 4194304 buffers (0.1%); sync files=12",
    ];
    let phi = [
        "2026-11-22T15:32:25+0000 clinic-srv portal[901]: ERROR chart for patient Jane Doe DOB 1962-03-14 MRN 00481516 jane.doe@example.com (555) 867-5309",
        "2026-11-22T15:32:26+0000 clinic-srv billing[902]: card 4111111111111111 declined for account no. 12345678; ssn 123-45-6789",
    ];
    let mut out = String::with_capacity(bytes + 256);
    let mut i = 0usize;
    while out.len() < bytes {
        let l = if i % 50 == 49 { phi[(i / 50) % 2] } else { lines[i % lines.len()] };
        out.push_str(l);
        out.push('\n');
        i += 1;
    }
    out
}

/// This thread's CPU time, seconds.
fn thread_cpu() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}

/// User + system CPU time of this process's waited-for children (`/proc/self/stat` cutime and
/// cstime, clock ticks of 1/100 s).
fn children_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3; cutime and cstime are fields 16 and 17.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split(' ').map(|x| x.parse().unwrap_or(0.0)).collect();
    (f.get(13).copied().unwrap_or(0.0) + f.get(14).copied().unwrap_or(0.0)) / 100.0
}

fn mib_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / (1 << 20) as f64 / secs
}

fn main() {
    let size = env_usize("MSP_BENCH_SCRUB_MIB", 16) << 20;
    let text = corpus(size);
    let filter = PhiFilter::embedded();

    // sed -E, same patterns, same corpus, from a file (sed's best case: no pipe).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("corpus.txt");
    std::fs::write(&path, &text).expect("write corpus");
    let mut cmd = Command::new("sed");
    cmd.arg("-E");
    let kinds: Vec<_> = filter.kinds().to_vec();
    for k in &kinds {
        let ere = to_ere(k.source());
        assert!(!ere.contains('~'), "the sed delimiter appears in a pattern");
        cmd.arg("-e").arg(format!("s~{ere}~[{}]~gI", k.as_str()));
    }
    cmd.arg(&path);
    // Untimed: sed's output, to check that the translated patterns do match.
    let out = cmd.stdout(Stdio::piped()).output().expect("running sed");
    assert!(out.status.success(), "sed failed: {}", String::from_utf8_lossy(&out.stderr));
    let sed_text = String::from_utf8_lossy(&out.stdout);
    assert!(!sed_text.contains("jane.doe@example.com"), "sed's patterns did not match: the translation is wrong");
    assert!(sed_text.len() < text.len());

    // Warm up (the lazy DFA builds its states on first use). Then rounds of: ours, find, sed
    // (output to /dev/null), interleaved so that all three see the same load; best of each,
    // in wall time and in CPU time (this thread's clock; sed's from its rusage), since the
    // machine is shared.
    let _ = filter.scrub(&text[..1 << 20]);
    let rounds = env_usize("MSP_BENCH_SCRUB_ROUNDS", 5);
    let (mut ours, mut ours_cpu, mut find, mut sed, mut sed_cpu) = (f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX);
    let mut counts = Default::default();
    for _ in 0..rounds {
        let (t, c) = (Instant::now(), thread_cpu());
        let (scrubbed, n) = filter.scrub_counted(&text);
        ours = ours.min(t.elapsed().as_secs_f64());
        ours_cpu = ours_cpu.min(thread_cpu() - c);
        assert!(!scrubbed.contains("jane.doe@example.com") && !scrubbed.contains("4111111111111111"));
        counts = n;
        let t = Instant::now();
        assert_eq!(filter.find(&text), counts);
        find = find.min(t.elapsed().as_secs_f64());
        let (t, c) = (Instant::now(), children_cpu());
        let st = cmd.stdout(Stdio::null()).status().expect("running sed");
        sed = sed.min(t.elapsed().as_secs_f64());
        sed_cpu = sed_cpu.min(children_cpu() - c);
        assert!(st.success(), "sed failed");
    }
    let mib = size as f64 / (1 << 20) as f64;
    let mut so = std::io::stdout().lock();
    let _ = writeln!(so, "scrub bench: {mib:.0} MiB corpus, {} identifiers ({}), kinds {}", counts.total(), counts.summary(), ALL_KINDS.len());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = writeln!(so, "  load average {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "));
    let _ = writeln!(so, "  best of {rounds} interleaved rounds          wall MiB/s    CPU MiB/s");
    let _ = writeln!(so, "  PhiFilter::scrub (1 thread)      {:10.1} {:12.1}", mib_s(size, ours), mib_s(size, ours_cpu));
    let _ = writeln!(so, "  PhiFilter::find  (1 thread)      {:10.1}", mib_s(size, find));
    let _ = writeln!(so, "  sed -E, same patterns            {:10.1} {:12.1}", mib_s(size, sed), mib_s(size, sed_cpu));
    let _ = writeln!(so, "  ratio scrub/sed                  {:9.1}x {:11.1}x  (target >= 10x)", sed / ours, sed_cpu / ours_cpu);
}
