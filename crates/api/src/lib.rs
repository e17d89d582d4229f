//! HTTP front end: the OCI Distribution data plane (`/v2/`), the ECR/STS control
//! plane (`POST /`), health and metrics endpoints.
//!
//! This room translates between wire formats and the registry core: it parses and
//! validates requests, authenticates and authorizes them, calls the core, and maps
//! results and errors to each protocol's shape. It holds no storage logic.

pub mod access;
pub mod oci;
pub mod oci_error;
pub mod oci_path;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use berth_registry::Registry;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The 12-digit account served on the bare public host.
    pub default_account: String,
    pub region: String,
    /// The host name clients use (`repositoryUri` = `<public_host>/<name>`).
    pub public_host: String,
}

pub struct App {
    pub registry: Arc<Registry>,
    pub config: ApiConfig,
}

/// The complete HTTP router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v2", axum::routing::any(oci::handle))
        .route("/v2/", axum::routing::any(oci::handle))
        .route("/v2/{*rest}", axum::routing::any(oci::handle))
        .with_state(app)
}

async fn healthz() -> impl IntoResponse {
    "ok"
}

async fn readyz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let meta = app.registry.meta.ping().await;
    let blobs = app.registry.blobs.check().await;
    match (meta, blobs) {
        (Ok(()), Ok(())) => (StatusCode::OK, "ready".to_string()),
        (m, b) => {
            let mut why = Vec::new();
            if let Err(e) = m {
                why.push(format!("metadata store: {e}"));
            }
            if let Err(e) = b {
                why.push(format!("blob store: {e}"));
            }
            (StatusCode::SERVICE_UNAVAILABLE, why.join("; "))
        }
    }
}
