//! Repository → Tags: every tag of the repository with the digest it names and
//! when that image was pushed (keyset pages of DescribeImages filtered to tagged
//! images), and Delete tag (BatchDeleteImage by tag, ECR's semantics: the image
//! goes with its last tag). Each read and action runs as the session.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use serde_json::json;

use super::forms::{images_page, may_on, next_page, refused, repo_breadcrumb};
use super::html::{esc, page, q, time};
use super::{check_csrf, error_page, parse_form, redirect, session};
use crate::ecr::call_as;
use crate::App;

pub async fn list(
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
    let name = params.get("name").cloned().unwrap_or_default();
    let tagged = Some(json!({"tagStatus": "TAGGED"}));
    let v = match images_page(&app, &s, &ip, &name, tagged, &params).await {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let can_delete = may_on(&app, &s, "ecr:BatchDeleteImage", &name).await;
    let dis = if can_delete { "" } else { " disabled" };
    let mut rows: Vec<(String, String, Option<i64>)> = Vec::new();
    for d in v["imageDetails"].as_array().into_iter().flatten() {
        let digest = d["imageDigest"].as_str().unwrap_or("").to_string();
        let pushed = d["imagePushedAt"].as_f64().map(|s| (s * 1000.0) as i64);
        for t in d["imageTags"].as_array().into_iter().flatten() {
            if let Some(t) = t.as_str() {
                rows.push((t.to_string(), digest.clone(), pushed));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let mut body = format!(
        "{crumb}
<h1>{n}</h1>
<nav aria-label=\"Repository\" class=\"toolbar\"><a href=\"/console/images?name={qn}\">Images</a> <a href=\"/console/permissions?name={qn}\">Permissions</a> <a href=\"/console/lifecycle?name={qn}\">Lifecycle policy</a></nav>
<h2>Tags</h2>
<table><thead><tr><th scope=\"col\">Image tag</th><th scope=\"col\">Image digest</th><th scope=\"col\">Pushed at</th><th scope=\"col\">Actions</th></tr></thead><tbody>",
        crumb = repo_breadcrumb(&name, "tags"),
        n = esc(&name),
        qn = q(&name),
    );
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"4\">No tags</td></tr>");
    }
    for (tag, digest, pushed) in &rows {
        body.push_str(&format!(
            "<tr><td>{t}</td><td><a href=\"/console/image?name={qn}&amp;digest={qd}\"><code>{dg}</code></a></td><td>{p}</td>
<td><form method=\"post\" action=\"/console/tags/delete\" data-confirm=\"Delete tag {t}?\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"name\" value=\"{n}\"><input type=\"hidden\" name=\"tag\" value=\"{t}\"><button type=\"submit\" class=\"secondary\" aria-label=\"Delete tag {t}\"{dis}>Delete</button></form></td></tr>",
            t = esc(tag),
            qn = q(&name),
            n = esc(&name),
            qd = q(digest),
            dg = esc(digest),
            p = pushed.map(time).unwrap_or_default(),
            csrf = esc(&s.csrf_token),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&next_page("/console/tags", &name, &v));
    Html(page(&format!("Tags of {name}"), Some(&s), &body)).into_response()
}

pub async fn delete(
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
    let name = form.get("name").cloned().unwrap_or_default();
    let tag = form.get("tag").cloned().unwrap_or_default();
    let input = json!({"repositoryName": name, "imageIds": [{"imageTag": tag}]});
    let ip = peer.ip().to_string();
    match call_as(&app, &s.principal, &ip, "ecr", "BatchDeleteImage", input).await {
        Ok(v) => match v["failures"].as_array().and_then(|f| f.first()) {
            Some(f) => error_page(
                StatusCode::BAD_REQUEST,
                &format!(
                    "{}: {}",
                    f["failureCode"].as_str().unwrap_or(""),
                    f["failureReason"].as_str().unwrap_or("")
                ),
            ),
            None => redirect(&format!("/console/tags?name={}", q(&name))),
        },
        Err(e) => refused(&e),
    }
}
