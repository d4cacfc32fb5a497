//! Evidence signing keys (DESIGN.md 3, "Signing keys"): generation, rotation, loading.
//!
//! A key directory holds:
//!
//! | file | what |
//! |---|---|
//! | `evidence-signing.key` | private key, PKCS#8 PEM, mode 0400 |
//! | `evidence-signing.pub.pem` | public key, SPKI PEM (`openssl pkeyutl -verify -pubin -rawin`) |
//! | `evidence-signing.pub` | public key, OpenSSH line |
//! | `allowed_signers` | every key (current and archived) with its `valid-after`/`valid-before` window |
//! | `key-info.json` | [`KeyInfo`] of the current key (`valid_until: null`) |
//! | `archive/<safe-id>.pub`, `.pub.pem`, `.json` | each retired public key and its [`KeyInfo`] |
//!
//! Validity windows are whole seconds, inclusive at both ends, like `ssh-keygen -Y verify`'s
//! `valid-after`/`valid-before` checks; rotating at time T ends the old window and starts the
//! new one at T.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use ssh_key::{HashAlg, LineEnding, PublicKey, SshSig};

use crate::fsutil;

/// Private key file name.
pub const PRIVATE_KEY_FILE: &str = "evidence-signing.key";
/// SPKI PEM public key file name.
pub const PUBLIC_PEM_FILE: &str = "evidence-signing.pub.pem";
/// OpenSSH public key file name.
pub const PUBLIC_SSH_FILE: &str = "evidence-signing.pub";
/// `ssh-keygen -Y verify -f` file name.
pub const ALLOWED_SIGNERS_FILE: &str = "allowed_signers";
/// Key metadata file name.
pub const KEY_INFO_FILE: &str = "key-info.json";
/// Sub-directory holding retired public keys.
pub const ARCHIVE_DIR: &str = "archive";
/// Sub-directory holding signed revocation records (`REV-<safe-id>.json` + `.sig` + `.sshsig`).
pub const REVOCATIONS_DIR: &str = "revocations";
/// Principal in `allowed_signers` and the `-I` argument of `ssh-keygen -Y verify`.
pub const PRINCIPAL: &str = "msp-evidence";
/// SSHSIG namespace (`-n` of `ssh-keygen -Y`).
pub const NAMESPACE: &str = "msp-evidence";
/// `signing.algorithm` in bundles and `algorithm` in [`KeyInfo`].
pub const ALGORITHM: &str = "ed25519";

/// Metadata of one key: `key-info.json` for the current key, `archive/<safe-id>.json` for
/// retired ones. Times are RFC 3339 UTC, whole seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    /// `SHA256:<base64>` fingerprint, as `ssh-keygen -l` prints it.
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// The public key as an OpenSSH line (so the info file alone identifies the key).
    pub public_key: String,
    /// When the key was generated.
    pub created: String,
    /// First second at which the key may sign.
    pub valid_from: String,
    /// Last second at which the key may sign; `null` for the current key.
    pub valid_until: Option<String>,
    /// Set by `key revoke`: the key is suspected stolen from this second on, and its window
    /// ends here (`valid_until` equals it). A signed record in `revocations/` must back it
    /// (see [`crate::keyring`]); absent for a key never revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compromised_since: Option<String>,
}

impl KeyInfo {
    /// `valid_from` parsed.
    pub fn valid_from_time(&self) -> Result<DateTime<Utc>> {
        parse_time(&self.valid_from).with_context(|| format!("key {}: valid_from", self.key_id))
    }
    /// `valid_until` parsed (`None` = open-ended).
    pub fn valid_until_time(&self) -> Result<Option<DateTime<Utc>>> {
        self.valid_until
            .as_deref()
            .map(parse_time)
            .transpose()
            .with_context(|| format!("key {}: valid_until", self.key_id))
    }
}

/// Parse an RFC 3339 time (any offset) as UTC.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .with_context(|| format!("{s:?} is not an RFC 3339 time"))?
        .with_timezone(&Utc))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// `YYYYMMDDHHMMSSZ`, the form `allowed_signers` takes for `valid-after`/`valid-before`.
fn ssh_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%SZ").to_string()
}

/// `SHA256:ab+/cd` as a file name: `SHA256-ab-_cd`.
pub fn key_id_file_stem(key_id: &str) -> String {
    key_id.replace([':', '+'], "-").replace('/', "_")
}

/// The OpenSSH public key for an Ed25519 verifying key (comment `msp-evidence`).
pub fn ssh_public_key(vk: &VerifyingKey) -> PublicKey {
    let data = ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(vk.to_bytes()));
    PublicKey::new(data, PRINCIPAL)
}

/// `SHA256:...` fingerprint of an Ed25519 verifying key, as `ssh-keygen -l` prints it.
pub fn key_id_of(vk: &VerifyingKey) -> String {
    ssh_public_key(vk).fingerprint(HashAlg::Sha256).to_string()
}

/// One `allowed_signers` line for a key and its window.
fn allowed_signers_line(info: &KeyInfo) -> Result<String> {
    let mut opts = format!(
        "namespaces=\"{NAMESPACE}\",valid-after=\"{}\"",
        ssh_time(info.valid_from_time()?)
    );
    if let Some(until) = info.valid_until_time()? {
        opts.push_str(&format!(",valid-before=\"{}\"", ssh_time(until)));
    }
    // The key line without its comment: `ssh-ed25519 AAAA...`.
    let mut parts = info.public_key.split_whitespace();
    let (alg, b64) = match (parts.next(), parts.next()) {
        (Some(a), Some(b)) => (a, b),
        _ => bail!(
            "key {}: public_key {:?} is not an OpenSSH line",
            info.key_id,
            info.public_key
        ),
    };
    Ok(format!("{PRINCIPAL} {opts} {alg} {b64}\n"))
}

fn write_public_files(dir: &Path, stem: &str, vk: &VerifyingKey, once: bool) -> Result<()> {
    let pem = vk
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .context("encoding the public key as SPKI PEM")?;
    let ssh = ssh_public_key(vk)
        .to_openssh()
        .context("encoding the public key for OpenSSH")?;
    let write = if once {
        fsutil::write_once
    } else {
        fsutil::replace
    };
    write(&dir.join(format!("{stem}.pub.pem")), pem.as_bytes(), 0o644)?;
    write(
        &dir.join(format!("{stem}.pub")),
        format!("{ssh}\n").as_bytes(),
        0o644,
    )?;
    Ok(())
}

fn info_json(info: &KeyInfo) -> Result<Vec<u8>> {
    let mut v = serde_json::to_vec_pretty(info).context("serialising key info")?;
    v.push(b'\n');
    Ok(v)
}

fn new_key_info(vk: &VerifyingKey, now: DateTime<Utc>) -> Result<KeyInfo> {
    let now = now.trunc_subsecs(0);
    Ok(KeyInfo {
        key_id: key_id_of(vk),
        algorithm: ALGORITHM.to_string(),
        public_key: ssh_public_key(vk)
            .to_openssh()
            .context("encoding the public key")?,
        created: rfc3339(now),
        valid_from: rfc3339(now),
        valid_until: None,
        compromised_since: None,
    })
}

fn write_allowed_signers(dir: &Path, keys: &[KeyInfo]) -> Result<()> {
    let mut text = String::from(
        "# msp-evidence signing keys with their validity windows (written by msp-agent key).\n\
         # ssh-keygen -Y verify -f allowed_signers -I msp-evidence -n msp-evidence \
         -s X.json.sshsig -Overify-time=YYYYMMDDHHMMSS < X.json\n",
    );
    for k in keys {
        text.push_str(&allowed_signers_line(k)?);
    }
    fsutil::replace(&dir.join(ALLOWED_SIGNERS_FILE), text.as_bytes(), 0o644)
}

/// Generate a new key in `dir` (created if missing) valid from `now`. Refuses to overwrite an
/// existing key. The private key is written last so that a directory with a private key is
/// always complete.
pub fn generate(dir: &Path, now: DateTime<Utc>) -> Result<KeyInfo> {
    let key_path = dir.join(PRIVATE_KEY_FILE);
    if key_path.exists() || dir.join(KEY_INFO_FILE).exists() {
        bail!(
            "{} already holds a signing key; refusing to overwrite it (use `msp-agent key rotate`)",
            dir.display()
        );
    }
    check_key_dir(dir)?;
    fsutil::create_dir_all(dir, 0o755)?;
    let sk = SigningKey::generate(&mut rand_core::OsRng);
    let info = new_key_info(&sk.verifying_key(), now)?;
    write_public_files(dir, "evidence-signing", &sk.verifying_key(), false)?;
    fsutil::replace(&dir.join(KEY_INFO_FILE), &info_json(&info)?, 0o644)?;
    write_allowed_signers(dir, std::slice::from_ref(&info))?;
    write_private_key(&key_path, &sk, true)?;
    Ok(info)
}

fn write_private_key(path: &Path, sk: &SigningKey, once: bool) -> Result<()> {
    // PKCS#8 v1 (no embedded public key): the form `openssl genpkey` writes and OpenSSL 3.0
    // reads; the v2 form ed25519-dalek writes by default is rejected by `openssl pkey`.
    let bytes = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: sk.to_bytes(),
        public_key: None,
    };
    let pem = bytes
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .context("encoding the private key as PKCS#8 PEM")?;
    if once {
        fsutil::write_once(path, pem.as_bytes(), 0o400)
    } else {
        fsutil::replace(path, pem.as_bytes(), 0o400)
    }
}

/// Read `key-info.json` from a key directory.
pub fn read_key_info(path: &Path) -> Result<KeyInfo> {
    let bytes = fsutil::read_regular(path, fsutil::limits::SMALL)?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// The retired keys' infos in `dir/archive`, oldest first.
pub fn read_archive(dir: &Path) -> Result<Vec<KeyInfo>> {
    let adir = dir.join(ARCHIVE_DIR);
    let mut out = Vec::new();
    let rd = match fs::read_dir(&adir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", adir.display())),
    };
    for entry in rd {
        let entry = entry.with_context(|| format!("reading {}", adir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !name.starts_with(fsutil::TMP_PREFIX) {
            out.push(read_key_info(&entry.path())?);
        }
    }
    out.sort_by(|a, b| a.valid_from.cmp(&b.valid_from));
    Ok(out)
}

/// Rotate the key in `dir` at `now`: archive the current public key with `valid_until = now`,
/// generate a new key valid from `now`, rewrite `allowed_signers` with every key's window.
/// Returns (retired key, new key).
///
/// Order: archive files (write-once), then the new private key under a temporary name, then
/// the public files and `key-info.json`, then `allowed_signers`, then the private key is
/// renamed into place. [`Signer::load`] refuses a private key that does not match
/// `evidence-signing.pub`, so an interrupted rotation is loud, never a silent wrong key.
pub fn rotate(dir: &Path, now: DateTime<Utc>) -> Result<(KeyInfo, KeyInfo)> {
    check_key_dir(dir)?;
    let now = now.trunc_subsecs(0);
    let mut old = read_key_info(&dir.join(KEY_INFO_FILE))?;
    if old.valid_from_time()? > now {
        bail!(
            "{}: current key is valid from {}, after the rotation time {}",
            dir.display(),
            old.valid_from,
            rfc3339(now)
        );
    }
    // Check the public files really are the key the info names before archiving them.
    let pem_path = dir.join(PUBLIC_PEM_FILE);
    let pem = fsutil::read_regular_string(&pem_path, fsutil::limits::SMALL)?;
    let old_vk = VerifyingKey::from_public_key_pem(&pem)
        .with_context(|| format!("parsing {}", pem_path.display()))?;
    if key_id_of(&old_vk) != old.key_id {
        bail!(
            "{} is key {}, but {} names {}",
            pem_path.display(),
            key_id_of(&old_vk),
            KEY_INFO_FILE,
            old.key_id
        );
    }
    old.valid_until = Some(rfc3339(now));

    let adir = dir.join(ARCHIVE_DIR);
    fsutil::create_dir_all(&adir, 0o755)?;
    let stem = key_id_file_stem(&old.key_id);
    write_public_files(&adir, &stem, &old_vk, true)?;
    fsutil::write_once(&adir.join(format!("{stem}.json")), &info_json(&old)?, 0o644)?;

    let sk = SigningKey::generate(&mut rand_core::OsRng);
    let new = new_key_info(&sk.verifying_key(), now)?;
    let staged = dir.join(format!("{}{PRIVATE_KEY_FILE}.new", fsutil::TMP_PREFIX));
    let _ = fs::remove_file(&staged);
    write_private_key(&staged, &sk, false)?;
    write_public_files(dir, "evidence-signing", &sk.verifying_key(), false)?;
    fsutil::replace(&dir.join(KEY_INFO_FILE), &info_json(&new)?, 0o644)?;
    let mut all = read_archive(dir)?;
    all.push(new.clone());
    write_allowed_signers(dir, &all)?;
    fs::rename(&staged, dir.join(PRIVATE_KEY_FILE)).with_context(|| {
        format!(
            "moving the new private key into {}",
            dir.join(PRIVATE_KEY_FILE).display()
        )
    })?;
    fsutil::sync_dir(dir)?;
    Ok((old, new))
}

/// `record_type` of a [`Revocation`].
pub const REVOCATION_RECORD_TYPE: &str = "key_revocation";

/// A signed revocation record, `revocations/REV-<safe-id>.json` with `.sig` (raw Ed25519)
/// and `.sshsig` (`ssh-keygen -Y verify`, namespace `msp-evidence`), signed by the key that
/// was active when the revocation was made, which is never the revoked key (revoking the
/// active key rotates first). Someone holding only the stolen key can therefore neither
/// forge nor move such a record; see ARCHITECTURE.md "Key windows and rotation".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Always [`REVOCATION_RECORD_TYPE`].
    pub record_type: String,
    /// The revoked key.
    pub key_id: String,
    /// RFC 3339: the key is untrusted for anything signed after this second.
    pub compromised_since: String,
    /// RFC 3339: when `key revoke` ran.
    pub revoked_at: String,
    /// The key that signed this record (the active key at `revoked_at`).
    pub signed_by: String,
}

/// `revocations/REV-<safe-id>.json` for a key id.
pub fn revocation_path(dir: &Path, key_id: &str) -> PathBuf {
    dir.join(REVOCATIONS_DIR).join(format!("REV-{}.json", key_id_file_stem(key_id)))
}

/// What [`revoke`] did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// The record written.
    pub record: Revocation,
    /// Where it was written.
    pub record_path: PathBuf,
    /// The new active key, when the revoked key was the active one.
    pub rotated_to: Option<KeyInfo>,
}

/// Revoke `key_id` (default: the active key) of the key directory `dir` as compromised since
/// `since`, at `now`:
/// 1. revoking the active key first rotates at `now` ([`rotate`]), so a new key keeps signing
///    and signs the record;
/// 2. the signed record is written to `revocations/` (write-once);
/// 3. the key's archived info gets `compromised_since = since` and `valid_until = since`
///    (the earlier of it and its old end), and `allowed_signers` is rewritten, so the key's
///    `valid-before` is `since` for `ssh-keygen -Y verify -Overify-time` too.
///
/// A crash between 2 and 3 leaves a record the archive does not match: `Keyring::load`
/// refuses that loudly and running the same `key revoke --key-id` again completes it.
pub fn revoke(dir: &Path, key_id: Option<&str>, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<Revoked> {
    check_key_dir(dir)?;
    let now = now.trunc_subsecs(0);
    let since = since.trunc_subsecs(0);
    if since > now {
        bail!("--compromised-since {} is in the future (now {})", rfc3339(since), rfc3339(now));
    }
    let current = read_key_info(&dir.join(KEY_INFO_FILE))?;
    let target = key_id.unwrap_or(&current.key_id).to_string();
    let mut rotated_to = None;
    if target == current.key_id {
        if since < current.valid_from_time()? {
            bail!(
                "key {target} is valid from {}, after --compromised-since {}: nothing it signed can be before that",
                current.valid_from,
                rfc3339(since)
            );
        }
        let (_, new) = rotate(dir, now)?;
        rotated_to = Some(new);
    }
    let stem = key_id_file_stem(&target);
    let info_path = dir.join(ARCHIVE_DIR).join(format!("{stem}.json"));
    if !info_path.exists() {
        bail!("key {target} is neither the active key nor in {}", dir.join(ARCHIVE_DIR).display());
    }
    let mut info = read_key_info(&info_path)?;
    if since < info.valid_from_time()? {
        bail!("key {target} is valid from {}, after --compromised-since {}", info.valid_from, rfc3339(since));
    }
    let since = match info.compromised_since.as_deref().map(parse_time).transpose()? {
        Some(earlier) if earlier <= since => {
            eprintln!("key {target} is already revoked since {}; keeping the earlier time", rfc3339(earlier));
            earlier
        }
        _ => since,
    };
    let signer = Signer::load(dir)?;
    if signer.key_id() == target {
        bail!("key {target} is the loaded signing key; a key never signs its own revocation");
    }
    let record = Revocation {
        record_type: REVOCATION_RECORD_TYPE.to_string(),
        key_id: target.clone(),
        compromised_since: rfc3339(since),
        revoked_at: rfc3339(now),
        signed_by: signer.key_id().to_string(),
    };
    let record_path = revocation_path(dir, &target);
    let existing = read_revocation(&record_path).ok();
    if existing.as_ref().map(|r| &r.compromised_since) != Some(&record.compromised_since) {
        let mut bytes = serde_json::to_vec_pretty(&record).context("serialising the revocation")?;
        bytes.push(b'\n');
        let raw = signer.sign_raw(&bytes);
        let ssh = signer.sign_sshsig(&bytes)?;
        fsutil::create_dir_all(&dir.join(REVOCATIONS_DIR), 0o755)?;
        let sig_path = companion(&record_path, ".sig");
        let ssh_path = companion(&record_path, ".sshsig");
        for p in [&record_path, &sig_path, &ssh_path] {
            match fs::remove_file(p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", p.display())),
            }
        }
        fsutil::write_once_all(
            &[(&record_path, &bytes), (&sig_path, &raw), (&ssh_path, ssh.as_bytes())],
            0o644,
        )?;
    }
    info.compromised_since = Some(rfc3339(since));
    let until = match info.valid_until_time()? {
        Some(u) if u < since => u,
        _ => since,
    };
    info.valid_until = Some(rfc3339(until));
    fsutil::replace(&info_path, &info_json(&info)?, 0o644)?;
    let mut all = read_archive(dir)?;
    all.push(read_key_info(&dir.join(KEY_INFO_FILE))?);
    write_allowed_signers(dir, &all)?;
    fsutil::sync_dir(dir)?;
    Ok(Revoked { record, record_path, rotated_to })
}

fn companion(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Parse a revocation record (not its signatures: [`crate::keyring`] checks those).
pub fn read_revocation(path: &Path) -> Result<Revocation> {
    let bytes = fsutil::read_regular(path, fsutil::limits::SMALL)?;
    let r: Revocation = serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?;
    if r.record_type != REVOCATION_RECORD_TYPE {
        bail!("{}: record_type {:?}, expected {REVOCATION_RECORD_TYPE:?}", path.display(), r.record_type);
    }
    Ok(r)
}

/// Refuse a key directory another user could change (StrictModes, as OpenSSH checks
/// `~/.ssh`): the directory, its `archive/` and every public file in it must be owned by this
/// user or root and not writable by group or others. Otherwise another user could swap in a
/// key pair of their own (the agent would sign with it) or an archived key verify trusts.
/// Called by every command that signs ([`Signer::load`], `key rotate`, `key generate`).
pub fn check_key_dir(dir: &Path) -> Result<()> {
    use fsutil::Strictness::NoGroupOrOtherWrite as Strict;
    fsutil::check_owner_and_mode(dir, "key directory", Strict)?;
    fsutil::check_owner_and_mode(&dir.join(ARCHIVE_DIR), "key archive directory", Strict)?;
    fsutil::check_owner_and_mode(&dir.join(REVOCATIONS_DIR), "key revocations directory", Strict)?;
    for f in [PUBLIC_PEM_FILE, PUBLIC_SSH_FILE, ALLOWED_SIGNERS_FILE, KEY_INFO_FILE] {
        fsutil::check_owner_and_mode(&dir.join(f), "key file", Strict)?;
    }
    Ok(())
}

/// The loaded private signing key.
pub struct Signer {
    key: SigningKey,
    key_id: String,
    ssh_public: PublicKey,
    /// The retired keys of the key directory (`archive/`), by key id: what the store checks
    /// a chain head signed before the last rotation against.
    retired: Vec<(String, VerifyingKey)>,
    /// Where the key was loaded from (`None` for an in-memory key): a key rotated in after
    /// this signer was loaded is looked up there.
    key_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Load `evidence-signing.key` from `key_dir`, refusing a key readable by group or others,
    /// and a key that does not match `evidence-signing.pub` when that file exists.
    pub fn load(key_dir: &Path) -> Result<Signer> {
        check_key_dir(key_dir)?;
        let path = key_dir.join(PRIVATE_KEY_FILE);
        let meta = fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?;
        fsutil::check_owner_and_mode(&path, "signing key", fsutil::Strictness::NoGroupOrOtherWrite)?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            bail!(
                "{} has mode {mode:04o}; it must not be readable by group or others (chmod 0400)",
                path.display()
            );
        }
        let pem = fsutil::read_regular_string(&path, fsutil::limits::SMALL)?;
        let key = SigningKey::from_pkcs8_pem(&pem).with_context(|| {
            format!("{} is not a PKCS#8 PEM Ed25519 private key", path.display())
        })?;
        let mut signer = Signer::from_signing_key(key);
        signer.key_dir = Some(key_dir.to_path_buf());
        for info in read_archive(key_dir)? {
            let vk = crate::keyring::public_key_of(&info)?;
            signer.retired.push((info.key_id, vk));
        }
        let pub_path = key_dir.join(PUBLIC_SSH_FILE);
        if let Some(text) = fsutil::read_regular_opt(&pub_path, fsutil::limits::SMALL)? {
            let text = String::from_utf8_lossy(&text);
            let on_disk = PublicKey::from_openssh(text.trim())
                .with_context(|| format!("parsing {}", pub_path.display()))?;
            if on_disk.key_data() != signer.ssh_public.key_data() {
                bail!(
                    "{} (key {}) does not match {} (key {}); was a rotation interrupted?",
                    path.display(),
                    signer.key_id,
                    pub_path.display(),
                    on_disk.fingerprint(HashAlg::Sha256)
                );
            }
        }
        Ok(signer)
    }

    /// Wrap an in-memory key (tests and benchmarks; production code uses [`Signer::load`]).
    pub fn from_signing_key(key: SigningKey) -> Signer {
        let vk = key.verifying_key();
        Signer {
            key_id: key_id_of(&vk),
            ssh_public: ssh_public_key(&vk),
            key,
            retired: Vec::new(),
            key_dir: None,
        }
    }

    /// The public key with `key_id`: this signer's own, one of its directory's retired keys,
    /// or (read again from the key directory) a key rotated in since this signer was loaded.
    /// `None` for a key this key directory never held.
    pub fn known_key(&self, key_id: &str) -> Option<VerifyingKey> {
        if key_id == self.key_id {
            return Some(self.key.verifying_key());
        }
        if let Some((_, k)) = self.retired.iter().find(|(id, _)| id == key_id) {
            return Some(*k);
        }
        let dir = self.key_dir.as_deref()?;
        let ring = crate::keyring::Keyring::load(dir).ok()?;
        ring.get(key_id).map(|k| k.key)
    }

    /// `SHA256:...` fingerprint, as `ssh-keygen -l` prints it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Raw 64-byte Ed25519 signature of `msg` (verifiable with `openssl pkeyutl -rawin`).
    pub fn sign_raw(&self, msg: &[u8]) -> [u8; 64] {
        self.key.sign(msg).to_bytes()
    }

    /// SSHSIG (PEM armoured) over `msg` with namespace `msp-evidence`, hash SHA-512 (what
    /// `ssh-keygen -Y sign` uses).
    pub fn sign_sshsig(&self, msg: &[u8]) -> Result<String> {
        let data = SshSig::signed_data(NAMESPACE, HashAlg::Sha512, msg)
            .context("building SSHSIG signed data")?;
        let sig = self.key.sign(&data);
        let ssh_sig = ssh_key::Signature::new(ssh_key::Algorithm::Ed25519, sig.to_bytes().to_vec())
            .context("wrapping the Ed25519 signature")?;
        let sshsig = SshSig::new(
            self.ssh_public.key_data().clone(),
            NAMESPACE,
            HashAlg::Sha512,
            ssh_sig,
        )
        .context("building SSHSIG")?;
        let mut pem = sshsig.to_pem(LineEnding::LF).context("encoding SSHSIG")?;
        if !pem.ends_with('\n') {
            pem.push('\n');
        }
        Ok(pem)
    }
}

/// Parse an armoured SSHSIG and insist that it is exactly the encoding [`Signer::sign_sshsig`]
/// writes. `ssh-key`'s decoder is lenient (fuzzing found that it accepts a signature whose
/// outer length field runs past the end of the blob, which `ssh-keygen -Y verify` refuses), and
/// a verifier that accepts what the auditor's stock tool refuses would report a modified file
/// as good; re-encoding and comparing closes every such gap at once.
pub fn sshsig_from_canonical_pem(armoured: &[u8]) -> std::result::Result<SshSig, String> {
    let sig = SshSig::from_pem(armoured).map_err(|e| format!("is not a valid SSH signature: {e}"))?;
    let mut canonical = sig.to_pem(LineEnding::LF).map_err(|e| format!("cannot be re-encoded: {e}"))?;
    if !canonical.ends_with('\n') {
        canonical.push('\n');
    }
    if canonical.as_bytes() != armoured {
        return Err("is not in the canonical SSHSIG encoding (the file was modified)".into());
    }
    Ok(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_file_stem_is_a_plain_name() {
        assert_eq!(key_id_file_stem("SHA256:a+b/c"), "SHA256-a-b_c");
    }

    #[test]
    fn load_refuses_group_readable_key_and_names_file_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), Utc::now()).unwrap();
        let key = dir.path().join(PRIVATE_KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        let err = format!("{:#}", Signer::load(dir.path()).unwrap_err());
        assert!(err.contains("evidence-signing.key has mode 0644"), "{err}");
        assert!(err.contains("chmod 0400"), "{err}");
        fs::set_permissions(&key, fs::Permissions::from_mode(0o400)).unwrap();
        Signer::load(dir.path()).unwrap();
    }
}
