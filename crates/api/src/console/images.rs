//! Repository → Images (tags, artifact type, pushed at, size, digest, last pull,
//! scan status, vulnerabilities; filter by tag; delete; start a scan) and Image
//! detail (manifest, layers or platforms, referrers, replication status,
//! findings sortable by severity). Each
//! read and action is the ECR operation of the same name, run as the session.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use berth_registry::console::ConsoleSession;
use serde_json::{json, Value};

use super::forms::{images_page, may_on, next_page, refused, repo_breadcrumb};
use super::html::{esc, page, q, time};
use super::{check_csrf, error_page, parse_form, redirect, session};
use crate::ecr::{call_as, EcrException};
use crate::App;

fn secs_to_ms(v: &Value) -> Option<i64> {
    v.as_f64().map(|s| (s * 1000.0) as i64)
}

/// The artifact type ECR's console shows, from the manifest and artifact media types.
pub fn artifact_kind(manifest_type: &str, artifact: &str) -> &'static str {
    let a = artifact.to_ascii_lowercase();
    if manifest_type.contains("index") || manifest_type.contains("manifest.list") {
        "Image index"
    } else if a.contains("signature") || a.contains("cosign") || a.contains("notary") {
        "Signature"
    } else if a.contains("spdx") || a.contains("cyclonedx") || a.contains("sbom") {
        "SBOM"
    } else if a.contains("helm") {
        "Helm chart"
    } else if a.is_empty() || a.contains("image.config") || a.contains("container.image") {
        "Image"
    } else {
        "Other artifact"
    }
}

fn size(b: i64) -> String {
    format!("{:.2} MB", b as f64 / 1_000_000.0)
}

const SEVERITIES: [&str; 6] = [
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNDEFINED",
];

fn severity_rank(s: &str) -> usize {
    SEVERITIES
        .iter()
        .position(|x| *x == s)
        .unwrap_or(SEVERITIES.len())
}

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
    let tag = params.get("tag").map(|t| t.trim()).unwrap_or("");
    let v = if tag.is_empty() {
        images_page(&app, &s, &ip, &name, None, &params).await
    } else {
        let input = json!({ "repositoryName": name, "imageIds": [{ "imageTag": tag }] });
        call_as(&app, &s.principal, &ip, "ecr", "DescribeImages", input).await
    };
    let v = match v {
        Ok(v) => v,
        Err(e) if e.exception == EcrException::ImageNotFound => json!({"imageDetails": []}),
        Err(e) => return refused(&e),
    };
    let can_delete = may_on(&app, &s, "ecr:BatchDeleteImage", &name).await;
    let dis = if can_delete { "" } else { " disabled" };
    let mut body = format!(
        "<nav aria-label=\"Breadcrumb\"><a href=\"/console/repositories\">Repositories</a> › {n}</nav>
<h1>{n}</h1>
<nav aria-label=\"Repository\" class=\"toolbar\"><a href=\"/console/repositories/push-commands?name={qn}\">View push commands</a> <a href=\"/console/tags?name={qn}\">Tags</a> <a href=\"/console/permissions?name={qn}\">Permissions</a> <a href=\"/console/lifecycle?name={qn}\">Lifecycle policy</a></nav>
<h2>Images</h2>
<form method=\"get\" action=\"/console/images\" role=\"search\" class=\"toolbar\"><input type=\"hidden\" name=\"name\" value=\"{n}\">
<label for=\"tag\">Filter by tag</label> <input id=\"tag\" name=\"tag\" value=\"{t}\"> <button type=\"submit\" class=\"secondary\">Filter</button></form>
<table><thead><tr><th scope=\"col\">Image tags</th><th scope=\"col\">Artifact type</th><th scope=\"col\">Pushed at</th><th scope=\"col\">Size</th><th scope=\"col\">Image digest</th><th scope=\"col\">Last pull</th><th scope=\"col\">Scan status</th><th scope=\"col\">Vulnerabilities</th><th scope=\"col\">Actions</th></tr></thead><tbody>",
        n = esc(&name),
        qn = q(&name),
        t = esc(tag),
    );
    let details = v["imageDetails"].as_array().cloned().unwrap_or_default();
    if details.is_empty() {
        body.push_str("<tr><td colspan=\"9\">No images</td></tr>");
    }
    for d in &details {
        let digest = d["imageDigest"].as_str().unwrap_or("");
        let tags: Vec<&str> = d["imageTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let tags_label = if tags.is_empty() {
            "<em>untagged</em>".to_string()
        } else {
            esc(&tags.join(", "))
        };
        let kind = artifact_kind(
            d["imageManifestMediaType"].as_str().unwrap_or(""),
            d["artifactMediaType"].as_str().unwrap_or(""),
        );
        let scan = d["imageScanStatus"]["status"].as_str().unwrap_or("—");
        let counts = &d["imageScanFindingsSummary"]["findingSeverityCounts"];
        let vulns = SEVERITIES
            .iter()
            .filter_map(|sev| {
                counts[*sev]
                    .as_i64()
                    .map(|n| format!("{} {n}", sev.to_lowercase()))
            })
            .collect::<Vec<_>>()
            .join(", ");
        body.push_str(&format!(
            "<tr><td><a href=\"/console/image?name={qn}&amp;digest={qd}\">{tags_label}</a></td><td>{kind}</td><td>{pushed}</td><td>{size}</td>
<td><code>{dg}</code> <button type=\"button\" class=\"secondary\" data-copy=\"{dg}\" aria-label=\"Copy digest {short}\">Copy</button></td><td>{pull}</td><td>{scan}</td><td>{vulns}</td>
<td><form method=\"post\" action=\"/console/images/scan\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"name\" value=\"{n}\"><input type=\"hidden\" name=\"digest\" value=\"{dg}\"><button type=\"submit\" class=\"secondary\" aria-label=\"Scan {short}\">Scan</button></form>
<form method=\"post\" action=\"/console/images/delete\" data-confirm=\"Delete image {short}?\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"name\" value=\"{n}\"><input type=\"hidden\" name=\"digest\" value=\"{dg}\"><button type=\"submit\" class=\"secondary\" aria-label=\"Delete image {short}\"{dis}>Delete</button></form></td></tr>",
            qn = q(&name),
            qd = q(digest),
            n = esc(&name),
            dg = esc(digest),
            short = esc(&digest.chars().take(19).collect::<String>()),
            pushed = secs_to_ms(&d["imagePushedAt"]).map(time).unwrap_or_default(),
            size = size(d["imageSizeInBytes"].as_i64().unwrap_or(0)),
            pull = secs_to_ms(&d["lastRecordedPullTime"]).map(time).unwrap_or_else(|| "—".into()),
            scan = esc(scan),
            vulns = esc(&vulns),
            csrf = esc(&s.csrf_token),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&next_page("/console/images", &name, &v));
    Html(page(&format!("Images of {name}"), Some(&s), &body)).into_response()
}

async fn image_action(
    app: Arc<App>,
    ip: String,
    headers: HeaderMap,
    body: Bytes,
    op: &str,
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
    let digest = form.get("digest").cloned().unwrap_or_default();
    let input = if op == "BatchDeleteImage" {
        json!({"repositoryName": name, "imageIds": [{"imageDigest": digest}]})
    } else {
        json!({"repositoryName": name, "imageId": {"imageDigest": digest}})
    };
    match call_as(&app, &s.principal, &ip, "ecr", op, input).await {
        Ok(v) => {
            if let Some(f) = v["failures"].as_array().and_then(|f| f.first()) {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "{}: {}",
                        f["failureCode"].as_str().unwrap_or(""),
                        f["failureReason"].as_str().unwrap_or("")
                    ),
                );
            }
            redirect(&format!("/console/images?name={}", q(&name)))
        }
        Err(e) => refused(&e),
    }
}

pub async fn delete(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    image_action(
        app,
        peer.ip().to_string(),
        headers,
        body,
        "BatchDeleteImage",
    )
    .await
}

pub async fn scan(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    image_action(app, peer.ip().to_string(), headers, body, "StartImageScan").await
}

/// Image detail → Referrers: the signatures, SBOMs and other artifacts whose
/// subject is this image (ListImageReferrers, a page of 50), with when each was
/// pushed (one DescribeImages for the page) and a link to its own detail page.
async fn referrers_section(
    app: &Arc<App>,
    s: &ConsoleSession,
    ip: &str,
    name: &str,
    digest: &str,
) -> String {
    let mut out = String::from("<h2>Referrers</h2>");
    let v = match call_as(
        app,
        &s.principal,
        ip,
        "ecr",
        "ListImageReferrers",
        json!({"repositoryName": name, "subjectId": {"imageDigest": digest}, "maxResults": 50}),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => {
            return out
                + &format!(
                    "<p class=\"error\">{}: {}</p>",
                    e.aws_code(),
                    esc(&e.message)
                )
        }
    };
    let refs = v["referrers"].as_array().cloned().unwrap_or_default();
    if refs.is_empty() {
        out.push_str("<p>No signatures, SBOMs or other artifacts refer to this image.</p>");
        return out;
    }
    let ids: Vec<Value> = refs
        .iter()
        .filter_map(|r| r["digest"].as_str())
        .map(|d| json!({"imageDigest": d}))
        .collect();
    let mut pushed: HashMap<String, i64> = HashMap::new();
    if let Ok(d) = call_as(
        app,
        &s.principal,
        ip,
        "ecr",
        "DescribeImages",
        json!({"repositoryName": name, "imageIds": ids}),
    )
    .await
    {
        for x in d["imageDetails"].as_array().into_iter().flatten() {
            if let (Some(dg), Some(ms)) =
                (x["imageDigest"].as_str(), secs_to_ms(&x["imagePushedAt"]))
            {
                pushed.insert(dg.to_string(), ms);
            }
        }
    }
    out.push_str("<table><thead><tr><th scope=\"col\">Type</th><th scope=\"col\">Artifact type</th><th scope=\"col\">Digest</th><th scope=\"col\">Pushed at</th></tr></thead><tbody>");
    for r in &refs {
        let dg = r["digest"].as_str().unwrap_or("");
        let at = r["artifactType"].as_str().unwrap_or("");
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><a href=\"/console/image?name={}&amp;digest={}\"><code>{}</code></a></td><td>{}</td></tr>",
            artifact_kind(r["mediaType"].as_str().unwrap_or(""), at),
            esc(at),
            q(name),
            q(dg),
            esc(dg),
            pushed.get(dg).copied().map(time).unwrap_or_else(|| "—".into()),
        ));
    }
    out.push_str("</tbody></table>");
    if v["nextToken"].is_string() {
        out.push_str("<p>More than 50 referrers; the first 50 are shown.</p>");
    }
    out
}

/// Image detail → Replication status: DescribeImageReplicationStatus, one row per
/// destination (region, registry, status, failure code).
async fn replication_section(
    app: &Arc<App>,
    s: &ConsoleSession,
    ip: &str,
    name: &str,
    digest: &str,
) -> String {
    let mut out = String::from("<h2>Replication status</h2>");
    match call_as(
        app,
        &s.principal,
        ip,
        "ecr",
        "DescribeImageReplicationStatus",
        json!({"repositoryName": name, "imageId": {"imageDigest": digest}}),
    )
    .await
    {
        Ok(v) => {
            let st = v["replicationStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if st.is_empty() {
                out.push_str("<p>This image is not replicated (no replication rule matches its repository).</p>");
                return out;
            }
            out.push_str("<table><thead><tr><th scope=\"col\">Destination region</th><th scope=\"col\">Destination registry</th><th scope=\"col\">Status</th><th scope=\"col\">Failure code</th></tr></thead><tbody>");
            for x in &st {
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(x["region"].as_str().unwrap_or("")),
                    esc(x["registryId"].as_str().unwrap_or("")),
                    esc(x["status"].as_str().unwrap_or("")),
                    esc(x["failureCode"].as_str().unwrap_or("—")),
                ));
            }
            out.push_str("</tbody></table>");
        }
        Err(e) => out.push_str(&format!(
            "<p class=\"error\">{}: {}</p>",
            e.aws_code(),
            esc(&e.message)
        )),
    }
    out
}

pub async fn detail(
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
    let digest = params.get("digest").cloned().unwrap_or_default();
    let id = json!({"imageDigest": digest});
    let got = match call_as(
        &app,
        &s.principal,
        &ip,
        "ecr",
        "BatchGetImage",
        json!({"repositoryName": name, "imageIds": [id]}),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return refused(&e),
    };
    let Some(img) = got["images"].as_array().and_then(|a| a.first()).cloned() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "ImageNotFoundException: no such image",
        );
    };
    let manifest_text = img["imageManifest"].as_str().unwrap_or("");
    let manifest: Value = serde_json::from_str(manifest_text).unwrap_or(Value::Null);
    let pretty =
        serde_json::to_string_pretty(&manifest).unwrap_or_else(|_| manifest_text.to_string());
    let mut body = format!(
        "{crumb}
<h1>{d}</h1>",
        crumb = repo_breadcrumb(&name, "image"),
        d = esc(&digest)
    );
    if let Some(layers) = manifest["layers"].as_array() {
        body.push_str("<h2>Layers</h2><table><thead><tr><th scope=\"col\">Digest</th><th scope=\"col\">Media type</th><th scope=\"col\">Size</th></tr></thead><tbody>");
        for l in layers {
            body.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                esc(l["digest"].as_str().unwrap_or("")),
                esc(l["mediaType"].as_str().unwrap_or("")),
                size(l["size"].as_i64().unwrap_or(0))
            ));
        }
        body.push_str("</tbody></table>");
    }
    if let Some(ms) = manifest["manifests"].as_array() {
        body.push_str("<h2>Platforms</h2><table><thead><tr><th scope=\"col\">Platform</th><th scope=\"col\">Digest</th></tr></thead><tbody>");
        for m in ms {
            let p = &m["platform"];
            body.push_str(&format!(
                "<tr><td>{}/{}</td><td><a href=\"/console/image?name={}&amp;digest={}\"><code>{}</code></a></td></tr>",
                esc(p["os"].as_str().unwrap_or("?")),
                esc(p["architecture"].as_str().unwrap_or("?")),
                q(&name),
                q(m["digest"].as_str().unwrap_or("")),
                esc(m["digest"].as_str().unwrap_or(""))
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str(&referrers_section(&app, &s, &ip, &name, &digest).await);
    body.push_str(&replication_section(&app, &s, &ip, &name, &digest).await);
    // Findings, most severe first (or as `sort=asc` asks).
    body.push_str("<h2>Vulnerabilities</h2>");
    match call_as(
        &app,
        &s.principal,
        &ip,
        "ecr",
        "DescribeImageScanFindings",
        json!({"repositoryName": name, "imageId": id, "maxResults": 1000}),
    )
    .await
    {
        Ok(f) => {
            let status = f["imageScanStatus"]["status"].as_str().unwrap_or("");
            body.push_str(&format!(
                "<p>Scan status: <strong>{}</strong></p>",
                esc(status)
            ));
            let mut findings = f["imageScanFindings"]["findings"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let asc = params.get("sort").map(String::as_str) == Some("asc");
            findings.sort_by_key(|x| severity_rank(x["severity"].as_str().unwrap_or("")));
            if asc {
                findings.reverse();
            }
            body.push_str(&format!(
                "<table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Package</th><th scope=\"col\">Installed version</th><th scope=\"col\">Fixed in</th><th scope=\"col\" aria-sort=\"{}\"><a href=\"/console/image?name={}&amp;digest={}&amp;sort={}\">Severity</a></th><th scope=\"col\">Description</th></tr></thead><tbody>",
                if asc { "ascending" } else { "descending" },
                q(&name),
                q(&digest),
                if asc { "desc" } else { "asc" }
            ));
            if findings.is_empty() {
                body.push_str("<tr><td colspan=\"6\">No findings</td></tr>");
            }
            for x in &findings {
                let attr = |k: &str| {
                    x["attributes"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|a| a["key"] == k)
                        .and_then(|a| a["value"].as_str())
                        .unwrap_or("")
                        .to_string()
                };
                let fname = x["name"].as_str().unwrap_or("");
                let link = x["uri"]
                    .as_str()
                    .filter(|u| u.starts_with("https://") || u.starts_with("http://"));
                let name_cell = match link {
                    Some(u) => format!(
                        "<a href=\"{}\" rel=\"noreferrer\">{}</a>",
                        esc(u),
                        esc(fname)
                    ),
                    None => esc(fname),
                };
                body.push_str(&format!(
                    "<tr><td>{name_cell}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&attr("package_name")),
                    esc(&attr("package_version")),
                    esc(&attr("fixed_in_version")),
                    esc(x["severity"].as_str().unwrap_or("")),
                    esc(x["description"].as_str().unwrap_or("")),
                ));
            }
            body.push_str("</tbody></table>");
        }
        Err(e) if e.exception == EcrException::ScanNotFound => {
            body.push_str("<p>This image has not been scanned.</p>")
        }
        Err(e) => body.push_str(&format!(
            "<p class=\"error\">{}: {}</p>",
            e.aws_code(),
            esc(&e.message)
        )),
    }
    body.push_str(&format!(
        "<h2>Manifest</h2><pre><code>{}</code></pre>",
        esc(&pretty)
    ));
    Html(page("Image", Some(&s), &body)).into_response()
}
