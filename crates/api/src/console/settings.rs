//! Registry settings: the scanning configuration and replication rules (shown and
//! edited: `registry_config.rs`), the registry policy (edited here; validated by
//! PutRegistryPolicy) and the berth-managed KMS keys with their aliases. Each read
//! and write is the ECR or KMS operation of the same name, run as the session; a
//! section the principal may not read says so. Pull through cache rules and
//! repository creation templates are `caching.rs`'s sections of this page (the
//! template form `templates.rs`'s).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use berth_registry::console::ConsoleSession;
use serde_json::json;

use super::caching::{self, Flash};
use super::html::{esc, page};
use super::{check_csrf, parse_form, session};
use super::{forms, registry_config, templates};
use crate::ecr::{call_as, EcrException};
use crate::App;

async fn render(
    app: &Arc<App>,
    s: &ConsoleSession,
    ip: &str,
    policy_override: Option<(&str, &str, &str)>,
    caching: String,
    flash: Option<&Flash<'_>>,
    form: &HashMap<String, String>,
) -> String {
    let api = |svc: &'static str, op: &'static str| {
        let app = app.clone();
        let p = s.principal.clone();
        let ip = ip.to_string();
        async move { call_as(&app, &p, &ip, svc, op, json!({})).await }
    };
    let mut body = String::from("<h1>Private registry settings</h1>");
    body.push_str(&registry_config::scanning_section(app, s, ip, flash, form).await);
    body.push_str(&registry_config::replication_section(app, s, ip, flash, form).await);
    body.push_str(&caching);
    body.push_str("<section aria-labelledby=\"policy-h\"><h2 id=\"policy-h\">Registry policy</h2>");
    let (text, notice, error) = match policy_override {
        Some((t, n, e)) => (t.to_string(), n.to_string(), e.to_string()),
        None => match api("ecr", "GetRegistryPolicy").await {
            Ok(v) => (
                v["policyText"].as_str().unwrap_or("").to_string(),
                String::new(),
                String::new(),
            ),
            Err(e) if e.exception == EcrException::RegistryPolicyNotFound => {
                (String::new(), String::new(), String::new())
            }
            Err(e) if e.exception == EcrException::AccessDenied => {
                body.push_str(&caching::section_error(
                    &e,
                    "ecr",
                    "GetRegistryPolicy",
                    "the registry policy",
                ));
                (String::new(), String::new(), String::new())
            }
            Err(e) => (
                String::new(),
                String::new(),
                format!("{}: {}", e.aws_code(), e.message),
            ),
        },
    };
    body.push_str(&forms::notice(&notice));
    let dis = |allowed: bool| if allowed { "" } else { " disabled" };
    let dis_put = dis(forms::may(app, s, "ecr:PutRegistryPolicy").await);
    let dis_delete = dis(forms::may(app, s, "ecr:DeleteRegistryPolicy").await);
    body.push_str(&format!(
        "<form method=\"post\" action=\"/console/settings\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">
{}
<button type=\"submit\" name=\"action\" value=\"save\"{dis_put}>Save registry policy</button>
<button type=\"submit\" name=\"action\" value=\"delete\" class=\"secondary\"{dis_delete}>Delete registry policy</button></form></section>",
        esc(&s.csrf_token),
        forms::json_editor("Registry policy JSON", 12, &text, &error),
    ));
    body.push_str("<section aria-labelledby=\"kms\"><h2 id=\"kms\">KMS keys</h2>");
    match api("kms", "ListAliases").await {
        Ok(v) => {
            body.push_str("<table><thead><tr><th scope=\"col\">Alias</th><th scope=\"col\">Key id</th></tr></thead><tbody>");
            let aliases = v["Aliases"].as_array().cloned().unwrap_or_default();
            if aliases.is_empty() {
                body.push_str("<tr><td colspan=\"2\">No keys yet (the aws/ecr key is made on first use)</td></tr>");
            }
            for a in &aliases {
                body.push_str(&format!(
                    "<tr><td>{}</td><td><code>{}</code></td></tr>",
                    esc(a["AliasName"].as_str().unwrap_or("")),
                    esc(a["TargetKeyId"].as_str().unwrap_or(""))
                ));
            }
            body.push_str("</tbody></table>");
        }
        Err(e) => body.push_str(&caching::section_error(
            &e,
            "kms",
            "ListAliases",
            "the KMS keys",
        )),
    }
    body.push_str("</section>");
    body
}

pub async fn show(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let ip = peer.ip().to_string();
    let caching = caching::sections(&app, &s, &ip, &params, None, &HashMap::new()).await;
    let body = render(&app, &s, &ip, None, caching, None, &HashMap::new()).await;
    Html(page("Registry settings", Some(&s), &body)).into_response()
}

pub async fn act(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = parse_form(&body);
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let ip = peer.ip().to_string();
    let none = HashMap::new();
    if let Some((section, op, input)) = caching::operation(&form)
        .or_else(|| registry_config::operation(&form))
        .or_else(|| templates::operation(&form))
    {
        let (status, flash, kept) = match call_as(&app, &s.principal, &ip, "ecr", op, input).await {
            Ok(_) => (
                StatusCode::OK,
                Flash {
                    section,
                    error: false,
                    text: match op {
                        "CreatePullThroughCacheRule" => "Pull through cache rule created.",
                        "DeletePullThroughCacheRule" => "Pull through cache rule deleted.",
                        "PutRegistryScanningConfiguration" => "Scanning configuration saved.",
                        "PutReplicationConfiguration" => "Replication rules saved.",
                        "CreateRepositoryCreationTemplate" => {
                            "Repository creation template created."
                        }
                        "UpdateRepositoryCreationTemplate" => "Repository creation template saved.",
                        _ => "Repository creation template deleted.",
                    }
                    .to_string(),
                },
                &none,
            ),
            Err(e) => (
                if e.exception == EcrException::AccessDenied {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::BAD_REQUEST
                },
                Flash {
                    section,
                    error: true,
                    text: format!("{}: {}", e.aws_code(), e.message),
                },
                &form,
            ),
        };
        let caching = caching::sections(&app, &s, &ip, &none, Some(&flash), kept).await;
        let body = render(&app, &s, &ip, None, caching, Some(&flash), kept).await;
        return (status, Html(page("Registry settings", Some(&s), &body))).into_response();
    }
    let text = form.get("policy").cloned().unwrap_or_default();
    let (op, input) = match form.get("action").map(String::as_str) {
        Some("delete") => ("DeleteRegistryPolicy", json!({})),
        _ => ("PutRegistryPolicy", json!({"policyText": text})),
    };
    let (status, shown, notice, error) =
        match call_as(&app, &s.principal, &ip, "ecr", op, input).await {
            Ok(_) if op == "DeleteRegistryPolicy" => (
                StatusCode::OK,
                String::new(),
                "Registry policy deleted.".to_string(),
                String::new(),
            ),
            Ok(_) => (
                StatusCode::OK,
                text,
                "Registry policy saved.".to_string(),
                String::new(),
            ),
            Err(e) => {
                let status = if e.exception == EcrException::AccessDenied {
                    StatusCode::FORBIDDEN
                } else {
                    StatusCode::BAD_REQUEST
                };
                (
                    status,
                    text,
                    String::new(),
                    format!("{}: {}", e.aws_code(), e.message),
                )
            }
        };
    let caching = caching::sections(&app, &s, &ip, &none, None, &none).await;
    let body = render(
        &app,
        &s,
        &ip,
        Some((&shown, &notice, &error)),
        caching,
        None,
        &none,
    )
    .await;
    (status, Html(page("Registry settings", Some(&s), &body))).into_response()
}
