//! Repository → Permissions: the repository policy as JSON (validated by the API on
//! save, its error shown next to the editor) with a statement builder for the
//! common cases — pull from an account, push for a principal — and Delete policy.
//! Each action is the ECR operation of the same name, run as the session.

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
use super::html::{esc, page};
use super::{check_csrf, error_page, parse_form, session};
use crate::ecr::{call_as, EcrError, EcrException};
use crate::App;

const PULL: [&str; 3] = [
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
];
const PUSH: [&str; 5] = [
    "ecr:PutImage",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:BatchCheckLayerAvailability",
];

fn render(s: &ConsoleSession, name: &str, text: &str, notice_text: &str, error: &str) -> String {
    format!(
        "{crumb}
<h1>Permissions of {n}</h1>{note}
<form method=\"post\" action=\"/console/permissions\">
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"name\" value=\"{n}\">
<fieldset><legend>Add a statement</legend>
<div class=\"field\"><label for=\"pull_account\">Allow pull from account (12-digit id)</label><input id=\"pull_account\" name=\"pull_account\" inputmode=\"numeric\"></div>
<div class=\"field\"><label for=\"push_principal\">Allow push for principal (IAM ARN)</label><input id=\"push_principal\" name=\"push_principal\"></div>
<button type=\"submit\" name=\"action\" value=\"add\" class=\"secondary\">Add statement</button>
</fieldset>
{editor}
<button type=\"submit\" name=\"action\" value=\"save\">Save</button>
<button type=\"submit\" name=\"action\" value=\"delete\" class=\"secondary\">Delete policy</button>
</form>",
        crumb = repo_breadcrumb(name, "Permissions"),
        note = notice(notice_text),
        n = esc(name),
        csrf = esc(&s.csrf_token),
        editor = json_editor("Repository policy JSON", 16, text, error),
    )
}

const EMPTY: &str = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": []\n}";

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
        "GetRepositoryPolicy",
        json!({"repositoryName": name}),
    )
    .await
    {
        Ok(v) => v["policyText"].as_str().unwrap_or("").to_string(),
        Err(e) if e.exception == EcrException::RepositoryPolicyNotFound => EMPTY.to_string(),
        Err(e) => return refused(&e),
    };
    let pretty = pretty_json(text);
    Html(page(
        "Permissions",
        Some(&s),
        &render(&s, &name, &pretty, "", ""),
    ))
    .into_response()
}

/// Appends the builder's statements to the policy text.
fn add_statements(text: &str, f: &HashMap<String, String>) -> Result<String, String> {
    let mut v: Value =
        serde_json::from_str(text).map_err(|e| format!("The policy is not valid JSON: {e}"))?;
    let mut add = Vec::new();
    if let Some(a) = f
        .get("pull_account")
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
    {
        if !berth_iam::arn::is_account_id(a) {
            return Err(format!("'{a}' is not a 12-digit account id."));
        }
        add.push(json!({"Sid": format!("AllowPull{a}"), "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{a}:root")}, "Action": PULL}));
    }
    if let Some(p) = f
        .get("push_principal")
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
    {
        if !p.starts_with("arn:aws:iam::") {
            return Err(format!("'{p}' is not an IAM principal ARN."));
        }
        add.push(
            json!({"Sid": "AllowPush", "Effect": "Allow", "Principal": {"AWS": p}, "Action": PUSH}),
        );
    }
    if add.is_empty() {
        return Err("Enter an account id or a principal ARN.".into());
    }
    if v.get("Version").is_none() {
        v["Version"] = json!("2012-10-17");
    }
    match v.get_mut("Statement").and_then(Value::as_array_mut) {
        Some(st) => st.extend(add),
        None => v["Statement"] = json!(add),
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
    let html = |text: &str, notice: &str, error: &str, status: StatusCode| {
        (
            status,
            Html(page(
                "Permissions",
                Some(&s),
                &render(&s, &name, text, notice, error),
            )),
        )
            .into_response()
    };
    let api = |op: &'static str, input: Value| {
        let app = app.clone();
        let p = s.principal.clone();
        let ip = ip.clone();
        async move { call_as(&app, &p, &ip, "ecr", op, input).await }
    };
    match form.get("action").map(String::as_str) {
        Some("add") => match add_statements(&text, &form) {
            Ok(t) => html(
                &t,
                "Statement added to the JSON below; save to apply it.",
                "",
                StatusCode::OK,
            ),
            Err(e) => html(&text, "", &e, StatusCode::BAD_REQUEST),
        },
        Some("save") => match api(
            "SetRepositoryPolicy",
            json!({"repositoryName": name, "policyText": text}),
        )
        .await
        {
            Ok(_) => html(&text, "Repository policy saved.", "", StatusCode::OK),
            Err(e) if e.exception == EcrException::AccessDenied => refused(&e),
            Err(e) => html(
                &text,
                "",
                &format!("{}: {}", e.aws_code(), e.message),
                StatusCode::BAD_REQUEST,
            ),
        },
        Some("delete") => {
            match api("DeleteRepositoryPolicy", json!({"repositoryName": name})).await {
                Ok(_)
                | Err(EcrError {
                    exception: EcrException::RepositoryPolicyNotFound,
                    ..
                }) => html(EMPTY, "Repository policy deleted.", "", StatusCode::OK),
                Err(e) => refused(&e),
            }
        }
        _ => error_page(StatusCode::BAD_REQUEST, "unknown action"),
    }
}
