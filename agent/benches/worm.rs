//! `cargo bench --bench worm`: bundles uploaded, read back and confirmed per second against a
//! real `moto_server` on loopback, next to boto3 (the stock AWS SDK for Python) doing the same
//! PutObject (COMPLIANCE lock, Content-MD5, SHA-256 checksum) + HeadObject calls on the same
//! server in the same run.

#[path = "../tests/worm_support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Instant;

use msp_agent::worm::Uploader;
use support::{signer, BundleMaker, Moto};

const BOTO3_PY: &str = r#"
import base64, boto3, datetime, hashlib, os, sys, time
ep, bucket, root = sys.argv[1], sys.argv[2], sys.argv[3]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
files = []
for d, _, names in os.walk(root):
    top = os.path.relpath(d, root).split(os.sep)[0]
    if not (len(top) == 4 and top.isdigit()):
        continue  # only the bundles (YYYY/MM/...), not receipts or head.json
    for n in names:
        if not n.startswith(".tmp-"):
            files.append(os.path.join(d, n))
files.sort()
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=2555)
t = time.monotonic()
for p in files:
    body = open(p, "rb").read()
    key = "ref/" + os.path.relpath(p, root)
    s3.put_object(Bucket=bucket, Key=key, Body=body, ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=until,
                  ContentMD5=base64.b64encode(hashlib.md5(body).digest()).decode(),
                  ChecksumSHA256=base64.b64encode(hashlib.sha256(body).digest()).decode())
    s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
print(len(files), time.monotonic() - t)
"#;

fn main() {
    let n: usize = std::env::var("WORM_BENCH_BUNDLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let m = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let evidence = dir.path().join("evidence");
    let s = signer(&dir.path().join("keys"));
    let mut maker = BundleMaker::new(&evidence, s.clone());
    // Steady state: an outbox already exists (on the very first run every key gets a HEAD
    // before its PUT, see ARCHITECTURE.md, "WORM storage"), so upload one bundle first.
    maker.next();
    let mut up = Uploader::new(
        m.config(),
        m.creds.clone(),
        &evidence,
        &dir.path().join("state"),
        s.clone(),
    )
    .unwrap();
    assert_eq!(up.sync_once().unwrap().confirmed.len(), 1);
    drop(up);
    for _ in 0..n {
        maker.next();
    }
    let mut up = Uploader::new(
        m.config(),
        m.creds.clone(),
        &evidence,
        &dir.path().join("state"),
        s,
    )
    .unwrap();
    let t = Instant::now();
    let r = up.sync_once().unwrap();
    let ours = t.elapsed().as_secs_f64();
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.confirmed.len(), n);
    let objects = r.objects_put;
    let requests = up.client().requests_sent();

    let out = Command::new("python3")
        .args(["-c", BOTO3_PY, &m.endpoint(), "boto3-reference"])
        .arg(&evidence)
        .output()
        .expect("python3 with boto3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    let ref_objects: f64 = it.next().unwrap().parse().unwrap();
    let ref_secs: f64 = it.next().unwrap().parse().unwrap();

    println!("worm upload, moto_server on 127.0.0.1, {n} bundles ({objects} objects, {requests} requests incl. startup check and one HEAD-first bundle)");
    println!(
        "  msp-agent: {:.1} bundles/s confirmed (put + read-back + signed receipt + outbox fsync), {:.1} objects/s, {:.2} s",
        n as f64 / ours,
        objects as f64 / ours,
        ours
    );
    println!(
        "  boto3 put_object + head_object, same files: {:.1} objects/s, {:.2} s",
        ref_objects / ref_secs,
        ref_secs
    );
    println!(
        "  ratio (objects/s, msp-agent / boto3): {:.2}x",
        (objects as f64 / ours) / (ref_objects / ref_secs)
    );
}
