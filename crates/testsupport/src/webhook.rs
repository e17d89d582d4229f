//! The webhook receiver of the end-to-end tests: a plain HTTP server on loopback
//! that answers `200` to every request, keeps the headers and JSON body of each,
//! checks `X-Berth-Signature` when it is given the webhook's secret, and can go
//! down (connections refused) and come back on the same port.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// One request the receiver accepted.
#[derive(Debug, Clone)]
pub struct Received {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
}

/// A webhook receiver on a fixed port that can be stopped and started again.
/// Each request gets `Connection: close`, so a receiver that is down really
/// refuses the next delivery (no pooled connection survives).
pub struct Receiver {
    addr: SocketAddr,
    secret: Option<Arc<str>>,
    got: Arc<Mutex<Vec<Received>>>,
    bad_signatures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// A receiver that does not check signatures.
    pub fn start() -> Receiver {
        Self::bind(None)
    }

    /// A receiver that checks every request's `X-Berth-Signature` (HMAC-SHA256 of
    /// the body under `secret`); see [`Receiver::assert_signatures`].
    pub fn signed(secret: &str) -> Receiver {
        Self::bind(Some(secret.into()))
    }

    fn bind(secret: Option<Arc<str>>) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let mut r = Receiver {
            addr,
            secret,
            got: Arc::default(),
            bad_signatures: Arc::default(),
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        };
        r.serve(l);
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/registry", self.addr)
    }

    fn serve(&mut self, l: TcpListener) {
        l.set_nonblocking(true).unwrap();
        self.stop.store(false, Ordering::SeqCst);
        let (got, bad, stop, secret) = (
            self.got.clone(),
            self.bad_signatures.clone(),
            self.stop.clone(),
            self.secret.clone(),
        );
        self.thread = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        handle(s, secret.as_deref(), &got, &bad);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => return,
                }
            }
        }));
    }

    /// Stops listening: connections are refused until [`Receiver::resume`].
    pub fn down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    /// Listens again on the same port.
    pub fn resume(&mut self) {
        let l = TcpListener::bind(self.addr).expect("rebind the receiver's port");
        self.serve(l);
    }

    /// Every request received so far, in arrival order.
    pub fn events(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the requests received so far; panics after
    /// `timeout`, listing what arrived.
    pub fn wait_until(&self, what: &str, timeout: Duration, pred: impl Fn(&[Received]) -> bool) {
        let start = Instant::now();
        loop {
            let ev = self.events();
            if pred(&ev) {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "timed out waiting for {what}; received:\n{}",
                    ev.iter()
                        .map(|r| r.body.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The JSON bodies received once `pred` holds for them (within 30 s).
    pub fn wait_for(&self, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let bodies = |ev: &[Received]| ev.iter().map(|r| r.body.clone()).collect::<Vec<_>>();
        self.wait_until("events", Duration::from_secs(30), |ev| pred(&bodies(ev)));
        bodies(&self.events())
    }

    /// Panics if any request carried a wrong or missing signature (only for a
    /// receiver made with [`Receiver::signed`]).
    pub fn assert_signatures(&self) {
        assert!(
            self.secret.is_some(),
            "this receiver checks no signatures: start it with Receiver::signed"
        );
        let bad = self.bad_signatures.lock().unwrap();
        assert!(bad.is_empty(), "requests with a wrong signature: {bad:?}");
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

fn handle(
    s: TcpStream,
    secret: Option<&str>,
    got: &Mutex<Vec<Received>>,
    bad: &Mutex<Vec<String>>,
) {
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    if r.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).unwrap_or(0) == 0 {
            return;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if r.read_exact(&mut body).is_err() {
        return;
    }
    if let Some(secret) = secret {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
        let want = format!(
            "sha256={}",
            hex::encode(ring::hmac::sign(&key, &body).as_ref())
        );
        if headers.get("x-berth-signature") != Some(&want) {
            bad.lock().unwrap().push(format!(
                "{:?} for body {}",
                headers.get("x-berth-signature"),
                String::from_utf8_lossy(&body)
            ));
        }
    }
    got.lock().unwrap().push(Received {
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let mut s = s;
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
}

/// The name the replication and pull-through cache tests use.
pub type EventSink = Receiver;
