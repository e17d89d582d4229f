//! The AWS control plane on `POST /`: the ECR API (AWS JSON 1.1,
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>`) and the few STS and
//! IAM query-protocol calls clients make (botocore `ecr/2015-09-21/service-2.json`).
//!
//! Every call is SigV4-verified, then authorized as its ECR action, then served by
//! the registry core. Errors use the JSON 1.1 shape `{"__type", "message"}`.

mod cloudtrail;
pub(crate) mod error;
mod images;
mod input;
mod kms;
mod layers;
mod lifecycle;
pub(crate) mod ops;
mod policies;
mod pull_through;
mod pull_time;
mod replication;
mod repos;
mod scanning;
mod secretsmanager;
mod settings;
mod sts;
mod templates;
mod unsupported;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::Value;

use berth_registry::identity::Principal;

use crate::App;

pub use error::{EcrError, EcrException};
pub use input::Input;
pub use ops::{Operation, OPERATIONS};

pub const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
/// AWS KMS (berth-managed keys for repository encryption).
pub const KMS_TARGET_PREFIX: &str = "TrentService.";
/// CloudTrail's target prefix (`cloudtrail.rs`: `LookupEvents` over the audit log).
pub const CLOUDTRAIL_TARGET_PREFIX: &str =
    "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.";
/// AWS Secrets Manager (pull-through cache credentials).
pub const SECRETS_TARGET_PREFIX: &str = "secretsmanager.";
/// UploadLayerPart carries up to 20 MiB base64-encoded.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// Every other operation: the largest member ECR accepts is PutImage's 4 MiB
/// manifest, which JSON escaping can at most double.
const MAX_OTHER_BODY: usize = 9 * 1024 * 1024;

/// Everything an operation needs about its call.
pub struct Ctx {
    pub app: Arc<App>,
    pub caller: Principal,
    pub request_id: String,
    pub source_ip: String,
    /// The operation's name (`CreateRepository`, `DescribeKey`, …).
    pub op: String,
    /// The IAM action the operation authorizes, from its row in [`OPERATIONS`].
    pub action: String,
    /// `X-Berth-Replicated-From` of the request: a peer deployment's replication
    /// creating the repository it copies into (`repos::create_repository`).
    pub replicated_from: Option<String>,
}

impl Ctx {
    /// The registry (account) an operation addresses: `registryId` or the caller's.
    pub fn registry_id(&self, input: &Input) -> Result<String, EcrError> {
        match input.opt_str("registryId")? {
            None => Ok(self.caller.account_id.clone()),
            Some(r) if berth_iam::arn::is_account_id(r) => Ok(r.to_string()),
            Some(r) => Err(EcrError::invalid(format!(
                "Invalid parameter at 'registryId' failed to satisfy constraint: 'must satisfy regular expression '[0-9]{{12}}'' (got '{r}')"
            ))),
        }
    }

    pub fn now(&self) -> i64 {
        self.app.registry.now()
    }
}

fn json_response(status: StatusCode, body: &Value, request_id: &str) -> Response {
    let mut r = (status, body.to_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-amzn-requestid", v);
    }
    r
}

pub fn error_response(e: &EcrError, request_id: &str) -> Response {
    let code = e.aws_code();
    let mut body = serde_json::json!({ "__type": code, "message": e.message });
    if let Some((k, v)) = &e.extra {
        body[*k] = v.clone();
    }
    let mut r = json_response(e.http_status(), &body, request_id);
    r.headers_mut()
        .insert("x-amzn-errortype", HeaderValue::from_static(code));
    if e.exception == EcrException::ServiceUnavailable {
        r.headers_mut()
            .insert("retry-after", HeaderValue::from(error::RETRY_AFTER_SECS));
    }
    r
}

/// `POST /` (and `GET /` for query-protocol calls sent as GET).
pub async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    req: Request,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let limit = match parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
    {
        Some(t) if t == format!("{TARGET_PREFIX}UploadLayerPart") => MAX_BODY,
        _ => MAX_OTHER_BODY,
    };
    let body = match http_body_util::Limited::new(body, limit).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error_response(
                &EcrError::new(
                    EcrException::Serialization,
                    "request body too large or unreadable",
                ),
                &request_id,
            )
        }
    };
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let source_ip = peer.ip().to_string();
    match target {
        Some(t) => json_call(app, &parts, &body, &t, request_id, source_ip).await,
        None => sts::query_call(app, &parts, &body, request_id, source_ip).await,
    }
}

async fn json_call(
    app: Arc<App>,
    parts: &axum::http::request::Parts,
    body: &[u8],
    target: &str,
    request_id: String,
    source_ip: String,
) -> Response {
    let (service, op) = if let Some(op) = target.strip_prefix(TARGET_PREFIX) {
        (ops::Service::Ecr, op)
    } else if let Some(op) = target.strip_prefix(KMS_TARGET_PREFIX) {
        (ops::Service::Kms, op)
    } else if let Some(op) = target.strip_prefix(CLOUDTRAIL_TARGET_PREFIX) {
        (ops::Service::CloudTrail, op)
    } else if let Some(op) = target.strip_prefix(SECRETS_TARGET_PREFIX) {
        (ops::Service::SecretsManager, op)
    } else {
        return error_response(
            &EcrError::new(
                EcrException::UnknownOperation,
                format!("Unknown target {target}"),
            ),
            &request_id,
        );
    };
    let caller = match app
        .authenticate_sigv4(parts, body, &[service.signing_name()])
        .await
    {
        Ok(c) => c,
        Err(e) => return error_response(&e, &request_id),
    };
    if service == ops::Service::Ecr {
        if let Err(wait) = app.hardening().throttle.check(&caller.account_id, op) {
            tracing::debug!(op, account = %caller.account_id, ?wait, "throttled");
            return error_response(
                &EcrError::new(EcrException::Throttling, "Rate exceeded"),
                &request_id,
            );
        }
    }
    let input = match Input::from_body(body) {
        Ok(i) => i,
        Err(e) => return error_response(&e.into(), &request_id),
    };
    let row = ops::find(service, op);
    let ctx = Ctx {
        app: app.clone(),
        caller,
        request_id: request_id.clone(),
        source_ip,
        op: op.to_string(),
        action: ops::action_of(service, op),
        replicated_from: parts
            .headers
            .get(crate::oci::REPLICATED_FROM)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let result = match row {
        Some(r) => (r.handler)(&ctx, &input).await,
        None => ops::unknown(&ctx, service, &input).await,
    };
    app.audit(
        &ctx,
        service.signing_name(),
        op,
        &input,
        result.as_ref().err(),
    )
    .await;
    match result {
        Ok(v) => json_response(StatusCode::OK, &v, &request_id),
        Err(e) => error_response(&e, &request_id),
    }
}

/// Response body helpers shared by the operation modules.
pub fn epoch_secs(ms: i64) -> Value {
    serde_json::json!(ms as f64 / 1000.0)
}

pub fn body_of(v: Value) -> Body {
    Body::from(v.to_string())
}

/// The IAM action an operation is authorized as (`service` is `ecr` or `kms`), as
/// [`call_as`] authorizes it.
pub fn iam_action(service: &str, op: &str) -> String {
    let service = if service == "kms" {
        ops::Service::Kms
    } else {
        ops::Service::Ecr
    };
    ops::action_of(service, op)
}

/// Runs an ECR operation for a caller authenticated by another front end (the
/// console's session): the same table row, authorization, handler and audit record
/// as a SigV4 call of that operation.
/// `service` is `ecr` or `kms`.
pub async fn call_as(
    app: &Arc<App>,
    caller: &Principal,
    source_ip: &str,
    service: &str,
    op: &str,
    input: Value,
) -> Result<Value, EcrError> {
    let service = if service == "kms" {
        ops::Service::Kms
    } else {
        ops::Service::Ecr
    };
    let ctx = Ctx {
        app: app.clone(),
        caller: caller.clone(),
        request_id: uuid::Uuid::new_v4().to_string(),
        source_ip: source_ip.to_string(),
        op: op.to_string(),
        action: ops::action_of(service, op),
        replicated_from: None,
    };
    let input = Input::new(input);
    let result = match ops::find(service, op) {
        Some(r) => (r.handler)(&ctx, &input).await,
        None => ops::unknown(&ctx, service, &input).await,
    };
    app.audit(
        &ctx,
        service.signing_name(),
        op,
        &input,
        result.as_ref().err(),
    )
    .await;
    result
}
