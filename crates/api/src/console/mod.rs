//! The web console at `/console/`: server-rendered HTML, progressive enhancement
//! (one small embedded script, no build step), sessions signed in with an access
//! key id and secret. Every action runs as the session's principal through the
//! same authorization as the ECR API, as the same ECR action (most pages call the
//! ECR operation itself, `ecr::call_as`, so validation and the audit record are
//! the API's too).
//!
//! Security: the session id is an opaque random value in an `HttpOnly`,
//! `SameSite=Strict` cookie (`Secure` under TLS) scoped to `/console`; sessions are
//! rows in the metadata store (any node serves them) that end on expiry, sign-out
//! or when the access key is disabled. Every state-changing form carries the
//! session's CSRF token (the sign-in form a double-submit token); a strict CSP
//! without inline script, `X-Frame-Options: DENY` and `Referrer-Policy` go on every
//! response; failed sign-ins are rate-limited per client address and audited.

mod audit;
mod caching;
mod forms;
mod html;
mod images;
mod lifecycle;
mod overview;
mod permissions;
mod registry_config;
mod repos;
mod settings;
mod tags;
mod templates;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use berth_registry::console::{secrets_equal, ConsoleSession, SignIn};
use berth_registry::AuditRecord;

use crate::App;
use html::{esc, page};

const COOKIE: &str = "berth_console";
const SIGNIN_COOKIE: &str = "berth_console_signin";
/// Failed sign-ins allowed per client address within [`FAIL_WINDOW_MS`].
const MAX_FAILURES: usize = 5;
const FAIL_WINDOW_MS: i64 = 5 * 60 * 1000;

/// How long a session lives: `BERTH_CONSOLE_SESSION_SECS`, 8 hours by default.
fn session_ttl_ms() -> i64 {
    static TTL: OnceLock<i64> = OnceLock::new();
    *TTL.get_or_init(|| {
        std::env::var("BERTH_CONSOLE_SESSION_SECS")
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|s| *s > 0)
            .unwrap_or(8 * 3600)
            * 1000
    })
}

/// The console's routes, nested under `/console`.
pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/", get(index))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .route("/repositories", get(repos::list))
        .route(
            "/repositories/create",
            get(repos::create_form).post(repos::create),
        )
        .route("/repositories/delete", post(repos::delete))
        .route("/repositories/push-commands", get(repos::push_commands))
        .route("/images", get(images::list))
        .route("/images/delete", post(images::delete))
        .route("/images/scan", post(images::scan))
        .route("/image", get(images::detail))
        .route("/tags", get(tags::list))
        .route("/tags/delete", post(tags::delete))
        .route("/lifecycle", get(lifecycle::show).post(lifecycle::act))
        .route("/audit", get(audit::list))
        .route("/overview", get(overview::show))
        .route("/settings", get(settings::show).post(settings::act))
        .route(
            "/permissions",
            get(permissions::show).post(permissions::act),
        )
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("assets/console.css"),
    )
        .into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("assets/console.js"),
    )
        .into_response()
}

/// An `application/x-www-form-urlencoded` body.
pub(crate) fn parse_form(body: &[u8]) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(app: &App, name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    let secure = if app.config.scheme == "https" {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn random_hex() -> Option<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(hex::encode(b))
}

/// A page of the console's shape for an error.
pub(crate) fn error_page(status: StatusCode, msg: &str) -> Response {
    (
        status,
        axum::response::Html(page(
            "Error",
            None,
            &format!("<h1>Error</h1><p class=\"error\" role=\"alert\">{}</p><p><a href=\"/console/repositories\">Back to repositories</a></p>", esc(msg)),
        )),
    )
        .into_response()
}

/// The signed-in session of a request, or the response to send instead (a
/// redirect to the sign-in page).
pub(crate) async fn session(app: &App, headers: &HeaderMap) -> Result<ConsoleSession, Response> {
    let Some(id) = cookie(headers, COOKIE) else {
        return Err(redirect("/console/sign-in"));
    };
    match app.registry.console_session(&id).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(redirect("/console/sign-in")),
        Err(e) => {
            tracing::warn!(error = %e, "console session lookup failed");
            Err(error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the session could not be checked",
            ))
        }
    }
}

/// Checks a state-changing form's CSRF token against the session's: the
/// refusal to answer when it does not match.
pub(crate) fn check_csrf(s: &ConsoleSession, form: &HashMap<String, String>) -> Option<Response> {
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    if !sent.is_empty() && secrets_equal(sent.as_bytes(), s.csrf_token.as_bytes()) {
        None
    } else {
        Some(error_page(
            StatusCode::FORBIDDEN,
            "The form's security token is missing or invalid. Reload the page and try again.",
        ))
    }
}

/// `/console` and `/console/`: the Repositories page, or the sign-in page.
pub async fn index(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    match session(&app, &headers).await {
        Ok(_) => redirect("/console/repositories"),
        Err(r) => r,
    }
}

fn sign_in_html(token: &str, error: Option<&str>, key_id: &str) -> String {
    let err = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    page(
        "Sign in",
        None,
        &format!(
            "<h1>Sign in to berth</h1>{err}
<form method=\"post\" action=\"/console/sign-in\">
<input type=\"hidden\" name=\"csrf\" value=\"{token}\">
<div class=\"field\"><label for=\"access_key_id\">Access key ID</label>
<input id=\"access_key_id\" name=\"access_key_id\" autocomplete=\"username\" required value=\"{}\"></div>
<div class=\"field\"><label for=\"secret_access_key\">Secret access key</label>
<input id=\"secret_access_key\" name=\"secret_access_key\" type=\"password\" autocomplete=\"current-password\" required></div>
<button type=\"submit\">Sign in</button>
</form>
<p class=\"notice\">Use the access keys the AWS CLI uses (<code>berth admin access-key create</code> makes them).</p>",
            esc(key_id)
        ),
    )
}

async fn sign_in_page(State(app): State<Arc<App>>) -> Response {
    let Some(token) = random_hex() else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    let mut r = axum::response::Html(sign_in_html(&token, None, "")).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&app, SIGNIN_COOKIE, &token, 3600),
    );
    r
}

/// Failed sign-ins per client address (this node's view; a client spreading its
/// attempts over several nodes gets [`MAX_FAILURES`] per node).
fn failures() -> &'static Mutex<HashMap<String, Vec<i64>>> {
    static F: OnceLock<Mutex<HashMap<String, Vec<i64>>>> = OnceLock::new();
    F.get_or_init(|| Mutex::new(HashMap::new()))
}

fn recent_failures(ip: &str, now: i64) -> usize {
    let mut f = failures().lock().unwrap_or_else(|e| e.into_inner());
    f.retain(|_, v| {
        v.retain(|t| now - t < FAIL_WINDOW_MS);
        !v.is_empty()
    });
    f.get(ip).map(Vec::len).unwrap_or(0)
}

fn record_failure(ip: &str, now: i64) {
    let mut f = failures().lock().unwrap_or_else(|e| e.into_inner());
    f.entry(ip.to_string()).or_default().push(now);
}

async fn sign_in(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let ip = peer.ip().to_string();
    let now = app.registry.now();
    let key_id = form.get("access_key_id").map(|s| s.trim()).unwrap_or("");
    let secret = form
        .get("secret_access_key")
        .map(String::as_str)
        .unwrap_or("");
    let sent = form.get("csrf").map(String::as_str).unwrap_or("");
    let expected = cookie(&headers, SIGNIN_COOKIE).unwrap_or_default();
    let fresh = random_hex().unwrap_or_default();
    let again = |status: StatusCode, msg: &str| {
        let mut r = (
            status,
            axum::response::Html(sign_in_html(&fresh, Some(msg), key_id)),
        )
            .into_response();
        r.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&app, SIGNIN_COOKIE, &fresh, 3600),
        );
        r
    };
    if expected.is_empty() || !secrets_equal(sent.as_bytes(), expected.as_bytes()) {
        return again(
            StatusCode::FORBIDDEN,
            "The form's security token is missing or invalid. Try again.",
        );
    }
    let audit = |outcome: &'static str, account: String, principal: String| {
        let app = app.clone();
        let ip = ip.clone();
        let key = key_id.to_string();
        async move {
            let r = AuditRecord {
                account: &account,
                principal: &principal,
                action: "console:SignIn",
                resource: Some(&key),
                source: &ip,
                outcome,
            };
            if let Err(e) = app.registry.audit(&r).await {
                tracing::warn!(error = %e, "could not write the audit log");
            }
        }
    };
    if recent_failures(&ip, now) >= MAX_FAILURES {
        audit(
            "Throttled",
            app.config.default_account.clone(),
            "anonymous".into(),
        )
        .await;
        return again(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many failed sign-in attempts. Wait a few minutes and try again.",
        );
    }
    match app
        .registry
        .console_sign_in(key_id, secret, session_ttl_ms())
        .await
    {
        Ok(SignIn::Ok(id, s)) => {
            audit("Success", s.principal.account_id.clone(), s.principal.arn()).await;
            tracing::info!(principal = %s.principal.arn(), "console sign-in");
            let mut r = redirect("/console/repositories");
            let h = r.headers_mut();
            h.append(
                header::SET_COOKIE,
                set_cookie(&app, COOKIE, &id, session_ttl_ms() / 1000),
            );
            h.append(header::SET_COOKIE, set_cookie(&app, SIGNIN_COOKIE, "", 0));
            r
        }
        Ok(SignIn::Refused) => {
            record_failure(&ip, now);
            crate::metrics::auth_failed("ConsoleSignIn");
            audit(
                "InvalidCredentials",
                app.config.default_account.clone(),
                "anonymous".into(),
            )
            .await;
            tracing::info!(source = %ip, "console sign-in refused");
            again(
                StatusCode::UNAUTHORIZED,
                "The access key ID or secret access key is not valid.",
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in failed");
            again(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Sign-in is unavailable right now.",
            )
        }
    }
}

async fn sign_out(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    if let Some(id) = cookie(&headers, COOKIE) {
        if let Err(e) = app.registry.console_sign_out(&id).await {
            tracing::warn!(error = %e, "console sign-out failed");
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, "sign-out failed");
        }
    }
    let mut r = redirect("/console/sign-in");
    r.headers_mut()
        .append(header::SET_COOKIE, set_cookie(&app, COOKIE, "", 0));
    r
}
