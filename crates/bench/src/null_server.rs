//! The null server of `berth-bench`: berth's HTTP stack with nothing behind it.
//!
//! It serves exactly as `berth serve` does without TLS (`crates/berth/src/serve.rs`:
//! a tokio listener with `TCP_NODELAY`, hyper's HTTP/1 connection builder with
//! keep-alive, an axum router) and answers manifest `GET`/`HEAD` from memory
//! behind an `Authorization` check of the same kind (a MAC comparison in constant
//! time). Its manifest request rate is the limit of this machine and stack, which
//! berth's manifest rows are measured against (docs/benchmarks.md).
//!
//! Usage: `berth-null-server --listen 127.0.0.1:0` with `BERTH_NULL_AUTH` set to
//! the `Authorization` header value clients must send. Manifests are stored by
//! `PUT /v2/<name>/manifests/<reference>` (kept in memory, also under their
//! digest); `GET /v2/` answers 200. It prints `null server listening on
//! http://<addr>` once bound.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use ring::hmac;
use tokio::net::TcpListener;

/// The largest manifest accepted, as berth does.
const MAX_MANIFEST: usize = 4 * 1024 * 1024;

struct Null {
    key: hmac::Key,
    want: hmac::Tag,
    /// Path → (media type, digest, bytes).
    manifests: RwLock<HashMap<String, (HeaderValue, HeaderValue, Bytes)>>,
}

impl Null {
    fn authorized(&self, req: &Request) -> bool {
        req.headers()
            .get(header::AUTHORIZATION)
            .is_some_and(|h| hmac::verify(&self.key, h.as_bytes(), self.want.as_ref()).is_ok())
    }
}

fn oci_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(r#"{{"errors":[{{"code":"{code}","message":"{message}"}}]}}"#);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn handle(State(s): State<Arc<Null>>, req: Request) -> Response {
    if !s.authorized(&req) {
        let mut r = oci_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"null\""),
        );
        return r;
    }
    let path = req.uri().path().to_owned();
    if path == "/v2/" {
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            "{}",
        )
            .into_response();
    }
    let Some((name, _reference)) = path
        .strip_prefix("/v2/")
        .and_then(|p| p.rsplit_once("/manifests/"))
    else {
        return oci_error(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "only manifests are served",
        );
    };
    let name = name.to_owned();
    match *req.method() {
        Method::GET | Method::HEAD => {
            let found = s.manifests.read().expect("lock").get(&path).cloned();
            let Some((media, digest, bytes)) = found else {
                return oci_error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                );
            };
            let len = bytes.len();
            let mut r = if req.method() == Method::HEAD {
                Response::new(Body::empty())
            } else {
                Response::new(Body::from(bytes))
            };
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, media);
            h.insert("docker-content-digest", digest);
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            r
        }
        Method::PUT => {
            let media = req
                .headers()
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or_else(|| {
                    HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json")
                });
            let bytes = match axum::body::to_bytes(req.into_body(), MAX_MANIFEST).await {
                Ok(b) => b,
                Err(_) => {
                    return oci_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "MANIFEST_INVALID",
                        "manifest too large",
                    )
                }
            };
            let digest = format!(
                "sha256:{}",
                hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
            );
            let dv = HeaderValue::from_str(&digest).expect("a digest is a header value");
            let by_digest = format!("/v2/{name}/manifests/{digest}");
            {
                let mut m = s.manifests.write().expect("lock");
                m.insert(path, (media.clone(), dv.clone(), bytes.clone()));
                m.insert(by_digest.clone(), (media, dv.clone(), bytes));
            }
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::CREATED;
            r.headers_mut().insert("docker-content-digest", dv);
            if let Ok(l) = HeaderValue::from_str(&by_digest) {
                r.headers_mut().insert(header::LOCATION, l);
            }
            r
        }
        _ => oci_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "method not allowed",
        ),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:0".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().expect("--listen ADDR"),
            other => {
                eprintln!("usage: berth-null-server [--listen ADDR] (unknown argument {other:?})");
                std::process::exit(2);
            }
        }
    }
    let Ok(auth) = std::env::var("BERTH_NULL_AUTH") else {
        eprintln!("BERTH_NULL_AUTH (the Authorization header clients send) is not set");
        std::process::exit(2);
    };
    let rng = ring::rand::SystemRandom::new();
    let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("random key");
    let want = hmac::sign(&key, auth.as_bytes());
    let state = Arc::new(Null {
        key,
        want,
        manifests: RwLock::default(),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let router = axum::Router::new().fallback(handle).with_state(state);
        let listener = TcpListener::bind(&listen).await.expect("bind");
        let addr: SocketAddr = listener.local_addr().expect("local address");
        println!("null server listening on http://{addr}");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let svc = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder.keep_alive(true);
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
}
