//! A webhook receiver for the webhook scenario: a bare HTTP/1.1 server on
//! loopback that answers every request `200` at once and counts the distinct
//! event ids (`X-Berth-Event-Id`) each path received, so the harness can wait
//! until every event of the measured pushes was delivered.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::client::Result;

type Seen = Arc<Mutex<HashMap<String, HashSet<String>>>>;

/// The running receiver; stops with the runtime.
pub struct Sink {
    pub addr: SocketAddr,
    seen: Seen,
}

impl Sink {
    pub async fn start() -> Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let seen: Seen = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(serve(sock, s.clone()));
            }
        });
        Ok(Sink { addr, seen })
    }

    /// Distinct event ids received on `path`.
    pub fn distinct(&self, path: &str) -> usize {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(path).map_or(0, HashSet::len)
    }
}

async fn serve(mut sock: TcpStream, seen: Seen) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Headers.
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 8192];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("")
            .to_owned();
        let mut len = 0usize;
        let mut id = None;
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    len = v.trim().parse().unwrap_or(0);
                } else if k == "x-berth-event-id" {
                    id = Some(v.trim().to_owned());
                }
            }
        }
        // Body.
        while buf.len() < end + len {
            let mut chunk = [0u8; 8192];
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + len);
        if let Some(id) = id {
            let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
            s.entry(path).or_default().insert(id);
        }
        if sock
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn finds_the_header_end() {
        assert_eq!(find(b"GET / HTTP/1.1\r\n\r\nbody", b"\r\n\r\n"), Some(14));
        assert_eq!(find(b"partial\r\n", b"\r\n\r\n"), None);
    }
}
