//! Reading the local evidence store for upload: which bundles exist, in chain order, and the
//! files that belong to each. Layout: `ROOT/YYYY/MM/EB-YYYYMMDD-NNNN.json` + `.json.sig` +
//! `.json.sshsig` + optional `EB-YYYYMMDD-NNNN.artifacts/`; `.tmp-*` names are ignored.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::fsutil::TMP_PREFIX;

/// One file of a bundle, named relative to its `YYYY/MM` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalFile {
    /// e.g. `EB-20261122-0001.json` or `EB-20261122-0001.artifacts/df.txt`.
    pub rel: String,
    pub path: PathBuf,
}

/// A bundle ready for upload: the bundle and both signatures exist.
#[derive(Debug, Clone)]
pub struct LocalBundle {
    /// `EB-YYYYMMDD-NNNN`.
    pub id: String,
    pub year: String,
    pub month: String,
    /// Bundle file first, then `.sig`, `.sshsig`, then artifacts in name order.
    pub files: Vec<LocalFile>,
}

impl LocalBundle {
    /// The `.json` file.
    pub fn json_path(&self) -> &Path {
        &self.files[0].path
    }
}

/// Sort key for bundle ids: date, then the per-day number (numerically, in case it ever
/// outgrows four digits). `None` for names that are not bundle ids.
pub fn id_order(id: &str) -> Option<(String, u64)> {
    let rest = id.strip_prefix("EB-")?;
    let (date, n) = rest.split_once('-')?;
    if date.len() != 8
        || !date.bytes().all(|b| b.is_ascii_digit())
        || n.is_empty()
        || !n.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some((date.to_string(), n.parse().ok()?))
}

fn is_digits(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit())
}

fn sorted_names(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let e = e.with_context(|| format!("listing {}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(TMP_PREFIX) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Every complete bundle under `root`, in chain order. Bundles whose signatures are not
/// written yet are left out (the store is still writing them; the next pass picks them up),
/// and so is everything after the first incomplete one, so upload order is chain order.
pub fn scan(root: &Path) -> Result<Vec<LocalBundle>> {
    let mut out = Vec::new();
    if !root.exists() {
        return Ok(out);
    }
    for year in sorted_names(root)?.into_iter().filter(|n| is_digits(n, 4)) {
        let ydir = root.join(&year);
        if !ydir.is_dir() {
            continue;
        }
        for month in sorted_names(&ydir)?.into_iter().filter(|n| is_digits(n, 2)) {
            let mdir = ydir.join(&month);
            if !mdir.is_dir() {
                continue;
            }
            for name in sorted_names(&mdir)? {
                let Some(id) = name.strip_suffix(".json") else {
                    continue;
                };
                if id_order(id).is_none() {
                    continue;
                }
                out.push(bundle_files(&mdir, id, &year, &month)?);
            }
        }
    }
    out.sort_by_key(|b| id_order(&b.id));
    // Stop at the first incomplete bundle: later ones wait for it.
    if let Some(i) = out.iter().position(|b| b.files.is_empty()) {
        out.truncate(i);
    }
    Ok(out)
}

/// The files of one bundle; an empty list if its signatures are not there yet.
fn bundle_files(mdir: &Path, id: &str, year: &str, month: &str) -> Result<LocalBundle> {
    let mut files = Vec::new();
    for suffix in [".json", ".json.sig", ".json.sshsig"] {
        let rel = format!("{id}{suffix}");
        let path = mdir.join(&rel);
        // Not followed: a symlink or FIFO named like evidence is refused by name (it would
        // otherwise hold the upload back for ever as "not written yet", or be uploaded from
        // outside the store).
        match fs::symlink_metadata(&path) {
            Ok(m) if !m.file_type().is_file() => anyhow::bail!(
                "{} is not a regular file (a symlink, FIFO or device); refusing to upload it",
                path.display()
            ),
            _ => {}
        }
        if !path.is_file() {
            return Ok(LocalBundle {
                id: id.into(),
                year: year.into(),
                month: month.into(),
                files: vec![],
            });
        }
        files.push(LocalFile { rel, path });
    }
    let adir_name = format!("{id}.artifacts");
    let adir = mdir.join(&adir_name);
    if fs::symlink_metadata(&adir).is_ok_and(|m| m.file_type().is_dir()) {
        let mut stack = vec![(adir, adir_name)];
        while let Some((dir, rel_dir)) = stack.pop() {
            for name in sorted_names(&dir)? {
                let path = dir.join(&name);
                let rel = format!("{rel_dir}/{name}");
                let ft = fs::symlink_metadata(&path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .file_type();
                if ft.is_dir() {
                    stack.push((path, rel));
                } else if ft.is_file() {
                    files.push(LocalFile { rel, path });
                } else {
                    anyhow::bail!("{} is not a regular file (a symlink, FIFO or device); refusing to upload it", path.display());
                }
            }
        }
        files[3..].sort_by(|a, b| a.rel.cmp(&b.rel));
    }
    Ok(LocalBundle {
        id: id.into(),
        year: year.into(),
        month: month.into(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_date_then_number() {
        let mut ids = vec![
            "EB-20261122-0010",
            "EB-20261121-0002",
            "EB-20261122-0002",
            "EB-20261122-10000",
        ];
        ids.sort_by_key(|i| id_order(i));
        assert_eq!(
            ids,
            [
                "EB-20261121-0002",
                "EB-20261122-0002",
                "EB-20261122-0010",
                "EB-20261122-10000"
            ]
        );
        assert!(id_order("EB-2026-1").is_none());
        assert!(id_order("receipt").is_none());
    }

    #[test]
    fn scan_orders_skips_temporaries_and_waits_for_incomplete_bundles() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("2026/11");
        fs::create_dir_all(m.join("EB-20261122-0001.artifacts")).unwrap();
        for n in ["EB-20261122-0001", "EB-20261122-0002", "EB-20261122-0003"] {
            fs::write(m.join(format!("{n}.json")), "{}").unwrap();
            fs::write(m.join(format!("{n}.json.sig")), "s").unwrap();
        }
        fs::write(m.join("EB-20261122-0001.json.sshsig"), "x").unwrap();
        fs::write(m.join("EB-20261122-0003.json.sshsig"), "x").unwrap();
        fs::write(m.join("EB-20261122-0001.artifacts/b.txt"), "b").unwrap();
        fs::write(m.join("EB-20261122-0001.artifacts/a.txt"), "a").unwrap();
        fs::write(m.join(".tmp-EB-20261122-0004.json.1.0"), "partial").unwrap();
        fs::create_dir_all(d.path().join("receipts/2026/11")).unwrap();
        let b = scan(d.path()).unwrap();
        // 0002 has no .sshsig yet, so 0002 and 0003 wait.
        assert_eq!(b.len(), 1);
        let rels: Vec<_> = b[0].files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(
            rels,
            [
                "EB-20261122-0001.json",
                "EB-20261122-0001.json.sig",
                "EB-20261122-0001.json.sshsig",
                "EB-20261122-0001.artifacts/a.txt",
                "EB-20261122-0001.artifacts/b.txt"
            ]
        );
        fs::write(m.join("EB-20261122-0002.json.sshsig"), "x").unwrap();
        assert_eq!(scan(d.path()).unwrap().len(), 3);
    }
}
