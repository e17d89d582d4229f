//! The one mapping from core errors to OCI Distribution error responses
//! (Distribution Spec v1.1, "Error Codes"): `{"errors":[{"code","message","detail"}]}`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_registry::{AuthzError, Denied, RegistryError};

pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        OciError {
            status,
            code,
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    pub fn name_invalid() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
            "invalid repository name",
        )
    }

    pub fn digest_invalid(msg: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", msg)
    }

    pub fn unsupported(msg: &str) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", msg)
    }

    /// 503 `UNAVAILABLE` (distribution's code) with `Retry-After`: the metadata
    /// store cannot be reached for now.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "the registry's database is unavailable; retry later",
        )
        .header(
            "Retry-After",
            crate::ecr::error::RETRY_AFTER_SECS.to_string(),
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
    }
}

impl From<RegistryError> for OciError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        let msg = e.to_string();
        let (status, code) = match &e {
            E::NameInvalid => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            E::NameUnknown { .. } => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            E::RepositoryAlreadyExists { .. } => (StatusCode::CONFLICT, "DENIED"),
            E::RepositoryNotEmpty { .. } => (StatusCode::CONFLICT, "DENIED"),
            E::BlobUnknown => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            E::UploadUnknown => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            E::UploadInvalid(_) => (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID"),
            E::RangeInvalid { size } => {
                let range = if *size == 0 {
                    "0-0".to_string()
                } else {
                    format!("0-{}", size - 1)
                };
                return OciError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "BLOB_UPLOAD_INVALID",
                    msg,
                )
                .header("Range", range);
            }
            E::DigestMismatch | E::DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            E::TagInvalid => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            E::ManifestUnknown => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            E::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            E::ManifestUnsupported(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "MANIFEST_INVALID"),
            E::ManifestTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            E::ManifestBlobUnknown(list) | E::ManifestChildUnknown(list) => {
                let mut err = OciError::new(
                    StatusCode::BAD_REQUEST,
                    "MANIFEST_BLOB_UNKNOWN",
                    msg.clone(),
                );
                err.detail = Some(serde_json::json!({ "digests": list }));
                return err;
            }
            // ECR answers a moved immutable tag with TAG_INVALID and this message.
            E::TagImmutable { .. } => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            E::ReferencedByIndex(_) => (StatusCode::CONFLICT, "DENIED"),
            E::PolicyInvalid(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
            E::Kms(_) => (StatusCode::FORBIDDEN, "DENIED"),
            E::Store(err) if err.is_unavailable() => {
                tracing::warn!(error = %err, "metadata store unavailable");
                return OciError::unavailable();
            }
            E::Store(err) if err.is_storage_full() => {
                tracing::error!(error = %err, "storage full");
                return OciError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "UNKNOWN",
                    crate::ecr::error::STORAGE_FULL,
                );
            }
            E::Store(err) => {
                tracing::error!(error = %err, "storage failure");
                (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN")
            }
        };
        OciError::new(status, code, msg)
    }
}

impl From<Denied> for OciError {
    fn from(d: Denied) -> Self {
        OciError::new(StatusCode::FORBIDDEN, "DENIED", d.0)
    }
}

impl From<AuthzError> for OciError {
    fn from(e: AuthzError) -> Self {
        match e {
            AuthzError::Denied(d) => d.into(),
            AuthzError::Unavailable(_) => OciError::unavailable(),
        }
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let mut err = serde_json::json!({ "code": self.code, "message": self.message });
        if let Some(d) = self.detail {
            err["detail"] = d;
        }
        let body = serde_json::json!({ "errors": [err] }).to_string();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert(
            "docker-distribution-api-version",
            HeaderValue::from_static("registry/2.0"),
        );
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        resp
    }
}
