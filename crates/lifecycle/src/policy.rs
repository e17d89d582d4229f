//! Lifecycle policy text: parsing and validation.
//!
//! Implements ECR User Guide "Lifecycle policy properties" (lifecycle_policy_parameters)
//! and the constraints listed under "Lifecycle policy evaluation rules"
//! (LifecyclePolicies), for the document shape in "Lifecycle policy template"
//! (lifecycle_policy_examples):
//!
//! ```json
//! {"rules": [{"rulePriority": 1, "description": "…",
//!   "selection": {"tagStatus": "tagged|untagged|any", "tagPatternList": […], "tagPrefixList": […],
//!                 "storageClass": "standard|archive",
//!                 "countType": "imageCountMoreThan|sinceImagePushed|sinceImagePulled|sinceImageTransitioned",
//!                 "countUnit": "days", "countNumber": 14},
//!   "action": {"type": "expire|transition", "targetStorageClass": "archive"}}]}
//! ```
//!
//! What berth enforces, and why:
//! - Unknown properties anywhere, explicit `null`s and wrong JSON types are refused, as
//!   ECR's schema does (a Terraform module emitting `"countUnit": null` gets ECR's
//!   `instance failed to match exactly one schema` — berth says which property).
//! - `rulePriority` and `countNumber` are integers ≥ 1 ("`0` is not an accepted value")
//!   that fit ECR's `Integer` (`appliedRulePriority` in the API model is an `Integer`).
//! - `rulePriority` is unique; a rule with `tagStatus: any` must have the highest
//!   `rulePriority` (so there is at most one); only one rule may select `untagged`
//!   images; no two rules may carry the same set of tag prefixes ("The set of all rules
//!   selecting a specific storage class must contain a unique set of prefixes" — berth reads
//!   it as: identical `tagPrefixList` sets are refused, overlapping ones are allowed).
//! - `tagged` needs exactly one non-empty `tagPrefixList` or `tagPatternList`;
//!   `untagged`/`any` take neither. Patterns have at most four `*`.
//! - `countUnit` (only `days`) is required for the `since*` count types and refused for
//!   `imageCountMoreThan`.
//!
//! Archive storage is not part of berth: `action.type: transition`,
//! `targetStorageClass`, `selection.storageClass: archive` and
//! `countType: sinceImageTransitioned` are refused with
//! [`Violation::ArchiveNotSupported`]. `storageClass: standard` (the default) is accepted.
//!
//! `sinceImagePulled`: the current guide ("Filtering on last pulled time") says ECR only
//! accepts it with a `transition` action. berth has no archive tier, so it accepts
//! `sinceImagePulled` with `expire` as an extension: "not pulled for N days" expires the
//! image. A policy using it therefore works on berth but would be refused by ECR.

use serde_json::{Map, Value};

use crate::error::{JsonType, LifecyclePolicyError, Violation};
use crate::error::{LIFECYCLE_POLICY_TEXT_MAX_LEN, LIFECYCLE_POLICY_TEXT_MIN_LEN};
use crate::pattern::{all_patterns_match, all_prefixes_match, TagPattern};

/// Largest `rulePriority` / `countNumber`: ECR models them as 32-bit `Integer`s.
pub const MAX_INTEGER: u32 = i32::MAX as u32;

/// Checks the length bounds of `PutLifecyclePolicy`'s `lifecyclePolicyText`
/// (100..=30,720 characters). The API layer calls this before [`LifecyclePolicy::parse`].
pub fn check_policy_text_length(text: &str) -> Result<(), LifecyclePolicyError> {
    let length = text.chars().count();
    if length < LIFECYCLE_POLICY_TEXT_MIN_LEN {
        return Err(LifecyclePolicyError::TextTooShort {
            length,
            min: LIFECYCLE_POLICY_TEXT_MIN_LEN,
        });
    }
    if length > LIFECYCLE_POLICY_TEXT_MAX_LEN {
        return Err(LifecyclePolicyError::TextTooLong {
            length,
            max: LIFECYCLE_POLICY_TEXT_MAX_LEN,
        });
    }
    Ok(())
}

/// A validated lifecycle policy; its rules are in evaluation order (ascending
/// `rulePriority`). The only way to get one is [`LifecyclePolicy::parse`] /
/// [`LifecyclePolicy::from_json`], so an invalid policy cannot exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicy {
    rules: Vec<LifecycleRule>,
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRule {
    rule_priority: u32,
    description: Option<String>,
    tag_selector: TagSelector,
    count: CountCriterion,
    action: RuleAction,
}

/// `selection.tagStatus` (lowercase in policy text, uppercase in the API's `TagStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagStatus {
    Tagged,
    Untagged,
    Any,
}

impl TagStatus {
    /// The spelling used in lifecycle policy text.
    pub fn as_policy_str(self) -> &'static str {
        match self {
            Self::Tagged => "tagged",
            Self::Untagged => "untagged",
            Self::Any => "any",
        }
    }

    /// The spelling of the API enum (`GetLifecyclePolicyPreview`'s `filter.tagStatus`).
    pub fn as_api_str(self) -> &'static str {
        match self {
            Self::Tagged => "TAGGED",
            Self::Untagged => "UNTAGGED",
            Self::Any => "ANY",
        }
    }

    /// Parses the API enum spelling (`TAGGED` | `UNTAGGED` | `ANY`).
    pub fn from_api_str(s: &str) -> Option<Self> {
        match s {
            "TAGGED" => Some(Self::Tagged),
            "UNTAGGED" => Some(Self::Untagged),
            "ANY" => Some(Self::Any),
            _ => None,
        }
    }

    /// Whether an image with these tags has this status (`Any` always holds).
    pub fn matches_tags(self, tags: &[String]) -> bool {
        match self {
            Self::Tagged => !tags.is_empty(),
            Self::Untagged => tags.is_empty(),
            Self::Any => true,
        }
    }
}

/// Which images a rule identifies, by their tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSelector {
    /// `tagStatus: tagged` with its (non-empty) prefix or pattern list.
    Tagged(TagFilter),
    Untagged,
    Any,
}

/// The tag list of a `tagged` rule. Every entry must be matched by some tag of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagFilter {
    Prefixes(Vec<String>),
    Patterns(Vec<TagPattern>),
}

impl TagSelector {
    /// The rule's `tagStatus`.
    pub fn tag_status(&self) -> TagStatus {
        match self {
            Self::Tagged(_) => TagStatus::Tagged,
            Self::Untagged => TagStatus::Untagged,
            Self::Any => TagStatus::Any,
        }
    }

    /// Whether an image with these tags "matches the tagging requirements" of the rule.
    pub fn matches(&self, tags: &[String]) -> bool {
        match self {
            // An empty list cannot get past validation; `!tags.is_empty()` keeps the
            // selector honest about `tagged` regardless.
            Self::Tagged(TagFilter::Prefixes(prefixes)) => {
                !tags.is_empty() && all_prefixes_match(prefixes, tags)
            }
            Self::Tagged(TagFilter::Patterns(patterns)) => {
                !tags.is_empty() && all_patterns_match(patterns, tags)
            }
            Self::Untagged => tags.is_empty(),
            Self::Any => true,
        }
    }
}

/// `countType` with its `countNumber` (and implied `countUnit: days`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountCriterion {
    /// Keep the newest `count` selected images (by push time), act on the rest.
    ImageCountMoreThan { count: u32 },
    /// Act on images pushed more than `days` days before now.
    SinceImagePushed { days: u32 },
    /// Act on images last pulled (or, never pulled, pushed) more than `days` days ago.
    SinceImagePulled { days: u32 },
}

/// `action.type`. berth supports `expire` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Expire,
}

impl LifecycleRule {
    pub fn rule_priority(&self) -> u32 {
        self.rule_priority
    }

    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    pub fn tag_selector(&self) -> &TagSelector {
        &self.tag_selector
    }

    pub fn tag_status(&self) -> TagStatus {
        self.tag_selector.tag_status()
    }

    pub fn count(&self) -> CountCriterion {
        self.count
    }

    pub fn action(&self) -> RuleAction {
        self.action
    }
}

impl LifecyclePolicy {
    /// Parses and validates lifecycle policy text. Does not check the text's length:
    /// see [`check_policy_text_length`].
    pub fn parse(text: &str) -> Result<Self, LifecyclePolicyError> {
        let value: Value = serde_json::from_str(text).map_err(|_| Violation::NotAPolicy)?;
        Self::from_json(&value)
    }

    /// Validates an already-parsed JSON document.
    pub fn from_json(value: &Value) -> Result<Self, LifecyclePolicyError> {
        let Value::Object(top) = value else {
            return Err(Violation::NotAPolicy.into());
        };
        check_properties(top, "", &["rules"], &[])?;
        let rules_value = top.get("rules").unwrap_or(&Value::Null);
        let Value::Array(raw_rules) = rules_value else {
            return Err(wrong_type("/rules", rules_value, JsonType::Array).into());
        };
        if raw_rules.is_empty() {
            return Err(Violation::TooFewItems {
                at: "/rules".into(),
                min: 1,
                found: 0,
            }
            .into());
        }
        let mut rules = raw_rules
            .iter()
            .enumerate()
            .map(|(i, raw)| parse_rule(raw, &format!("/rules/{i}")))
            .collect::<Result<Vec<_>, _>>()?;
        rules.sort_by_key(|r| r.rule_priority);
        check_rule_set(&rules)?;
        Ok(Self { rules })
    }

    /// The rules in evaluation order (ascending `rulePriority`).
    pub fn rules(&self) -> &[LifecycleRule] {
        &self.rules
    }
}

fn parse_rule(raw: &Value, at: &str) -> Result<LifecycleRule, Violation> {
    let rule = expect_object(raw, at)?;
    check_properties(
        rule,
        at,
        &["rulePriority", "selection", "action"],
        &["description"],
    )?;
    let rule_priority =
        bounded_integer(field(rule, "rulePriority"), &format!("{at}/rulePriority"))?;
    let description = match rule.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(wrong_type(
                &format!("{at}/description"),
                other,
                JsonType::String,
            ))
        }
    };
    let action = parse_action(field(rule, "action"), &format!("{at}/action"))?;
    let (tag_selector, count) = parse_selection(
        field(rule, "selection"),
        &format!("{at}/selection"),
        rule_priority,
    )?;
    Ok(LifecycleRule {
        rule_priority,
        description,
        tag_selector,
        count,
        action,
    })
}

fn parse_action(raw: &Value, at: &str) -> Result<RuleAction, Violation> {
    let action = expect_object(raw, at)?;
    check_properties(action, at, &["type"], &["targetStorageClass"])?;
    let action_type = enum_string(
        field(action, "type"),
        &format!("{at}/type"),
        &["expire", "transition"],
    )?;
    if action_type == "transition" {
        return Err(Violation::ArchiveNotSupported {
            at: format!("{at}/type"),
            what: "action type 'transition' moves images to archive storage".into(),
        });
    }
    if action.contains_key("targetStorageClass") {
        return Err(Violation::TargetStorageClassNotAllowed {
            at: format!("{at}/targetStorageClass"),
        });
    }
    Ok(RuleAction::Expire)
}

fn parse_selection(
    raw: &Value,
    at: &str,
    rule_priority: u32,
) -> Result<(TagSelector, CountCriterion), Violation> {
    let selection = expect_object(raw, at)?;
    check_properties(
        selection,
        at,
        &["tagStatus", "countType", "countNumber"],
        &[
            "tagPrefixList",
            "tagPatternList",
            "countUnit",
            "storageClass",
        ],
    )?;

    let tag_status = enum_string(
        field(selection, "tagStatus"),
        &format!("{at}/tagStatus"),
        &["tagged", "untagged", "any"],
    )?;
    let prefixes = selection
        .get("tagPrefixList")
        .map(|v| string_list(v, &format!("{at}/tagPrefixList")))
        .transpose()?;
    let patterns = selection
        .get("tagPatternList")
        .map(|v| string_list(v, &format!("{at}/tagPatternList")))
        .transpose()?;
    if let Some(storage_class) = selection.get("storageClass") {
        let storage_class = enum_string(
            storage_class,
            &format!("{at}/storageClass"),
            &["standard", "archive"],
        )?;
        if storage_class == "archive" {
            return Err(Violation::ArchiveNotSupported {
                at: format!("{at}/storageClass"),
                what: "storageClass 'archive' selects archived images".into(),
            });
        }
    }
    let count_type = enum_string(
        field(selection, "countType"),
        &format!("{at}/countType"),
        &[
            "imageCountMoreThan",
            "sinceImagePushed",
            "sinceImagePulled",
            "sinceImageTransitioned",
        ],
    )?;
    if count_type == "sinceImageTransitioned" {
        return Err(Violation::ArchiveNotSupported {
            at: format!("{at}/countType"),
            what: "countType 'sinceImageTransitioned' counts time spent in archive storage".into(),
        });
    }
    let count_unit = selection
        .get("countUnit")
        .map(|v| enum_string(v, &format!("{at}/countUnit"), &["days"]))
        .transpose()?;
    let count_number = bounded_integer(
        field(selection, "countNumber"),
        &format!("{at}/countNumber"),
    )?;

    let tag_selector = match tag_status {
        "tagged" => match (prefixes, patterns) {
            (Some(_), Some(_)) => return Err(Violation::BothTagLists { rule_priority }),
            (Some(prefixes), None) => TagSelector::Tagged(TagFilter::Prefixes(
                prefixes.into_iter().map(|(_, s)| s.to_owned()).collect(),
            )),
            (None, Some(patterns)) => TagSelector::Tagged(TagFilter::Patterns(
                patterns
                    .into_iter()
                    .map(|(i, s)| TagPattern::new(s, &format!("{at}/tagPatternList/{i}")))
                    .collect::<Result<_, _>>()?,
            )),
            (None, None) => return Err(Violation::TagListRequired { rule_priority }),
        },
        other => {
            if prefixes.is_some() || patterns.is_some() {
                return Err(Violation::TagListNotAllowed {
                    rule_priority,
                    tag_status: other.to_owned(),
                });
            }
            if other == "untagged" {
                TagSelector::Untagged
            } else {
                TagSelector::Any
            }
        }
    };

    let count = match (count_type, count_unit) {
        ("imageCountMoreThan", None) => CountCriterion::ImageCountMoreThan {
            count: count_number,
        },
        ("imageCountMoreThan", Some(_)) => {
            return Err(Violation::CountUnitNotAllowed { rule_priority })
        }
        (since, None) => {
            return Err(Violation::CountUnitRequired {
                rule_priority,
                count_type: since.to_owned(),
            })
        }
        ("sinceImagePushed", Some(_)) => CountCriterion::SinceImagePushed { days: count_number },
        (_, Some(_)) => CountCriterion::SinceImagePulled { days: count_number },
    };
    Ok((tag_selector, count))
}

/// Rules that span the whole policy (LifecyclePolicies, "Lifecycle policy evaluation
/// rules"; lifecycle_policy_parameters, "Rule priority"). `rules` is sorted by priority.
fn check_rule_set(rules: &[LifecycleRule]) -> Result<(), Violation> {
    for pair in rules.windows(2) {
        if pair[0].rule_priority == pair[1].rule_priority {
            return Err(Violation::DuplicateRulePriority {
                rule_priority: pair[0].rule_priority,
            });
        }
    }
    // "A rule with a tagStatus value of any must have the highest value for rulePriority
    // and be evaluated last." Two `any` rules cannot both be last.
    if let Some((last, earlier)) = rules.split_last() {
        if let Some(any_rule) = earlier.iter().find(|r| r.tag_status() == TagStatus::Any) {
            let later = rules
                .iter()
                .find(|r| r.rule_priority > any_rule.rule_priority)
                .map_or(last.rule_priority, |r| r.rule_priority);
            return Err(Violation::AnyRuleNotLast {
                rule_priority: any_rule.rule_priority,
                later_priority: later,
            });
        }
    }
    // "Only one rule selecting a specific storage class is allowed to select untagged
    // images." Every berth rule selects the standard class. `any` rules do not count:
    // the guide's "Filtering on all images" Example B pairs an untagged rule with an
    // `any` rule.
    let mut untagged = rules
        .iter()
        .filter(|r| r.tag_status() == TagStatus::Untagged);
    if let (Some(first), Some(second)) = (untagged.next(), untagged.next()) {
        return Err(Violation::MultipleUntaggedRules {
            first: first.rule_priority,
            second: second.rule_priority,
        });
    }
    let mut prefix_sets: Vec<(u32, Vec<&str>)> = Vec::new();
    for rule in rules {
        if let TagSelector::Tagged(TagFilter::Prefixes(prefixes)) = &rule.tag_selector {
            let mut set: Vec<&str> = prefixes.iter().map(String::as_str).collect();
            set.sort_unstable();
            set.dedup();
            if let Some((first, _)) = prefix_sets.iter().find(|(_, s)| *s == set) {
                return Err(Violation::DuplicateTagPrefixSet {
                    first: *first,
                    second: rule.rule_priority,
                });
            }
            prefix_sets.push((rule.rule_priority, set));
        }
    }
    Ok(())
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> &'a Value {
    // Only called for properties `check_properties` proved present.
    object.get(name).unwrap_or(&Value::Null)
}

fn pointer_or_root(at: &str) -> String {
    if at.is_empty() {
        "/".to_owned()
    } else {
        at.to_owned()
    }
}

fn expect_object<'a>(raw: &'a Value, at: &str) -> Result<&'a Map<String, Value>, Violation> {
    match raw {
        Value::Object(map) => Ok(map),
        other => Err(wrong_type(at, other, JsonType::Object)),
    }
}

fn wrong_type(at: &str, found: &Value, expected: JsonType) -> Violation {
    Violation::WrongType {
        at: pointer_or_root(at),
        found: JsonType::of(found),
        expected,
    }
}

/// Required properties first (as ECR reports them), then properties outside the schema.
fn check_properties(
    object: &Map<String, Value>,
    at: &str,
    required: &[&str],
    optional: &[&str],
) -> Result<(), Violation> {
    let missing: Vec<String> = required
        .iter()
        .filter(|name| !object.contains_key(**name))
        .map(|name| (*name).to_owned())
        .collect();
    if !missing.is_empty() {
        let mut names = missing;
        names.sort();
        return Err(Violation::MissingProperties {
            at: pointer_or_root(at),
            names,
        });
    }
    let mut unknown: Vec<String> = object
        .keys()
        .filter(|k| !required.contains(&k.as_str()) && !optional.contains(&k.as_str()))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        unknown.sort();
        return Err(Violation::UnknownProperties {
            at: pointer_or_root(at),
            names: unknown,
        });
    }
    Ok(())
}

fn enum_string<'a>(raw: &'a Value, at: &str, allowed: &[&str]) -> Result<&'a str, Violation> {
    let Value::String(s) = raw else {
        return Err(wrong_type(at, raw, JsonType::String));
    };
    if allowed.contains(&s.as_str()) {
        Ok(s.as_str())
    } else {
        Err(Violation::NotInEnum {
            at: at.to_owned(),
            value: s.clone(),
            allowed: allowed.iter().map(|a| (*a).to_owned()).collect(),
        })
    }
}

/// An integer in `1..=MAX_INTEGER`.
fn bounded_integer(raw: &Value, at: &str) -> Result<u32, Violation> {
    let Value::Number(n) = raw else {
        return Err(wrong_type(at, raw, JsonType::Integer));
    };
    if let Some(v) = n.as_u64() {
        if v == 0 {
            return Err(Violation::BelowMinimum {
                at: at.to_owned(),
                minimum: 1,
                found: n.to_string(),
            });
        }
        return u32::try_from(v)
            .ok()
            .filter(|v| *v <= MAX_INTEGER)
            .ok_or_else(|| Violation::AboveMaximum {
                at: at.to_owned(),
                maximum: i64::from(MAX_INTEGER),
                found: n.to_string(),
            });
    }
    if n.is_i64() {
        return Err(Violation::BelowMinimum {
            at: at.to_owned(),
            minimum: 1,
            found: n.to_string(),
        });
    }
    Err(wrong_type(at, raw, JsonType::Integer))
}

/// A non-empty array of strings, with each string's index.
fn string_list<'a>(raw: &'a Value, at: &str) -> Result<Vec<(usize, &'a str)>, Violation> {
    let Value::Array(items) = raw else {
        return Err(wrong_type(at, raw, JsonType::Array));
    };
    if items.is_empty() {
        return Err(Violation::TooFewItems {
            at: at.to_owned(),
            min: 1,
            found: 0,
        });
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok((i, s.as_str())),
            other => Err(wrong_type(&format!("{at}/{i}"), other, JsonType::String)),
        })
        .collect()
}
