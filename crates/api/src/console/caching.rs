//! Registry settings → Pull through cache rules (list, create, delete) and
//! Repository creation templates (list, delete; the create/edit form is
//! `templates.rs`): the sections of the settings
//! page, each read and write the ECR operation of the same name run as the
//! session (DescribePullThroughCacheRules, CreatePullThroughCacheRule,
//! DeletePullThroughCacheRule, DescribeRepositoryCreationTemplates,
//! DeleteRepositoryCreationTemplate). Pages of 100 with the API's own tokens.

use std::collections::HashMap;
use std::sync::Arc;

use berth_registry::console::ConsoleSession;
use serde_json::{json, Value};

use super::forms::may;
use super::html::{esc, q, time};
use crate::ecr::{call_as, iam_action, EcrError, EcrException};
use crate::App;

fn secs(v: &Value) -> String {
    v.as_f64()
        .map(|s| time((s * 1000.0) as i64))
        .unwrap_or_default()
}

/// What a section shows when reading it failed. A refusal says plainly which
/// permission the section needs (the IAM action of `op`, as `call_as` authorizes
/// it) and whether the AWS managed ReadOnly policy grants it, with the API's own
/// message below; the rest of the page is unaffected.
pub(super) fn section_error(e: &EcrError, service: &str, op: &str, what: &str) -> String {
    if e.exception != EcrException::AccessDenied {
        return api_error(e);
    }
    let action = iam_action(service, op);
    let readonly = if readonly_grants(&action) {
        ""
    } else {
        " The AWS managed policy AmazonEC2ContainerRegistryReadOnly does not include it."
    };
    format!(
        "<div class=\"denied\" role=\"note\"><p><strong>Access denied.</strong> Viewing {} needs the <code>{}</code> permission, which your policies do not grant.{readonly} Ask an administrator to grant it; the rest of this page is unaffected.</p><p class=\"detail\">{}: {}</p></div>",
        esc(what),
        esc(&action),
        e.aws_code(),
        esc(&e.message)
    )
}

/// Whether `AmazonEC2ContainerRegistryReadOnly` allows `action` (evaluated, not
/// string-matched, so the answer follows the policy text).
fn readonly_grants(action: &str) -> bool {
    use berth_iam::policy::{
        evaluate, PolicyRef, PolicySource, Principal, RequestContext,
        AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY as RO,
    };
    let (Ok(doc), Some(caller)) = (
        RO.parse(),
        Principal::from_arn("arn:aws:iam::123456789012:user/console"),
    ) else {
        return false;
    };
    let ctx = RequestContext::new(
        caller,
        action,
        "arn:aws:ecr:us-east-1:123456789012:repository/*",
    );
    evaluate(
        &ctx,
        &[PolicyRef {
            name: RO.arn,
            source: PolicySource::Identity,
            document: &doc,
        }],
    )
    .is_allowed()
}

fn api_error(e: &EcrError) -> String {
    format!(
        "<p class=\"error\" role=\"alert\">{}: {}</p>",
        e.aws_code(),
        esc(&e.message)
    )
}

/// A message for one section: the outcome of that section's last form.
pub struct Flash<'a> {
    pub section: &'a str,
    pub error: bool,
    pub text: String,
}

pub(super) fn flash_html(f: Option<&Flash>, section: &str) -> String {
    match f.filter(|f| f.section == section) {
        Some(f) if f.error => format!(
            "<p class=\"error\" id=\"{section}-error\" role=\"alert\">{}</p>",
            esc(&f.text)
        ),
        Some(f) => format!("<p class=\"notice\" role=\"status\">{}</p>", esc(&f.text)),
        None => String::new(),
    }
}

fn delete_form(
    csrf: &str,
    action: &str,
    field: &str,
    value: &str,
    label: &str,
    dis: &str,
) -> String {
    format!(
        "<form method=\"post\" action=\"/console/settings\" data-confirm=\"{label}?\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"{action}\"><input type=\"hidden\" name=\"{field}\" value=\"{v}\"><button type=\"submit\" class=\"secondary\" aria-label=\"{label}\"{dis}>Delete</button></form>",
        esc(csrf),
        v = esc(value),
        label = esc(label),
    )
}

/// The two sections, for the settings page.
pub async fn sections(
    app: &Arc<App>,
    s: &ConsoleSession,
    ip: &str,
    params: &HashMap<String, String>,
    flash: Option<&Flash<'_>>,
    form: &HashMap<String, String>,
) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"ptc\"><h2 id=\"ptc\">Pull through cache rules</h2>",
    );
    out.push_str(&flash_html(flash, "ptc"));
    let mut input = json!({"maxResults": 100});
    if let Some(t) = params.get("ptc_next").filter(|t| !t.is_empty()) {
        input["nextToken"] = json!(t);
    }
    let dis_ptc = if may(app, s, "ecr:DeletePullThroughCacheRule").await {
        ""
    } else {
        " disabled"
    };
    match call_as(
        app,
        &s.principal,
        ip,
        "ecr",
        "DescribePullThroughCacheRules",
        input,
    )
    .await
    {
        Ok(v) => {
            out.push_str("<table><thead><tr><th scope=\"col\">Amazon ECR repository prefix</th><th scope=\"col\">Upstream registry URL</th><th scope=\"col\">Upstream repository prefix</th><th scope=\"col\">Credential</th><th scope=\"col\">Created at</th><th scope=\"col\">Actions</th></tr></thead><tbody>");
            let rules = v["pullThroughCacheRules"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if rules.is_empty() {
                out.push_str("<tr><td colspan=\"6\">No pull through cache rules</td></tr>");
            }
            for r in &rules {
                let prefix = r["ecrRepositoryPrefix"].as_str().unwrap_or("");
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(prefix),
                    esc(r["upstreamRegistryUrl"].as_str().unwrap_or("")),
                    esc(r["upstreamRepositoryPrefix"].as_str().unwrap_or("—")),
                    esc(r["credentialArn"].as_str().unwrap_or("—")),
                    secs(&r["createdAt"]),
                    delete_form(
                        &s.csrf_token,
                        "delete_ptc",
                        "prefix",
                        prefix,
                        &format!("Delete pull through cache rule {prefix}"),
                        dis_ptc
                    ),
                ));
            }
            out.push_str("</tbody></table>");
            if let Some(n) = v["nextToken"].as_str() {
                out.push_str(&format!(
                    "<nav aria-label=\"Pull through cache rule pages\" class=\"toolbar\"><a href=\"/console/settings?ptc_next={}\">Next page</a></nav>",
                    q(n)
                ));
            }
        }
        Err(e) => out.push_str(&section_error(
            &e,
            "ecr",
            "DescribePullThroughCacheRules",
            "pull through cache rules",
        )),
    }
    let dis_create = if may(app, s, "ecr:CreatePullThroughCacheRule").await {
        ""
    } else {
        " disabled"
    };
    let f = |k: &str| esc(form.get(k).map(String::as_str).unwrap_or(""));
    out.push_str(&format!(
        "<form method=\"post\" action=\"/console/settings\" class=\"stack\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"create_ptc\">
<h3>Add pull through cache rule</h3>
<div class=\"field\"><label for=\"ptc_prefix\">Amazon ECR repository prefix</label><input id=\"ptc_prefix\" name=\"ptc_prefix\" value=\"{}\" required></div>
<div class=\"field\"><label for=\"ptc_url\">Upstream registry URL</label><input id=\"ptc_url\" name=\"ptc_url\" value=\"{}\" required></div>
<div class=\"field\"><label for=\"ptc_upstream_prefix\">Upstream repository prefix (optional)</label><input id=\"ptc_upstream_prefix\" name=\"ptc_upstream_prefix\" value=\"{}\"></div>
<div class=\"field\"><label for=\"ptc_credential\">Credential ARN (optional, a Secrets Manager secret named ecr-pullthroughcache/…)</label><input id=\"ptc_credential\" name=\"ptc_credential\" value=\"{}\"></div>
<button type=\"submit\"{dis_create}>Create pull through cache rule</button></form></section>",
        esc(&s.csrf_token),
        f("ptc_prefix"),
        f("ptc_url"),
        f("ptc_upstream_prefix"),
        f("ptc_credential"),
    ));

    out.push_str("<section aria-labelledby=\"templates\"><h2 id=\"templates\">Repository creation templates</h2>");
    out.push_str(&flash_html(flash, "templates"));
    let mut input = json!({"maxResults": 100});
    if let Some(t) = params.get("tpl_next").filter(|t| !t.is_empty()) {
        input["nextToken"] = json!(t);
    }
    let dis_tpl = if may(app, s, "ecr:DeleteRepositoryCreationTemplate").await {
        ""
    } else {
        " disabled"
    };
    match call_as(
        app,
        &s.principal,
        ip,
        "ecr",
        "DescribeRepositoryCreationTemplates",
        input,
    )
    .await
    {
        Ok(v) => {
            out.push_str("<table><thead><tr><th scope=\"col\">Prefix</th><th scope=\"col\">Applied for</th><th scope=\"col\">Description</th><th scope=\"col\">Tag immutability</th><th scope=\"col\">Encryption</th><th scope=\"col\">Updated at</th><th scope=\"col\">Actions</th></tr></thead><tbody>");
            let ts = v["repositoryCreationTemplates"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if ts.is_empty() {
                out.push_str("<tr><td colspan=\"7\">No repository creation templates</td></tr>");
            }
            for t in &ts {
                let prefix = t["prefix"].as_str().unwrap_or("");
                let applied: Vec<&str> = t["appliedFor"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let enc = &t["encryptionConfiguration"];
                let encryption = match enc["encryptionType"].as_str() {
                    Some("AES256") | None => "AES-256".to_string(),
                    Some(k) => format!("{k} ({})", enc["kmsKey"].as_str().unwrap_or("aws/ecr")),
                };
                let actions = format!(
                    "<a href=\"/console/settings?template={}#templates\" aria-label=\"Edit creation template {}\">Edit</a> {}",
                    q(prefix),
                    esc(prefix),
                    delete_form(
                        &s.csrf_token,
                        "delete_template",
                        "prefix",
                        prefix,
                        &format!("Delete creation template {prefix}"),
                        dis_tpl
                    )
                );
                out.push_str(&format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{actions}</td></tr>",
                    esc(prefix),
                    esc(&applied.join(", ")),
                    esc(t["description"].as_str().unwrap_or("")),
                    esc(t["imageTagMutability"].as_str().unwrap_or("MUTABLE")),
                    esc(&encryption),
                    secs(&t["updatedAt"]),
                ));
            }
            out.push_str("</tbody></table>");
            if let Some(n) = v["nextToken"].as_str() {
                out.push_str(&format!(
                    "<nav aria-label=\"Creation template pages\" class=\"toolbar\"><a href=\"/console/settings?tpl_next={}\">Next page</a></nav>",
                    q(n)
                ));
            }
        }
        Err(e) => out.push_str(&section_error(
            &e,
            "ecr",
            "DescribeRepositoryCreationTemplates",
            "repository creation templates",
        )),
    }
    out.push_str(&super::templates::form_html(app, s, ip, params, form).await);
    out.push_str("</section>");
    out
}

/// A form of these sections: the operation and its input, or `None` when the
/// action is not one of them.
pub fn operation(form: &HashMap<String, String>) -> Option<(&'static str, &'static str, Value)> {
    let get = |k: &str| form.get(k).map(|v| v.trim()).unwrap_or("").to_string();
    match form.get("action").map(String::as_str)? {
        "delete_ptc" => Some((
            "ptc",
            "DeletePullThroughCacheRule",
            json!({"ecrRepositoryPrefix": get("prefix")}),
        )),
        "create_ptc" => {
            let mut v = json!({
                "ecrRepositoryPrefix": get("ptc_prefix"),
                "upstreamRegistryUrl": get("ptc_url"),
            });
            if !get("ptc_upstream_prefix").is_empty() {
                v["upstreamRepositoryPrefix"] = json!(get("ptc_upstream_prefix"));
            }
            if !get("ptc_credential").is_empty() {
                v["credentialArn"] = json!(get("ptc_credential"));
            }
            Some(("ptc", "CreatePullThroughCacheRule", v))
        }
        "delete_template" => Some((
            "templates",
            "DeleteRepositoryCreationTemplate",
            json!({"prefix": get("prefix")}),
        )),
        _ => None,
    }
}
