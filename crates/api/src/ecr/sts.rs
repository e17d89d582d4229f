//! The query-protocol calls Terraform and the SDKs make beside ECR: STS
//! `GetCallerIdentity` and IAM `GetUser` (botocore `sts/2011-06-15`, `iam/2010-05-08`:
//! form-encoded request, XML response).

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_iam::sigv4::SigV4Error;

use berth_registry::identity::Principal;

use crate::App;

const STS_NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const IAM_NS: &str = "https://iam.amazonaws.com/doc/2010-05-08/";

/// Who may call a query operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryAccess {
    /// Any authenticated caller (AWS requires no permission for
    /// `sts:GetCallerIdentity`).
    AnyCaller,
    /// The caller about itself, or the account root about any of its users (the
    /// `iam:GetUser` berth grants without identity policies).
    SelfOrAccountRoot,
}

impl QueryAccess {
    pub fn allows(self, caller: &Principal, target: &Principal) -> bool {
        match self {
            QueryAccess::AnyCaller => true,
            QueryAccess::SelfOrAccountRoot => {
                target == caller || (caller.is_root() && target.account_id == caller.account_id)
            }
        }
    }
}

/// One row of the query-protocol operation table: its name, the XML namespace of
/// its answers, who may call it.
pub struct QueryOperation {
    pub name: &'static str,
    pub namespace: &'static str,
    pub access: QueryAccess,
}

/// The query-protocol operations served on `POST /` without an `X-Amz-Target`.
pub static QUERY_OPERATIONS: &[QueryOperation] = &[
    QueryOperation {
        name: "GetCallerIdentity",
        namespace: STS_NS,
        access: QueryAccess::AnyCaller,
    },
    QueryOperation {
        name: "GetUser",
        namespace: IAM_NS,
        access: QueryAccess::SelfOrAccountRoot,
    },
];

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

fn xml_error(ns: &str, status: StatusCode, code: &str, msg: &str, request_id: &str) -> Response {
    let kind = if status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"{ns}\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>",
            xml_escape(msg)
        ),
        request_id,
    )
}

/// The query-protocol names of SigV4 failures.
fn query_auth_code(e: &SigV4Error) -> &'static str {
    match e {
        SigV4Error::MissingAuthentication => "MissingAuthenticationToken",
        SigV4Error::Incomplete(_) => "IncompleteSignature",
        SigV4Error::UnknownAccessKey => "InvalidClientTokenId",
        SigV4Error::SignatureExpired { .. }
        | SigV4Error::SignatureNotYetCurrent { .. }
        | SigV4Error::PresignedExpired { .. } => "SignatureDoesNotMatch",
        _ => "SignatureDoesNotMatch",
    }
}

pub async fn query_call(
    app: Arc<App>,
    parts: &axum::http::request::Parts,
    body: &[u8],
    request_id: String,
    _source_ip: String,
) -> Response {
    let mut params: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    if let Some(q) = parts.uri.query() {
        params.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let action = get("Action").unwrap_or("");
    let row = QUERY_OPERATIONS.iter().find(|o| o.name == action);
    let ns = row.map_or(STS_NS, |o| o.namespace);
    let caller = match app
        .authenticate_sigv4_raw(parts, body, &["sts", "iam"])
        .await
    {
        Ok(c) => c,
        Err(AuthFailure::Sig(e)) => {
            return xml_error(
                ns,
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::FORBIDDEN),
                query_auth_code(&e),
                &e.to_string(),
                &request_id,
            )
        }
        Err(AuthFailure::Unavailable) => {
            let mut r = xml_error(
                ns,
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "the registry's database is unavailable; retry later",
                &request_id,
            );
            r.headers_mut().insert(
                "retry-after",
                axum::http::HeaderValue::from(super::error::RETRY_AFTER_SECS),
            );
            return r;
        }
        Err(AuthFailure::Internal(m)) => {
            return xml_error(
                ns,
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalFailure",
                &m,
                &request_id,
            )
        }
    };
    let Some(op) = row else {
        return if action.is_empty() {
            xml_error(
                ns,
                StatusCode::BAD_REQUEST,
                "MissingAction",
                "Missing Action",
                &request_id,
            )
        } else {
            invalid_action(ns, action, &request_id)
        };
    };
    match op.name {
        "GetCallerIdentity" => xml(
            StatusCode::OK,
            format!(
                "<GetCallerIdentityResponse xmlns=\"{STS_NS}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
                xml_escape(&caller.arn()),
                xml_escape(&caller.user_id()),
                caller.account_id
            ),
            &request_id,
        ),
        "GetUser" => get_user(&app, &caller, op.access, get("UserName"), &request_id).await,
        other => invalid_action(ns, other, &request_id),
    }
}

fn invalid_action(ns: &str, action: &str, request_id: &str) -> Response {
    xml_error(
        ns,
        StatusCode::BAD_REQUEST,
        "InvalidAction",
        &format!("The action {action} is not valid for this web service."),
        request_id,
    )
}

async fn get_user(
    app: &App,
    caller: &Principal,
    access: QueryAccess,
    name: Option<&str>,
    request_id: &str,
) -> Response {
    let target = match name {
        None => caller.clone(),
        Some(n) => Principal {
            account_id: caller.account_id.clone(),
            user_name: Some(n.to_string()),
        },
    };
    let created = match &target.user_name {
        Some(u) => match app.registry.identity().user(&target.account_id, u).await {
            Ok(Some(row)) => row.created_at,
            Ok(None) => {
                return xml_error(
                    IAM_NS,
                    StatusCode::NOT_FOUND,
                    "NoSuchEntity",
                    &format!("The user with name {u} cannot be found."),
                    request_id,
                )
            }
            Err(e) => {
                return xml_error(
                    IAM_NS,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ServiceFailure",
                    &e.to_string(),
                    request_id,
                )
            }
        },
        None => 0,
    };
    if !access.allows(caller, &target) {
        return xml_error(
            IAM_NS,
            StatusCode::FORBIDDEN,
            "AccessDenied",
            &format!(
                "User: {} is not authorized to perform: iam:GetUser on resource: {}",
                caller.arn(),
                target.arn()
            ),
            request_id,
        );
    }
    let user_name = target.user_name.clone().unwrap_or_else(|| "root".into());
    xml(
        StatusCode::OK,
        format!(
            "<GetUserResponse xmlns=\"{IAM_NS}\"><GetUserResult><User><Path>/</Path><UserName>{}</UserName><UserId>{}</UserId><Arn>{}</Arn><CreateDate>{}</CreateDate></User></GetUserResult><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetUserResponse>",
            xml_escape(&user_name),
            xml_escape(&target.user_id()),
            xml_escape(&target.arn()),
            berth_iam::time::format_iso8601(created / 1000)
        ),
        request_id,
    )
}

pub enum AuthFailure {
    Sig(SigV4Error),
    /// The metadata store cannot be reached for now (503, `Retry-After`).
    Unavailable,
    Internal(String),
}

impl App {
    /// Verifies a SigV4-signed request and returns its principal.
    pub async fn authenticate_sigv4_raw(
        &self,
        parts: &axum::http::request::Parts,
        body: &[u8],
        services: &[&str],
    ) -> Result<Principal, AuthFailure> {
        let r = self.authenticate_sigv4_checked(parts, body, services).await;
        if let Err(AuthFailure::Sig(e)) = &r {
            if matches!(
                e,
                SigV4Error::UnknownAccessKey | SigV4Error::SignatureMismatch
            ) {
                let key = berth_iam::sigv4::parse(&berth_iam::sigv4::Request {
                    method: parts.method.as_str(),
                    path: parts.uri.path(),
                    query: parts.uri.query().unwrap_or(""),
                    headers: &parts
                        .headers
                        .iter()
                        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
                        .collect::<Vec<_>>(),
                })
                .ok()
                .map(|p| p.access_key_id().to_string());
                let what = match e {
                    SigV4Error::UnknownAccessKey => "UnrecognizedClient",
                    _ => "InvalidSignature",
                };
                self.signin_failed(what, key.as_deref()).await;
            }
        }
        r
    }

    async fn authenticate_sigv4_checked(
        &self,
        parts: &axum::http::request::Parts,
        body: &[u8],
        services: &[&str],
    ) -> Result<Principal, AuthFailure> {
        use berth_iam::sigv4;
        if parts.headers.contains_key("authorization")
            || parts
                .uri
                .query()
                .is_some_and(|q| q.contains("X-Amz-Signature"))
        {
            self.signin_wait().await;
        }
        let headers: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let req = sigv4::Request {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &headers,
        };
        let parsed = sigv4::parse(&req).map_err(AuthFailure::Sig)?;
        let now = self.registry.now() / 1000;
        parsed
            .check_time(now, sigv4::DEFAULT_MAX_SKEW_SECS)
            .map_err(AuthFailure::Sig)?;
        let own_region = [self.config.region.as_str()];
        let region = if parsed.scope().service == "ecr" {
            own_region[0]
        } else {
            parsed.scope().region.as_str()
        };
        parsed
            .check_scope(region, services)
            .map_err(AuthFailure::Sig)?;
        let found = self
            .registry
            .identity()
            .secret_for(parsed.access_key_id())
            .await
            .map_err(|e| match e {
                berth_registry::identity::IdentityError::Store(s) if s.is_unavailable() => {
                    AuthFailure::Unavailable
                }
                e => AuthFailure::Internal(e.to_string()),
            })?;
        let Some((secret, principal)) = found else {
            return Err(AuthFailure::Sig(SigV4Error::UnknownAccessKey));
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, body);
        let hex = hex::encode(digest.as_ref());
        parsed
            .verify(
                &req,
                sigv4::Payload::Sha256Hex(&hex),
                &secret,
                sigv4::Flavor::Standard,
            )
            .map_err(AuthFailure::Sig)?;
        Ok(principal)
    }

    /// [`authenticate_sigv4_raw`](Self::authenticate_sigv4_raw) with JSON-protocol errors.
    pub async fn authenticate_sigv4(
        &self,
        parts: &axum::http::request::Parts,
        body: &[u8],
        services: &[&str],
    ) -> Result<Principal, super::EcrError> {
        self.authenticate_sigv4_raw(parts, body, services)
            .await
            .map_err(|f| match f {
                AuthFailure::Sig(e) => e.into(),
                AuthFailure::Unavailable => super::EcrError::unavailable(),
                AuthFailure::Internal(m) => super::EcrError::server(m),
            })
    }
}
