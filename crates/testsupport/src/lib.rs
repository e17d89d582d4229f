//! Shared support for berth's end-to-end tests: start a real `berth serve`
//! ([`Berth`]), talk to it with real clients ([`tools`]) or hand-written HTTP
//! ([`http`]), and build deterministic OCI image layouts ([`layout`]).
//!
//! This crate may not touch berth's internals: it drives the binary from the outside,
//! exactly as an operator or a client would.
//!
//! In short:
//! - `Berth::start(backend)` / `Berth::start_with(backend, &[("BERTH_X", "v")])` /
//!   `Berth::options(backend).env(..).tls(cert, key).start()`: a fresh server (own
//!   data dir, own PostgreSQL database) on `127.0.0.1:0`, ready when returned, killed
//!   on drop (its stderr tail is printed when the test panics). `stop_gracefully()`,
//!   `sigterm()` + `wait_exit()`, `kill9()` + `restart()` (same data, database, port).
//! - `berth.registry_creds()`: `("AWS", token)` from a SigV4-signed
//!   `GetAuthorizationToken`; every helper below sends them. `berth.ecr(op, json)`
//!   calls the ECR API as the account root ([`ecr::TEST_ACCESS_KEY_ID`]).
//! - `berth.http()`: hand-written HTTP with Basic auth, asserting
//!   `Docker-Distribution-API-Version` on `/v2` responses; `Response::expect_status`,
//!   `expect_oci_error(status, code)`, `location()`; `Http::begin` for bodies written
//!   piece by piece.
//! - `berth.skopeo()`, `berth.podman()`, `berth.oras_py(cwd, script, args)`,
//!   `tools::self_signed_cert`: real clients, failing with an install hint if missing.
//! - `Layout::build(dir)`: deterministic OCI layout (`single`, `multi`, `artifact`
//!   tags, plus a Docker schema 2 image), with every manifest and blob in memory.
//! - `both_backends! { fn name(backend) { … } }`: `name::sqlite` and `name::postgres`;
//!   `all_backends!` adds `name::postgres_s3` (PostgreSQL + the S3 test bucket).

pub mod ecr;
pub mod http;
pub mod layout;
pub mod s3;
pub mod server;
pub mod tools;
pub mod upstream;
pub mod webhook;

pub use http::{Body, Http, InFlight, Response};
pub use layout::{sha256_digest, Blob, Image, Layout};
pub use server::{s3_test_env, Backend, Berth, BerthOptions, TempDir};

/// Defines one end-to-end test body and runs it on both metadata backends, as two
/// test functions `NAME::sqlite` and `NAME::postgres` (nextest shows them as
/// `NAME::sqlite` / `NAME::postgres`; filter with `-E 'test(postgres)'`).
///
/// ```ignore
/// berth_testsupport::both_backends! {
///     fn skopeo_roundtrip(backend) {
///         let berth = Berth::start(backend);
///         // …
///     }
/// }
/// ```
///
/// The PostgreSQL variant needs `BERTH_TEST_POSTGRES_URL` (see [`Backend::postgres_available`]).
#[macro_export]
macro_rules! both_backends {
    ($(#[$meta:meta])* fn $name:ident($backend:ident) $body:block) => {
        fn $name($backend: $crate::Backend) $body

        mod $name {
            #[test]
            $(#[$meta])*
            fn sqlite() {
                super::$name($crate::Backend::Sqlite);
            }

            #[test]
            $(#[$meta])*
            fn postgres() {
                if $crate::Backend::postgres_available() {
                    super::$name($crate::Backend::Postgres);
                }
            }
        }
    };
}

/// [`both_backends!`] plus a third variant, `NAME::postgres_s3`: PostgreSQL with the
/// blobs in the S3 test bucket ([`Backend::PostgresS3`]), for the tests whose
/// subject is storage (blobs, uploads, manifests, GC, encryption, crashes). It needs
/// `BERTH_TEST_S3_*` (`eval "$(scripts/garage-start)"`) besides
/// `BERTH_TEST_POSTGRES_URL`.
#[macro_export]
macro_rules! all_backends {
    ($(#[$meta:meta])* fn $name:ident($backend:ident) $body:block) => {
        fn $name($backend: $crate::Backend) $body

        mod $name {
            #[test]
            $(#[$meta])*
            fn sqlite() {
                super::$name($crate::Backend::Sqlite);
            }

            #[test]
            $(#[$meta])*
            fn postgres() {
                if $crate::Backend::postgres_available() {
                    super::$name($crate::Backend::Postgres);
                }
            }

            #[test]
            $(#[$meta])*
            fn postgres_s3() {
                if $crate::Backend::postgres_s3_available() {
                    super::$name($crate::Backend::PostgresS3);
                }
            }
        }
    };
}
