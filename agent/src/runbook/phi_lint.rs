//! `runbook lint` warnings for steps that would store an application's own output verbatim
//! (DESIGN 4c, "metadata, not text"): a regex cannot find a patient's name, so the PHI
//! filter is no excuse for copying application text into evidence.
//!
//! What a step prints reaches its excerpt, and what it writes to `$MSP_ARTIFACTS` may be
//! captured, so the check looks at every command of the script, wherever its output goes:
//! * `journalctl` reading entries not limited to PID 1 (`_PID=1`: systemd's own account of a
//!   unit) and not reduced to a count or hash (`| wc`, `| sha256sum`), nor sent to /dev/null;
//!   journalctl's maintenance options (`--disk-usage`, `--vacuum-*`, ...) print no entries;
//! * `systemctl status` without `--lines=0` / `-n 0` (it appends the unit's last journal lines);
//! * `cat`, `tail`, `head`, `cp` or `less` of a file under `/var/log/` or `/srv/`.
//!
//! It is a heuristic over the script text (a lint, not a proof): output captured into a
//! variable and printed later is not followed. Reviewers still read every runbook.

use super::model::{Runbook, Step};

/// journalctl options whose output is not journal entries.
const JOURNALCTL_NO_ENTRIES: [&str; 8] =
    ["--disk-usage", "--vacuum-", "--rotate", "--flush", "--verify", "--list-boots", "--header", "--sync"];

/// One warning per offending command: `FILE:LINE: <where>.script: warning: ...`.
pub fn raw_output_warnings(rb: &Runbook, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let places = rb
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("steps[{i}]"), s))
        .chain(rb.rollback.iter().enumerate().map(|(i, s)| (format!("rollback[{i}]"), s)))
        .chain(std::iter::once(("verification".to_string(), &rb.verification)));
    for (place, step) in places {
        for why in step_problems(step) {
            let line = step_line(text, &step.id.0).map_or(String::new(), |l| format!(":{l}"));
            out.push(format!("{}{line}: {place}.script: warning: {why}", rb.source.display()));
        }
    }
    out
}

/// Why a step's script would store raw application output (empty when it does not).
pub fn step_problems(step: &Step) -> Vec<String> {
    let mut out = Vec::new();
    for cmd in logical_lines(&step.script) {
        let trimmed = cmd.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        if contains_word(&cmd, "journalctl")
            && !cmd.contains("_PID=1")
            && !JOURNALCTL_NO_ENTRIES.iter().any(|o| cmd.contains(o))
            && !reduced(&cmd)
        {
            out.push(format!(
                "`{}` stores an application's journal verbatim; record systemd's own lines (journalctl _PID=1 UNIT=...) and the application's output as counts and a SHA-256 (| wc -l, | sha256sum)",
                short(trimmed)
            ));
        }
        if cmd.contains("systemctl status") && !["--lines=0", "-n 0", "-n0", "--lines 0"].iter().any(|o| cmd.contains(o)) {
            out.push(format!("`{}` prints the unit's last journal lines; add --lines=0", short(trimmed)));
        }
        let copies = ["cat ", "tail ", "head ", "cp ", "less "].iter().any(|c| contains_word(&cmd, c.trim_end()));
        if copies && (cmd.contains("/var/log/") || cmd.contains("/srv/")) && !reduced(&cmd) {
            out.push(format!("`{}` copies a log or data file verbatim; record counts and a SHA-256 instead", short(trimmed)));
        }
    }
    out
}

/// The command's output is reduced to a count or hash, or discarded.
fn reduced(cmd: &str) -> bool {
    ["| wc", "|wc", "| sha256sum", "|sha256sum", "> /dev/null", ">/dev/null"].iter().any(|r| cmd.contains(r))
}

fn contains_word(hay: &str, word: &str) -> bool {
    hay.match_indices(word).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + word.len()..].chars().next();
        let sep = |c: Option<char>| c.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' || c == '/'));
        sep(before) && sep(after)
    })
}

/// Script lines with backslash continuations joined.
fn logical_lines(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in script.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(line);
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn short(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(79).collect::<String>())
    } else {
        s
    }
}

/// 1-based line of `id: <id>` in the runbook text.
fn step_line(text: &str, id: &str) -> Option<usize> {
    text.lines().position(|l| {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        t.strip_prefix("id:").is_some_and(|rest| rest.trim().trim_matches(['"', '\'']) == id)
    }).map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(script: &str) -> Vec<String> {
        let yaml = format!("id: s\naction: a\ntimeout_seconds: 5\nscript: {script:?}\n");
        let step: Step = serde_yaml_ng::from_str(&yaml).unwrap();
        step_problems(&step)
    }

    #[test]
    fn raw_application_output_is_flagged() {
        for s in [
            "journalctl --unit=\"$u\" --lines=200 > \"$MSP_ARTIFACTS/j.txt\"",
            "journalctl -u \"$u\" \\\n  --no-pager | tee \"$MSP_ARTIFACTS/j.txt\"",
            "journalctl _SYSTEMD_UNIT=\"$u\" -n 20",
            "systemctl status -- \"$u\" > \"$MSP_ARTIFACTS/s.txt\"",
            "tail -n 50 /var/log/portal/app.log",
            "cp /srv/ehr/error.log \"$MSP_ARTIFACTS/\"",
        ] {
            assert_eq!(problems(s).len(), 1, "{s}");
        }
    }

    #[test]
    fn metadata_captures_pass() {
        for s in [
            "journalctl _PID=1 UNIT=\"$u\" --lines=50 > \"$MSP_ARTIFACTS/systemd.txt\"",
            "journalctl _SYSTEMD_UNIT=\"$u\" -o cat | wc -l",
            "out=$(journalctl _SYSTEMD_UNIT=\"$u\" -o cat | sha256sum)",
            "journalctl --disk-usage > \"$MSP_ARTIFACTS/usage.txt\"",
            "journalctl --vacuum-size=500M",
            "systemctl status --no-pager --full --lines=0 -- \"$u\" > \"$MSP_ARTIFACTS/s.txt\"",
            "# journalctl -u x (a comment)",
            "cat \"$MSP_ARTIFACTS/state.txt\"",
            "find /var/log -type f -mtime +30 -delete",
        ] {
            assert!(problems(s).is_empty(), "{s}: {:?}", problems(s));
        }
    }
}
