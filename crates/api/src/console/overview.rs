//! Overview: storage used per repository and pushes/pulls over the last 14 days,
//! drawn as SVG on the server (no script). Authorized as `ecr:DescribeImages` on
//! the account's repositories. Findings by severity across the registry are the
//! sums of the severity counts the store keeps per completed scan.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::html::{esc, page, time};
use super::{error_page, session};
use crate::App;

const DAYS: i64 = 14;
const SEVERITIES: [&str; 6] = [
    "CRITICAL",
    "HIGH",
    "MEDIUM",
    "LOW",
    "INFORMATIONAL",
    "UNDEFINED",
];

fn mb(b: i64) -> String {
    format!("{:.1} MB", b as f64 / 1_000_000.0)
}

/// Horizontal bars, one per (label, value).
pub fn bars_svg(title: &str, rows: &[(String, i64)], fmt: fn(i64) -> String) -> String {
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let h = 24 * rows.len().max(1) + 10;
    let mut out = format!(
        "<svg role=\"img\" aria-label=\"{}\" width=\"720\" height=\"{h}\" viewBox=\"0 0 720 {h}\" xmlns=\"http://www.w3.org/2000/svg\"><title>{}</title>",
        esc(title),
        esc(title)
    );
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = 5 + 24 * i;
        let w = (*v as f64 / max as f64 * 380.0).round().max(1.0);
        out.push_str(&format!(
            "<text x=\"0\" y=\"{}\" font-size=\"12\">{}</text><rect x=\"220\" y=\"{y}\" width=\"{w}\" height=\"18\" fill=\"#0073bb\"/><text x=\"{}\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 13,
            esc(label),
            225.0 + w,
            y + 13,
            esc(&fmt(*v))
        ));
    }
    out.push_str("</svg>");
    out
}

/// Pushes and pulls per day, two bars a day.
fn activity_svg(first_day: i64, data: &[(i64, i64, i64)]) -> String {
    let max = data.iter().map(|d| d.1.max(d.2)).max().unwrap_or(0).max(1);
    let mut out = String::from(
        "<svg role=\"img\" aria-label=\"Pushes and pulls per day\" width=\"720\" height=\"200\" viewBox=\"0 0 720 200\" xmlns=\"http://www.w3.org/2000/svg\"><title>Pushes and pulls per day</title>
<rect x=\"520\" y=\"4\" width=\"10\" height=\"10\" fill=\"#ec7211\"/><text x=\"535\" y=\"13\" font-size=\"12\">pushes</text><rect x=\"600\" y=\"4\" width=\"10\" height=\"10\" fill=\"#0073bb\"/><text x=\"615\" y=\"13\" font-size=\"12\">pulls (last pull)</text>",
    );
    for i in 0..DAYS {
        let day = first_day + i;
        let (push, pull) = data
            .iter()
            .find(|d| d.0 == day)
            .map(|d| (d.1, d.2))
            .unwrap_or((0, 0));
        let x = 10 + i * 50;
        for (j, (v, color)) in [(push, "#ec7211"), (pull, "#0073bb")].iter().enumerate() {
            let h = (*v as f64 / max as f64 * 140.0).round();
            out.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"18\" height=\"{h}\" fill=\"{color}\"><title>{v}</title></rect>",
                x + j as i64 * 20,
                170.0 - h
            ));
        }
        let label = time(day * 86_400_000);
        out.push_str(&format!(
            "<text x=\"{x}\" y=\"188\" font-size=\"10\">{}</text>",
            esc(&label[5..10])
        ));
    }
    out.push_str("</svg>");
    out
}

pub async fn show(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let s = match session(&app, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let account = s.principal.account_id.clone();
    if let Err(e) = app
        .authorize(&s.principal, "ecr:DescribeImages", &account, None, None)
        .await
    {
        return error_page(StatusCode::FORBIDDEN, &format!("Access denied: {e}"));
    }
    let today = app.registry.now().div_euclid(86_400_000);
    let first = today - DAYS + 1;
    // The three aggregates run side by side on the pool.
    let (storage, activity, severities) = match tokio::join!(
        app.registry.storage_by_repository(&account, 10),
        app.registry.activity_by_day(&account, first * 86_400_000),
        app.registry.findings_by_severity(&account),
    ) {
        (Ok(a), Ok(b), Ok(c)) => (a, b, c),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
    };
    let mut body = String::from("<h1>Overview</h1>");
    body.push_str("<section aria-labelledby=\"storage\"><h2 id=\"storage\">Storage used per repository (largest 10)</h2>");
    if storage.is_empty() {
        body.push_str("<p>No images yet.</p>");
    } else {
        body.push_str(&bars_svg("Storage used per repository", &storage, mb));
    }
    body.push_str("</section><section aria-labelledby=\"activity\"><h2 id=\"activity\">Pushes and pulls, last 14 days</h2>");
    body.push_str(&activity_svg(first, &activity));
    body.push_str(
        "</section><section aria-labelledby=\"sev\"><h2 id=\"sev\">Findings by severity</h2>",
    );
    if severities.iter().all(|n| *n == 0) {
        body.push_str("<p>No findings in the images scanned so far.</p>");
    } else {
        let rows: Vec<(String, i64)> = SEVERITIES
            .iter()
            .zip(severities)
            .map(|(s, n)| (s.to_string(), n))
            .collect();
        body.push_str(&bars_svg("Findings by severity", &rows, |n| n.to_string()));
    }
    body.push_str("</section>");
    Html(page("Overview", Some(&s), &body)).into_response()
}
