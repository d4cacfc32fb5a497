//! Object keys in the WORM bucket: `PREFIX/CLIENT/HOST/YYYY/MM/FILE`.
//!
//! The agent's uploader writes them and the fleet view reads them, so both go through here.
//! Receipts are not uploaded (they live beside the local store, outside the chain).

/// `PREFIX/CLIENT/HOST/`: everything of one host lives below it.
pub fn host_prefix(prefix: &str, client: &str, host: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        format!("{client}/{host}/")
    } else {
        format!("{prefix}/{client}/{host}/")
    }
}

/// `PREFIX/CLIENT/HOST/YYYY/MM/FILE` (`year` four digits, `month` two).
pub fn object_key(prefix: &str, client: &str, host: &str, year: &str, month: &str, file: &str) -> String {
    format!("{}{year}/{month}/{file}", host_prefix(prefix, client, host))
}

/// The parts of an object key, as [`parse_object_key`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectKey<'a> {
    pub client: &'a str,
    pub host: &'a str,
    /// Four digits.
    pub year: &'a str,
    /// Two digits.
    pub month: &'a str,
    /// The file name (`EB-YYYYMMDD-NNNN.json`, `.sig`, `.sshsig`, or an artifact path below
    /// `EB-....artifacts/`).
    pub file: &'a str,
}

/// Split `key` under `prefix` into its parts; `None` when it is not laid out as the uploader
/// writes keys (another prefix, missing parts, a year or month that is not digits, `.` or
/// `..` segments). Never trust a key's parts without this check: they become paths.
pub fn parse_object_key<'a>(prefix: &str, key: &'a str) -> Option<ObjectKey<'a>> {
    let prefix = prefix.trim_matches('/');
    let rest = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix)?.strip_prefix('/')?
    };
    let mut parts = rest.splitn(5, '/');
    let (client, host, year, month, file) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let plain = |s: &str| !s.is_empty() && s != "." && s != ".." && !s.contains('\\') && !s.chars().any(char::is_control);
    if !plain(client) || !plain(host) || !digits(year, 4) || !digits(month, 2) {
        return None;
    }
    if file.split('/').any(|seg| !plain(seg)) {
        return None;
    }
    Some(ObjectKey { client, host, year, month, file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = object_key("msp-evidence", "clinic-1", "srv", "2026", "11", "EB-20261101-0001.json");
        assert_eq!(k, "msp-evidence/clinic-1/srv/2026/11/EB-20261101-0001.json");
        let p = parse_object_key("msp-evidence/", &k).unwrap();
        assert_eq!((p.client, p.host, p.year, p.month, p.file), ("clinic-1", "srv", "2026", "11", "EB-20261101-0001.json"));
        assert_eq!(object_key("", "c", "h", "2026", "01", "f"), "c/h/2026/01/f");
        assert_eq!(parse_object_key("", "c/h/2026/01/f").unwrap().file, "f");
    }

    #[test]
    fn hostile_keys_are_refused() {
        for k in [
            "other/c/h/2026/01/f",
            "msp-evidence/c/h/26/01/f",
            "msp-evidence/../h/2026/01/f",
            "msp-evidence/c/h/2026/01/../../x",
            "msp-evidence/c/h/2026/01",
            "msp-evidence/c/h/2026/1x/f",
            "msp-evidence/c/h/2026/01/a//b",
        ] {
            assert!(parse_object_key("msp-evidence", k).is_none(), "{k}");
        }
    }
}
