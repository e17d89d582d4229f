//! The read limit of `berth-bench`: the least a server can do to serve a blob.
//!
//! A thread per connection, blocking sockets, HTTP/1.1 keep-alive, the same kind
//! of `Authorization` check as the null server (a MAC comparison in constant
//! time), and blob bodies copied from the page cache to the socket by the kernel
//! (`sendfile(2)`, no user-space copy, no hashing, no decryption). Its parallel
//! pull rate with the harness's verifying client is the read limit of this
//! machine that the parallel-pull rows are measured against (docs/benchmarks.md,
//! "Parallel pulls and the read limit").
//!
//! Usage: `berth-sendfile-server --listen 127.0.0.1:0 --dir DIR` with
//! `BERTH_NULL_AUTH` set to the `Authorization` header value clients must send.
//! `GET`/`HEAD /v2/<name>/blobs/sha256:<hex>` serves `DIR/<hex>`; `GET /v2/`
//! answers 200. It prints `sendfile server listening on http://<addr>` once bound.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ring::hmac;

/// The largest request head accepted.
const MAX_HEAD: usize = 16 * 1024;

struct State {
    dir: PathBuf,
    key: hmac::Key,
    want: hmac::Tag,
}

fn respond(s: &mut TcpStream, status: &str, extra: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)
}

fn oci_error(s: &mut TcpStream, status: &str, code: &str) -> std::io::Result<()> {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{code}"}}]}}"#);
    respond(
        s,
        status,
        "content-type: application/json\r\n",
        body.as_bytes(),
    )
}

/// The file of `path` (`/v2/<name>/blobs/sha256:<64 hex>`), if it names one.
fn blob_file(dir: &Path, path: &str) -> Option<(PathBuf, String)> {
    let (_, digest) = path.strip_prefix("/v2/")?.rsplit_once("/blobs/")?;
    let hex = digest.strip_prefix("sha256:")?;
    let ok = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| (dir.join(hex), digest.to_owned()))
}

/// Copies all of `file` to the socket with `sendfile(2)`.
fn send_all(s: &TcpStream, file: &File, len: u64) -> std::io::Result<()> {
    let mut off: libc::off_t = 0;
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
        // SAFETY: both descriptors are open for the call; `off` is a valid pointer.
        let r = unsafe { libc::sendfile(s.as_raw_fd(), file.as_raw_fd(), &mut off, n) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left -= r as u64;
    }
    Ok(())
}

fn serve(state: &State, mut s: TcpStream) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(MAX_HEAD);
    loop {
        // One request head (GET and HEAD carry no body here).
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() >= MAX_HEAD {
                return oci_error(&mut s, "431 Request Header Fields Too Large", "UNSUPPORTED");
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let (method, path) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
        let authorized = lines
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
            .is_some_and(|(_, v)| {
                hmac::verify(&state.key, v.trim().as_bytes(), state.want.as_ref()).is_ok()
            });
        if !authorized {
            respond(
                &mut s,
                "401 Unauthorized",
                "www-authenticate: Basic realm=\"sendfile\"\r\ncontent-type: application/json\r\n",
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )?;
            continue;
        }
        if method != "GET" && method != "HEAD" {
            oci_error(&mut s, "405 Method Not Allowed", "UNSUPPORTED")?;
            continue;
        }
        if path == "/v2/" {
            respond(
                &mut s,
                "200 OK",
                "content-type: application/json\r\n",
                b"{}",
            )?;
            continue;
        }
        let Some((file_path, digest)) = blob_file(&state.dir, path) else {
            oci_error(&mut s, "404 Not Found", "BLOB_UNKNOWN")?;
            continue;
        };
        let Ok(file) = File::open(&file_path) else {
            oci_error(&mut s, "404 Not Found", "BLOB_UNKNOWN")?;
            continue;
        };
        let len = file.metadata()?.len();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {len}\r\ncontent-type: application/octet-stream\r\ndocker-content-digest: {digest}\r\n\r\n"
        );
        s.write_all(head.as_bytes())?;
        if method == "GET" {
            send_all(&s, &file, len)?;
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_string();
    let mut dir = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().expect("--listen ADDR"),
            "--dir" => dir = args.next().map(PathBuf::from),
            other => {
                eprintln!("usage: berth-sendfile-server [--listen ADDR] --dir DIR (unknown argument {other:?})");
                std::process::exit(2);
            }
        }
    }
    let Some(dir) = dir else {
        eprintln!("--dir DIR (the blob files, named by their SHA-256 in hex) is required");
        std::process::exit(2);
    };
    let Ok(auth) = std::env::var("BERTH_NULL_AUTH") else {
        eprintln!("BERTH_NULL_AUTH (the Authorization header clients send) is not set");
        std::process::exit(2);
    };
    let rng = ring::rand::SystemRandom::new();
    let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("random key");
    let want = hmac::sign(&key, auth.as_bytes());
    let state = Arc::new(State { dir, key, want });
    let listener = TcpListener::bind(&listen).expect("bind");
    let addr = listener.local_addr().expect("local address");
    println!("sendfile server listening on http://{addr}");
    let _ = std::io::stdout().flush();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let state = state.clone();
        std::thread::spawn(move || {
            let _ = serve(&state, stream);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sha256_blob_paths_name_files() {
        let d = Path::new("/b");
        let hex = "ab".repeat(32);
        let (p, digest) = blob_file(d, &format!("/v2/x/y/blobs/sha256:{hex}")).unwrap();
        assert_eq!(p, d.join(&hex));
        assert_eq!(digest, format!("sha256:{hex}"));
        assert!(blob_file(d, "/v2/x/blobs/sha256:../../etc/passwd").is_none());
        assert!(blob_file(d, &format!("/v2/x/blobs/sha512:{hex}")).is_none());
        assert!(blob_file(d, &format!("/v2/x/manifests/sha256:{hex}")).is_none());
    }
}
