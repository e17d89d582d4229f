//! Pieces the console's pages share: how an API error becomes a page, whether a
//! control is enabled, the notice and error lines of a form, the JSON policy
//! editor (Permissions, Lifecycle policy, Registry settings), the repository
//! breadcrumb, and the keyset pages of DescribeImages (Images, Tags).

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use berth_registry::console::ConsoleSession;
use serde_json::{json, Value};

use super::error_page;
use super::html::{esc, q};
use crate::ecr::{call_as, EcrError, EcrException};
use crate::App;

/// The page's status for an API error: 403 for a refusal (ECR answers 400).
pub(crate) fn status_of(e: &EcrError) -> StatusCode {
    if e.exception == EcrException::AccessDenied {
        StatusCode::FORBIDDEN
    } else {
        e.http_status()
    }
}

/// An API error as an error page.
pub(crate) fn refused(e: &EcrError) -> Response {
    error_page(status_of(e), &format!("{}: {}", e.aws_code(), e.message))
}

/// Whether the session's principal may perform `action` registry-wide (controls
/// are shown disabled otherwise; the server refuses the request anyway).
pub(crate) async fn may(app: &App, s: &ConsoleSession, action: &str) -> bool {
    app.authorize(&s.principal, action, &s.principal.account_id, None, None)
        .await
        .is_ok()
}

/// Whether the session's principal may perform `action` on repository `name`.
pub(crate) async fn may_on(app: &App, s: &ConsoleSession, action: &str, name: &str) -> bool {
    app.authorize(
        &s.principal,
        action,
        &s.principal.account_id,
        Some(name),
        None,
    )
    .await
    .is_ok()
}

/// A form's outcome line (`role="status"`), or nothing.
pub(crate) fn notice(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("<p class=\"notice\" role=\"status\">{}</p>", esc(text))
    }
}

/// The policy JSON editor (`policy`), with the API's error next to it.
pub(crate) fn json_editor(label: &str, rows: u32, text: &str, error: &str) -> String {
    let (inv, err) = if error.is_empty() {
        (String::new(), String::new())
    } else {
        (
            " aria-invalid=\"true\" aria-describedby=\"policy-error\"".to_string(),
            format!(
                "<p class=\"error\" id=\"policy-error\" role=\"alert\">{}</p>",
                esc(error)
            ),
        )
    };
    format!(
        "<div class=\"field\"><label for=\"policy\">{}</label><textarea id=\"policy\" name=\"policy\" rows=\"{rows}\" cols=\"90\"{inv}>{}</textarea>{err}</div>",
        esc(label),
        esc(text)
    )
}

/// A policy text indented for the editor (as given when it is not JSON).
pub(crate) fn pretty_json(text: String) -> String {
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text)
}

/// Repositories › `name` › `leaf`.
pub(crate) fn repo_breadcrumb(name: &str, leaf: &str) -> String {
    format!(
        "<nav aria-label=\"Breadcrumb\"><a href=\"/console/repositories\">Repositories</a> › <a href=\"/console/images?name={}\">{}</a> › {leaf}</nav>",
        q(name),
        esc(name)
    )
}

/// Images listed a page at a time.
pub(crate) const IMAGE_PAGE: i64 = 50;

/// One keyset page of DescribeImages of repository `name` (the page after the
/// `next` query parameter), with `filter` added to the input, run as the session.
pub(crate) async fn images_page(
    app: &Arc<App>,
    s: &ConsoleSession,
    ip: &str,
    name: &str,
    filter: Option<Value>,
    params: &HashMap<String, String>,
) -> Result<Value, EcrError> {
    let mut input = json!({ "repositoryName": name, "maxResults": IMAGE_PAGE });
    if let Some(f) = filter {
        input["filter"] = f;
    }
    if let Some(t) = params.get("next").filter(|t| !t.is_empty()) {
        input["nextToken"] = json!(t);
    }
    call_as(app, &s.principal, ip, "ecr", "DescribeImages", input).await
}

/// The "Next page" link of a DescribeImages answer on page `path` of `name`.
pub(crate) fn next_page(path: &str, name: &str, v: &Value) -> String {
    match v["nextToken"].as_str() {
        Some(next) => format!(
            "<nav aria-label=\"Pages\" class=\"toolbar\"><a href=\"{path}?name={}&amp;next={}\">Next page</a></nav>",
            q(name),
            q(next)
        ),
        None => String::new(),
    }
}
