//! Validation of lifecycle policy text: every documented constraint, ECR's error wording,
//! and the refusal of archive features berth does not have.

use berth_lifecycle::{
    check_policy_text_length, CountCriterion, JsonType, LifecyclePolicy, LifecyclePolicyError,
    TagFilter, TagSelector, TagStatus, Violation,
};
use proptest::prelude::*;
use serde_json::{json, Value};

fn violation(policy: &Value) -> Violation {
    match LifecyclePolicy::from_json(policy) {
        Ok(p) => panic!("accepted invalid policy {policy}: {p:?}"),
        Err(LifecyclePolicyError::Validation(v)) => v,
        Err(other) => panic!("unexpected error {other}"),
    }
}

fn accepted(policy: &Value) -> LifecyclePolicy {
    match LifecyclePolicy::from_json(policy) {
        Ok(p) => p,
        Err(e) => panic!("refused {policy}: {e}"),
    }
}

fn rule(priority: Value, selection: Value) -> Value {
    json!({"rulePriority": priority, "selection": selection, "action": {"type": "expire"}})
}

fn untagged_count(n: u32) -> Value {
    json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": n})
}

fn one_rule(selection: Value) -> Value {
    json!({"rules": [rule(json!(1), selection)]})
}

#[test]
fn parses_the_template_fields() {
    let p = accepted(&json!({"rules": [
        {"rulePriority": 7, "description": "keep prod", "selection": {
            "tagStatus": "tagged", "tagPatternList": ["prod*", "*-rc*"], "storageClass": "standard",
            "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
            "countUnit": "days", "countNumber": 14}, "action": {"type": "expire"}},
        {"rulePriority": 40, "selection": {"tagStatus": "any", "countType": "sinceImagePulled",
            "countUnit": "days", "countNumber": 90}, "action": {"type": "expire"}}
    ]}));
    let priorities: Vec<u32> = p.rules().iter().map(|r| r.rule_priority()).collect();
    assert_eq!(
        priorities,
        [2, 7, 40],
        "rules come back in evaluation order"
    );
    let [untagged, prod, any] = p.rules() else {
        panic!("three rules expected")
    };
    assert_eq!(untagged.tag_status(), TagStatus::Untagged);
    assert_eq!(
        untagged.count(),
        CountCriterion::SinceImagePushed { days: 14 }
    );
    assert_eq!(untagged.description(), None);
    assert_eq!(prod.description(), Some("keep prod"));
    match prod.tag_selector() {
        TagSelector::Tagged(TagFilter::Patterns(p)) => {
            let texts: Vec<&str> = p.iter().map(|p| p.as_str()).collect();
            assert_eq!(texts, ["prod*", "*-rc*"]);
        }
        other => panic!("unexpected selector {other:?}"),
    }
    assert_eq!(
        prod.count(),
        CountCriterion::ImageCountMoreThan { count: 3 }
    );
    assert_eq!(any.count(), CountCriterion::SinceImagePulled { days: 90 });
    assert_eq!(any.tag_selector(), &TagSelector::Any);
}

#[test]
fn full_message_reads_like_ecr() {
    let err = LifecyclePolicy::parse(r#"{"rulez": []}"#).err();
    assert_eq!(
        err.as_ref().map(|e| e.to_string()),
        Some(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: \
             'Lifecycle policy validation failure: object has missing required properties \
             ([\"rules\"]) at /'"
                .to_owned()
        )
    );
    assert_eq!(
        err.map(|e| e.exception_name()),
        Some("InvalidParameterException")
    );
}

#[test]
fn refuses_text_that_is_not_a_policy_object() {
    for text in [
        "",
        "not json",
        "[]",
        "\"rules\"",
        "42",
        "null",
        "{\"rules\": [",
        "{} {}",
    ] {
        assert_eq!(
            LifecyclePolicy::parse(text),
            Err(LifecyclePolicyError::Validation(Violation::NotAPolicy)),
            "{text:?}"
        );
    }
}

#[test]
fn top_level_shape() {
    assert_eq!(
        violation(&json!({"rules": {}})),
        Violation::WrongType {
            at: "/rules".into(),
            found: JsonType::Object,
            expected: JsonType::Array
        }
    );
    assert_eq!(
        violation(&json!({"rules": []})),
        Violation::TooFewItems {
            at: "/rules".into(),
            min: 1,
            found: 0
        }
    );
    assert_eq!(
        violation(&json!({"rules": [rule(json!(1), untagged_count(1))], "version": 2})),
        Violation::UnknownProperties {
            at: "/".into(),
            names: vec!["version".into()]
        }
    );
    assert_eq!(
        violation(&json!({"rules": [5]})),
        Violation::WrongType {
            at: "/rules/0".into(),
            found: JsonType::Integer,
            expected: JsonType::Object
        }
    );
}

#[test]
fn rule_properties() {
    assert_eq!(
        violation(&json!({"rules": [{"description": "x"}]})),
        Violation::MissingProperties {
            at: "/rules/0".into(),
            names: vec!["action".into(), "rulePriority".into(), "selection".into()]
        }
    );
    let mut r = rule(json!(1), untagged_count(1));
    r["priority"] = json!(1);
    r["enabled"] = json!(true);
    assert_eq!(
        violation(&json!({ "rules": [r] })),
        Violation::UnknownProperties {
            at: "/rules/0".into(),
            names: vec!["enabled".into(), "priority".into()]
        }
    );
    let mut r = rule(json!(1), untagged_count(1));
    r["description"] = json!(null);
    assert_eq!(
        violation(&json!({ "rules": [r] })),
        Violation::WrongType {
            at: "/rules/0/description".into(),
            found: JsonType::Null,
            expected: JsonType::String
        }
    );
}

#[test]
fn rule_priority_is_a_positive_32_bit_integer() {
    let at = "/rules/0/rulePriority".to_owned();
    let cases = [
        (
            json!(0),
            Violation::BelowMinimum {
                at: at.clone(),
                minimum: 1,
                found: "0".into(),
            },
        ),
        (
            json!(-3),
            Violation::BelowMinimum {
                at: at.clone(),
                minimum: 1,
                found: "-3".into(),
            },
        ),
        (
            json!(2_147_483_648u64),
            Violation::AboveMaximum {
                at: at.clone(),
                maximum: 2_147_483_647,
                found: "2147483648".into(),
            },
        ),
        (
            json!(1.5),
            Violation::WrongType {
                at: at.clone(),
                found: JsonType::Number,
                expected: JsonType::Integer,
            },
        ),
        (
            json!("1"),
            Violation::WrongType {
                at: at.clone(),
                found: JsonType::String,
                expected: JsonType::Integer,
            },
        ),
        (
            json!(null),
            Violation::WrongType {
                at: at.clone(),
                found: JsonType::Null,
                expected: JsonType::Integer,
            },
        ),
    ];
    for (priority, expected) in cases {
        assert_eq!(
            violation(&json!({"rules": [rule(priority.clone(), untagged_count(1))]})),
            expected,
            "{priority}"
        );
    }
    accepted(&json!({"rules": [rule(json!(2_147_483_647u64), untagged_count(1))]}));
}

#[test]
fn selection_properties_and_enums() {
    assert_eq!(
        violation(&one_rule(json!({"tagStatus": "untagged"}))),
        Violation::MissingProperties {
            at: "/rules/0/selection".into(),
            names: vec!["countNumber".into(), "countType".into()]
        }
    );
    let mut s = untagged_count(1);
    s["tagFilter"] = json!("x");
    assert_eq!(
        violation(&one_rule(s)),
        Violation::UnknownProperties {
            at: "/rules/0/selection".into(),
            names: vec!["tagFilter".into()]
        }
    );
    let mut s = untagged_count(1);
    s["tagStatus"] = json!("TAGGED");
    assert_eq!(
        violation(&one_rule(s)),
        Violation::NotInEnum {
            at: "/rules/0/selection/tagStatus".into(),
            value: "TAGGED".into(),
            allowed: vec!["tagged".into(), "untagged".into(), "any".into()]
        }
    );
    let mut s = untagged_count(1);
    s["countType"] = json!("imageCountLessThan");
    assert!(matches!(
        violation(&one_rule(s)),
        Violation::NotInEnum { at, .. } if at == "/rules/0/selection/countType"
    ));
    let s = json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "hours", "countNumber": 1});
    assert_eq!(
        violation(&one_rule(s)),
        Violation::NotInEnum {
            at: "/rules/0/selection/countUnit".into(),
            value: "hours".into(),
            allowed: vec!["days".into()]
        }
    );
    let mut s = untagged_count(1);
    s["storageClass"] = json!("glacier");
    assert!(matches!(
        violation(&one_rule(s)),
        Violation::NotInEnum { at, .. } if at == "/rules/0/selection/storageClass"
    ));
}

#[test]
fn count_number_must_be_positive() {
    // lifecycle_policy_parameters: "Acceptable values are positive integers (0 is not an
    // accepted value)."
    assert_eq!(
        violation(&one_rule(untagged_count(0))),
        Violation::BelowMinimum {
            at: "/rules/0/selection/countNumber".into(),
            minimum: 1,
            found: "0".into()
        }
    );
    let s =
        json!({"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": "10"});
    assert!(matches!(
        violation(&one_rule(s)),
        Violation::WrongType {
            found: JsonType::String,
            ..
        }
    ));
}

#[test]
fn tagged_needs_exactly_one_non_empty_list() {
    let base = json!({"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 1});
    assert_eq!(
        violation(&one_rule(base.clone())),
        Violation::TagListRequired { rule_priority: 1 }
    );
    let mut both = base.clone();
    both["tagPrefixList"] = json!(["prod"]);
    both["tagPatternList"] = json!(["prod*"]);
    assert_eq!(
        violation(&one_rule(both)),
        Violation::BothTagLists { rule_priority: 1 }
    );
    let mut empty = base.clone();
    empty["tagPrefixList"] = json!([]);
    assert_eq!(
        violation(&one_rule(empty)),
        Violation::TooFewItems {
            at: "/rules/0/selection/tagPrefixList".into(),
            min: 1,
            found: 0
        }
    );
    let mut not_strings = base.clone();
    not_strings["tagPatternList"] = json!(["ok*", 3]);
    assert_eq!(
        violation(&one_rule(not_strings)),
        Violation::WrongType {
            at: "/rules/0/selection/tagPatternList/1".into(),
            found: JsonType::Integer,
            expected: JsonType::String
        }
    );
    let mut not_list = base.clone();
    not_list["tagPrefixList"] = json!("prod");
    assert!(matches!(
        violation(&one_rule(not_list)),
        Violation::WrongType {
            expected: JsonType::Array,
            ..
        }
    ));
    let mut prefixes = base;
    prefixes["tagPrefixList"] = json!(["prod", "v"]);
    let p = accepted(&one_rule(prefixes));
    assert_eq!(
        p.rules()[0].tag_selector(),
        &TagSelector::Tagged(TagFilter::Prefixes(vec!["prod".into(), "v".into()]))
    );
}

#[test]
fn untagged_and_any_take_no_tag_lists() {
    for (status, list) in [
        ("untagged", "tagPrefixList"),
        ("untagged", "tagPatternList"),
        ("any", "tagPrefixList"),
        ("any", "tagPatternList"),
    ] {
        let mut s =
            json!({"tagStatus": status, "countType": "imageCountMoreThan", "countNumber": 1});
        s[list] = json!(["prod"]);
        assert_eq!(
            violation(&one_rule(s)),
            Violation::TagListNotAllowed {
                rule_priority: 1,
                tag_status: status.into()
            },
            "{status} with {list}"
        );
    }
}

#[test]
fn patterns_allow_at_most_four_wildcards() {
    // lifecycle_policy_parameters, "Tag pattern list".
    accepted(&one_rule(
        json!({"tagStatus": "tagged", "tagPatternList": ["*test*1*2*3", "test*1*2*3*"],
        "countType": "imageCountMoreThan", "countNumber": 1}),
    ));
    assert_eq!(
        violation(&one_rule(
            json!({"tagStatus": "tagged", "tagPatternList": ["ok", "test*1*2*3*4*5*6"],
            "countType": "imageCountMoreThan", "countNumber": 1})
        )),
        Violation::TooManyWildcards {
            at: "/rules/0/selection/tagPatternList/1".into(),
            pattern: "test*1*2*3*4*5*6".into(),
            wildcards: 6
        }
    );
}

#[test]
fn count_unit_goes_with_since_count_types_only() {
    assert_eq!(
        violation(&one_rule(
            json!({"tagStatus": "untagged", "countType": "imageCountMoreThan",
            "countUnit": "days", "countNumber": 5})
        )),
        Violation::CountUnitNotAllowed { rule_priority: 1 }
    );
    for count_type in ["sinceImagePushed", "sinceImagePulled"] {
        assert_eq!(
            violation(&one_rule(
                json!({"tagStatus": "untagged", "countType": count_type, "countNumber": 5})
            )),
            Violation::CountUnitRequired {
                rule_priority: 1,
                count_type: count_type.into()
            }
        );
    }
    // A Terraform module emitting `"countUnit": null` is refused, as ECR refuses it.
    assert_eq!(
        violation(&one_rule(
            json!({"tagStatus": "untagged", "countType": "imageCountMoreThan",
            "countUnit": null, "countNumber": 5})
        )),
        Violation::WrongType {
            at: "/rules/0/selection/countUnit".into(),
            found: JsonType::Null,
            expected: JsonType::String
        }
    );
}

#[test]
fn action_is_expire() {
    let with_action = |action: Value| json!({"rules": [{"rulePriority": 1, "selection": untagged_count(1), "action": action}]});
    assert_eq!(
        violation(&with_action(json!({}))),
        Violation::MissingProperties {
            at: "/rules/0/action".into(),
            names: vec!["type".into()]
        }
    );
    assert_eq!(
        violation(&with_action(json!({"type": "delete"}))),
        Violation::NotInEnum {
            at: "/rules/0/action/type".into(),
            value: "delete".into(),
            allowed: vec!["expire".into(), "transition".into()]
        }
    );
    assert_eq!(
        violation(&with_action(
            json!({"type": "expire", "targetStorageClass": null})
        )),
        Violation::TargetStorageClassNotAllowed {
            at: "/rules/0/action/targetStorageClass".into()
        }
    );
    assert_eq!(
        violation(&with_action(json!({"type": "expire", "extra": 1}))),
        Violation::UnknownProperties {
            at: "/rules/0/action".into(),
            names: vec!["extra".into()]
        }
    );
    assert!(matches!(
        violation(&with_action(json!("expire"))),
        Violation::WrongType {
            expected: JsonType::Object,
            ..
        }
    ));
}

#[test]
fn archive_features_are_refused_with_a_clear_message() {
    // lifecycle_policy_examples, "Archive examples" and "Filtering on archive transition
    // time": valid on ECR, not supported by berth.
    let transition = json!({"rules": [{"rulePriority": 1, "description": "Archive images not pulled in 90 days",
        "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90},
        "action": {"type": "transition", "targetStorageClass": "archive"}}]});
    let expire_archived = json!({"rules": [{"rulePriority": 1,
        "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned",
            "countUnit": "days", "countNumber": 365},
        "action": {"type": "expire"}}]});
    let transitioned_only = json!({"rules": [{"rulePriority": 1,
        "selection": {"tagStatus": "any", "countType": "sinceImageTransitioned", "countUnit": "days", "countNumber": 365},
        "action": {"type": "expire"}}]});
    for (policy, at) in [
        (&transition, "/rules/0/action/type"),
        (&expire_archived, "/rules/0/selection/storageClass"),
        (&transitioned_only, "/rules/0/selection/countType"),
    ] {
        let v = violation(policy);
        assert!(
            matches!(&v, Violation::ArchiveNotSupported { at: a, .. } if a == at),
            "{v:?}"
        );
        let message = LifecyclePolicyError::from(v).to_string();
        assert!(
            message.contains("berth does not support archive storage"),
            "{message}"
        );
        assert!(message.starts_with("Invalid parameter at 'LifecyclePolicyText'"));
    }
}

#[test]
fn since_image_pulled_with_expire_is_a_berth_extension() {
    let p = accepted(&one_rule(
        json!({"tagStatus": "tagged", "tagPatternList": ["feature-*"],
        "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 30}),
    ));
    assert_eq!(
        p.rules()[0].count(),
        CountCriterion::SinceImagePulled { days: 30 }
    );
}

#[test]
fn rule_priorities_are_unique() {
    let policy = json!({"rules": [
        rule(json!(3), untagged_count(1)),
        rule(json!(3), json!({"tagStatus": "tagged", "tagPrefixList": ["a"], "countType": "imageCountMoreThan", "countNumber": 1}))
    ]});
    assert_eq!(
        violation(&policy),
        Violation::DuplicateRulePriority { rule_priority: 3 }
    );
}

#[test]
fn any_rule_must_have_the_highest_priority() {
    let any = json!({"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5});
    let tagged = json!({"tagStatus": "tagged", "tagPrefixList": ["a"], "countType": "imageCountMoreThan", "countNumber": 1});
    let v = violation(
        &json!({"rules": [rule(json!(10), tagged.clone()), rule(json!(2), any.clone())]}),
    );
    assert_eq!(
        v,
        Violation::AnyRuleNotLast {
            rule_priority: 2,
            later_priority: 10
        }
    );
    assert!(v
        .to_string()
        .starts_with("Rule for tagStatus=ANY must have the lowest priority per storage class"));
    // Two `any` rules: one of them cannot be last.
    assert_eq!(
        violation(&json!({"rules": [rule(json!(1), any.clone()), rule(json!(2), any.clone())]})),
        Violation::AnyRuleNotLast {
            rule_priority: 1,
            later_priority: 2
        }
    );
    // Non-contiguous priorities are fine.
    accepted(&json!({"rules": [rule(json!(100), any), rule(json!(5), tagged)]}));
}

#[test]
fn only_one_rule_may_select_untagged_images() {
    let v = violation(&json!({"rules": [
        rule(json!(1), untagged_count(1)),
        rule(json!(2), json!({"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 3}))
    ]}));
    assert_eq!(
        v,
        Violation::MultipleUntaggedRules {
            first: 1,
            second: 2
        }
    );
    assert!(v
        .to_string()
        .starts_with("Only one rule can select Untagged images per storage class."));
}

#[test]
fn tag_prefix_sets_are_unique() {
    let prefixes = |list: Value| json!({"tagStatus": "tagged", "tagPrefixList": list, "countType": "imageCountMoreThan", "countNumber": 1});
    assert_eq!(
        violation(&json!({"rules": [
            rule(json!(1), prefixes(json!(["prod", "v"]))),
            rule(json!(2), prefixes(json!(["beta"]))),
            rule(json!(4), prefixes(json!(["v", "prod"])))
        ]})),
        Violation::DuplicateTagPrefixSet {
            first: 1,
            second: 4
        }
    );
    // Overlapping but different sets are allowed (the guide's Example A/B use prod, beta).
    accepted(&json!({"rules": [
        rule(json!(1), prefixes(json!(["prod"]))),
        rule(json!(2), prefixes(json!(["prod", "v"])))
    ]}));
}

#[test]
fn text_length_helper() {
    assert_eq!(check_policy_text_length(&"x".repeat(100)), Ok(()));
    assert_eq!(check_policy_text_length(&"x".repeat(30_720)), Ok(()));
    assert_eq!(
        check_policy_text_length(&"x".repeat(99)),
        Err(LifecyclePolicyError::TextTooShort {
            length: 99,
            min: 100
        })
    );
    assert_eq!(
        check_policy_text_length(&"x".repeat(30_721)),
        Err(LifecyclePolicyError::TextTooLong {
            length: 30_721,
            max: 30_720
        })
    );
    // Characters, not bytes.
    assert_eq!(check_policy_text_length(&"é".repeat(100)), Ok(()));
    let too_short = check_policy_text_length("{}").err().map(|e| e.to_string());
    assert_eq!(
        too_short.as_deref(),
        Some(
            "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: \
             'Member must have length greater than or equal to 100'"
        )
    );
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-zA-Z*]{0,6}".prop_map(Value::from),
        prop_oneof![
            Just("tagged"),
            Just("untagged"),
            Just("any"),
            Just("expire"),
            Just("days"),
            Just("imageCountMoreThan"),
            Just("sinceImagePushed")
        ]
        .prop_map(Value::from),
    ];
    let key = prop_oneof![
        Just("rules"),
        Just("rulePriority"),
        Just("selection"),
        Just("action"),
        Just("type"),
        Just("tagStatus"),
        Just("tagPrefixList"),
        Just("tagPatternList"),
        Just("countType"),
        Just("countUnit"),
        Just("countNumber"),
        Just("description"),
        Just("x")
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..5).prop_map(|m| {
                Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(text in "\\PC{0,200}") {
        let _ = LifecyclePolicy::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_policy_shaped_json(value in arb_json()) {
        let _ = LifecyclePolicy::from_json(&value);
        let _ = LifecyclePolicy::from_json(&json!({"rules": [value]}));
    }

    #[test]
    fn accepted_policies_have_unique_sorted_priorities(
        priorities in prop::collection::btree_set(1u32..1000, 1..6),
        counts in prop::collection::vec(1u32..100, 6),
    ) {
        let rules: Vec<Value> = priorities.iter().rev().enumerate().map(|(i, p)| {
            rule(json!(p), json!({"tagStatus": "tagged", "tagPrefixList": [format!("p{i}")],
                "countType": "imageCountMoreThan", "countNumber": counts[i]}))
        }).collect();
        let policy = accepted(&json!({ "rules": rules }));
        let got: Vec<u32> = policy.rules().iter().map(|r| r.rule_priority()).collect();
        let want: Vec<u32> = priorities.into_iter().collect();
        prop_assert_eq!(got, want);
    }
}
