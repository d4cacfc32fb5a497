//! Signing keys, checked with the real `ssh-keygen` and `openssl` binaries.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use chrono::{TimeZone, Utc};
use msp_agent::keys::{self, Signer};

fn agent() -> Command {
    Command::new(env!("CARGO_BIN_EXE_msp-agent"))
}

/// Run a command, feeding `stdin`; return (success, stdout+stderr).
fn run(cmd: &mut Command, stdin: &[u8]) -> (bool, String) {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn ssh_verify(dir: &Path, msg: &[u8], sshsig: &str, verify_time: Option<&str>) -> (bool, String) {
    let sig = dir.join("msg.sshsig");
    fs::write(&sig, sshsig).unwrap();
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-Y", "verify", "-f"])
        .arg(dir.join("allowed_signers"))
        .args(["-I", "msp-evidence", "-n", "msp-evidence", "-s"])
        .arg(&sig);
    if let Some(t) = verify_time {
        cmd.arg(format!("-Overify-time={t}"));
    }
    run(&mut cmd, msg)
}

fn openssl_verify(pem: &Path, msg: &[u8], raw_sig: &[u8]) -> (bool, String) {
    let tmp = tempfile::tempdir().unwrap();
    let m = tmp.path().join("msg");
    let s = tmp.path().join("msg.sig");
    fs::write(&m, msg).unwrap();
    fs::write(&s, raw_sig).unwrap();
    run(
        Command::new("openssl")
            .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(pem)
            .arg("-rawin")
            .arg("-in")
            .arg(&m)
            .arg("-sigfile")
            .arg(&s),
        b"",
    )
}

#[test]
fn generate_writes_the_documented_files_and_stock_tools_accept_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let out = agent()
        .args(["key", "generate", "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "allowed_signers",
            "evidence-signing.key",
            "evidence-signing.pub",
            "evidence-signing.pub.pem",
            "key-info.json"
        ]
    );
    let mode = fs::metadata(dir.join("evidence-signing.key"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o400);
    let pem = fs::read_to_string(dir.join("evidence-signing.key")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");

    // key_id is exactly the fingerprint ssh-keygen -l prints.
    let info: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("key-info.json")).unwrap()).unwrap();
    let (ok, lprint) = run(
        Command::new("ssh-keygen")
            .arg("-l")
            .arg("-f")
            .arg(dir.join("evidence-signing.pub")),
        b"",
    );
    assert!(ok, "{lprint}");
    let fp = lprint.split_whitespace().nth(1).unwrap();
    assert_eq!(info["key_id"], fp);
    assert!(info["valid_until"].is_null());
    assert_eq!(info["created"], info["valid_from"]);
    let signer = Signer::load(&dir).unwrap();
    assert_eq!(signer.key_id(), fp);

    // allowed_signers: principal, namespace, valid-after in UTC.
    let allowed = fs::read_to_string(dir.join("allowed_signers")).unwrap();
    let line = allowed.lines().find(|l| !l.starts_with('#')).unwrap();
    let re = regex::Regex::new(
        r#"^msp-evidence namespaces="msp-evidence",valid-after="\d{14}Z" ssh-ed25519 \S+$"#,
    )
    .unwrap();
    assert!(re.is_match(line), "{line}");

    // The private key is a PKCS#8 key openssl itself can read.
    let (ok, text) = run(
        Command::new("openssl")
            .args(["pkey", "-noout", "-in"])
            .arg(dir.join("evidence-signing.key")),
        b"",
    );
    assert!(ok, "{text}");

    let msg = b"some bundle bytes\n";
    let (ok, text) = openssl_verify(
        &dir.join("evidence-signing.pub.pem"),
        msg,
        &signer.sign_raw(msg),
    );
    assert!(ok, "openssl: {text}");
    let (ok, text) = openssl_verify(
        &dir.join("evidence-signing.pub.pem"),
        b"other bytes\n",
        &signer.sign_raw(msg),
    );
    assert!(!ok, "openssl accepted a signature over other bytes: {text}");

    let sshsig = signer.sign_sshsig(msg).unwrap();
    let (ok, text) = ssh_verify(&dir, msg, &sshsig, None);
    assert!(ok, "ssh-keygen: {text}");
    let (ok, text) = ssh_verify(&dir, b"tampered\n", &sshsig, None);
    assert!(!ok, "ssh-keygen accepted a tampered message: {text}");
}

#[test]
fn generate_refuses_to_overwrite_an_existing_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    keys::generate(dir, Utc::now()).unwrap();
    let before = fs::read(dir.join("evidence-signing.key")).unwrap();
    let out = agent()
        .args(["key", "generate", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to overwrite"), "{err}");
    assert_eq!(fs::read(dir.join("evidence-signing.key")).unwrap(), before);
}

#[test]
fn a_world_readable_private_key_is_refused_with_file_and_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    keys::generate(dir, Utc::now()).unwrap();
    let key = dir.join("evidence-signing.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = format!("{:#}", Signer::load(dir).unwrap_err());
    assert!(
        err.contains(&format!(
            "{} has mode 0644; it must not be readable by group or others (chmod 0400)",
            key.display()
        )),
        "{err}"
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o440)).unwrap();
    let err = format!("{:#}", Signer::load(dir).unwrap_err());
    assert!(err.contains("has mode 0440"), "{err}");
}

#[test]
fn rotation_keeps_old_signatures_verifiable_at_their_time_with_ssh_keygen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 10, 8, 0, 0).unwrap();
    let t1 = Utc.with_ymd_and_hms(2026, 6, 1, 12, 30, 0).unwrap();
    keys::generate(dir, t0).unwrap();
    let old = Signer::load(dir).unwrap();
    let old_sig = old.sign_sshsig(b"old bundle\n").unwrap();

    let out = {
        let (o, n) = keys::rotate(dir, t1).unwrap();
        assert_eq!(o.key_id, old.key_id());
        assert_eq!(o.valid_until.as_deref(), Some("2026-06-01T12:30:00Z"));
        assert_eq!(n.valid_from, "2026-06-01T12:30:00Z");
        n
    };
    let new = Signer::load(dir).unwrap();
    assert_eq!(new.key_id(), out.key_id);
    assert_ne!(new.key_id(), old.key_id());
    let stem = keys::key_id_file_stem(old.key_id());
    for ext in [".pub", ".pub.pem", ".json"] {
        assert!(
            dir.join("archive").join(format!("{stem}{ext}")).is_file(),
            "archive/{stem}{ext} missing"
        );
    }
    let allowed = fs::read_to_string(dir.join("allowed_signers")).unwrap();
    assert!(
        allowed.contains(r#"valid-after="20260110080000Z",valid-before="20260601123000Z""#),
        "{allowed}"
    );
    assert!(
        allowed.contains(r#"valid-after="20260601123000Z" ssh-ed25519"#),
        "{allowed}"
    );

    // The old key verifies at a time inside its window, not after it.
    let (ok, text) = ssh_verify(dir, b"old bundle\n", &old_sig, Some("20260301000000"));
    assert!(ok, "old key inside its window: {text}");
    let (ok, text) = ssh_verify(dir, b"old bundle\n", &old_sig, Some("20260701000000"));
    assert!(!ok, "old key accepted after its window: {text}");
    // The new key verifies after rotation, not before it.
    let new_sig = new.sign_sshsig(b"new bundle\n").unwrap();
    let (ok, text) = ssh_verify(dir, b"new bundle\n", &new_sig, Some("20260701000000"));
    assert!(ok, "new key inside its window: {text}");
    let (ok, text) = ssh_verify(dir, b"new bundle\n", &new_sig, Some("20260301000000"));
    assert!(!ok, "new key accepted before its window: {text}");
    // The archived PEM still verifies old raw signatures with openssl.
    let (ok, text) = openssl_verify(
        &dir.join("archive").join(format!("{stem}.pub.pem")),
        b"x\n",
        &old.sign_raw(b"x\n"),
    );
    assert!(ok, "{text}");

    // A second rotation via the CLI keeps both archived windows.
    let out = agent()
        .args(["key", "rotate", "--key-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let allowed = fs::read_to_string(dir.join("allowed_signers")).unwrap();
    assert_eq!(
        allowed
            .lines()
            .filter(|l| l.starts_with("msp-evidence "))
            .count(),
        3,
        "{allowed}"
    );
    let (ok, text) = ssh_verify(dir, b"old bundle\n", &old_sig, Some("20260301000000"));
    assert!(ok, "old key after a second rotation: {text}");
}
