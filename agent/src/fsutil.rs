//! Durable file writes. Two shapes, both crash-safe:
//!
//! * [`write_once`]: a file that must never be rewritten (evidence bundles, signatures,
//!   artifacts, receipts). Written to a temporary name, fsynced, then hard-linked to its final
//!   name (which fails if the name exists, so nothing is ever overwritten), then the directory
//!   is fsynced. A crash at any point leaves either no final file or a complete one; stray
//!   temporaries start with `.tmp-` and are ignored by every reader.
//! * [`replace`]: state that is legitimately updated (journal cursor, guard state): temporary
//!   file, fsync, rename over the old one, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Prefix of temporary files; readers skip names that start with it.
pub const TMP_PREFIX: &str = ".tmp-";

fn tmp_path(final_path: &Path) -> Result<PathBuf> {
    let dir = parent_dir(final_path)?;
    let name = final_path
        .file_name()
        .with_context(|| format!("{} has no file name", final_path.display()))?
        .to_string_lossy();
    // pid + a counter keeps concurrent writers in one process and across processes apart.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(dir.join(format!("{TMP_PREFIX}{name}.{}.{n}", std::process::id())))
}

fn parent_dir(path: &Path) -> Result<&Path> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        _ => Ok(Path::new(".")),
    }
}

fn write_tmp(tmp: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("fsync {}", tmp.display()))?;
    Ok(())
}

/// Fsync a directory so that a rename or link inside it survives a power cut.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync directory {}", dir.display()))
}

/// Write `bytes` to `path` durably, failing if `path` already exists. See the module docs.
pub fn write_once(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if path.exists() {
        bail!(
            "refusing to overwrite {}: evidence files are written once",
            path.display()
        );
    }
    let tmp = tmp_path(path)?;
    write_tmp(&tmp, bytes, mode)?;
    let linked = fs::hard_link(&tmp, path);
    // Remove the temporary name whatever happened; the data lives on under `path` if linked.
    let _ = fs::remove_file(&tmp);
    linked.with_context(|| format!("publishing {} (does it already exist?)", path.display()))?;
    sync_dir(parent_dir(path)?)
}

/// [`write_once`] for several files in one directory with a single directory fsync: every
/// temporary is written and fsynced, then each is linked to its final name (failing if any
/// name exists), then the directory is fsynced once. After a crash any subset of the names
/// may exist, each complete. Used for an evidence bundle's two signature files.
pub fn write_once_all(files: &[(&Path, &[u8])], mode: u32) -> Result<()> {
    let Some((first, _)) = files.first() else {
        return Ok(());
    };
    let dir = parent_dir(first)?;
    let mut tmps = Vec::with_capacity(files.len());
    let result = (|| {
        for (path, bytes) in files {
            if parent_dir(path)? != dir {
                bail!("{} is not in {}", path.display(), dir.display());
            }
            if path.exists() {
                bail!(
                    "refusing to overwrite {}: evidence files are written once",
                    path.display()
                );
            }
            let tmp = tmp_path(path)?;
            write_tmp(&tmp, bytes, mode)?;
            tmps.push(tmp);
        }
        for ((path, _), tmp) in files.iter().zip(&tmps) {
            fs::hard_link(tmp, path).with_context(|| {
                format!("publishing {} (does it already exist?)", path.display())
            })?;
        }
        Ok(())
    })();
    for tmp in &tmps {
        let _ = fs::remove_file(tmp);
    }
    result?;
    sync_dir(dir)
}

/// Atomically replace `path` with `bytes` (create it if missing). See the module docs.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = tmp_path(path)?;
    write_tmp(&tmp, bytes, mode)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("renaming into {}", path.display()));
    }
    sync_dir(parent_dir(path)?)
}

/// Create a directory and its parents with `mode` for the directories this call creates.
pub fn create_dir_all(dir: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .with_context(|| format!("creating directory {}", dir.display()))
}

/// What kind of file `t` is, for messages: "a FIFO", "a directory", ...
fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "of an unknown kind"
    }
}

/// Why `path` is not a readable regular file (symlinks followed): "does not exist", "not a
/// regular file (a FIFO)", ...; `None` when it is one.
pub fn not_a_regular_file(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => None,
        Ok(m) => Some(format!("not a regular file ({})", kind_of(m.file_type()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".into()),
        Err(e) => Some(format!("cannot be read: {e}")),
    }
}

/// Read a regular file of at most `max` bytes. Opened with `O_NONBLOCK` and checked with
/// `fstat` on the open descriptor, so a FIFO (even one swapped in after a check) is refused
/// instead of blocking the reader forever, and a huge or endless file is refused instead of
/// read whole. The error names the path and what it is.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let meta = f.metadata().with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{}: not a regular file ({})", path.display(), kind_of(meta.file_type()));
    }
    if meta.len() > max {
        bail!("{}: {} bytes, more than the {max} allowed", path.display(), meta.len());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{}: more than the {max} bytes allowed", path.display());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_once_refuses_to_overwrite_and_keeps_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_once(&p, b"first", 0o644).unwrap();
        let err = write_once(&p, b"second", 0o644).unwrap_err();
        assert!(
            format!("{err:#}").contains("refusing to overwrite"),
            "{err:#}"
        );
        assert_eq!(fs::read(&p).unwrap(), b"first");
        // No temporaries left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn write_once_all_publishes_every_file_and_refuses_existing_names() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.sig"), dir.path().join("b.sig"));
        write_once_all(&[(&a, b"A"), (&b, b"B")], 0o444).unwrap();
        assert_eq!(
            (fs::read(&a).unwrap(), fs::read(&b).unwrap()),
            (b"A".to_vec(), b"B".to_vec())
        );
        let c = dir.path().join("c.sig");
        let err = write_once_all(&[(&c, b"C"), (&a, b"X")], 0o444).unwrap_err();
        assert!(
            format!("{err:#}").contains("refusing to overwrite"),
            "{err:#}"
        );
        assert_eq!(fs::read(&a).unwrap(), b"A");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn replace_swaps_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cursor");
        replace(&p, b"one", 0o600).unwrap();
        replace(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
    }
}

