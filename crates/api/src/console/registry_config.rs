//! Registry settings → Scanning configuration and Replication rules: each shown
//! and edited through a form whose fields become the input of the ECR operation
//! (GetRegistryScanningConfiguration / PutRegistryScanningConfiguration,
//! DescribeRegistry / PutReplicationConfiguration) run as the session, so the
//! validation messages and refusals are the API's own. The form does no
//! validation of its own beyond splitting lists: whatever it sends, the API judges.

use std::collections::HashMap;
use std::sync::Arc;

use berth_registry::console::ConsoleSession;
use serde_json::{json, Value};

use super::caching::{flash_html, section_error, Flash};
use super::forms::may;
use super::html::esc;
use crate::ecr::call_as;
use crate::App;

/// The most rules ECR allows in each configuration.
const SCAN_RULES: usize = 2;
const REPLICATION_RULES: usize = 10;

/// A comma- or line-separated list, trimmed, empty items dropped.
fn list(s: &str) -> Vec<String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn filters_text(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["filter"].as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn opt(v: &str, label: &str, cur: &str) -> String {
    format!(
        "<option value=\"{v}\"{}>{label}</option>",
        if v == cur { " selected" } else { "" }
    )
}

/// Form values: the ones the user sent (after a refusal) or the stored ones.
struct Values<'a> {
    form: &'a HashMap<String, String>,
    stored: HashMap<String, String>,
    action: &'static str,
}

/// Whether `form` is this section's own form sent back (after a refusal).
fn sent(form: &HashMap<String, String>, action: &str) -> bool {
    form.get("action").map(String::as_str) == Some(action)
}

impl Values<'_> {
    fn get(&self, k: &str) -> String {
        if sent(self.form, self.action) {
            self.form.get(k).cloned().unwrap_or_default()
        } else {
            self.stored.get(k).cloned().unwrap_or_default()
        }
    }
}

/// The Scanning configuration section.
pub async fn scanning_section(
    app: &Arc<App>,
    s: &ConsoleSession,
    ip: &str,
    flash: Option<&Flash<'_>>,
    form: &HashMap<String, String>,
) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"scanning\"><h2 id=\"scanning\">Scanning configuration</h2>",
    );
    out.push_str(&flash_html(flash, "scanning"));
    let v = match call_as(
        app,
        &s.principal,
        ip,
        "ecr",
        "GetRegistryScanningConfiguration",
        json!({}),
    )
    .await
    {
        Ok(v) => v,
        Err(e) => {
            out.push_str(&section_error(
                &e,
                "ecr",
                "GetRegistryScanningConfiguration",
                "the scanning configuration",
            ));
            out.push_str("</section>");
            return out;
        }
    };
    let cfg = &v["scanningConfiguration"];
    let scan_type = cfg["scanType"].as_str().unwrap_or("BASIC");
    let rules = cfg["rules"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!(
        "<p>Scan type: <strong>{}</strong></p><table><thead><tr><th scope=\"col\">Scan frequency</th><th scope=\"col\">Repository filters</th></tr></thead><tbody>",
        esc(scan_type)
    ));
    if rules.is_empty() {
        out.push_str("<tr><td colspan=\"2\">No scanning rules</td></tr>");
    }
    let mut stored = HashMap::from([("scan_type".to_string(), scan_type.to_string())]);
    for (i, r) in rules.iter().enumerate() {
        let freq = r["scanFrequency"].as_str().unwrap_or("");
        let filters = filters_text(&r["repositoryFilters"]);
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td></tr>",
            esc(freq),
            esc(&filters)
        ));
        stored.insert(format!("scan_freq_{i}"), freq.to_string());
        stored.insert(format!("scan_filters_{i}"), filters);
    }
    out.push_str("</tbody></table>");
    let vals = Values {
        form,
        stored,
        action: "save_scanning",
    };
    let dis = if may(app, s, "ecr:PutRegistryScanningConfiguration").await {
        ""
    } else {
        " disabled title=\"You are not allowed to change the scanning configuration\""
    };
    let ty = vals.get("scan_type");
    out.push_str(&format!(
        "<form method=\"post\" action=\"/console/settings\" class=\"stack\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"save_scanning\">
<h3>Edit scanning configuration</h3>
<div class=\"field\"><label for=\"scan_type\">Scan type</label><select id=\"scan_type\" name=\"scan_type\">{}{}</select></div>",
        esc(&s.csrf_token),
        opt("BASIC", "Basic scanning", &ty),
        opt("ENHANCED", "Enhanced scanning", &ty),
    ));
    for i in 0..SCAN_RULES {
        let n = i + 1;
        let freq = vals.get(&format!("scan_freq_{i}"));
        out.push_str(&format!(
            "<fieldset><legend>Rule {n}</legend>
<div class=\"field\"><label for=\"scan_freq_{i}\">Rule {n} scan frequency</label><select id=\"scan_freq_{i}\" name=\"scan_freq_{i}\">{}{}{}{}</select></div>
<div class=\"field\"><label for=\"scan_filters_{i}\">Rule {n} repository filters (wildcards, comma-separated)</label><input id=\"scan_filters_{i}\" name=\"scan_filters_{i}\" value=\"{}\"></div></fieldset>",
            opt("", "No rule", &freq),
            opt("SCAN_ON_PUSH", "Scan on push", &freq),
            opt("CONTINUOUS_SCAN", "Continuous scanning", &freq),
            opt("MANUAL", "Manual", &freq),
            esc(&vals.get(&format!("scan_filters_{i}"))),
        ));
    }
    out.push_str(&format!(
        "<button type=\"submit\"{dis}>Save scanning configuration</button></form></section>"
    ));
    out
}

/// The Replication rules section.
pub async fn replication_section(
    app: &Arc<App>,
    s: &ConsoleSession,
    ip: &str,
    flash: Option<&Flash<'_>>,
    form: &HashMap<String, String>,
) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"replication\"><h2 id=\"replication\">Replication rules</h2>",
    );
    out.push_str(&flash_html(flash, "replication"));
    let v = match call_as(app, &s.principal, ip, "ecr", "DescribeRegistry", json!({})).await {
        Ok(v) => v,
        Err(e) => {
            out.push_str(&section_error(
                &e,
                "ecr",
                "DescribeRegistry",
                "the replication rules",
            ));
            out.push_str("</section>");
            return out;
        }
    };
    let rules = v["replicationConfiguration"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    out.push_str("<table><thead><tr><th scope=\"col\">Rule</th><th scope=\"col\">Destinations</th><th scope=\"col\">Repository filters</th><th scope=\"col\">Delete replication</th></tr></thead><tbody>");
    if rules.is_empty() {
        out.push_str("<tr><td colspan=\"4\">No replication rules</td></tr>");
    }
    let mut stored = HashMap::new();
    for (i, r) in rules.iter().enumerate() {
        let dests = r["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                format!(
                    "{}/{}",
                    d["region"].as_str().unwrap_or(""),
                    d["registryId"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let filters = filters_text(&r["repositoryFilters"]);
        let del = r
            .pointer("/deleteReplication/enabled")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            esc(&dests),
            esc(if filters.is_empty() {
                "all repositories"
            } else {
                &filters
            }),
            if del { "Enabled" } else { "Disabled" }
        ));
        stored.insert(format!("rep_dest_{i}"), dests);
        stored.insert(format!("rep_filters_{i}"), filters);
        if del {
            stored.insert(format!("rep_delete_{i}"), "true".into());
        }
    }
    out.push_str("</tbody></table>");
    // One row per stored (or sent) rule and one empty row for a new rule.
    let rows = if sent(form, "save_replication") {
        (0..REPLICATION_RULES)
            .filter(|i| form.contains_key(&format!("rep_dest_{i}")))
            .max()
            .map_or(1, |i| i + 1)
    } else {
        (rules.len() + 1).min(REPLICATION_RULES)
    };
    let vals = Values {
        form,
        stored,
        action: "save_replication",
    };
    let dis = if may(app, s, "ecr:PutReplicationConfiguration").await {
        ""
    } else {
        " disabled title=\"You are not allowed to change the replication configuration\""
    };
    out.push_str(&format!(
        "<form method=\"post\" action=\"/console/settings\" class=\"stack\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"action\" value=\"save_replication\">
<h3>Edit replication rules</h3>
<p class=\"notice\">A destination is <code>region/account id</code> (this registry's region for another account, or a peer's region). A rule whose destinations are empty is removed.</p>",
        esc(&s.csrf_token)
    ));
    for i in 0..rows {
        let n = i + 1;
        out.push_str(&format!(
            "<fieldset><legend>Rule {n}</legend>
<div class=\"field\"><label for=\"rep_dest_{i}\">Rule {n} destinations</label><input id=\"rep_dest_{i}\" name=\"rep_dest_{i}\" value=\"{}\"></div>
<div class=\"field\"><label for=\"rep_filters_{i}\">Rule {n} repository prefix filters (comma-separated; empty for all)</label><input id=\"rep_filters_{i}\" name=\"rep_filters_{i}\" value=\"{}\"></div>
<div class=\"field\"><label><input type=\"checkbox\" name=\"rep_delete_{i}\" value=\"true\"{}> Rule {n} replicates deletions</label></div></fieldset>",
            esc(&vals.get(&format!("rep_dest_{i}"))),
            esc(&vals.get(&format!("rep_filters_{i}"))),
            if vals.get(&format!("rep_delete_{i}")) == "true" { " checked" } else { "" },
        ));
    }
    out.push_str(&format!(
        "<button type=\"submit\"{dis}>Save replication rules</button></form></section>"
    ));
    out
}

/// A form of these sections: (section, operation, input), or `None` when the
/// action is not one of them.
pub fn operation(form: &HashMap<String, String>) -> Option<(&'static str, &'static str, Value)> {
    let get = |k: &str| form.get(k).map(|v| v.trim()).unwrap_or("").to_string();
    match form.get("action").map(String::as_str)? {
        "save_scanning" => {
            let mut rules = Vec::new();
            for i in 0..SCAN_RULES {
                let freq = get(&format!("scan_freq_{i}"));
                let filters = list(&get(&format!("scan_filters_{i}")));
                if freq.is_empty() && filters.is_empty() {
                    continue;
                }
                rules.push(json!({
                    "scanFrequency": freq,
                    "repositoryFilters": filters.iter().map(|f| json!({"filter": f, "filterType": "WILDCARD"})).collect::<Vec<_>>(),
                }));
            }
            Some((
                "scanning",
                "PutRegistryScanningConfiguration",
                json!({"scanType": get("scan_type"), "rules": rules}),
            ))
        }
        "save_replication" => {
            let mut rules = Vec::new();
            for i in 0..REPLICATION_RULES {
                let dests = list(&get(&format!("rep_dest_{i}")));
                if dests.is_empty() {
                    continue;
                }
                let mut rule = json!({
                    "destinations": dests.iter().map(|d| {
                        let (region, account) = d.split_once('/').unwrap_or((d, ""));
                        json!({"region": region.trim(), "registryId": account.trim()})
                    }).collect::<Vec<_>>(),
                });
                let filters = list(&get(&format!("rep_filters_{i}")));
                if !filters.is_empty() {
                    rule["repositoryFilters"] = filters
                        .iter()
                        .map(|f| json!({"filter": f, "filterType": "PREFIX_MATCH"}))
                        .collect();
                }
                if get(&format!("rep_delete_{i}")) == "true" {
                    rule["deleteReplication"] = json!({"enabled": true});
                }
                rules.push(rule);
            }
            Some((
                "replication",
                "PutReplicationConfiguration",
                json!({"replicationConfiguration": {"rules": rules}}),
            ))
        }
        _ => None,
    }
}
