//! Repositories: the list (search, sort, keyset pages), Create repository, Delete,
//! and View push commands — ECR's console pages of the same names.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use berth_registry::console::ConsoleSession;
use serde_json::{json, Value};

use super::forms::{may, status_of};
use super::html::{esc, page, q, time};
use super::{check_csrf, error_page, parse_form, redirect, session};
use crate::ecr::{call_as, EcrException};
use crate::App;

const PAGE: i64 = 50;

fn encryption_label(r: &Value) -> String {
    let e = &r["encryptionConfiguration"];
    match e["encryptionType"].as_str() {
        Some("AES256") | None => "AES-256".to_string(),
        Some(t) => format!("{t} ({})", e["kmsKey"].as_str().unwrap_or("aws/ecr")),
    }
}

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
            "ecr:DescribeRepositories",
            &account,
            None,
            None,
        )
        .await
    {
        return error_page(StatusCode::FORBIDDEN, &format!("Access denied: {e}"));
    }
    let search = params.get("q").map(|x| x.trim()).unwrap_or("");
    let desc = params.get("order").map(String::as_str) == Some("desc");
    let after = params.get("after").filter(|a| !a.is_empty());
    let mut rows = match app
        .registry
        .search_repositories(&account, search, desc, after.map(String::as_str), PAGE + 1)
        .await
    {
        Ok(r) => r,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let more = rows.len() as i64 > PAGE;
    rows.truncate(PAGE as usize);
    let can_create = may(&app, &s, "ecr:CreateRepository").await;
    let can_delete = may(&app, &s, "ecr:DeleteRepository").await;
    let host = app.registry_host(&account);
    let dis = |b: bool| if b { "" } else { " disabled" };
    let mut body = format!(
        "<h1>Private repositories</h1>
<div class=\"toolbar\">
<form method=\"get\" action=\"/console/repositories\" role=\"search\">
<label for=\"q\">Find repositories</label> <input id=\"q\" name=\"q\" value=\"{}\">
<label for=\"order\">Sort</label> <select id=\"order\" name=\"order\"><option value=\"asc\"{}>Name A-Z</option><option value=\"desc\"{}>Name Z-A</option></select>
<button type=\"submit\" class=\"secondary\">Search</button></form>
<a class=\"button\" href=\"/console/repositories/create\" role=\"button\"{}>Create repository</a>
</div>
<table><caption class=\"prefix\">Repositories in {}</caption><thead><tr><th scope=\"col\">Repository name</th><th scope=\"col\">URI</th><th scope=\"col\">Created at</th><th scope=\"col\">Tag immutability</th><th scope=\"col\">Encryption type</th><th scope=\"col\">Scan on push</th><th scope=\"col\">Actions</th></tr></thead><tbody>",
        esc(search),
        if desc { "" } else { " selected" },
        if desc { " selected" } else { "" },
        if can_create { "" } else { " aria-disabled=\"true\"" },
        esc(&host),
    );
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"7\">No repositories</td></tr>");
    }
    for r in &rows {
        let uri = format!("{host}/{}", r.name);
        let enc = match r.kms_key.as_deref() {
            Some(k) => format!("{} ({k})", r.encryption_type),
            None => "AES-256".to_string(),
        };
        body.push_str(&format!(
            "<tr><td><a href=\"/console/images?name={qname}\">{name}</a></td><td><code>{uri}</code> <button type=\"button\" class=\"secondary\" data-copy=\"{uri}\" aria-label=\"Copy URI of {name}\">Copy</button></td><td>{created}</td><td>{mut}</td><td>{enc}</td><td>{scan}</td>
<td><a href=\"/console/repositories/push-commands?name={qname}\">View push commands</a>
<form method=\"post\" action=\"/console/repositories/delete\" data-confirm=\"Delete repository {name}?\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"name\" value=\"{name}\">
<label><input type=\"checkbox\" name=\"force\" value=\"true\"> with images</label> <button type=\"submit\" class=\"secondary\" aria-label=\"Delete {name}\"{dis}>Delete</button></form></td></tr>",
            name = esc(&r.name),
            qname = q(&r.name),
            uri = esc(&uri),
            created = time(r.created_at),
            mut = esc(&r.tag_mutability),
            enc = esc(&enc),
            scan = if r.scan_on_push { "Enabled" } else { "Disabled" },
            csrf = esc(&s.csrf_token),
            dis = dis(can_delete),
        ));
    }
    body.push_str("</tbody></table>");
    let base = format!(
        "/console/repositories?q={}&order={}",
        q(search),
        if desc { "desc" } else { "asc" }
    );
    body.push_str("<nav aria-label=\"Pages\" class=\"toolbar\">");
    if after.is_some() {
        body.push_str(&format!("<a href=\"{}\">First page</a>", esc(&base)));
    }
    if more {
        if let Some(last) = rows.last() {
            body.push_str(&format!(
                "<a href=\"{}&amp;after={}\">Next page</a>",
                esc(&base),
                q(&last.name)
            ));
        }
    }
    body.push_str("</nav>");
    Html(page("Repositories", Some(&s), &body)).into_response()
}

/// The Create repository form's values and per-field errors.
#[derive(Default)]
struct CreateForm {
    values: HashMap<String, String>,
    errors: HashMap<&'static str, String>,
    general: Option<String>,
}

impl CreateForm {
    fn v(&self, k: &str) -> &str {
        self.values.get(k).map(String::as_str).unwrap_or("")
    }
}

pub(super) async fn kms_options(
    app: &Arc<App>,
    s: &ConsoleSession,
    ip: &str,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(v) = call_as(app, &s.principal, ip, "kms", "ListAliases", json!({})).await {
        for a in v["Aliases"].as_array().into_iter().flatten() {
            if let Some(n) = a["AliasName"].as_str() {
                out.push((n.to_string(), n.to_string()));
            }
        }
    }
    if let Ok(v) = call_as(app, &s.principal, ip, "kms", "ListKeys", json!({})).await {
        for k in v["Keys"].as_array().into_iter().flatten() {
            if let (Some(id), Some(arn)) = (k["KeyId"].as_str(), k["KeyArn"].as_str()) {
                out.push((arn.to_string(), format!("Key {id}")));
            }
        }
    }
    out
}

fn create_html(
    app: &App,
    s: &ConsoleSession,
    f: &CreateForm,
    kms: &[(String, String)],
    can_create: bool,
) -> String {
    let err = |k: &str| {
        f.errors
            .get(k)
            .map(|e| {
                format!(
                    "<p class=\"error\" id=\"{k}-error\" role=\"alert\">{}</p>",
                    esc(e)
                )
            })
            .unwrap_or_default()
    };
    let described = |k: &str| {
        if f.errors.contains_key(k) {
            format!(" aria-invalid=\"true\" aria-describedby=\"{k}-error\"")
        } else {
            String::new()
        }
    };
    let mutability = f.v("tag_mutability");
    let opt = |v: &str, label: &str, cur: &str| {
        format!(
            "<option value=\"{v}\"{}>{label}</option>",
            if v == cur { " selected" } else { "" }
        )
    };
    let enc = if f.v("encryption") == "KMS" {
        "KMS"
    } else {
        "AES256"
    };
    let mut kms_opts = String::from("<option value=\"\">aws/ecr (default key)</option>");
    for (v, label) in kms {
        kms_opts.push_str(&opt(v, &esc(label), f.v("kms_key")));
    }
    let general = f
        .general
        .as_deref()
        .map(|g| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(g)))
        .unwrap_or_default();
    let disabled = if can_create {
        ""
    } else {
        " disabled title=\"You are not allowed to create repositories\""
    };
    format!(
        "<h1>Create repository</h1>{general}
<form method=\"post\" action=\"/console/repositories/create\">
<input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">
<fieldset><legend>General settings</legend>
<div class=\"field\"><label for=\"name\">Repository name</label><span class=\"prefix\">{host}/</span><input id=\"name\" name=\"name\" value=\"{name}\" required{dn}>{en}</div>
<div class=\"field\"><label for=\"tag_mutability\">Tag immutability</label><select id=\"tag_mutability\" name=\"tag_mutability\"{dm}>{o1}{o2}{o3}{o4}</select>{em}</div>
<div class=\"field\"><label for=\"exclusions\">Tag exclusion filters (one wildcard filter a line; with the <em>with exclusions</em> modes)</label><textarea id=\"exclusions\" name=\"exclusions\" rows=\"3\">{ex}</textarea></div>
</fieldset>
<fieldset><legend>Image scan settings</legend>
<div class=\"field\"><label><input type=\"checkbox\" name=\"scan_on_push\" value=\"true\"{scan}> Scan on push</label></div>
</fieldset>
<fieldset><legend>Encryption settings</legend>
<div class=\"field\"><label><input type=\"radio\" name=\"encryption\" value=\"AES256\"{aes}> AES-256</label>
<label><input type=\"radio\" name=\"encryption\" value=\"KMS\"{kmsr}> AWS KMS</label></div>
<div class=\"field\"><label for=\"kms_key\">KMS key</label><select id=\"kms_key\" name=\"kms_key\"{dk}>{kms_opts}</select>{ek}</div>
</fieldset>
<fieldset><legend>Tags</legend>
<div class=\"field\"><label for=\"tags\">Tags (one <code>key=value</code> a line)</label><textarea id=\"tags\" name=\"tags\" rows=\"3\"{dt}>{tags}</textarea>{et}</div>
</fieldset>
<button type=\"submit\"{disabled}>Create repository</button> <a href=\"/console/repositories\">Cancel</a>
</form>",
        csrf = esc(&s.csrf_token),
        host = esc(&app.registry_host(&s.principal.account_id)),
        name = esc(f.v("name")),
        dn = described("name"),
        en = err("name"),
        dm = described("tag_mutability"),
        o1 = opt("MUTABLE", "Mutable", mutability),
        o2 = opt("IMMUTABLE", "Immutable", mutability),
        o3 = opt("IMMUTABLE_WITH_EXCLUSION", "Immutable with exclusions", mutability),
        o4 = opt("MUTABLE_WITH_EXCLUSION", "Mutable with exclusions", mutability),
        em = err("tag_mutability"),
        ex = esc(f.v("exclusions")),
        scan = if f.v("scan_on_push") == "true" { " checked" } else { "" },
        aes = if enc == "AES256" { " checked" } else { "" },
        kmsr = if enc == "KMS" { " checked" } else { "" },
        dk = described("kms_key"),
        ek = err("kms_key"),
        dt = described("tags"),
        tags = esc(f.v("tags")),
        et = err("tags"),
    )
}

pub async fn create_form(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let kms = kms_options(&app, &s, &peer.ip().to_string()).await;
    let can = may(&app, &s, "ecr:CreateRepository").await;
    Html(page(
        "Create repository",
        Some(&s),
        &create_html(&app, &s, &CreateForm::default(), &kms, can),
    ))
    .into_response()
}

/// The CreateRepository input of the form, or the form with its field errors.
fn create_input(f: &mut CreateForm) -> Option<Value> {
    let name = f.v("name").trim().to_string();
    if name.is_empty() {
        f.errors.insert("name", "Enter a repository name.".into());
    } else if berth_oci::RepositoryName::parse(&name).is_err() || name.len() > 256 {
        f.errors.insert(
            "name",
            "The name must be 2-256 characters: lowercase letters, digits and separators (. _ - /), starting with a letter or digit.".into(),
        );
    }
    let mode = f.v("tag_mutability").to_string();
    let mode = if mode.is_empty() {
        "MUTABLE".into()
    } else {
        mode
    };
    let mut input = json!({ "repositoryName": name, "imageTagMutability": mode });
    let filters: Vec<Value> = f
        .v("exclusions")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| json!({"filterType": "WILDCARD", "filter": l}))
        .collect();
    if mode.ends_with("_WITH_EXCLUSION") {
        if filters.is_empty() {
            f.errors.insert(
                "tag_mutability",
                "The with exclusions modes need at least one exclusion filter.".into(),
            );
        }
        input["imageTagMutabilityExclusionFilters"] = json!(filters);
    } else if !filters.is_empty() {
        f.errors.insert(
            "tag_mutability",
            "Exclusion filters apply only to the with exclusions modes.".into(),
        );
    }
    input["imageScanningConfiguration"] = json!({"scanOnPush": f.v("scan_on_push") == "true"});
    if f.v("encryption") == "KMS" {
        let mut e = json!({"encryptionType": "KMS"});
        if !f.v("kms_key").is_empty() {
            e["kmsKey"] = json!(f.v("kms_key"));
        }
        input["encryptionConfiguration"] = e;
    }
    let mut tags = Vec::new();
    let tag_text = f.v("tags").to_string();
    for l in tag_text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match l.split_once('=') {
            Some((k, v)) => tags.push(json!({"Key": k.trim(), "Value": v.trim()})),
            None => {
                f.errors
                    .insert("tags", format!("'{l}' is not of the form key=value."));
            }
        }
    }
    if !tags.is_empty() {
        input["tags"] = json!(tags);
    }
    f.errors.is_empty().then_some(input)
}

pub async fn create(
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
    let mut f = CreateForm {
        values: form,
        ..Default::default()
    };
    let mut status = StatusCode::BAD_REQUEST;
    if let Some(input) = create_input(&mut f) {
        match call_as(&app, &s.principal, &ip, "ecr", "CreateRepository", input).await {
            Ok(_) => {
                return redirect(&format!(
                    "/console/repositories/push-commands?name={}&created=1",
                    q(f.v("name").trim())
                ))
            }
            Err(e) => {
                status = status_of(&e);
                let field = match e.exception {
                    EcrException::RepositoryAlreadyExists | EcrException::InvalidParameter
                        if e.message.contains("ositoryName")
                            || e.exception == EcrException::RepositoryAlreadyExists =>
                    {
                        Some("name")
                    }
                    EcrException::Kms => Some("kms_key"),
                    EcrException::InvalidTagParameter | EcrException::TooManyTags => Some("tags"),
                    EcrException::InvalidParameter if e.message.contains("utability") => {
                        Some("tag_mutability")
                    }
                    _ => None,
                };
                match field {
                    Some(k) => {
                        f.errors.insert(k, e.message.clone());
                    }
                    None => f.general = Some(format!("{}: {}", e.aws_code(), e.message)),
                }
            }
        }
    }
    let kms = kms_options(&app, &s, &ip).await;
    let can = may(&app, &s, "ecr:CreateRepository").await;
    (
        status,
        Html(page(
            "Create repository",
            Some(&s),
            &create_html(&app, &s, &f, &kms, can),
        )),
    )
        .into_response()
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
    let force = form.get("force").map(String::as_str) == Some("true");
    let input = json!({ "repositoryName": name, "force": force });
    match call_as(
        &app,
        &s.principal,
        &peer.ip().to_string(),
        "ecr",
        "DeleteRepository",
        input,
    )
    .await
    {
        Ok(_) => redirect("/console/repositories"),
        Err(e) => error_page(status_of(&e), &format!("{}: {}", e.aws_code(), e.message)),
    }
}

/// The exact commands that push to `repo` on this berth.
pub fn commands(app: &App, account: &str, repo: &str) -> Vec<(&'static str, Vec<String>)> {
    let host = app.registry_host(account);
    let endpoint = format!("{}://{}", app.config.scheme, app.config.public_host);
    let region = &app.config.region;
    let login = format!("aws ecr get-login-password --region {region} --endpoint-url {endpoint}");
    let tls = if app.config.scheme == "http" {
        " --tls-verify=false"
    } else {
        ""
    };
    let image = repo.rsplit('/').next().unwrap_or(repo);
    vec![
        (
            "Docker",
            vec![
                format!("{login} | docker login --username AWS --password-stdin {host}"),
                format!("docker build -t {image} ."),
                format!("docker tag {image}:latest {host}/{repo}:latest"),
                format!("docker push {host}/{repo}:latest"),
            ],
        ),
        (
            "Podman",
            vec![
                format!("{login} | podman login{tls} --username AWS --password-stdin {host}"),
                format!("podman build -t {image} ."),
                format!("podman tag {image}:latest {host}/{repo}:latest"),
                format!("podman push{tls} {host}/{repo}:latest"),
            ],
        ),
        (
            "skopeo",
            vec![
                format!("{login} | skopeo login{tls} --username AWS --password-stdin {host}"),
                format!(
                    "skopeo copy{} oci-archive:{image}.tar docker://{host}/{repo}:latest",
                    tls.replace("tls-verify", "dest-tls-verify")
                ),
            ],
        ),
    ]
}

pub async fn push_commands_page_body(app: &App, s: &ConsoleSession, r: &Value) -> String {
    let name = r["repositoryName"].as_str().unwrap_or("");
    let mut body = format!(
        "<h1>Push commands for {}</h1><p>Repository URI <code>{}</code>, encryption {}, scan on push {}.</p>
<p>Make sure the AWS CLI is configured with an access key of this berth.</p>",
        esc(name),
        esc(r["repositoryUri"].as_str().unwrap_or("")),
        esc(&encryption_label(r)),
        if r["imageScanningConfiguration"]["scanOnPush"].as_bool() == Some(true) {
            "enabled"
        } else {
            "disabled"
        }
    );
    for (tool, cmds) in commands(app, &s.principal.account_id, name) {
        body.push_str(&format!(
            "<section aria-labelledby=\"cmd-{t}\"><h2 id=\"cmd-{t}\">{tool}</h2><ol>",
            t = tool.to_lowercase()
        ));
        for c in cmds {
            body.push_str(&format!(
                "<li><pre><code>{c}</code></pre><button type=\"button\" class=\"secondary\" data-copy=\"{c}\">Copy</button></li>",
                c = esc(&c)
            ));
        }
        body.push_str("</ol></section>");
    }
    body.push_str("<p><a href=\"/console/repositories\">Back to repositories</a></p>");
    body
}

pub async fn push_commands(
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
    let input = json!({ "repositoryNames": [name] });
    match call_as(
        &app,
        &s.principal,
        &peer.ip().to_string(),
        "ecr",
        "DescribeRepositories",
        input,
    )
    .await
    {
        Ok(v) => {
            let r = &v["repositories"][0];
            let mut body = String::new();
            if params.contains_key("created") {
                body.push_str(&format!(
                    "<p class=\"notice\" role=\"status\">Successfully created repository {}</p>",
                    esc(&name)
                ));
            }
            body.push_str(&push_commands_page_body(&app, &s, r).await);
            Html(page("View push commands", Some(&s), &body)).into_response()
        }
        Err(e) => error_page(status_of(&e), &format!("{}: {}", e.aws_code(), e.message)),
    }
}
