//! The OSV advisory format (`ossf/osv-schema`, docs/schema.md, schema 1.6):
//! a serde model of the fields the scanner uses. Unknown fields are ignored
//! and optional arrays may be absent or `null`, as real feeds vary.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One OSV record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Vulnerability {
    /// Record id (`GHSA-…`, `PYSEC-…`, `DSA-…`, `CVE-…`).
    pub id: String,
    /// Schema version the record claims.
    #[serde(default)]
    pub schema_version: Option<String>,
    /// RFC 3339 modification time.
    #[serde(default)]
    pub modified: Option<String>,
    /// RFC 3339 publication time.
    #[serde(default)]
    pub published: Option<String>,
    /// Set when the record was withdrawn; such records never match.
    #[serde(default)]
    pub withdrawn: Option<String>,
    /// Other ids for the same vulnerability.
    #[serde(default, deserialize_with = "null_as_default")]
    pub aliases: Vec<String>,
    /// Upstream ids this record is derived from.
    #[serde(default, deserialize_with = "null_as_default")]
    pub upstream: Vec<String>,
    /// Related but distinct records.
    #[serde(default, deserialize_with = "null_as_default")]
    pub related: Vec<String>,
    /// One-line summary.
    #[serde(default)]
    pub summary: Option<String>,
    /// Longer description (CommonMark).
    #[serde(default)]
    pub details: Option<String>,
    /// Severity scores for the whole record.
    #[serde(default, deserialize_with = "null_as_default")]
    pub severity: Vec<SeverityScore>,
    /// What is affected.
    #[serde(default, deserialize_with = "null_as_default")]
    pub affected: Vec<Affected>,
    /// Links.
    #[serde(default, deserialize_with = "null_as_default")]
    pub references: Vec<Reference>,
    /// Database-specific data (GitHub puts `severity` here).
    #[serde(default)]
    pub database_specific: Option<Value>,
}

/// A `severity[]` element.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeverityScore {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The vector string (or the rating for `Ubuntu`).
    #[serde(default)]
    pub score: String,
}

/// An `affected[]` element.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Affected {
    /// The package; OSV allows it to be absent (then nothing matches).
    #[serde(default)]
    pub package: Option<AffectedPackage>,
    /// Per-package severity.
    #[serde(default, deserialize_with = "null_as_default")]
    pub severity: Vec<SeverityScore>,
    /// Version ranges.
    #[serde(default, deserialize_with = "null_as_default")]
    pub ranges: Vec<Range>,
    /// Explicitly enumerated affected versions.
    #[serde(default, deserialize_with = "null_as_default")]
    pub versions: Vec<String>,
    /// Ecosystem-specific data (Debian puts `urgency` here).
    #[serde(default)]
    pub ecosystem_specific: Option<Value>,
    /// Database-specific data.
    #[serde(default)]
    pub database_specific: Option<Value>,
}

/// `affected[].package`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AffectedPackage {
    /// `Debian:12`, `PyPI`, `npm`, …
    #[serde(default)]
    pub ecosystem: String,
    /// Package name as the ecosystem spells it.
    #[serde(default)]
    pub name: String,
    /// Package URL.
    #[serde(default)]
    pub purl: Option<String>,
}

/// `affected[].ranges[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RangeType {
    /// Versions in the ecosystem's own order.
    #[serde(rename = "ECOSYSTEM")]
    Ecosystem,
    /// SemVer 2.0 versions.
    #[serde(rename = "SEMVER")]
    Semver,
    /// Git commits; the scanner cannot evaluate these and ignores them.
    #[serde(rename = "GIT")]
    Git,
    /// Anything newer than this model.
    #[serde(other)]
    Unknown,
}

/// `affected[].ranges[]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Range {
    /// How to interpret the events.
    #[serde(rename = "type")]
    pub kind: RangeType,
    /// Repository for GIT ranges.
    #[serde(default)]
    pub repo: Option<String>,
    /// The events, in any order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<Event>,
}

/// One range event: exactly one of the fields is expected to be set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Event {
    /// Version where the vulnerability starts (`"0"`: the beginning).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    /// First version without the vulnerability (exclusive bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// Last vulnerable version (inclusive bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    /// Upper limit of the range (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// `references[]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reference {
    /// `ADVISORY`, `WEB`, `FIX`, `PACKAGE`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The link.
    #[serde(default)]
    pub url: String,
}

impl Vulnerability {
    /// Parses one OSV JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Vulnerability, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The best link for a finding: the first `ADVISORY` reference, else the
    /// first `WEB` one, else any.
    pub fn primary_url(&self) -> Option<&str> {
        let by_kind = |k: &str| {
            self.references
                .iter()
                .find(|r| r.kind == k && !r.url.is_empty())
        };
        by_kind("ADVISORY")
            .or_else(|| by_kind("WEB"))
            .or_else(|| self.references.iter().find(|r| !r.url.is_empty()))
            .map(|r| r.url.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_and_nulls() {
        let v = Vulnerability::from_json(
            br#"{"id":"X-1","aliases":null,"affected":[{"package":{"ecosystem":"npm","name":"a"},
                "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]},
                          {"type":"WEIRD","events":[]}]}],"extra":{"ignored":true}}"#,
        )
        .unwrap_or_default();
        assert_eq!(v.id, "X-1");
        assert!(v.aliases.is_empty());
        assert_eq!(v.affected[0].ranges[0].kind, RangeType::Semver);
        assert_eq!(v.affected[0].ranges[1].kind, RangeType::Unknown);
        assert_eq!(
            v.affected[0].ranges[0].events[1].fixed.as_deref(),
            Some("1.0.0")
        );
    }

    #[test]
    fn rejects_non_objects() {
        assert!(Vulnerability::from_json(b"[1,2]").is_err());
        assert!(Vulnerability::from_json(b"{\"no_id\":1}").is_err());
    }

    #[test]
    fn primary_url_prefers_advisory() {
        let v = Vulnerability {
            references: vec![
                Reference {
                    kind: "WEB".into(),
                    url: "w".into(),
                },
                Reference {
                    kind: "ADVISORY".into(),
                    url: "a".into(),
                },
            ],
            ..Default::default()
        };
        assert_eq!(v.primary_url(), Some("a"));
    }
}
