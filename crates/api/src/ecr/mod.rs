//! The AWS control plane on `POST /`: the ECR API (AWS JSON 1.1,
//! `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>`) and the few STS and
//! IAM query-protocol calls clients make (botocore `ecr/2015-09-21/service-2.json`).
//!
//! Every call is SigV4-verified, then authorized as its ECR action, then served by
//! the registry core. Errors use the JSON 1.1 shape `{"__type", "message"}`.

mod images;
mod input;
mod kms;
mod lifecycle;
mod policies;
mod repos;
mod scanning;
mod sts;
mod unsupported;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::identity::Principal;
use crate::App;

pub use input::Input;

pub const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921.";
/// AWS KMS (berth-managed keys for repository encryption).
pub const KMS_TARGET_PREFIX: &str = "TrentService.";
/// UploadLayerPart carries up to 20 MiB base64-encoded.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// An ECR error: the `__type` shape name, its message and HTTP status.
#[derive(Debug)]
pub struct EcrError {
    pub kind: &'static str,
    pub message: String,
    pub status: StatusCode,
    pub extra: Option<(&'static str, Value)>,
}

impl EcrError {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        EcrError {
            kind,
            message: message.into(),
            status: StatusCode::BAD_REQUEST,
            extra: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationException", message)
    }

    pub fn server(message: impl Into<String>) -> Self {
        EcrError {
            kind: "ServerException",
            message: message.into(),
            status: StatusCode::INTERNAL_SERVER_ERROR,
            extra: None,
        }
    }

    pub fn status(mut self, s: StatusCode) -> Self {
        self.status = s;
        self
    }
}

impl From<berth_registry::RegistryError> for EcrError {
    fn from(e: berth_registry::RegistryError) -> Self {
        use berth_registry::RegistryError as E;
        let msg = e.to_string();
        match e {
            E::NameInvalid => EcrError::invalid(msg),
            E::NameUnknown { .. } => EcrError::new("RepositoryNotFoundException", msg),
            E::RepositoryAlreadyExists { .. } => {
                EcrError::new("RepositoryAlreadyExistsException", msg)
            }
            E::RepositoryNotEmpty { .. } => EcrError::new("RepositoryNotEmptyException", msg),
            E::BlobUnknown => EcrError::new("LayersNotFoundException", msg),
            E::UploadUnknown => EcrError::new("UploadNotFoundException", msg),
            E::UploadInvalid(_) | E::RangeInvalid { .. } => {
                EcrError::new("InvalidLayerPartException", msg)
            }
            E::DigestMismatch => EcrError::new("InvalidLayerException", msg),
            E::DigestInvalid(_) => EcrError::new("ImageDigestDoesNotMatchException", msg),
            E::TagInvalid => EcrError::invalid(msg),
            E::ManifestUnknown => EcrError::new("ImageNotFoundException", msg),
            E::ManifestInvalid(_) | E::ManifestUnsupported(_) | E::ManifestTooLarge => {
                EcrError::invalid(msg)
            }
            E::ManifestBlobUnknown(_) => EcrError::new("LayersNotFoundException", msg),
            E::ManifestChildUnknown(_) => EcrError::new("ReferencedImagesNotFoundException", msg),
            E::TagImmutable { .. } => EcrError::new("ImageTagAlreadyExistsException", msg),
            E::ReferencedByIndex(_) | E::PolicyInvalid(_) => EcrError::invalid(msg),
            E::Kms(m) => EcrError {
                kind: "KmsException",
                message: m.clone(),
                status: StatusCode::BAD_REQUEST,
                extra: Some(("kmsError", serde_json::json!(m))),
            },
            E::Store(err) => {
                tracing::error!(error = %err, "storage failure");
                EcrError::server("an internal error occurred")
            }
        }
    }
}

impl From<berth_store::StoreError> for EcrError {
    fn from(e: berth_store::StoreError) -> Self {
        berth_registry::RegistryError::Store(e).into()
    }
}

/// Everything an operation needs about its call.
pub struct Ctx {
    pub app: Arc<App>,
    pub caller: Principal,
    pub request_id: String,
    pub source_ip: String,
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
    let mut body = serde_json::json!({ "__type": e.kind, "message": e.message });
    if let Some((k, v)) = &e.extra {
        body[*k] = v.clone();
    }
    let mut r = json_response(e.status, &body, request_id);
    if let Ok(v) = HeaderValue::from_str(e.kind) {
        r.headers_mut().insert("x-amzn-errortype", v);
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
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error_response(
                &EcrError::new(
                    "SerializationException",
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
        ("ecr", op)
    } else if let Some(op) = target.strip_prefix(KMS_TARGET_PREFIX) {
        ("kms", op)
    } else {
        return error_response(
            &EcrError::new(
                "UnknownOperationException",
                format!("Unknown target {target}"),
            ),
            &request_id,
        );
    };
    let caller = match app.authenticate_sigv4(parts, body, &[service]).await {
        Ok(c) => c,
        Err(e) => return error_response(&e, &request_id),
    };
    let input: Value = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice(body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return error_response(
                    &EcrError::new(
                        "SerializationException",
                        "the request body is not a JSON object",
                    ),
                    &request_id,
                )
            }
        }
    };
    let ctx = Ctx {
        app: app.clone(),
        caller,
        request_id: request_id.clone(),
        source_ip,
    };
    let input = Input::new(input);
    let result = if service == "kms" {
        kms::dispatch(&ctx, op, &input).await
    } else {
        dispatch(&ctx, op, &input).await
    };
    app.audit(&ctx, service, op, &input, result.as_ref().err())
        .await;
    match result {
        Ok(v) => json_response(StatusCode::OK, &v, &request_id),
        Err(e) => error_response(&e, &request_id),
    }
}

async fn dispatch(ctx: &Ctx, op: &str, input: &Input) -> Result<Value, EcrError> {
    match op {
        "CreateRepository" => repos::create_repository(ctx, input).await,
        "DescribeRepositories" => repos::describe_repositories(ctx, input).await,
        "DeleteRepository" => repos::delete_repository(ctx, input).await,
        "PutImageTagMutability" => repos::put_image_tag_mutability(ctx, input).await,
        "PutImageScanningConfiguration" => {
            repos::put_image_scanning_configuration(ctx, input).await
        }
        "TagResource" => repos::tag_resource(ctx, input).await,
        "UntagResource" => repos::untag_resource(ctx, input).await,
        "ListTagsForResource" => repos::list_tags_for_resource(ctx, input).await,
        "GetAuthorizationToken" => repos::get_authorization_token(ctx, input).await,
        "DescribeRegistry" => policies::describe_registry(ctx, input).await,
        "SetRepositoryPolicy" => policies::set_repository_policy(ctx, input).await,
        "GetRepositoryPolicy" => policies::get_repository_policy(ctx, input).await,
        "DeleteRepositoryPolicy" => policies::delete_repository_policy(ctx, input).await,
        "PutRegistryPolicy" => policies::put_registry_policy(ctx, input).await,
        "GetRegistryPolicy" => policies::get_registry_policy(ctx, input).await,
        "DeleteRegistryPolicy" => policies::delete_registry_policy(ctx, input).await,
        "PutLifecyclePolicy" => policies::put_lifecycle_policy(ctx, input).await,
        "GetLifecyclePolicy" => policies::get_lifecycle_policy(ctx, input).await,
        "DeleteLifecyclePolicy" => policies::delete_lifecycle_policy(ctx, input).await,
        "StartLifecyclePolicyPreview" => {
            lifecycle::start_lifecycle_policy_preview(ctx, input).await
        }
        "GetLifecyclePolicyPreview" => lifecycle::get_lifecycle_policy_preview(ctx, input).await,
        "GetRegistryScanningConfiguration" => {
            policies::get_registry_scanning_configuration(ctx, input).await
        }
        "PutRegistryScanningConfiguration" => {
            policies::put_registry_scanning_configuration(ctx, input).await
        }
        "PutReplicationConfiguration" => policies::put_replication_configuration(ctx, input).await,
        "DescribeImages" => images::describe_images(ctx, input).await,
        "ListImages" => images::list_images(ctx, input).await,
        "BatchGetImage" => images::batch_get_image(ctx, input).await,
        "BatchDeleteImage" => images::batch_delete_image(ctx, input).await,
        "PutImage" => images::put_image(ctx, input).await,
        "BatchCheckLayerAvailability" => images::batch_check_layer_availability(ctx, input).await,
        "InitiateLayerUpload" => images::initiate_layer_upload(ctx, input).await,
        "UploadLayerPart" => images::upload_layer_part(ctx, input).await,
        "CompleteLayerUpload" => images::complete_layer_upload(ctx, input).await,
        "GetDownloadUrlForLayer" => images::get_download_url_for_layer(ctx, input).await,
        "ListImageReferrers" => images::list_image_referrers(ctx, input).await,
        "StartImageScan" => scanning::start_image_scan(ctx, input).await,
        "DescribeImageScanFindings" => scanning::describe_image_scan_findings(ctx, input).await,
        "BatchGetRepositoryScanningConfiguration" => {
            scanning::batch_get_repository_scanning_configuration(ctx, input).await
        }
        other => unsupported::answer(ctx, other, input).await,
    }
}

/// Response body helpers shared by the operation modules.
pub fn epoch_secs(ms: i64) -> Value {
    serde_json::json!(ms as f64 / 1000.0)
}

pub fn body_of(v: Value) -> Body {
    Body::from(v.to_string())
}
