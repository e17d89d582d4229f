//! Errors for lifecycle policy text, worded like ECR's `InvalidParameterException`.
//!
//! ECR validates `PutLifecyclePolicy` / `StartLifecyclePolicyPreview` input with a JSON
//! schema and answers, for example:
//!
//! ```text
//! Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint:
//! 'Lifecycle policy validation failure: object has missing required properties (["rules"])'
//! ```
//!
//! The schema-shaped reasons (`object has missing required properties`, `instance value
//! (…) not found in enum`, `numeric instance is lower than the required minimum`, `Could not
//! map policyString into LifecyclePolicy.`) and the two semantic reasons seen from the real
//! service (`Only one rule can select Untagged images per storage class.`, `Rule for
//! tagStatus=ANY must have the lowest priority per storage class`) keep ECR's wording.
//! ECR's schema reports a location-free message; berth appends the JSON pointer of the
//! offending value (` at /rules/0/selection`) because a clear error is worth more than a
//! byte-identical one. Reasons ECR words opaquely (`instance failed to match exactly one
//! schema (matched 0 out of 2)` for every countType/countUnit mismatch) are spelled out.

use std::fmt;

use thiserror::Error;

/// The ECR exception every lifecycle-policy text error maps to.
pub const INVALID_PARAMETER_EXCEPTION: &str = "InvalidParameterException";

/// Shortest lifecycle policy text ECR accepts (botocore enforces it client-side).
pub const LIFECYCLE_POLICY_TEXT_MIN_LEN: usize = 100;
/// Longest lifecycle policy text ECR accepts (service quota "Lifecycle policy length").
pub const LIFECYCLE_POLICY_TEXT_MAX_LEN: usize = 30_720;

/// Why a lifecycle policy text was refused. `Display` is the full ECR-style message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LifecyclePolicyError {
    #[error(
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: \
         'Member must have length greater than or equal to {min}'"
    )]
    TextTooShort { length: usize, min: usize },
    #[error(
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: \
         'Member must have length less than or equal to {max}'"
    )]
    TextTooLong { length: usize, max: usize },
    #[error(
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: \
         'Lifecycle policy validation failure: {0}'"
    )]
    Validation(#[from] Violation),
}

impl LifecyclePolicyError {
    /// The ECR `__type` for this error (always `InvalidParameterException`).
    pub fn exception_name(&self) -> &'static str {
        INVALID_PARAMETER_EXCEPTION
    }

    /// The validation reason, when the text was long enough to be read.
    pub fn violation(&self) -> Option<&Violation> {
        match self {
            Self::Validation(v) => Some(v),
            Self::TextTooShort { .. } | Self::TextTooLong { .. } => None,
        }
    }
}

/// JSON type names as ECR's schema validator prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    Array,
    Boolean,
    Integer,
    Null,
    Number,
    Object,
    String,
}

impl JsonType {
    pub(crate) fn of(value: &serde_json::Value) -> Self {
        use serde_json::Value;
        match value {
            Value::Null => Self::Null,
            Value::Bool(_) => Self::Boolean,
            Value::Number(n) if n.is_i64() || n.is_u64() => Self::Integer,
            Value::Number(_) => Self::Number,
            Value::String(_) => Self::String,
            Value::Array(_) => Self::Array,
            Value::Object(_) => Self::Object,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Array => "array",
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Null => "null",
            Self::Number => "number",
            Self::Object => "object",
            Self::String => "string",
        }
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One reason a lifecycle policy is invalid. `Display` is the reason part of the message
/// (what follows `Lifecycle policy validation failure: `).
///
/// `at` fields are JSON pointers into the policy document (`/rules/1/selection`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Violation {
    /// Not JSON, or JSON that is not an object.
    #[error("Could not map policyString into LifecyclePolicy.")]
    NotAPolicy,
    #[error("object has missing required properties ({}) at {at}", json_list(.names))]
    MissingProperties { at: String, names: Vec<String> },
    #[error(
        "object instance has properties which are not allowed by the schema: ({}) at {at}",
        json_list(.names)
    )]
    UnknownProperties { at: String, names: Vec<String> },
    #[error(
        "instance type ({found}) does not match any allowed primitive type (allowed: [\"{expected}\"]) at {at}"
    )]
    WrongType {
        at: String,
        found: JsonType,
        expected: JsonType,
    },
    #[error(
        "instance value ({}) not found in enum (possible values: {}) at {at}",
        json_string(.value),
        json_list(.allowed)
    )]
    NotInEnum {
        at: String,
        value: String,
        allowed: Vec<String>,
    },
    #[error(
        "numeric instance is lower than the required minimum (minimum: {minimum}, found: {found}) at {at}"
    )]
    BelowMinimum {
        at: String,
        minimum: i64,
        found: String,
    },
    #[error(
        "numeric instance is greater than the required maximum (maximum: {maximum}, found: {found}) at {at}"
    )]
    AboveMaximum {
        at: String,
        maximum: i64,
        found: String,
    },
    #[error(
        "array is too short: must have at least {min} elements but instance has {found} elements at {at}"
    )]
    TooFewItems {
        at: String,
        min: usize,
        found: usize,
    },
    #[error(
        "a rule with tagStatus 'tagged' must specify exactly one of tagPrefixList or tagPatternList (rulePriority {rule_priority})"
    )]
    TagListRequired { rule_priority: u32 },
    #[error(
        "a lifecycle policy rule may specify either tagPatternList or tagPrefixList, but not both (rulePriority {rule_priority})"
    )]
    BothTagLists { rule_priority: u32 },
    #[error(
        "tagPrefixList and tagPatternList may only be used if the tagStatus is tagged, not '{tag_status}' (rulePriority {rule_priority})"
    )]
    TagListNotAllowed {
        rule_priority: u32,
        tag_status: String,
    },
    #[error(
        "tag pattern {} has {wildcards} wildcards; there is a maximum limit of four wildcards (*) per string at {at}",
        json_string(.pattern)
    )]
    TooManyWildcards {
        at: String,
        pattern: String,
        wildcards: usize,
    },
    #[error(
        "countUnit is required when countType is '{count_type}' (rulePriority {rule_priority})"
    )]
    CountUnitRequired {
        rule_priority: u32,
        count_type: String,
    },
    #[error(
        "countUnit must not be specified when countType is 'imageCountMoreThan' (rulePriority {rule_priority})"
    )]
    CountUnitNotAllowed { rule_priority: u32 },
    #[error(
        "targetStorageClass may only be specified when the action type is 'transition' at {at}"
    )]
    TargetStorageClassNotAllowed { at: String },
    #[error(
        "rulePriority {rule_priority} is used by more than one rule; each rule must have a unique rulePriority"
    )]
    DuplicateRulePriority { rule_priority: u32 },
    #[error(
        "Rule for tagStatus=ANY must have the lowest priority per storage class (rulePriority {rule_priority} has tagStatus any, but rulePriority {later_priority} is evaluated after it)"
    )]
    AnyRuleNotLast {
        rule_priority: u32,
        later_priority: u32,
    },
    #[error(
        "Only one rule can select Untagged images per storage class. (rulePriority {first} and {second} both have tagStatus untagged)"
    )]
    MultipleUntaggedRules { first: u32, second: u32 },
    #[error(
        "The set of rules must contain a unique set of tag prefixes (rulePriority {first} and {second} have the same tagPrefixList)"
    )]
    DuplicateTagPrefixSet { first: u32, second: u32 },
    /// Archive storage (`transition` actions, `storageClass: archive`,
    /// `sinceImageTransitioned`) is part of ECR's model but not of berth.
    #[error(
        "berth does not support archive storage: {what} at {at}. Use an 'expire' action with countType imageCountMoreThan, sinceImagePushed or sinceImagePulled"
    )]
    ArchiveNotSupported { at: String, what: String },
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| json_string(s)).collect();
    format!("[{}]", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_wraps_reason_in_ecr_envelope() {
        let err = LifecyclePolicyError::from(Violation::NotAPolicy);
        assert_eq!(
            err.to_string(),
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: \
             'Lifecycle policy validation failure: Could not map policyString into LifecyclePolicy.'"
        );
        assert_eq!(err.exception_name(), "InvalidParameterException");
        assert_eq!(err.violation(), Some(&Violation::NotAPolicy));
    }

    #[test]
    fn schema_reasons_keep_validator_wording() {
        let v = Violation::MissingProperties {
            at: "/".into(),
            names: vec!["rules".into()],
        };
        assert_eq!(
            v.to_string(),
            "object has missing required properties ([\"rules\"]) at /"
        );
        let v = Violation::NotInEnum {
            at: "/rules/0/selection/tagStatus".into(),
            value: "TAGGED".into(),
            allowed: vec!["tagged".into(), "untagged".into(), "any".into()],
        };
        assert_eq!(
            v.to_string(),
            "instance value (\"TAGGED\") not found in enum (possible values: \
             [\"tagged\",\"untagged\",\"any\"]) at /rules/0/selection/tagStatus"
        );
        let v = Violation::WrongType {
            at: "/rules/0/rulePriority".into(),
            found: JsonType::String,
            expected: JsonType::Integer,
        };
        assert_eq!(
            v.to_string(),
            "instance type (string) does not match any allowed primitive type \
             (allowed: [\"integer\"]) at /rules/0/rulePriority"
        );
    }

    #[test]
    fn length_errors_have_no_violation() {
        let err = LifecyclePolicyError::TextTooLong {
            length: 40_000,
            max: LIFECYCLE_POLICY_TEXT_MAX_LEN,
        };
        assert!(err.violation().is_none());
        assert!(err.to_string().contains("less than or equal to 30720"));
        assert_eq!(err.exception_name(), INVALID_PARAMETER_EXCEPTION);
    }

    #[test]
    fn json_type_of_values() {
        use serde_json::json;
        assert_eq!(JsonType::of(&json!(1)), JsonType::Integer);
        assert_eq!(JsonType::of(&json!(-1)), JsonType::Integer);
        assert_eq!(JsonType::of(&json!(1.5)), JsonType::Number);
        assert_eq!(JsonType::of(&json!(null)), JsonType::Null);
        assert_eq!(JsonType::of(&json!(true)), JsonType::Boolean);
        assert_eq!(JsonType::of(&json!("x")), JsonType::String);
        assert_eq!(JsonType::of(&json!([])), JsonType::Array);
        assert_eq!(JsonType::of(&json!({})), JsonType::Object);
    }
}
