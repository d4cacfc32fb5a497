//! A webhook receiver for tests: a real HTTP server on loopback (std TcpListener, one request
//! per connection) that records the JSON bodies it answers with 200.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A webhook receiver: answers `status` to every POST and records the JSON bodies it got.
pub struct Sink {
    /// Where to POST.
    pub url: String,
    /// Every JSON body answered with 200.
    pub bodies: Arc<Mutex<Vec<Value>>>,
    /// The status the sink answers with (set 500 to make sends fail).
    pub status: Arc<AtomicU16>,
}

/// Start a sink on an ephemeral loopback port.
pub fn sink() -> Sink {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(AtomicU16::new(200));
    let (b, s) = (bodies.clone(), status.clone());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { continue };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut w = conn;
            // One request per connection: the answer says `connection: close`.
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            {
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h == "\r\n" || h.is_empty() {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let code = s.load(Ordering::SeqCst);
                if code == 200 {
                    b.lock()
                        .unwrap()
                        .push(serde_json::from_slice::<Value>(&body).unwrap());
                }
                let _ = write!(
                    w,
                    "HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        }
    });
    Sink {
        url,
        bodies,
        status,
    }
}

impl Sink {
    /// (kind, host) of every body received, in order.
    pub fn kinds(&self) -> Vec<(String, String)> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["kind"].as_str().unwrap().to_string(),
                    v["host"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

