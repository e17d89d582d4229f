//! Severity: ECR's finding levels from CVSS vectors or an advisory's own
//! rating.
//!
//! CVSS v3.0/v3.1 base scores are computed from the vector with the formula
//! of the CVSS v3.1 Specification Document §7 (Appendix A "Roundup" for 3.1,
//! ceiling to one decimal for 3.0), and mapped with the qualitative scale of
//! §5: 0.0 → INFORMATIONAL (CVSS "None"), 0.1–3.9 LOW, 4.0–6.9 MEDIUM,
//! 7.0–8.9 HIGH, 9.0–10.0 CRITICAL.
//!
//! CVSS v4.0 scores are computed from the vector with the specification's
//! macro-vector lookup table and interpolation ([`crate::cvss4`]) and mapped
//! with the same qualitative scale (v4.0 specification §5 uses the v3 bands).
//!
//! Advisory ratings (case-insensitive, trailing `*` ignored):
//!
//! | rating | level |
//! |---|---|
//! | `critical` | CRITICAL |
//! | `high`, `important` | HIGH |
//! | `medium`, `moderate` | MEDIUM |
//! | `low` | LOW |
//! | `unimportant`, `negligible`, `informational`, `none` | INFORMATIONAL |
//! | `not yet assigned`, `unknown`, `end-of-life`, anything else | UNDEFINED |
//!
//! Sources, in order: a CVSS v3 vector (the matched `affected[].severity`,
//! then the record's `severity`); a CVSS v4 vector, in the same places (a
//! record that scores with v4 only); then the rating in the matched
//! `affected[].database_specific.severity`, `affected[].ecosystem_specific.severity`,
//! Debian's `affected[].ecosystem_specific.urgency`, the record's
//! `database_specific.severity` (GitHub), and an `Ubuntu` severity entry;
//! last, a CVSS v2 vector (base score per the CVSS v2 guide §3.2.1, NVD's
//! v2 bands: LOW < 4.0 ≤ MEDIUM < 7.0 ≤ HIGH).

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::osv::{Affected, SeverityScore, Vulnerability};

/// ECR finding severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// No rating could be determined.
    Undefined,
    /// Informational only.
    Informational,
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

impl Severity {
    /// The ECR wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Undefined => "UNDEFINED",
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// The level for a CVSS base score.
    pub fn from_score(score: f64) -> Severity {
        if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else if score > 0.0 {
            Severity::Low
        } else {
            Severity::Informational
        }
    }

    /// The level for an advisory's textual rating (see the module table).
    pub fn from_rating(rating: &str) -> Severity {
        let r = rating
            .trim()
            .trim_end_matches('*')
            .trim()
            .to_ascii_lowercase();
        match r.as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "medium" | "moderate" => Severity::Medium,
            "low" => Severity::Low,
            "unimportant" | "negligible" | "informational" | "none" => Severity::Informational,
            _ => Severity::Undefined,
        }
    }
}

/// Why a CVSS vector was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CvssError {
    /// Not a vector of the CVSS version asked for (`CVSS:3.x/`, `CVSS:4.0/`).
    #[error("not a CVSS vector of the expected version")]
    NotV3,
    /// A metric is missing, repeated or has an unknown value.
    #[error("invalid CVSS metric {0:?}")]
    BadMetric(String),
}

/// A CVSS vector with its computed base score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cvss {
    /// Major CVSS version: 2, 3 or 4.
    pub version: u8,
    /// The vector as written in the advisory.
    pub vector: String,
    /// Base score, 0.0–10.0.
    pub score: f64,
}

/// Computes the CVSS v2 base score of `vector` (CVSS v2 Complete
/// Documentation §3.2.1; an optional `(…)` wrapper and `CVSS:2.0/` prefix
/// are accepted).
pub fn cvss2_base_score(vector: &str) -> Result<f64, CvssError> {
    let v = vector.trim().trim_start_matches('(').trim_end_matches(')');
    let v = v.strip_prefix("CVSS:2.0/").unwrap_or(v);
    if v.starts_with("CVSS:") {
        return Err(CvssError::NotV3);
    }
    let mut m: [Option<&str>; 6] = [None; 6];
    for part in v.split('/') {
        let (k, val) = part
            .split_once(':')
            .ok_or_else(|| CvssError::BadMetric(part.to_string()))?;
        let idx = match k {
            "AV" => 0,
            "AC" => 1,
            "Au" => 2,
            "C" => 3,
            "I" => 4,
            "A" => 5,
            _ => continue,
        };
        if m[idx].replace(val).is_some() {
            return Err(CvssError::BadMetric(part.to_string()));
        }
    }
    let bad = |n: &str| CvssError::BadMetric(n.to_string());
    let av: f64 = match m[0] {
        Some("L") => 0.395,
        Some("A") => 0.646,
        Some("N") => 1.0,
        _ => return Err(bad("AV")),
    };
    let ac = match m[1] {
        Some("H") => 0.35,
        Some("M") => 0.61,
        Some("L") => 0.71,
        _ => return Err(bad("AC")),
    };
    let au = match m[2] {
        Some("M") => 0.45,
        Some("S") => 0.56,
        Some("N") => 0.704,
        _ => return Err(bad("Au")),
    };
    let cia = |i: usize, n: &str| match m[i] {
        Some("N") => Ok(0.0),
        Some("P") => Ok(0.275),
        Some("C") => Ok(0.660),
        _ => Err(bad(n)),
    };
    let (c, i, a) = (cia(3, "C")?, cia(4, "I")?, cia(5, "A")?);
    let impact = 10.41 * (1.0 - (1.0 - c) * (1.0 - i) * (1.0 - a));
    let exploitability = 20.0 * av * ac * au;
    let f = if impact == 0.0 { 0.0 } else { 1.176 };
    let score: f64 = ((0.6 * impact) + (0.4 * exploitability) - 1.5) * f;
    Ok(((score * 10.0).round() / 10.0).max(0.0))
}

/// Computes the CVSS v3.x base score of `vector`.
pub fn cvss3_base_score(vector: &str) -> Result<f64, CvssError> {
    let vector = vector.trim();
    let (minor, rest) = if let Some(r) = vector.strip_prefix("CVSS:3.1/") {
        (1, r)
    } else if let Some(r) = vector.strip_prefix("CVSS:3.0/") {
        (0, r)
    } else {
        return Err(CvssError::NotV3);
    };
    // AV AC PR UI S C I A
    let mut m: [Option<u8>; 8] = [None; 8];
    for part in rest.split('/') {
        let (k, v) = part
            .split_once(':')
            .ok_or_else(|| CvssError::BadMetric(part.to_string()))?;
        let idx = match k {
            "AV" => 0,
            "AC" => 1,
            "PR" => 2,
            "UI" => 3,
            "S" => 4,
            "C" => 5,
            "I" => 6,
            "A" => 7,
            // Temporal and environmental metrics do not change the base score.
            _ => continue,
        };
        let &[val] = v.as_bytes() else {
            return Err(CvssError::BadMetric(part.to_string()));
        };
        if m[idx].replace(val).is_some() {
            return Err(CvssError::BadMetric(part.to_string()));
        }
    }
    let get = |i: usize, name: &str| m[i].ok_or_else(|| CvssError::BadMetric(name.to_string()));
    let bad = |name: &str| CvssError::BadMetric(name.to_string());
    let changed = match get(4, "S")? {
        b'U' => false,
        b'C' => true,
        _ => return Err(bad("S")),
    };
    let av = match get(0, "AV")? {
        b'N' => 0.85,
        b'A' => 0.62,
        b'L' => 0.55,
        b'P' => 0.2,
        _ => return Err(bad("AV")),
    };
    let ac = match get(1, "AC")? {
        b'L' => 0.77,
        b'H' => 0.44,
        _ => return Err(bad("AC")),
    };
    let pr = match (get(2, "PR")?, changed) {
        (b'N', _) => 0.85,
        (b'L', false) => 0.62,
        (b'L', true) => 0.68,
        (b'H', false) => 0.27,
        (b'H', true) => 0.5,
        _ => return Err(bad("PR")),
    };
    let ui = match get(3, "UI")? {
        b'N' => 0.85,
        b'R' => 0.62,
        _ => return Err(bad("UI")),
    };
    let cia = |i: usize, name: &str| -> Result<f64, CvssError> {
        match get(i, name)? {
            b'H' => Ok(0.56),
            b'L' => Ok(0.22),
            b'N' => Ok(0.0),
            _ => Err(bad(name)),
        }
    };
    let (c, i, a) = (cia(5, "C")?, cia(6, "I")?, cia(7, "A")?);
    let iss = 1.0 - ((1.0 - c) * (1.0 - i) * (1.0 - a));
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02f64).powi(15)
    } else {
        6.42 * iss
    };
    let exploitability = 8.22 * av * ac * pr * ui;
    if impact <= 0.0 {
        return Ok(0.0);
    }
    let raw = if changed {
        (1.08 * (impact + exploitability)).min(10.0)
    } else {
        (impact + exploitability).min(10.0)
    };
    Ok(if minor == 1 {
        roundup_31(raw)
    } else {
        (raw * 10.0).ceil() / 10.0
    })
}

/// CVSS v3.1 Appendix A: round up to one decimal, robust to float noise.
fn roundup_31(x: f64) -> f64 {
    let int_input = (x * 100_000.0).round() as i64;
    if int_input % 10_000 == 0 {
        int_input as f64 / 100_000.0
    } else {
        ((int_input / 10_000) + 1) as f64 / 10.0
    }
}

type ScoreFn = fn(&str) -> Result<f64, CvssError>;

fn first_cvss(scores: &[SeverityScore], version: u8) -> Option<Cvss> {
    let (kind, calc): (&str, ScoreFn) = match version {
        2 => ("CVSS_V2", cvss2_base_score),
        4 => ("CVSS_V4", crate::cvss4::cvss4_score),
        _ => ("CVSS_V3", cvss3_base_score),
    };
    scores.iter().filter(|s| s.kind == kind).find_map(|s| {
        calc(&s.score).ok().map(|score| Cvss {
            version,
            vector: s.score.trim().to_string(),
            score,
        })
    })
}

/// CVSS v2 qualitative bands (NVD): LOW < 4.0 ≤ MEDIUM < 7.0 ≤ HIGH.
fn v2_severity(score: f64) -> Severity {
    if score >= 7.0 {
        Severity::High
    } else if score >= 4.0 {
        Severity::Medium
    } else if score > 0.0 {
        Severity::Low
    } else {
        Severity::Informational
    }
}

fn rating_at(v: Option<&serde_json::Value>, key: &str) -> Option<Severity> {
    let s = v?.get(key)?.as_str()?;
    Some(Severity::from_rating(s))
}

/// The severity of a finding for `vuln` via its matched `affected` entries,
/// with the CVSS v3 (else v4) data used when there is any.
pub fn assess(vuln: &Vulnerability, matched: &[&Affected]) -> (Severity, Option<Cvss>) {
    let cvss = matched
        .iter()
        .find_map(|a| first_cvss(&a.severity, 3))
        .or_else(|| first_cvss(&vuln.severity, 3))
        .or_else(|| matched.iter().find_map(|a| first_cvss(&a.severity, 4)))
        .or_else(|| first_cvss(&vuln.severity, 4));
    if let Some(c) = cvss {
        return (Severity::from_score(c.score), Some(c));
    }
    let mut ratings = Vec::new();
    for a in matched {
        ratings.push(rating_at(a.database_specific.as_ref(), "severity"));
        ratings.push(rating_at(a.ecosystem_specific.as_ref(), "severity"));
        ratings.push(rating_at(a.ecosystem_specific.as_ref(), "urgency"));
    }
    ratings.push(rating_at(vuln.database_specific.as_ref(), "severity"));
    ratings.extend(
        vuln.severity
            .iter()
            .chain(matched.iter().flat_map(|a| a.severity.iter()))
            .filter(|s| s.kind == "Ubuntu")
            .map(|s| Some(Severity::from_rating(&s.score))),
    );
    // The first rating that says something; an explicit "not yet assigned"
    // only wins when nothing else rates the record.
    if let Some(sev) = ratings
        .iter()
        .flatten()
        .copied()
        .find(|s| *s != Severity::Undefined)
    {
        return (sev, None);
    }
    // Last resort: a CVSS v2 vector (older NVD-derived records).
    let v2 = matched
        .iter()
        .find_map(|a| first_cvss(&a.severity, 2))
        .or_else(|| first_cvss(&vuln.severity, 2));
    match v2 {
        Some(c) => (v2_severity(c.score), Some(c)),
        None => (Severity::Undefined, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        let cases = [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", 7.5),
            ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", 7.2),
            ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N", 8.1),
            ("CVSS:3.1/AV:A/AC:H/PR:H/UI:N/S:U/C:H/I:N/A:N", 4.2),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L", 5.3),
            ("CVSS:3.0/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 8.8),
            ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10.0),
            ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 8.8),
            ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
            ("CVSS:3.0/AV:N/AC:H/PR:N/UI:R/S:C/C:L/I:L/A:N/E:P/RL:O", 4.7),
        ];
        for (v, want) in cases {
            let got = cvss3_base_score(v);
            assert_eq!(got, Ok(want), "{v}");
        }
    }

    #[test]
    fn bad_vectors() {
        assert_eq!(
            cvss3_base_score("AV:N/AC:L/Au:N/C:P/I:P/A:P"),
            Err(CvssError::NotV3)
        );
        assert!(cvss3_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H").is_err());
        assert!(cvss3_base_score("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").is_err());
        assert!(cvss3_base_score("CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").is_err());
        assert!(cvss3_base_score("CVSS:3.1/").is_err());
    }

    #[test]
    fn cvss2_vectors() {
        let cases = [
            ("AV:N/AC:L/Au:N/C:P/I:P/A:P", 7.5),
            ("AV:N/AC:M/Au:N/C:N/I:P/A:N", 4.3),
            ("AV:L/AC:L/Au:N/C:C/I:C/A:C", 7.2),
            ("AV:N/AC:L/Au:N/C:N/I:N/A:P", 5.0),
            ("(AV:N/AC:L/Au:N/C:C/I:C/A:C)", 10.0),
            ("AV:N/AC:L/Au:N/C:N/I:N/A:N", 0.0),
        ];
        for (v, want) in cases {
            assert_eq!(cvss2_base_score(v), Ok(want), "{v}");
        }
        assert!(cvss2_base_score("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H").is_err());
        assert!(cvss2_base_score("AV:N/AC:L/Au:N/C:P/I:P").is_err());
        let v: Vulnerability = serde_json::from_str(
            r#"{"id":"C","severity":[{"type":"CVSS_V2","score":"AV:N/AC:L/Au:N/C:P/I:P/A:P"}]}"#,
        )
        .unwrap_or_default();
        let (s, c) = assess(&v, &[]);
        assert_eq!(s, Severity::High);
        assert_eq!(c.map(|c| (c.version, c.score)), Some((2, 7.5)));
    }

    #[test]
    fn cvss4_only_records_are_scored() {
        let v: Vulnerability = serde_json::from_str(
            r#"{"id":"D","severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}]}"#,
        )
        .unwrap_or_default();
        let (s, c) = assess(&v, &[]);
        assert_eq!(s, Severity::Critical);
        assert_eq!(c.map(|c| (c.version, c.score)), Some((4, 9.3)));
        // A v3 vector, when there is one, is still the source.
        let v: Vulnerability = serde_json::from_str(
            r#"{"id":"E","severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"},
                                     {"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(assess(&v, &[]).1.map(|c| c.version), Some(3));
        // A v4 vector in the matched entry beats a rating.
        let v: Vulnerability = serde_json::from_str(
            r#"{"id":"F","affected":[{"severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:P/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"}]}],
                "database_specific":{"severity":"HIGH"}}"#,
        )
        .unwrap_or_default();
        let aff: Vec<&Affected> = v.affected.iter().collect();
        assert_eq!(assess(&v, &aff).0, Severity::Low);
        // A malformed v4 vector falls through to the rating.
        let v: Vulnerability = serde_json::from_str(
            r#"{"id":"G","severity":[{"type":"CVSS_V4","score":"CVSS:4.0/AV:N"}],"database_specific":{"severity":"MODERATE"}}"#,
        )
        .unwrap_or_default();
        assert_eq!(assess(&v, &[]), (Severity::Medium, None));
    }

    #[test]
    fn levels() {
        assert_eq!(Severity::from_score(9.8), Severity::Critical);
        assert_eq!(Severity::from_score(7.0), Severity::High);
        assert_eq!(Severity::from_score(6.9), Severity::Medium);
        assert_eq!(Severity::from_score(0.1), Severity::Low);
        assert_eq!(Severity::from_score(0.0), Severity::Informational);
        assert_eq!(Severity::from_rating("MODERATE"), Severity::Medium);
        assert_eq!(
            Severity::from_rating("unimportant"),
            Severity::Informational
        );
        assert_eq!(
            Severity::from_rating("not yet assigned"),
            Severity::Undefined
        );
        assert_eq!(Severity::from_rating("low**"), Severity::Low);
        assert_eq!(Severity::from_rating("Important"), Severity::High);
    }

    #[test]
    fn assess_prefers_cvss_then_rating() {
        let v: Vulnerability = serde_json::from_str(
            r#"{"id":"A","affected":[{"ecosystem_specific":{"urgency":"medium"}}],
                "database_specific":{"severity":"HIGH"}}"#,
        )
        .unwrap_or_default();
        let aff: Vec<&Affected> = v.affected.iter().collect();
        assert_eq!(assess(&v, &aff), (Severity::Medium, None));
        let v: Vulnerability = serde_json::from_str(
            r#"{"id":"B","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
                "database_specific":{"severity":"LOW"}}"#,
        )
        .unwrap_or_default();
        let (s, c) = assess(&v, &[]);
        assert_eq!(s, Severity::Critical);
        assert_eq!(c.map(|c| c.score), Some(9.8));
        let v = Vulnerability::default();
        assert_eq!(assess(&v, &[]), (Severity::Undefined, None));
    }
}
