//! Durable file writes. Two shapes, both crash-safe:
//!
//! * [`write_once`]: a file that must never be rewritten (evidence bundles, signatures,
//!   artifacts, receipts). Written to a temporary name, fsynced, then hard-linked to its final
//!   name (which fails if the name exists, so nothing is ever overwritten), then the directory
//!   is fsynced. A crash at any point leaves either no final file or a complete one; stray
//!   temporaries start with `.tmp-` and are ignored by every reader.
//! * [`replace`]: state that is legitimately updated (journal cursor, guard state): temporary
//!   file, fsync, rename over the old one, fsync the directory.
//!
//! And one way to read what someone else may have put there: [`read_regular`] opens with
//! `O_NOFOLLOW | O_NONBLOCK`, checks with `fstat` that it holds a regular file no larger than a
//! limit, and only then reads (so a FIFO, a device, a symlink or a sparse giant named like
//! evidence, a key or a receipt is an error naming the file, never a hang or a blow-up).
//! [`check_owner_and_mode`] is the StrictModes-like check of directories and files the agent
//! trusts (keys, state, evidence).

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
    let written = f
        .write_all(bytes)
        .with_context(|| format!("writing {}", tmp.display()))
        .and_then(|()| f.sync_all().with_context(|| format!("fsync {}", tmp.display())));
    if written.is_err() {
        // A full disk: leave no partial temporary behind.
        let _ = fs::remove_file(tmp);
    }
    written
}

/// Size limits of [`read_regular`], one per kind of file (why each: `ARCHITECTURE.md`,
/// "Evidence and keys", "Reading hostile files").
pub mod limits {
    /// An evidence bundle: excerpts are bounded (4 KiB each), so a real bundle is a few KiB;
    /// 16 MiB leaves room for thousands of actions and is still cheap to hold.
    pub const BUNDLE: u64 = 16 << 20;
    /// A raw Ed25519 signature is 64 bytes; a little more is read so a wrong size is named.
    pub const RAW_SIG: u64 = 4096;
    /// An armoured SSHSIG of an Ed25519 key is under 400 bytes.
    pub const SSHSIG: u64 = 64 << 10;
    /// One artifact: what a step captured (`df`, unit status, a restore listing). 256 MiB
    /// bounds memory while a copy or hash is held.
    pub const ARTIFACT: u64 = 256 << 20;
    /// Key files, key infos, `allowed_signers`, `head.json`: small text.
    pub const SMALL: u64 = 1 << 20;
    /// A runbook file (YAML; the real ones are a few KiB).
    pub const RUNBOOK: u64 = 4 << 20;
    /// An upload receipt: a few hundred bytes per uploaded object.
    pub const RECEIPT: u64 = 4 << 20;
    /// A packet manifest lists every bundle of a month (~200 bytes each): 10,000 bundles are
    /// 2 MiB; 256 MiB is a million.
    pub const MANIFEST: u64 = 256 << 20;
}

/// The error [`open_regular`] and [`read_regular`] return for a file that exists but is not
/// one to read (symlink, FIFO, device, directory, too large): callers that judge evidence
/// report it as a problem of that file (`anyhow::Error::downcast_ref::<Refused>()`), not as
/// an I/O error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Whether `e` is a [`Refused`] (a special or oversized file), and its text.
pub fn refused(e: &anyhow::Error) -> Option<&str> {
    e.downcast_ref::<Refused>().map(|r| r.0.as_str())
}

/// Open `path` for reading only if it is a regular file: `O_NOFOLLOW` (a symlink as the last
/// component is refused, so nothing is followed out of the store), `O_NONBLOCK` (opening a
/// FIFO does not wait for a writer), then `fstat` on the open descriptor (no race between the
/// check and the read). `Ok(None)` when the file does not exist.
pub fn open_regular(path: &Path, limit: u64) -> Result<Option<(File, u64)>> {
    use std::os::unix::fs::FileTypeExt;
    let f = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(Refused(format!("{} is a symbolic link; only regular files are read", path.display())).into())
        }
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let meta = f
        .metadata()
        .with_context(|| format!("fstat {}", path.display()))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let kind = if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_dir() {
            "a directory"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(Refused(format!("{} is {kind}; only regular files are read", path.display())).into());
    }
    if meta.len() > limit {
        return Err(Refused(format!(
            "{} is {} bytes, more than the {} bytes allowed for this kind of file",
            path.display(),
            meta.len(),
            limit
        ))
        .into());
    }
    // Clear O_NONBLOCK: it only mattered for the open.
    let _ = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&f),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    );
    Ok(Some((f, meta.len())))
}

/// Read a whole regular file of at most `limit` bytes (see [`open_regular`]); `Ok(None)` when
/// it does not exist. A file that grows past `limit` while being read is refused too.
pub fn read_regular_opt(path: &Path, limit: u64) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let Some((f, len)) = open_regular(path, limit)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(len as usize);
    f.take(limit + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("reading {}", path.display()))?;
    if out.len() as u64 > limit {
        return Err(Refused(format!(
            "{} grew past the {limit} bytes allowed for this kind of file while being read",
            path.display()
        ))
        .into());
    }
    Ok(Some(out))
}

/// [`read_regular_opt`] for a file that must exist.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>> {
    read_regular_opt(path, limit)?
        .with_context(|| format!("reading {}: no such file", path.display()))
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_string(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read_regular(path, limit)?)
        .with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// What [`check_owner_and_mode`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strictness {
    /// Neither group nor others may write (key directory, key file, state directory).
    NoGroupOrOtherWrite,
    /// Others may not write; the group may (an evidence directory shared with an operators'
    /// group for reading and `runbook run`).
    NoOtherWrite,
}

/// Refuse `path` (a directory or file the agent trusts) when it is owned by a user other than
/// the agent's effective user or root, or writable by group/others (per `strict`). The error
/// names the path, its mode and owner and the fix, like OpenSSH's `StrictModes`. `what`
/// says what the path is ("key directory"). A missing path is not an error (it is created
/// later with safe modes); a symlink is judged by what it points to.
pub fn check_owner_and_mode(path: &Path, what: &str, strict: Strictness) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("checking {what} {}", path.display())),
    };
    let me = nix::unistd::geteuid().as_raw();
    let (uid, mode) = (meta.uid(), meta.mode() & 0o7777);
    if uid != me && uid != 0 {
        bail!(
            "{what} {} is owned by uid {uid}, not by this agent (uid {me}) or root: another user could replace what it holds; fix: chown {me} {}",
            path.display(),
            path.display()
        );
    }
    let forbidden = match strict {
        Strictness::NoGroupOrOtherWrite => 0o022,
        Strictness::NoOtherWrite => 0o002,
    };
    if mode & forbidden != 0 {
        let who = if mode & forbidden & 0o020 != 0 { "its group" } else { "other users" };
        bail!(
            "{what} {} has mode {mode:04o} (owner uid {uid}): writable by {who}, who could replace what it holds; fix: chmod {} {}",
            path.display(),
            if strict == Strictness::NoOtherWrite { "o-w" } else { "go-w" },
            path.display()
        );
    }
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

/// Atomically replace the directory `dir` with one holding exactly `files` (name, bytes),
/// each with `mode`: the files are written and fsynced in a temporary sibling directory, which
/// is then exchanged with `dir` in one `renameat2(RENAME_EXCHANGE)` (or renamed into place
/// when `dir` does not exist yet), the parent is fsynced and the old copy removed. Readers
/// see either every old file or every new one, never a mix — which is what a record and its
/// signatures need (the signed chain head). Left-over temporaries are `.tmp-NAME.*`
/// directories beside `dir` ([`remove_stale_tmp_dirs`]).
pub fn replace_dir(dir: &Path, files: &[(&str, &[u8])], mode: u32) -> Result<()> {
    use nix::fcntl::{renameat2, RenameFlags};
    let parent = parent_dir(dir)?;
    let tmp = tmp_path(dir)?;
    create_dir_all(&tmp, 0o755)?;
    let result = (|| {
        for (name, bytes) in files {
            write_tmp(&tmp.join(name), bytes, mode)?;
        }
        sync_dir(&tmp)?;
        if dir.exists() {
            renameat2(None, &tmp, None, dir, RenameFlags::RENAME_EXCHANGE).with_context(|| {
                format!("exchanging {} with {}", tmp.display(), dir.display())
            })?;
        } else {
            fs::rename(&tmp, dir)
                .with_context(|| format!("renaming {} to {}", tmp.display(), dir.display()))?;
        }
        sync_dir(parent)
    })();
    // After an exchange `tmp` holds the old files; after a failure, the unpublished new ones.
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// Remove `.tmp-NAME.*` directories [`replace_dir`] left in `parent` after a crash (only the
/// single locked writer makes them, so they never hold anything published).
pub fn remove_stale_tmp_dirs(parent: &Path, name: &str) -> Result<()> {
    let prefix = format!("{TMP_PREFIX}{name}.");
    let rd = match fs::read_dir(parent) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading directory {}", parent.display())),
    };
    for e in rd {
        let e = e.with_context(|| format!("reading directory {}", parent.display()))?;
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&prefix) && e.file_type().is_ok_and(|t| t.is_dir()) {
            fs::remove_dir_all(e.path())
                .with_context(|| format!("removing stale temporary {}", e.path().display()))?;
        }
    }
    Ok(())
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

/// Read a regular file of at most `max` bytes, following symlinks: for the files an
/// operator or NixOS provides (config, runbooks, baseline files), which are often links into
/// the Nix store, unlike evidence (see [`read_regular`], which refuses links). Opened with
/// `O_NONBLOCK` and checked with `fstat` on the open descriptor, so a FIFO (even one swapped
/// in after a check) is refused instead of blocking the reader forever, and a huge or endless
/// file is refused instead of read whole. The error names the path and what it is.
pub fn read_config_file(path: &Path, max: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("reading {}", path.display()))?;
    let meta = f.metadata().with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file ({})", path.display(), kind_of(meta.file_type()));
    }
    if meta.len() > max {
        bail!("{} is {} bytes, more than the {max} allowed", path.display(), meta.len());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    f.take(max + 1).read_to_end(&mut bytes).with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > max {
        bail!("{} grew past the {max} bytes allowed while being read", path.display());
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

