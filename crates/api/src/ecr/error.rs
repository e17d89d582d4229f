//! The one mapping from core errors to the AWS JSON 1.1 error shape of `POST /`
//! (`{"__type": …, "message": …}` with `x-amzn-errortype`): a typed exception per
//! AWS error code, with its HTTP status, in the style of Garage's per-API error
//! enums. Nothing branches on the code string.

use axum::http::StatusCode;
use berth_iam::sigv4::SigV4Error;
use berth_registry::{AuthzError, Denied, RegistryError};
use serde_json::Value;

/// Every exception the JSON APIs on `POST /` answer with (ECR's from botocore
/// `ecr/2015-09-21/service-2.json`, KMS's from `kms/2014-11-01`, Secrets Manager's
/// from `secretsmanager/2017-10-17`, and the SigV4
/// authentication failures all AWS JSON services share).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcrException {
    // ---- ECR ----
    AccessDenied,
    EmptyUpload,
    ExclusionAlreadyExists,
    ExclusionNotFound,
    ImageAlreadyExists,
    ImageDigestDoesNotMatch,
    ImageNotFound,
    ImageTagAlreadyExists,
    InvalidLayer,
    InvalidLayerPart,
    InvalidParameter,
    InvalidTagParameter,
    Kms,
    LayerAlreadyExists,
    LayerPartTooSmall,
    LayersNotFound,
    LifecyclePolicyNotFound,
    LifecyclePolicyPreviewNotFound,
    LimitExceeded,
    PullThroughCacheRuleAlreadyExists,
    PullThroughCacheRuleNotFound,
    ReferencedImagesNotFound,
    RegistryPolicyNotFound,
    RepositoryAlreadyExists,
    RepositoryNotEmpty,
    RepositoryNotFound,
    RepositoryPolicyNotFound,
    ScanNotFound,
    Server,
    /// The metadata store is unreachable for now: 503 with `Retry-After`, which
    /// the AWS SDKs retry.
    ServiceUnavailable,
    TemplateAlreadyExists,
    TemplateNotFound,
    TooManyTags,
    UnsupportedImageType,
    UploadNotFound,
    Validation,
    // ---- the JSON protocol ----
    Serialization,
    UnknownOperation,
    // ---- CloudTrail ----
    InvalidLookupAttributes,
    InvalidTimeRange,
    InvalidNextToken,
    InvalidMaxResults,
    // ---- KMS ----
    AlreadyExists,
    Disabled,
    KmsInvalidState,
    MalformedPolicyDocument,
    NotFound,
    Tag,
    UnsupportedOperation,
    // ---- Secrets Manager ----
    DecryptionFailure,
    InvalidRequest,
    ResourceExists,
    ResourceNotFound,
    // ---- every AWS JSON service ----
    /// A rate limit (`throttle.rs`); HTTP 400, retried by the SDKs.
    Throttling,
    // ---- SigV4 authentication ----
    MissingAuthenticationToken,
    IncompleteSignature,
    UnrecognizedClient,
    InvalidSignature,
    PayloadHashMismatch,
}

impl EcrException {
    /// The `__type` and `x-amzn-errortype` value.
    pub fn aws_code(self) -> &'static str {
        use EcrException as X;
        match self {
            X::AccessDenied => "AccessDeniedException",
            X::EmptyUpload => "EmptyUploadException",
            X::ExclusionAlreadyExists => "ExclusionAlreadyExistsException",
            X::ExclusionNotFound => "ExclusionNotFoundException",
            X::ImageAlreadyExists => "ImageAlreadyExistsException",
            X::ImageDigestDoesNotMatch => "ImageDigestDoesNotMatchException",
            X::ImageNotFound => "ImageNotFoundException",
            X::ImageTagAlreadyExists => "ImageTagAlreadyExistsException",
            X::InvalidLayer => "InvalidLayerException",
            X::InvalidLayerPart => "InvalidLayerPartException",
            X::InvalidParameter => "InvalidParameterException",
            X::InvalidTagParameter => "InvalidTagParameterException",
            X::Kms => "KmsException",
            X::LayerAlreadyExists => "LayerAlreadyExistsException",
            X::LayerPartTooSmall => "LayerPartTooSmallException",
            X::LayersNotFound => "LayersNotFoundException",
            X::LifecyclePolicyNotFound => "LifecyclePolicyNotFoundException",
            X::LifecyclePolicyPreviewNotFound => "LifecyclePolicyPreviewNotFoundException",
            X::LimitExceeded => "LimitExceededException",
            X::PullThroughCacheRuleAlreadyExists => "PullThroughCacheRuleAlreadyExistsException",
            X::PullThroughCacheRuleNotFound => "PullThroughCacheRuleNotFoundException",
            X::ReferencedImagesNotFound => "ReferencedImagesNotFoundException",
            X::RegistryPolicyNotFound => "RegistryPolicyNotFoundException",
            X::RepositoryAlreadyExists => "RepositoryAlreadyExistsException",
            X::RepositoryNotEmpty => "RepositoryNotEmptyException",
            X::RepositoryNotFound => "RepositoryNotFoundException",
            X::RepositoryPolicyNotFound => "RepositoryPolicyNotFoundException",
            X::ScanNotFound => "ScanNotFoundException",
            X::Server => "ServerException",
            X::ServiceUnavailable => "ServiceUnavailableException",
            X::TemplateAlreadyExists => "TemplateAlreadyExistsException",
            X::TemplateNotFound => "TemplateNotFoundException",
            X::TooManyTags => "TooManyTagsException",
            X::UnsupportedImageType => "UnsupportedImageTypeException",
            X::UploadNotFound => "UploadNotFoundException",
            X::Validation => "ValidationException",
            X::Serialization => "SerializationException",
            X::UnknownOperation => "UnknownOperationException",
            X::InvalidLookupAttributes => "InvalidLookupAttributesException",
            X::InvalidTimeRange => "InvalidTimeRangeException",
            X::InvalidNextToken => "InvalidNextTokenException",
            X::InvalidMaxResults => "InvalidMaxResultsException",
            X::AlreadyExists => "AlreadyExistsException",
            X::Disabled => "DisabledException",
            X::KmsInvalidState => "KMSInvalidStateException",
            X::MalformedPolicyDocument => "MalformedPolicyDocumentException",
            X::NotFound => "NotFoundException",
            X::Tag => "TagException",
            X::UnsupportedOperation => "UnsupportedOperationException",
            X::DecryptionFailure => "DecryptionFailure",
            X::InvalidRequest => "InvalidRequestException",
            X::ResourceExists => "ResourceExistsException",
            X::ResourceNotFound => "ResourceNotFoundException",
            X::Throttling => "ThrottlingException",
            X::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            X::IncompleteSignature => "IncompleteSignatureException",
            X::UnrecognizedClient => "UnrecognizedClientException",
            X::InvalidSignature => "InvalidSignatureException",
            X::PayloadHashMismatch => "XAmzContentSHA256Mismatch",
        }
    }

    /// The HTTP status AWS answers this exception with.
    pub fn http_status(self) -> StatusCode {
        use EcrException as X;
        match self {
            X::Server => StatusCode::INTERNAL_SERVER_ERROR,
            X::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            X::MissingAuthenticationToken | X::UnrecognizedClient | X::InvalidSignature => {
                StatusCode::FORBIDDEN
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An error answered on `POST /`: the exception, its message, and for some
/// exceptions one extra member of the body (e.g. `kmsError`).
#[derive(Debug)]
pub struct EcrError {
    pub exception: EcrException,
    pub message: String,
    pub extra: Option<(&'static str, Value)>,
}

impl EcrError {
    pub fn new(exception: EcrException, message: impl Into<String>) -> Self {
        EcrError {
            exception,
            message: message.into(),
            extra: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(EcrException::InvalidParameter, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(EcrException::Validation, message)
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self::new(EcrException::Server, message)
    }

    /// The metadata store cannot be reached for now (answered with `Retry-After`).
    pub fn unavailable() -> Self {
        Self::new(
            EcrException::ServiceUnavailable,
            "the registry's database is unavailable; retry later",
        )
    }

    /// `KmsException` with the key's error repeated in `kmsError`, as ECR answers.
    pub fn kms(message: impl Into<String>) -> Self {
        let message = message.into();
        EcrError {
            exception: EcrException::Kms,
            extra: Some(("kmsError", serde_json::json!(message))),
            message,
        }
    }

    pub fn aws_code(&self) -> &'static str {
        self.exception.aws_code()
    }

    pub fn http_status(&self) -> StatusCode {
        self.exception.http_status()
    }
}

/// The message of a write refused because the storage is full.
pub const STORAGE_FULL: &str =
    "insufficient storage: the registry's storage is full; nothing was stored, retry once space is freed";

/// Seconds a client is told to wait when the registry is unavailable.
pub const RETRY_AFTER_SECS: u32 = 5;

impl From<RegistryError> for EcrError {
    fn from(e: RegistryError) -> Self {
        use EcrException as X;
        use RegistryError as E;
        let msg = e.to_string();
        match e {
            E::NameInvalid => EcrError::invalid(msg),
            E::NameUnknown { .. } => EcrError::new(X::RepositoryNotFound, msg),
            E::RepositoryAlreadyExists { .. } => EcrError::new(X::RepositoryAlreadyExists, msg),
            E::RepositoryNotEmpty { .. } => EcrError::new(X::RepositoryNotEmpty, msg),
            E::BlobUnknown => EcrError::new(X::LayersNotFound, msg),
            E::UploadUnknown => EcrError::new(X::UploadNotFound, msg),
            E::UploadInvalid(_) | E::RangeInvalid { .. } => EcrError::new(X::InvalidLayerPart, msg),
            E::DigestMismatch => EcrError::new(X::InvalidLayer, msg),
            E::DigestInvalid(_) => EcrError::new(X::ImageDigestDoesNotMatch, msg),
            E::TagInvalid => EcrError::invalid(msg),
            E::ManifestUnknown => EcrError::new(X::ImageNotFound, msg),
            E::ManifestInvalid(_) | E::ManifestUnsupported(_) | E::ManifestTooLarge => {
                EcrError::invalid(msg)
            }
            E::ManifestBlobUnknown(_) => EcrError::new(X::LayersNotFound, msg),
            E::ManifestChildUnknown(_) => EcrError::new(X::ReferencedImagesNotFound, msg),
            E::TagImmutable { .. } => EcrError::new(X::ImageTagAlreadyExists, msg),
            E::ReferencedByIndex(_) | E::PolicyInvalid(_) => EcrError::invalid(msg),
            E::Kms(m) => EcrError::kms(m),
            E::Store(err) if err.is_unavailable() => {
                tracing::warn!(error = %err, "metadata store unavailable");
                EcrError::unavailable()
            }
            E::Store(err) if err.is_storage_full() => {
                tracing::error!(error = %err, "storage full");
                EcrError::server(STORAGE_FULL)
            }
            E::Store(err) => {
                tracing::error!(error = %err, "storage failure");
                EcrError::server("an internal error occurred")
            }
        }
    }
}

impl From<Denied> for EcrError {
    fn from(d: Denied) -> Self {
        EcrError::new(EcrException::AccessDenied, d.0)
    }
}

impl From<AuthzError> for EcrError {
    fn from(e: AuthzError) -> Self {
        match e {
            AuthzError::Denied(d) => d.into(),
            AuthzError::Unavailable(_) => EcrError::unavailable(),
        }
    }
}

impl From<&SigV4Error> for EcrException {
    fn from(e: &SigV4Error) -> Self {
        use EcrException as X;
        match e {
            SigV4Error::MissingAuthentication => X::MissingAuthenticationToken,
            SigV4Error::Incomplete(_) => X::IncompleteSignature,
            SigV4Error::UnknownAccessKey => X::UnrecognizedClient,
            SigV4Error::SignatureMismatch
            | SigV4Error::SignatureExpired { .. }
            | SigV4Error::SignatureNotYetCurrent { .. }
            | SigV4Error::PresignedExpired { .. }
            | SigV4Error::BadScope(_) => X::InvalidSignature,
            SigV4Error::PayloadHashMismatch => X::PayloadHashMismatch,
        }
    }
}

impl From<SigV4Error> for EcrError {
    fn from(e: SigV4Error) -> Self {
        EcrError::new(EcrException::from(&e), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SigV4 failures keep the code and status `berth-iam` assigns them.
    #[test]
    fn sigv4_failures_keep_their_code_and_status() {
        let all = [
            SigV4Error::MissingAuthentication,
            SigV4Error::Incomplete("x".into()),
            SigV4Error::UnknownAccessKey,
            SigV4Error::SignatureMismatch,
            SigV4Error::BadScope("x".into()),
            SigV4Error::PayloadHashMismatch,
        ];
        for e in all {
            let x = EcrException::from(&e);
            assert_eq!(x.aws_code(), e.aws_code(), "{e:?}");
            assert_eq!(x.http_status().as_u16(), e.http_status(), "{e:?}");
        }
    }

    #[test]
    fn kms_errors_carry_kms_error() {
        let e = EcrError::from(RegistryError::Kms("key disabled".into()));
        assert_eq!(e.aws_code(), "KmsException");
        assert_eq!(
            e.extra,
            Some(("kmsError", serde_json::json!("key disabled")))
        );
        assert_eq!(
            EcrError::from(Denied("no".into())).http_status(),
            StatusCode::BAD_REQUEST
        );
    }
}
