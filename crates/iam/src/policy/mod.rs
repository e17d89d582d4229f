//! IAM JSON policy documents: parsing with validation, and evaluation with AWS
//! semantics.
//!
//! Grammar: IAM User Guide, "IAM JSON policy element reference" (Version, Id,
//! Statement, Sid, Effect, Principal/NotPrincipal, Action/NotAction,
//! Resource/NotResource, Condition) and "IAM JSON policy elements: Condition
//! operators". Evaluation: "Policy evaluation logic" and "Cross-account policy
//! evaluation logic"; ECR specifics from the ECR User Guide, "Private repository
//! policies" and "Private registry permissions".

mod condition;
mod eval;
mod managed;
mod pattern;

pub use pattern::wildcard_match;

#[cfg(test)]
mod tests;

use serde_json::Value;
use thiserror::Error;

use crate::arn::{is_account_id, Arn};

pub use condition::{CidrBlock, ConditionOperator, OperatorBase, SetQualifier};
pub use eval::{
    evaluate, needs_condition_keys, Decision, Evaluation, PolicyRef, PolicySource, Principal,
    PrincipalKind, Reason, RequestContext, StatementRef,
};
pub use managed::{
    managed_policy, ManagedPolicy, AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS,
    AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER, AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY,
    MANAGED_POLICIES,
};

/// Where a policy is attached, which decides which elements it must and may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user (inline or managed): no `Principal`, `Resource` required.
    Identity,
    /// A generic resource-based policy: `Principal` and `Resource` required.
    Resource,
    /// An ECR repository policy: `Principal` required; an omitted `Resource`
    /// means the repository the policy is set on.
    EcrRepository,
    /// The ECR registry policy: `Principal` required; an omitted `Resource`
    /// means every repository of the registry.
    EcrRegistry,
}

impl PolicyKind {
    fn is_resource_based(self) -> bool {
        !matches!(self, PolicyKind::Identity)
    }
}

/// The policy language version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyVersion {
    /// `2012-10-17`: policy variables (`${aws:username}`) are substituted.
    V2012_10_17,
    /// `2008-10-17` (also the default when `Version` is absent): `${…}` is literal.
    V2008_10_17,
}

impl PolicyVersion {
    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyVersion::V2012_10_17 => "2012-10-17",
            PolicyVersion::V2008_10_17 => "2008-10-17",
        }
    }
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Denies, overriding every allow.
    Deny,
}

/// The `Principal` element's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalSpec {
    /// `"*"`: everyone, anonymous callers included.
    Everyone,
    /// `{"AWS": …, "Service": …}`.
    Entries(Vec<PrincipalEntry>),
}

/// The kinds of principal a policy can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalType {
    /// `"AWS"`: accounts, users, roles, or `*`.
    Aws,
    /// `"Service"`: e.g. `ecr.amazonaws.com`.
    Service,
    /// `"Federated"`.
    Federated,
    /// `"CanonicalUser"`.
    CanonicalUser,
}

/// One principal named in a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalEntry {
    /// Which key of the principal object it was under.
    pub kind: PrincipalType,
    /// The value; a bare 12-digit account id is stored as `arn:aws:iam::<id>:root`.
    pub value: String,
}

/// `Principal` or `NotPrincipal`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalBlock {
    /// True for `NotPrincipal`.
    pub negated: bool,
    /// The principals.
    pub spec: PrincipalSpec,
}

/// `Action`/`NotAction` or `Resource`/`NotResource`: patterns with `*` and `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternList {
    /// True for the `Not…` form.
    pub negated: bool,
    /// The patterns, as written.
    pub patterns: Vec<String>,
}

/// One `operator: { key: values }` entry of a `Condition` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// e.g. `ForAnyValue:StringLikeIfExists`.
    pub operator: ConditionOperator,
    /// The condition key as written (matched case-insensitively).
    pub key: String,
    /// The values; numbers and booleans are kept in their JSON text form.
    pub values: Vec<String>,
}

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// `Sid`, if any.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Principal`/`NotPrincipal`; always `None` in identity policies.
    pub principal: Option<PrincipalBlock>,
    /// `Action`/`NotAction`.
    pub action: PatternList,
    /// `Resource`/`NotResource`; `None` only where the kind allows omitting it.
    pub resource: Option<PatternList>,
    /// Every condition; all must hold.
    pub conditions: Vec<Condition>,
}

/// A parsed, validated policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    /// `Version`.
    pub version: PolicyVersion,
    /// `Id`, if any.
    pub id: Option<String>,
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

/// Why a policy document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// The text is not JSON.
    #[error("policy is not valid JSON: {0}")]
    InvalidJson(String),
    /// Valid JSON that is not a valid policy; `at` locates the problem
    /// (e.g. `Statement[1].Action`).
    #[error("{at}: {message}")]
    Invalid {
        /// JSON-path-like location.
        at: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(at: impl Into<String>, message: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        at: at.into(),
        message: message.into(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string or a non-empty array of strings.
fn string_or_list(v: &Value, at: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid(
                    format!("{at}[{i}]"),
                    format!("must be a string, not {}", type_name(other)),
                )),
            })
            .collect(),
        Value::Array(_) => Err(invalid(at, "must not be an empty array")),
        other => Err(invalid(
            at,
            format!(
                "must be a string or an array of strings, not {}",
                type_name(other)
            ),
        )),
    }
}

impl PolicyDocument {
    /// Parses and validates a policy document of the given kind.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<PolicyDocument, PolicyError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| PolicyError::InvalidJson(e.to_string()))?;
        PolicyDocument::from_value(&value, kind)
    }

    /// Validates an already-parsed JSON value.
    pub fn from_value(value: &Value, kind: PolicyKind) -> Result<PolicyDocument, PolicyError> {
        let Value::Object(top) = value else {
            return Err(invalid(
                "policy",
                format!("must be a JSON object, not {}", type_name(value)),
            ));
        };
        for key in top.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(invalid(
                    key.clone(),
                    "unknown top-level element (expected Version, Id, Statement)",
                ));
            }
        }
        let version = match top.get("Version") {
            None => PolicyVersion::V2008_10_17,
            Some(Value::String(s)) if s == "2012-10-17" => PolicyVersion::V2012_10_17,
            Some(Value::String(s)) if s == "2008-10-17" => PolicyVersion::V2008_10_17,
            Some(other) => {
                return Err(invalid(
                    "Version",
                    format!(
                        "must be \"2012-10-17\" or \"2008-10-17\", not {}",
                        serde_json::to_string(other).unwrap_or_default()
                    ),
                ))
            }
        };
        let id = match top.get("Id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(invalid(
                    "Id",
                    format!("must be a string, not {}", type_name(other)),
                ))
            }
        };
        let raw_statements: Vec<(String, &Value)> = match top.get("Statement") {
            None => return Err(invalid("Statement", "is required")),
            Some(v @ Value::Object(_)) => vec![("Statement".to_owned(), v)],
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("Statement[{i}]"), v))
                .collect(),
            Some(other) => {
                return Err(invalid(
                    "Statement",
                    format!(
                        "must be an object or an array of objects, not {}",
                        type_name(other)
                    ),
                ))
            }
        };
        let mut statements = Vec::with_capacity(raw_statements.len());
        for (at, v) in raw_statements {
            statements.push(parse_statement(v, &at, kind)?);
        }
        let mut sids: Vec<&str> = statements.iter().filter_map(|s| s.sid.as_deref()).collect();
        sids.sort_unstable();
        if let Some(w) = sids.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(
                "Statement",
                format!("statement ids must be unique; \"{}\" is repeated", w[0]),
            ));
        }
        Ok(PolicyDocument {
            version,
            id,
            statements,
        })
    }
}

fn parse_statement(v: &Value, at: &str, kind: PolicyKind) -> Result<Statement, PolicyError> {
    let Value::Object(obj) = v else {
        return Err(invalid(
            at,
            format!("a statement must be an object, not {}", type_name(v)),
        ));
    };
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(invalid(
                format!("{at}.{key}"),
                "unknown statement element (expected Sid, Effect, Principal, NotPrincipal, Action, NotAction, Resource, NotResource, Condition)",
            ));
        }
    }
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(invalid(
                format!("{at}.Sid"),
                format!("must be a string, not {}", type_name(other)),
            ))
        }
    };
    let effect = match obj.get("Effect") {
        None => return Err(invalid(format!("{at}.Effect"), "is required")),
        Some(Value::String(s)) if s == "Allow" => Effect::Allow,
        Some(Value::String(s)) if s == "Deny" => Effect::Deny,
        Some(other) => {
            return Err(invalid(
                format!("{at}.Effect"),
                format!(
                    "must be \"Allow\" or \"Deny\", not {}",
                    serde_json::to_string(other).unwrap_or_default()
                ),
            ))
        }
    };

    let action = match (obj.get("Action"), obj.get("NotAction")) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                at,
                "a statement cannot have both Action and NotAction",
            ))
        }
        (None, None) => {
            return Err(invalid(
                at,
                "a statement must have an Action or NotAction element",
            ))
        }
        (Some(v), None) => parse_actions(v, &format!("{at}.Action"), false)?,
        (None, Some(v)) => parse_actions(v, &format!("{at}.NotAction"), true)?,
    };

    let resource = match (obj.get("Resource"), obj.get("NotResource")) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                at,
                "a statement cannot have both Resource and NotResource",
            ))
        }
        (None, None) => match kind {
            PolicyKind::Identity | PolicyKind::Resource => {
                return Err(invalid(
                    at,
                    "a statement must have a Resource or NotResource element",
                ))
            }
            PolicyKind::EcrRepository | PolicyKind::EcrRegistry => None,
        },
        (Some(v), None) => Some(parse_resources(v, &format!("{at}.Resource"), false)?),
        (None, Some(v)) => Some(parse_resources(v, &format!("{at}.NotResource"), true)?),
    };

    let principal = match (obj.get("Principal"), obj.get("NotPrincipal")) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                at,
                "a statement cannot have both Principal and NotPrincipal",
            ))
        }
        (None, None) => {
            if kind.is_resource_based() {
                return Err(invalid(
                    at,
                    "a statement in a resource-based policy must have a Principal or NotPrincipal element",
                ));
            }
            None
        }
        (Some(v), None) | (None, Some(v)) => {
            let negated = obj.contains_key("NotPrincipal");
            let name = if negated { "NotPrincipal" } else { "Principal" };
            if !kind.is_resource_based() {
                return Err(invalid(
                    format!("{at}.{name}"),
                    "an identity-based policy cannot name a principal",
                ));
            }
            if negated && effect == Effect::Allow {
                return Err(invalid(
                    format!("{at}.NotPrincipal"),
                    "NotPrincipal may only be used with \"Effect\": \"Deny\"",
                ));
            }
            Some(PrincipalBlock {
                negated,
                spec: parse_principal(v, &format!("{at}.{name}"))?,
            })
        }
    };

    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(v) => parse_conditions(v, &format!("{at}.Condition"))?,
    };

    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

fn parse_actions(v: &Value, at: &str, negated: bool) -> Result<PatternList, PolicyError> {
    let patterns = string_or_list(v, at)?;
    for p in &patterns {
        let valid = p == "*"
            || p.split_once(':').is_some_and(|(service, action)| {
                !service.is_empty()
                    && service
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*' || b == b'?')
                    && !action.is_empty()
                    && action.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'*' | b'?' | b'-' | b'_' | b'.')
                    })
            });
        if !valid {
            return Err(invalid(
                at,
                format!("invalid action \"{p}\": expected \"*\" or \"service:Action\" (wildcards * and ? allowed)"),
            ));
        }
    }
    Ok(PatternList { negated, patterns })
}

fn parse_resources(v: &Value, at: &str, negated: bool) -> Result<PatternList, PolicyError> {
    let patterns = string_or_list(v, at)?;
    for p in &patterns {
        let valid = p == "*" || (p.starts_with("arn:") && p.matches(':').count() >= 5);
        if !valid || p.chars().any(char::is_control) {
            return Err(invalid(
                at,
                format!("invalid resource \"{p}\": expected \"*\" or an ARN (arn:partition:service:region:account:resource)"),
            ));
        }
    }
    Ok(PatternList { negated, patterns })
}

fn is_principal_arn(s: &str) -> bool {
    Arn::parse(s).is_ok_and(|a| a.iam_principal().is_some())
}

fn parse_principal(v: &Value, at: &str) -> Result<PrincipalSpec, PolicyError> {
    match v {
        Value::String(s) if s == "*" => Ok(PrincipalSpec::Everyone),
        Value::Object(map) if !map.is_empty() => {
            let mut entries = Vec::new();
            for (k, vals) in map {
                let kind = match k.as_str() {
                    "AWS" => PrincipalType::Aws,
                    "Service" => PrincipalType::Service,
                    "Federated" => PrincipalType::Federated,
                    "CanonicalUser" => PrincipalType::CanonicalUser,
                    _ => {
                        return Err(invalid(
                            format!("{at}.{k}"),
                            "unknown principal type (expected AWS, Service, Federated, CanonicalUser)",
                        ))
                    }
                };
                for value in string_or_list(vals, &format!("{at}.{k}"))? {
                    let value = match kind {
                        PrincipalType::Aws if value == "*" => value,
                        PrincipalType::Aws if is_account_id(&value) => {
                            format!("arn:aws:iam::{value}:root")
                        }
                        PrincipalType::Aws if is_principal_arn(&value) => value,
                        PrincipalType::Aws => {
                            return Err(invalid(
                                format!("{at}.AWS"),
                                format!("Invalid principal in policy: \"AWS\":\"{value}\" (expected \"*\", a 12-digit account id, or a user, role or account root ARN)"),
                            ))
                        }
                        _ if value.is_empty() || value.chars().any(char::is_whitespace) => {
                            return Err(invalid(
                                format!("{at}.{k}"),
                                format!("Invalid principal in policy: \"{k}\":\"{value}\""),
                            ))
                        }
                        _ => value,
                    };
                    entries.push(PrincipalEntry { kind, value });
                }
            }
            Ok(PrincipalSpec::Entries(entries))
        }
        other => Err(invalid(
            at,
            format!(
                "must be \"*\" or an object such as {{\"AWS\": \"arn:aws:iam::123456789012:root\"}}, not {}",
                serde_json::to_string(other).unwrap_or_default()
            ),
        )),
    }
}

fn condition_value(v: &Value, at: &str) -> Result<String, PolicyError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(invalid(
            at,
            format!(
                "condition values must be strings, numbers or booleans, not {}",
                type_name(other)
            ),
        )),
    }
}

fn parse_conditions(v: &Value, at: &str) -> Result<Vec<Condition>, PolicyError> {
    let Value::Object(ops) = v else {
        return Err(invalid(
            at,
            format!("must be an object of operators, not {}", type_name(v)),
        ));
    };
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let op_at = format!("{at}.{op_name}");
        let operator = ConditionOperator::parse(op_name)
            .ok_or_else(|| invalid(&op_at, "unknown condition operator"))?;
        let Value::Object(keys) = keys else {
            return Err(invalid(
                &op_at,
                format!(
                    "must be an object of condition keys, not {}",
                    type_name(keys)
                ),
            ));
        };
        if keys.is_empty() {
            return Err(invalid(&op_at, "must name at least one condition key"));
        }
        for (key, vals) in keys {
            let key_at = format!("{op_at}.{key}");
            if key.is_empty() {
                return Err(invalid(&key_at, "condition key must not be empty"));
            }
            let values: Vec<String> = match vals {
                Value::Array(items) if items.is_empty() => {
                    return Err(invalid(&key_at, "must not be an empty array"))
                }
                Value::Array(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| condition_value(item, &format!("{key_at}[{i}]")))
                    .collect::<Result<_, _>>()?,
                single => vec![condition_value(single, &key_at)?],
            };
            for value in &values {
                operator
                    .validate_value(value)
                    .map_err(|m| invalid(&key_at, m))?;
            }
            out.push(Condition {
                operator,
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}
