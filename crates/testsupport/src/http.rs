//! A deliberately small HTTP/1.1 client for the protocol edges real clients never
//! send. One connection per request (`Connection: close`), bodies either in memory or
//! streamed from a reader, and an [`InFlight`] request whose body the test writes
//! piece by piece (to crash or stop the server mid-upload).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::Engine;

/// A request body.
pub enum Body {
    Empty,
    Bytes(Vec<u8>),
    /// Streamed from a reader: with `len`, sent with `Content-Length`; without,
    /// with `Transfer-Encoding: chunked`.
    Stream {
        len: Option<u64>,
        reader: Box<dyn Read + Send>,
    },
}

impl From<Vec<u8>> for Body {
    fn from(v: Vec<u8>) -> Body {
        Body::Bytes(v)
    }
}

impl From<&[u8]> for Body {
    fn from(v: &[u8]) -> Body {
        Body::Bytes(v.to_vec())
    }
}

impl From<&str> for Body {
    fn from(v: &str) -> Body {
        Body::Bytes(v.as_bytes().to_vec())
    }
}

/// A response, fully read.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Location` header as a path (scheme and authority stripped).
    #[track_caller]
    pub fn location(&self) -> String {
        let l = self
            .header("location")
            .unwrap_or_else(|| panic!("no Location header:\n{}", self.describe()));
        match l.split_once("://") {
            Some((_, rest)) => rest[rest.find('/').unwrap_or(rest.len())..].to_string(),
            None => l.to_string(),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {}", self.describe()))
    }

    /// Status, headers and (the start of) the body, for assertion messages.
    pub fn describe(&self) -> String {
        let mut s = format!("HTTP {}\n", self.status);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\n"));
        }
        let body = self.text();
        let cut: String = body.chars().take(2000).collect();
        s.push_str(&cut);
        s
    }

    /// Asserts the status, with the whole response in the message.
    #[track_caller]
    pub fn expect_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; response:\n{}",
            self.describe()
        );
        self
    }

    /// Asserts an OCI error: this status, and a body of exactly the
    /// `{"errors":[{"code","message",…}]}` shape whose first code is `code`.
    #[track_caller]
    pub fn expect_oci_error(&self, status: u16, code: &str) -> &Self {
        self.expect_status(status);
        let v = self.json();
        let errors = v["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors array:\n{}", self.describe()));
        assert!(
            !errors.is_empty(),
            "empty errors array:\n{}",
            self.describe()
        );
        for e in errors {
            assert!(
                e["code"].is_string() && e["message"].is_string(),
                "error without string code/message:\n{}",
                self.describe()
            );
        }
        assert_eq!(
            errors[0]["code"].as_str(),
            Some(code),
            "unexpected error code:\n{}",
            self.describe()
        );
        self
    }
}

/// A client bound to one server address.
#[derive(Clone)]
pub struct Http {
    addr: SocketAddr,
    /// The `Host` header; default the address.
    host: Option<String>,
    auth: Option<String>,
    timeout: Duration,
    check_api_version: bool,
}

impl Http {
    pub fn new(addr: SocketAddr) -> Http {
        Http {
            addr,
            host: None,
            auth: None,
            timeout: Duration::from_secs(120),
            check_api_version: false,
        }
    }

    /// Sends `Authorization: Basic base64(user:pass)` on every request.
    pub fn basic_auth(mut self, user: &str, pass: &str) -> Http {
        let t = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
        self.auth = Some(format!("Basic {t}"));
        self
    }

    /// Asserts `Docker-Distribution-API-Version: registry/2.0` on every response to a
    /// `/v2` path (Distribution Spec: every API response carries it).
    pub fn check_api_version(mut self, on: bool) -> Http {
        self.check_api_version = on;
        self
    }

    /// Sends this `Host` header (e.g. `<account>.<public host>`) instead of the address.
    pub fn host(mut self, host: &str) -> Http {
        self.host = Some(host.to_string());
        self
    }

    /// Drops the `Authorization` header (for tests of anonymous access).
    pub fn anonymous(mut self) -> Http {
        self.auth = None;
        self
    }

    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], Body::Empty)
    }

    pub fn head(&self, path: &str) -> Response {
        self.send("HEAD", path, &[], Body::Empty)
    }

    pub fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, &[], Body::Empty)
    }

    /// Sends a request; panics on I/O errors (a test that expects one uses `try_send`).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Response {
        let r = self
            .try_send(method, path, headers, body.into())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        if self.check_api_version && path.starts_with("/v2") {
            assert_eq!(
                r.header("docker-distribution-api-version"),
                Some("registry/2.0"),
                "{method} {path}: missing Docker-Distribution-API-Version; response:\n{}",
                r.describe()
            );
        }
        r
    }

    /// Sends a request. The response is read concurrently with the body, so a
    /// server that answers early and closes (e.g. 413 on a too-large body) is seen
    /// answering, not as a broken pipe; writing stops once the response is in.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> std::io::Result<Response> {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let (len, mut reader): (Option<u64>, Box<dyn Read + Send>) = match body {
            Body::Empty => (Some(0), Box::new(std::io::empty())),
            Body::Bytes(b) => (Some(b.len() as u64), Box::new(std::io::Cursor::new(b))),
            Body::Stream { len, reader } => (len, reader),
        };
        let mut f = self.begin(method, path, headers, len)?;
        let done = Arc::new(AtomicBool::new(false));
        let rstream = f.stream.try_clone()?;
        let (head, done2) = (f.head_request, done.clone());
        let response = std::thread::spawn(move || {
            let r = read_response(&mut BufReader::new(&rstream), head);
            done2.store(true, Ordering::SeqCst);
            r
        });
        let mut buf = vec![0u8; 64 * 1024];
        let sent: std::io::Result<()> = (|| {
            while !done.load(Ordering::SeqCst) {
                let n = reader.read(&mut buf)?;
                if n == 0 {
                    if f.chunked {
                        f.stream.write_all(b"0\r\n\r\n")?;
                    }
                    return f.stream.flush();
                }
                f.write(&buf[..n])?;
            }
            Ok(())
        })();
        let got = response
            .join()
            .map_err(|_| bad("response reader panicked"))?;
        match (got, sent) {
            (Ok(r), _) => Ok(r),
            (Err(_), Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(e),
        }
    }

    /// Opens a connection and sends the request head. With `content_length` the body
    /// is sent as is; with `None` it is chunked. A `Content-Length` or
    /// `Transfer-Encoding` in `headers` replaces the automatic one (so a test can lie).
    pub fn begin(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_length: Option<u64>,
    ) -> std::io::Result<InFlight> {
        let stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        stream.set_nodelay(true)?;
        let host = self.host.clone().unwrap_or_else(|| self.addr.to_string());
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
        head.push_str("Connection: close\r\nUser-Agent: berth-e2e\r\n");
        if let Some(a) = &self.auth {
            head.push_str(&format!("Authorization: {a}\r\n"));
        }
        let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        let overridden = has("content-length") || has("transfer-encoding");
        let chunked = match content_length {
            _ if overridden => headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
            Some(n) => {
                if n > 0 || !matches!(method, "GET" | "HEAD" | "DELETE") {
                    head.push_str(&format!("Content-Length: {n}\r\n"));
                }
                false
            }
            None => {
                head.push_str("Transfer-Encoding: chunked\r\n");
                true
            }
        };
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut f = InFlight {
            stream,
            chunked,
            head_request: method == "HEAD",
        };
        f.stream.write_all(head.as_bytes())?;
        Ok(f)
    }
}

/// A request whose head is sent and whose body is being written.
pub struct InFlight {
    stream: TcpStream,
    chunked: bool,
    head_request: bool,
}

impl InFlight {
    /// Sends part of the body.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.chunked {
            self.stream
                .write_all(format!("{:x}\r\n", data.len()).as_bytes())?;
            self.stream.write_all(data)?;
            self.stream.write_all(b"\r\n")
        } else {
            self.stream.write_all(data)
        }
    }

    /// Ends the body and reads the response.
    pub fn finish(&mut self) -> std::io::Result<Response> {
        if self.chunked {
            self.stream.write_all(b"0\r\n\r\n")?;
        }
        self.stream.flush()?;
        self.read_response()
    }

    /// Reads a response without finishing the body (the server answered early).
    pub fn read_response(&mut self) -> std::io::Result<Response> {
        read_response(&mut BufReader::new(&self.stream), self.head_request)
    }
}

fn bad(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

fn read_response(r: &mut impl BufRead, head_request: bool) -> std::io::Result<Response> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed before a response"));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| bad(format!("bad header {h:?}")))?;
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
        if status == 100 {
            continue;
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head_request || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            loop {
                let mut size = String::new();
                r.read_line(&mut size)?;
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .map_err(|_| bad(format!("bad chunk size {size:?}")))?;
                if n == 0 {
                    let mut t = String::new();
                    while r.read_line(&mut t)? > 2 {
                        t.clear();
                    }
                    break;
                }
                let mut chunk = vec![0; n];
                r.read_exact(&mut chunk)?;
                resp.body.extend_from_slice(&chunk);
                let mut crlf = [0u8; 2];
                r.read_exact(&mut crlf)?;
            }
        } else if let Some(n) = resp.header("content-length") {
            let n: usize = n.parse().map_err(|_| bad("bad content-length"))?;
            resp.body = vec![0; n];
            r.read_exact(&mut resp.body)?;
        } else {
            r.read_to_end(&mut resp.body)?;
        }
        return Ok(resp);
    }
}
