//! Shared support for berth's end-to-end tests: start a real `berth serve`
//! ([`Berth`]), talk to it with real clients ([`tools`]) or hand-written HTTP
//! ([`http`]), and build deterministic OCI image layouts ([`layout`]).
//!
//! This crate may not touch berth's internals: it drives the binary from the outside,
//! exactly as an operator or a client would.

pub mod ecr;
pub mod http;
pub mod layout;
pub mod server;
pub mod tools;

pub use http::{Body, Http, InFlight, Response};
pub use layout::{sha256_digest, Blob, Image, Layout};
pub use server::{Backend, Berth, BerthOptions, TempDir};

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
