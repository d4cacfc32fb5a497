//! Shared helpers for the WORM tests and bench: a real `moto_server` process on loopback,
//! and signed bundle files laid out like the evidence store's.
#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use msp_agent::evidence::sample::sample_new_bundle;
use msp_agent::evidence::store::EvidenceStore;
use msp_agent::keys::Signer;
use msp_agent::worm::s3::S3Client;
use msp_agent::worm::{Credentials, WormConfig};

/// Bootstrap run during moto's unauthenticated first calls: an IAM user allowed s3:*, its
/// access key, and a bucket with Object Lock. Exactly `BOOTSTRAP_CALLS` API calls.
const BOOTSTRAP_PY: &str = r#"
import boto3, json, sys
ep, bucket = sys.argv[1], sys.argv[2]
kw = dict(endpoint_url=ep, region_name="us-east-1", aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam = boto3.client("iam", **kw)
iam.create_user(UserName="msp-agent")
iam.put_user_policy(UserName="msp-agent", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="msp-agent")["AccessKey"]
boto3.client("s3", **kw).create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
print(json.dumps({"id": k["AccessKeyId"], "secret": k["SecretAccessKey"]}))
"#;
const BOOTSTRAP_CALLS: u32 = 4;

/// The bucket every test uses.
pub const BUCKET: &str = "msp-evidence-test";

/// A `moto_server` child process on 127.0.0.1. Killed (by pid) on drop.
pub struct Moto {
    child: Option<Child>,
    pub port: u16,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
    /// Credentials valid on this server (moto's IAM user when SigV4 checking is on).
    pub creds: Credentials,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Start moto without signature checking and create [`BUCKET`] with Object Lock.
    pub fn start() -> Moto {
        let mut m = Moto::spawn(None);
        m.creds = Credentials {
            access_key_id: "testing".into(),
            secret_access_key: "testing".into(),
            session_token: None,
        };
        m.client_for(BUCKET)
            .create_bucket_with_object_lock()
            .unwrap();
        m
    }

    /// Start moto with SigV4 checking on after the bootstrap calls (IAM user, key, bucket).
    pub fn start_with_auth() -> Moto {
        let mut m = Moto::spawn(Some(BOOTSTRAP_CALLS));
        let out = Command::new("python3")
            .args(["-c", BOOTSTRAP_PY, &m.endpoint(), BUCKET])
            .output()
            .expect("python3 (with boto3, which moto[server] installs)");
        assert!(
            out.status.success(),
            "bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        m.creds = Credentials {
            access_key_id: v["id"].as_str().unwrap().into(),
            secret_access_key: v["secret"].as_str().unwrap().into(),
            session_token: None,
        };
        m
    }

    fn spawn(auth_after: Option<u32>) -> Moto {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = dir.path().join("moto.log");
        let mut m = Moto {
            child: None,
            port,
            log,
            _dir: dir,
            creds: Credentials {
                access_key_id: String::new(),
                secret_access_key: String::new(),
                session_token: None,
            },
        };
        m.launch(auth_after);
        m
    }

    fn launch(&mut self, auth_after: Option<u32>) {
        let logf = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new("moto_server");
        cmd.args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(logf.try_clone().unwrap())
            .stderr(logf);
        if let Some(n) = auth_after {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", n.to_string());
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot start moto_server ({e}); install it with scripts/setup-machine (pip install 'moto[server]')")
        });
        self.child = Some(child);
        self.wait_for_port(true);
    }

    fn wait_for_port(&self, up: bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ok = TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if ok == up {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto on port {} did not become {}",
                self.port,
                if up { "ready" } else { "closed" }
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A config pointing at this server (path style, as S3-compatible servers need).
    pub fn config(&self) -> WormConfig {
        let mut c = WormConfig::new(BUCKET);
        c.endpoint = self.endpoint();
        c.path_style = true;
        c.request_timeout_seconds = 5;
        c
    }

    /// A client for `bucket` with this server's credentials.
    pub fn client_for(&self, bucket: &str) -> S3Client {
        let mut c = self.config();
        c.bucket = bucket.into();
        S3Client::new(&c.s3_endpoint().unwrap(), self.creds.clone()).unwrap()
    }

    fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.as_ref().expect("moto is running").id() as i32)
    }

    /// Freeze the server process (SIGSTOP): connections hang, requests time out; its
    /// in-memory state stays.
    pub fn pause(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGSTOP).unwrap();
    }

    /// Resume a paused server (SIGCONT).
    pub fn resume(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGCONT).unwrap();
    }

    /// Kill the server (by pid) and wait until the port is closed. Moto keeps its state in
    /// memory, so a stopped server forgets every bucket.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGCONT,
            );
            let _ = c.kill();
            let _ = c.wait();
            self.wait_for_port(false);
        }
    }

    /// Start the server again on the same port (empty, no signature checking) and recreate
    /// the bucket.
    pub fn restart_empty(&mut self) {
        self.stop();
        self.launch(None);
        self.client_for(BUCKET)
            .create_bucket_with_object_lock()
            .unwrap();
    }

    /// Requests the server has logged (one access-log line per request).
    pub fn requests_logged(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\" ") && l.contains("HTTP/1.1"))
            .count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh signing key in `dir` (real `key generate` code) and its signer.
pub fn signer(dir: &Path) -> Arc<Signer> {
    // Valid from before the (fixed) dates of the test bundles, so `evidence verify` accepts them.
    msp_agent::keys::generate(dir, Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap()).unwrap();
    Arc::new(Signer::load(dir).unwrap())
}

/// Appends realistic bundles (the evidence module's sample disk-full incident) to a real
/// `EvidenceStore`, dated 2026-11-22, every fifth with an artifact.
pub struct BundleMaker {
    pub root: PathBuf,
    store: EvidenceStore,
    signer: Arc<Signer>,
    seq: u64,
    scratch: tempfile::TempDir,
}

impl BundleMaker {
    /// Open (create) the store at `root`.
    pub fn new(root: &Path, signer: Arc<Signer>) -> BundleMaker {
        BundleMaker {
            root: root.to_path_buf(),
            store: EvidenceStore::open(root).unwrap(),
            signer,
            seq: 0,
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    /// Append the next bundle; returns its id.
    pub fn next(&mut self) -> String {
        self.seq += 1;
        let mut artifacts = vec![];
        if self.seq.is_multiple_of(5) {
            let p = self.scratch.path().join(format!("df-{}.txt", self.seq));
            std::fs::write(
                &p,
                format!("Filesystem Use%\n/dev/sda1 91% (bundle {})\n", self.seq),
            )
            .unwrap();
            artifacts.push(p);
        }
        let new = sample_new_bundle(self.seq, artifacts);
        let now = Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap()
            + chrono::TimeDelta::seconds(self.seq as i64);
        let w = self.store.append(new, &self.signer, now).unwrap();
        w.bundle_id
    }
}

/// Write an AWS-style credentials file.
pub fn write_credentials_file(path: &Path, c: &Credentials) {
    let mut f = File::create(path).unwrap();
    writeln!(
        f,
        "[default]\naws_access_key_id = {}\naws_secret_access_key = {}",
        c.access_key_id, c.secret_access_key
    )
    .unwrap();
}
