//! Repository → Lifecycle policy: the policy as JSON with a rule editor for the
//! common rule (tag status, prefixes, count type and number), *Test rules* (the
//! ECR preview: the images the rules would expire, before anything is applied)
//! and Save. Each action is the ECR operation of the same name, run as the session.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use berth_registry::console::ConsoleSession;
use serde_json::{json, Value};

use super::forms::{json_editor, notice, pretty_json, refused, repo_breadcrumb};
use super::html::{esc, page, time};
use super::{check_csrf, error_page, parse_form, session};
use crate::ecr::{call_as, EcrException};
use crate::App;

fn render(
    s: &ConsoleSession,
    name: &str,
    text: &str,
    notice_text: &str,
    error: &str,
    preview: &str,
) -> String {
    format!(
        "{crumb}
<h1>Lifecycle policy of {n}</h1>{note}
<form method=\"post\" action=\"/console/lifecycle\">
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"name\" value=\"{n}\">
<fieldset><legend>Add a rule</legend>
<div class=\"field\"><label for=\"priority\">Rule priority</label><input id=\"priority\" name=\"priority\" type=\"number\" min=\"1\"></div>
<div class=\"field\"><label for=\"description\">Rule description</label><input id=\"description\" name=\"description\"></div>
<div class=\"field\"><label for=\"tag_status\">Image status</label><select id=\"tag_status\" name=\"tag_status\"><option value=\"untagged\">Untagged</option><option value=\"tagged\">Tagged (prefixes)</option><option value=\"any\">Any</option></select></div>
<div class=\"field\"><label for=\"prefixes\">Tag prefixes (comma-separated)</label><input id=\"prefixes\" name=\"prefixes\"></div>
<div class=\"field\"><label for=\"count_type\">Match criteria</label><select id=\"count_type\" name=\"count_type\"><option value=\"imageCountMoreThan\">Image count more than</option><option value=\"sinceImagePushed\">Days since image pushed</option></select></div>
<div class=\"field\"><label for=\"count_number\">Count number</label><input id=\"count_number\" name=\"count_number\" type=\"number\" min=\"1\"></div>
<button type=\"submit\" name=\"action\" value=\"add\" class=\"secondary\">Add rule</button>
</fieldset>
{editor}
<button type=\"submit\" name=\"action\" value=\"test\" class=\"secondary\">Test rules</button>
<button type=\"submit\" name=\"action\" value=\"save\">Save</button>
</form>{preview}",
        crumb = repo_breadcrumb(name, "Lifecycle policy"),
        note = notice(notice_text),
        n = esc(name),
        csrf = esc(&s.csrf_token),
        editor = json_editor("Lifecycle policy JSON", 16, text, error),
    )
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
    let name = params.get("name").cloned().unwrap_or_default();
    let text = match call_as(
        &app,
        &s.principal,
        &peer.ip().to_string(),
        "ecr",
        "GetLifecyclePolicy",
        json!({"repositoryName": name}),
    )
    .await
    {
        Ok(v) => v["lifecyclePolicyText"].as_str().unwrap_or("").to_string(),
        Err(e) if e.exception == EcrException::LifecyclePolicyNotFound => {
            "{\"rules\": []}".to_string()
        }
        Err(e) => return refused(&e),
    };
    let pretty = pretty_json(text);
    Html(page(
        "Lifecycle policy",
        Some(&s),
        &render(&s, &name, &pretty, "", "", ""),
    ))
    .into_response()
}

/// Appends the rule of the editor's fields to the policy text.
fn add_rule(text: &str, f: &HashMap<String, String>) -> Result<String, String> {
    let mut v: Value =
        serde_json::from_str(text).map_err(|e| format!("The policy is not valid JSON: {e}"))?;
    let priority: i64 = f
        .get("priority")
        .and_then(|p| p.trim().parse().ok())
        .ok_or("Enter a rule priority.")?;
    let count: i64 = f
        .get("count_number")
        .and_then(|p| p.trim().parse().ok())
        .ok_or("Enter a count number.")?;
    let count_type = f
        .get("count_type")
        .map(String::as_str)
        .unwrap_or("imageCountMoreThan");
    let mut selection = json!({
        "tagStatus": f.get("tag_status").map(String::as_str).unwrap_or("untagged"),
        "countType": count_type,
        "countNumber": count,
    });
    if count_type == "sinceImagePushed" {
        selection["countUnit"] = json!("days");
    }
    let prefixes: Vec<&str> = f
        .get("prefixes")
        .map(|p| {
            p.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if !prefixes.is_empty() {
        selection["tagPrefixList"] = json!(prefixes);
    }
    let mut rule =
        json!({"rulePriority": priority, "selection": selection, "action": {"type": "expire"}});
    if let Some(d) = f.get("description").filter(|d| !d.trim().is_empty()) {
        rule["description"] = json!(d.trim());
    }
    match v.get_mut("rules").and_then(Value::as_array_mut) {
        Some(rules) => rules.push(rule),
        None => v["rules"] = json!([rule]),
    }
    serde_json::to_string_pretty(&v).map_err(|e| e.to_string())
}

pub async fn act(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form = parse_form(&body);
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Some(r) = check_csrf(&s, &form) {
        return r;
    }
    let ip = peer.ip().to_string();
    let name = form.get("name").cloned().unwrap_or_default();
    let text = form.get("policy").cloned().unwrap_or_default();
    let html = |text: &str, notice: &str, error: &str, preview: &str, status: StatusCode| {
        (
            status,
            Html(page(
                "Lifecycle policy",
                Some(&s),
                &render(&s, &name, text, notice, error, preview),
            )),
        )
            .into_response()
    };
    match form.get("action").map(String::as_str) {
        Some("add") => match add_rule(&text, &form) {
            Ok(t) => html(
                &t,
                "Rule added to the JSON below; test or save it.",
                "",
                "",
                StatusCode::OK,
            ),
            Err(e) => html(&text, "", &e, "", StatusCode::BAD_REQUEST),
        },
        Some("save") => match call_as(
            &app,
            &s.principal,
            &ip,
            "ecr",
            "PutLifecyclePolicy",
            json!({"repositoryName": name, "lifecyclePolicyText": text}),
        )
        .await
        {
            Ok(_) => html(&text, "Lifecycle policy saved.", "", "", StatusCode::OK),
            Err(e) if e.exception == EcrException::AccessDenied => refused(&e),
            Err(e) => html(
                &text,
                "",
                &format!("{}: {}", e.aws_code(), e.message),
                "",
                StatusCode::BAD_REQUEST,
            ),
        },
        Some("test") => {
            let started = call_as(
                &app,
                &s.principal,
                &ip,
                "ecr",
                "StartLifecyclePolicyPreview",
                json!({"repositoryName": name, "lifecyclePolicyText": text}),
            )
            .await;
            if let Err(e) = started {
                if e.exception == EcrException::AccessDenied {
                    return refused(&e);
                }
                return html(
                    &text,
                    "",
                    &format!("{}: {}", e.aws_code(), e.message),
                    "",
                    StatusCode::BAD_REQUEST,
                );
            }
            let got = match call_as(
                &app,
                &s.principal,
                &ip,
                "ecr",
                "GetLifecyclePolicyPreview",
                json!({"repositoryName": name, "maxResults": 100}),
            )
            .await
            {
                Ok(v) => v,
                Err(e) => return refused(&e),
            };
            let results = got["previewResults"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut p = format!(
                "<h2>Test results</h2><p role=\"status\">{} image(s) would expire. Nothing has been deleted.</p><table><thead><tr><th scope=\"col\">Image tags</th><th scope=\"col\">Image digest</th><th scope=\"col\">Pushed at</th><th scope=\"col\">Rule priority</th><th scope=\"col\">Action</th></tr></thead><tbody>",
                results.len()
            );
            for r in &results {
                let tags: Vec<&str> = r["imageTags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                p.push_str(&format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    if tags.is_empty() {
                        "<em>untagged</em>".to_string()
                    } else {
                        esc(&tags.join(", "))
                    },
                    esc(r["imageDigest"].as_str().unwrap_or("")),
                    r["imagePushedAt"]
                        .as_f64()
                        .map(|t| time((t * 1000.0) as i64))
                        .unwrap_or_default(),
                    r["appliedRulePriority"],
                    esc(r["action"]["type"].as_str().unwrap_or("")),
                ));
            }
            p.push_str("</tbody></table>");
            html(&text, "", "", &p, StatusCode::OK)
        }
        _ => error_page(StatusCode::BAD_REQUEST, "unknown action"),
    }
}
