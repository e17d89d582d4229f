//! Registry settings → Repository creation templates: the create and edit form.
//! Its fields become the input of CreateRepositoryCreationTemplate or
//! UpdateRepositoryCreationTemplate, run as the session (validation messages and
//! refusals are the API's); the edit form is filled from
//! DescribeRepositoryCreationTemplates. Listing and deleting are `caching.rs`'s.

use std::collections::HashMap;
use std::sync::Arc;

use berth_registry::console::ConsoleSession;
use serde_json::{json, Value};

use super::forms::may;
use super::html::esc;
use super::repos::kms_options;
use crate::ecr::call_as;
use crate::App;

const PURPOSES: [(&str, &str); 3] = [
    ("PULL_THROUGH_CACHE", "Pull through cache"),
    ("REPLICATION", "Replication"),
    ("CREATE_ON_PUSH", "Create on push"),
];

fn opt(v: &str, label: &str, cur: &str) -> String {
    format!(
        "<option value=\"{v}\"{}>{}</option>",
        if v == cur { " selected" } else { "" },
        esc(label)
    )
}

/// The form's values from a stored template.
fn values_of(t: &Value) -> HashMap<String, String> {
    let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
    let mut v = HashMap::from([
        ("tpl_mode".to_string(), "update".to_string()),
        ("tpl_prefix".to_string(), s("prefix")),
        ("tpl_description".to_string(), s("description")),
        (
            "tpl_mutability".to_string(),
            t["imageTagMutability"]
                .as_str()
                .unwrap_or("MUTABLE")
                .to_string(),
        ),
        (
            "tpl_exclusions".to_string(),
            t["imageTagMutabilityExclusionFilters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["filter"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        (
            "tpl_encryption".to_string(),
            match t["encryptionConfiguration"]["encryptionType"].as_str() {
                Some("KMS") | Some("KMS_DSSE") => "KMS".to_string(),
                _ => "AES256".to_string(),
            },
        ),
        (
            "tpl_kms_key".to_string(),
            t["encryptionConfiguration"]["kmsKey"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        ),
        (
            "tpl_tags".to_string(),
            t["resourceTags"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    format!(
                        "{}={}",
                        x["Key"].as_str().unwrap_or(""),
                        x["Value"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        ("tpl_repository_policy".to_string(), s("repositoryPolicy")),
        ("tpl_lifecycle_policy".to_string(), s("lifecyclePolicy")),
    ]);
    for p in t["appliedFor"].as_array().into_iter().flatten() {
        if let Some(p) = p.as_str() {
            v.insert(format!("tpl_for_{p}"), "true".into());
        }
    }
    v
}

/// The create (or, with `?template=<prefix>`, edit) form. `form` is the form
/// sent back after a refusal, shown as the user left it.
pub async fn form_html(
    app: &Arc<App>,
    s: &ConsoleSession,
    ip: &str,
    params: &HashMap<String, String>,
    form: &HashMap<String, String>,
) -> String {
    let mut error = String::new();
    let vals: HashMap<String, String> =
        if form.get("action").map(String::as_str) == Some("save_template") {
            form.clone()
        } else if let Some(p) = params.get("template").filter(|p| !p.is_empty()) {
            match call_as(
                app,
                &s.principal,
                ip,
                "ecr",
                "DescribeRepositoryCreationTemplates",
                json!({"prefixes": [p]}),
            )
            .await
            {
                Ok(v) => match v["repositoryCreationTemplates"].get(0) {
                    Some(t) => values_of(t),
                    None => {
                        error = format!("No repository creation template with prefix {p}.");
                        HashMap::new()
                    }
                },
                Err(e) => {
                    error = format!("{}: {}", e.aws_code(), e.message);
                    HashMap::new()
                }
            }
        } else {
            HashMap::new()
        };
    let v = |k: &str| vals.get(k).map(String::as_str).unwrap_or("");
    let update = v("tpl_mode") == "update";
    let (title, button, action) = if update {
        (
            format!("Edit creation template {}", v("tpl_prefix")),
            "Save creation template",
            "ecr:UpdateRepositoryCreationTemplate",
        )
    } else {
        (
            "Create repository creation template".to_string(),
            "Create creation template",
            "ecr:CreateRepositoryCreationTemplate",
        )
    };
    let dis = if may(app, s, action).await {
        ""
    } else {
        " disabled title=\"You are not allowed to change repository creation templates\""
    };
    let mut purposes = String::new();
    for (p, label) in PURPOSES {
        purposes.push_str(&format!(
            "<label><input type=\"checkbox\" name=\"tpl_for_{p}\" value=\"true\"{}> {label}</label> ",
            if v(&format!("tpl_for_{p}")) == "true" {
                " checked"
            } else {
                ""
            }
        ));
    }
    let m = v("tpl_mutability");
    let m = if m.is_empty() { "MUTABLE" } else { m };
    let kms = kms_options(app, s, ip).await;
    let mut kms_opts = String::from("<option value=\"\">aws/ecr (default key)</option>");
    let mut listed = false;
    for (value, label) in &kms {
        listed |= value == v("tpl_kms_key");
        kms_opts.push_str(&opt(value, label, v("tpl_kms_key")));
    }
    if !listed && !v("tpl_kms_key").is_empty() {
        kms_opts.push_str(&opt(v("tpl_kms_key"), v("tpl_kms_key"), v("tpl_kms_key")));
    }
    let kms_on = v("tpl_encryption") == "KMS";
    let prefix_field = if update {
        format!(
            "<input type=\"hidden\" name=\"tpl_mode\" value=\"update\"><input type=\"hidden\" name=\"tpl_prefix\" value=\"{}\"><p>Prefix: <strong>{}</strong> <a href=\"/console/settings#templates\">Cancel editing</a></p>",
            esc(v("tpl_prefix")),
            esc(v("tpl_prefix"))
        )
    } else {
        format!(
            "<input type=\"hidden\" name=\"tpl_mode\" value=\"create\"><div class=\"field\"><label for=\"tpl_prefix\">Prefix (a repository namespace, or ROOT for every repository)</label><input id=\"tpl_prefix\" name=\"tpl_prefix\" value=\"{}\" required></div>",
            esc(v("tpl_prefix"))
        )
    };
    let err = if error.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\" role=\"alert\">{}</p>", esc(&error))
    };
    format!(
        "<form method=\"post\" action=\"/console/settings#templates\" class=\"stack\" id=\"template-form\"><input type=\"hidden\" name=\"csrf\" value=\"{csrf}\"><input type=\"hidden\" name=\"action\" value=\"save_template\">
<h3>{title}</h3>{err}{prefix_field}
<div class=\"field\"><label for=\"tpl_description\">Template description</label><input id=\"tpl_description\" name=\"tpl_description\" value=\"{desc}\"></div>
<fieldset><legend>Applied for</legend>{purposes}</fieldset>
<div class=\"field\"><label for=\"tpl_mutability\">Image tag mutability</label><select id=\"tpl_mutability\" name=\"tpl_mutability\">{o1}{o2}{o3}{o4}</select></div>
<div class=\"field\"><label for=\"tpl_exclusions\">Template tag exclusion filters (one wildcard filter a line; with the <em>with exclusions</em> modes)</label><textarea id=\"tpl_exclusions\" name=\"tpl_exclusions\" rows=\"2\">{ex}</textarea></div>
<fieldset><legend>Template encryption</legend><label><input type=\"radio\" name=\"tpl_encryption\" value=\"AES256\"{aes}> AES-256</label> <label><input type=\"radio\" name=\"tpl_encryption\" value=\"KMS\"{kmsr}> AWS KMS</label>
<div class=\"field\"><label for=\"tpl_kms_key\">Template KMS key</label><select id=\"tpl_kms_key\" name=\"tpl_kms_key\">{kms_opts}</select></div></fieldset>
<div class=\"field\"><label for=\"tpl_tags\">Resource tags (one <code>key=value</code> a line)</label><textarea id=\"tpl_tags\" name=\"tpl_tags\" rows=\"2\">{tags}</textarea></div>
<div class=\"field\"><label for=\"tpl_repository_policy\">Template repository policy JSON (optional)</label><textarea id=\"tpl_repository_policy\" name=\"tpl_repository_policy\" rows=\"5\" cols=\"90\">{rp}</textarea></div>
<div class=\"field\"><label for=\"tpl_lifecycle_policy\">Template lifecycle policy JSON (optional)</label><textarea id=\"tpl_lifecycle_policy\" name=\"tpl_lifecycle_policy\" rows=\"5\" cols=\"90\">{lp}</textarea></div>
<button type=\"submit\"{dis}>{button}</button></form>",
        csrf = esc(&s.csrf_token),
        desc = esc(v("tpl_description")),
        o1 = opt("MUTABLE", "Mutable", m),
        o2 = opt("IMMUTABLE", "Immutable", m),
        o3 = opt("IMMUTABLE_WITH_EXCLUSION", "Immutable with exclusions", m),
        o4 = opt("MUTABLE_WITH_EXCLUSION", "Mutable with exclusions", m),
        ex = esc(v("tpl_exclusions")),
        aes = if kms_on { "" } else { " checked" },
        kmsr = if kms_on { " checked" } else { "" },
        tags = esc(v("tpl_tags")),
        rp = esc(v("tpl_repository_policy")),
        lp = esc(v("tpl_lifecycle_policy")),
    )
}

/// The form's operation and input, or `None` when the action is another form's.
pub fn operation(form: &HashMap<String, String>) -> Option<(&'static str, &'static str, Value)> {
    if form.get("action").map(String::as_str) != Some("save_template") {
        return None;
    }
    let get = |k: &str| form.get(k).map(|v| v.trim()).unwrap_or("").to_string();
    let lines = |k: &str| -> Vec<String> {
        get(k)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut input = json!({
        "prefix": get("tpl_prefix"),
        "description": get("tpl_description"),
        "appliedFor": PURPOSES.iter().filter(|(p, _)| get(&format!("tpl_for_{p}")) == "true").map(|(p, _)| *p).collect::<Vec<_>>(),
        "imageTagMutability": get("tpl_mutability"),
        "repositoryPolicy": get("tpl_repository_policy"),
        "lifecyclePolicy": get("tpl_lifecycle_policy"),
    });
    let ex = lines("tpl_exclusions");
    if !ex.is_empty() {
        input["imageTagMutabilityExclusionFilters"] = ex
            .iter()
            .map(|f| json!({"filter": f, "filterType": "WILDCARD"}))
            .collect();
    }
    input["encryptionConfiguration"] = if get("tpl_encryption") == "KMS" {
        let mut e = json!({"encryptionType": "KMS"});
        if !get("tpl_kms_key").is_empty() {
            e["kmsKey"] = json!(get("tpl_kms_key"));
        }
        e
    } else {
        json!({"encryptionType": "AES256"})
    };
    // A line without `=` goes as a key with an empty value: the API judges it.
    input["resourceTags"] = lines("tpl_tags")
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            json!({"Key": k.trim(), "Value": v.trim()})
        })
        .collect();
    let op = if get("tpl_mode") == "update" {
        "UpdateRepositoryCreationTemplate"
    } else {
        "CreateRepositoryCreationTemplate"
    };
    Some(("templates", op, input))
}
