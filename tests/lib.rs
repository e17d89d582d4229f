//! End-to-end tests against a real `berth serve`; helpers live in berth-testsupport.
//! Each test file is one `[[test]]` target: `skopeo`, `podman`, `oras`, `http_*`,
//! `storage`, `tls`. Run them with `cargo nextest run -p berth-e2e` after
//! `cargo build -p berth`.
