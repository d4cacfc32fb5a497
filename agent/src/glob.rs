//! Shell-style globs over unit names (`*` any run of characters, `?` one character), used by
//! runbook `trigger_conditions.unit_patterns` and the detector's backup-unit patterns.

/// Match a glob with `*` (any run) and `?` (one character) against `text`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with single-star backtracking: linear-ish, no recursion blow-up.
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("*.service", "nginx.service"));
        assert!(!glob_match("*.service", "nginx.timer"));
        assert!(glob_match("postgresql@*.service", "postgresql@16.service"));
        assert!(glob_match("nginx?.service", "nginx2.service"));
        assert!(glob_match("*", ""));
        assert!(!glob_match("a*b*c", "aXbY"));
        assert!(glob_match("a*b*c", "aXbYc"));
        assert!(glob_match("restic-backups-*.service", "restic-backups-daily.service"));
        assert!(glob_match("*backup*.service", "pg-backup.service"));
        assert!(glob_match("*backup*.service", "backup.service"));
        assert!(!glob_match("*backup*.service", "nginx.service"));
        assert!(!glob_match("restic-backups-*.service", "restic-backups-.timer"));
        assert!(glob_match("a", "a"));
    }
}
