//! The Audit log: who did what, newest first, filterable by principal, action and
//! repository, in keyset pages. Reading it is authorized as CloudTrail's
//! `cloudtrail:LookupEvents` on the account (the ECR managed policies do not grant
//! it; the account root and policies that name it do).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use berth_registry::console::AuditSearch;

use super::html::{esc, page, q, time};
use super::{error_page, session};
use crate::App;

const PAGE: i64 = 50;

pub async fn list(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let account = s.principal.account_id.clone();
    if let Err(e) = app
        .authorize(
            &s.principal,
            "cloudtrail:LookupEvents",
            &account,
            None,
            None,
        )
        .await
    {
        return error_page(StatusCode::FORBIDDEN, &format!("Access denied: {e}"));
    }
    let get = |k: &str| {
        params
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let filter = AuditSearch {
        principal: get("principal"),
        action: get("action"),
        resource: get("repository"),
    };
    let before = get("before").and_then(|b| b.parse::<i64>().ok());
    let mut rows = match app
        .registry
        .search_audit(&account, &filter, before, PAGE + 1)
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let v = |o: &Option<String>| esc(o.as_deref().unwrap_or(""));
    let mut body = format!(
        "<h1>Audit log</h1>
<form method=\"get\" action=\"/console/audit\" role=\"search\" class=\"toolbar\">
<label for=\"principal\">Principal</label> <input id=\"principal\" name=\"principal\" value=\"{}\">
<label for=\"action\">Action</label> <input id=\"action\" name=\"action\" value=\"{}\" placeholder=\"ecr:CreateRepository\">
<label for=\"repository\">Repository</label> <input id=\"repository\" name=\"repository\" value=\"{}\">
<button type=\"submit\" class=\"secondary\">Filter</button></form>
<table><thead><tr><th scope=\"col\">Time</th><th scope=\"col\">Principal</th><th scope=\"col\">Action</th><th scope=\"col\">Resource</th><th scope=\"col\">Source</th><th scope=\"col\">Outcome</th></tr></thead><tbody>",
        v(&filter.principal),
        v(&filter.action),
        v(&filter.resource),
    );
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"6\">No records</td></tr>");
    }
    for (_, r) in &rows {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time(r.ts),
            v(&r.principal),
            esc(&r.action),
            v(&r.resource),
            v(&r.source),
            esc(&r.outcome),
        ));
    }
    body.push_str("</tbody></table>");
    if more {
        if let Some((id, _)) = rows.last() {
            body.push_str(&format!(
                "<nav aria-label=\"Pages\" class=\"toolbar\"><a href=\"/console/audit?principal={}&amp;action={}&amp;repository={}&amp;before={id}\">Older records</a></nav>",
                q(filter.principal.as_deref().unwrap_or("")),
                q(filter.action.as_deref().unwrap_or("")),
                q(filter.resource.as_deref().unwrap_or("")),
            ));
        }
    }
    Html(page("Audit log", Some(&s), &body)).into_response()
}
