//! Every worked example of the ECR User Guide page "Examples of lifecycle policies in
//! Amazon ECR" (lifecycle_policy_examples), as a test. Repository contents and expected
//! results are the guide's; examples without a repository table get one that exercises
//! the policy. The guide's older revision (tagPrefixList instead of tagPatternList in the
//! multi-rule examples) is tested too: both must give the guide's result.

use berth_lifecycle::{
    evaluate, preview, LifecycleImage, LifecyclePolicy, LifecyclePolicyError, Violation,
    MILLIS_PER_DAY,
};

const NOW: i64 = 1_750_000_000_000;

fn days_ago(days: i64) -> i64 {
    NOW - days * MILLIS_PER_DAY
}

/// An image named by a letter; its digest sorts with the name.
fn image(name: &str, tags: &[&str], pushed_days_ago: i64) -> LifecycleImage {
    LifecycleImage::new(
        format!("sha256:{name}"),
        tags.iter().map(|t| (*t).to_owned()).collect(),
        days_ago(pushed_days_ago),
    )
}

fn policy(text: &str) -> LifecyclePolicy {
    match LifecyclePolicy::parse(text) {
        Ok(p) => p,
        Err(e) => panic!("guide policy refused: {e}\n{text}"),
    }
}

/// (image name, rule priority) of every expired image, oldest first.
fn expired(policy_text: &str, images: &[LifecycleImage]) -> Vec<(String, u32)> {
    let p = policy(policy_text);
    let result: Vec<(String, u32)> = evaluate(&p, images, NOW)
        .iter()
        .map(|e| {
            let name = images[e.position].digest.trim_start_matches("sha256:");
            (name.to_owned(), e.rule_priority)
        })
        .collect();
    // The preview must always say the same thing as the run.
    let previewed: Vec<(String, u32)> = preview(&p, images, NOW)
        .preview_results
        .iter()
        .map(|r| {
            let name = r.image_digest.trim_start_matches("sha256:");
            (name.to_owned(), r.applied_rule_priority)
        })
        .collect();
    assert_eq!(result, previewed, "preview differs from run");
    result
}

fn names(expired: &[(String, u32)]) -> Vec<&str> {
    expired.iter().map(|(n, _)| n.as_str()).collect()
}

// ---- "Filtering on image age" -------------------------------------------------------

#[test]
fn filtering_on_image_age() {
    // Current guide: tagged prod* older than 14 days.
    let text = r#"{
        "rules": [{
            "rulePriority": 1,
            "description": "Expire images older than 14 days",
            "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*"],
                          "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
            "action": {"type": "expire"}
        }]
    }"#;
    let images = [
        image("A", &["prod-1"], 30),
        image("B", &["production"], 15),
        image("C", &["prod-3"], 14), // exactly 14 days: not older
        image("D", &["prod-4"], 2),
        image("E", &["dev-1"], 40), // not selected
        image("F", &[], 40),        // not selected
    ];
    assert_eq!(expired(text, &images), [("A".into(), 1), ("B".into(), 1)]);
}

#[test]
fn filtering_on_image_age_untagged_revision() {
    // Older guide revision: untagged images older than 14 days.
    let text = r#"{"rules": [{"rulePriority": 1, "description": "Expire images older than 14 days",
        "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 14},
        "action": {"type": "expire"}}]}"#;
    let images = [
        image("A", &[], 20),
        image("B", &["prod"], 20),
        image("C", &[], 3),
    ];
    assert_eq!(names(&expired(text, &images)), ["A"]);
}

// ---- "Filtering on image count" -----------------------------------------------------

#[test]
fn filtering_on_image_count() {
    let text = r#"{"rules": [{"rulePriority": 1, "description": "Keep only one untagged image, expire all others",
        "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "expire"}}]}"#;
    let images = [
        image("A", &[], 5),
        image("B", &[], 4),
        image("C", &["latest"], 3),
        image("D", &[], 2),
    ];
    assert_eq!(expired(text, &images), [("A".into(), 1), ("B".into(), 1)]);
}

// ---- "Filtering on multiple rules" --------------------------------------------------

fn multiple_rules_repository() -> Vec<LifecycleImage> {
    vec![
        image("A", &["beta-1", "prod-1"], 10),
        image("B", &["beta-2", "prod-2"], 9),
        image("C", &["beta-3"], 8),
    ]
}

fn two_count_rules(list: &str, first: &str, second: &str) -> String {
    format!(
        r#"{{"rules": [
        {{"rulePriority": 1, "description": "Rule 1",
          "selection": {{"tagStatus": "tagged", "{list}": ["{first}"], "countType": "imageCountMoreThan", "countNumber": 1}},
          "action": {{"type": "expire"}}}},
        {{"rulePriority": 2, "description": "Rule 2",
          "selection": {{"tagStatus": "tagged", "{list}": ["{second}"], "countType": "imageCountMoreThan", "countNumber": 1}},
          "action": {{"type": "expire"}}}}]}}"#
    )
}

#[test]
fn multiple_rules_example_a() {
    // Rule 1 (prod) marks A. Rule 2 (beta) would mark A and B, but B matches Rule 1's
    // tagging requirements and so is protected. Result: Image A is expired.
    let images = multiple_rules_repository();
    let want = [("A".to_owned(), 1)];
    assert_eq!(
        expired(
            &two_count_rules("tagPatternList", "prod*", "beta*"),
            &images
        ),
        want
    );
    assert_eq!(
        expired(&two_count_rules("tagPrefixList", "prod", "beta"), &images),
        want
    );
}

#[test]
fn multiple_rules_example_b() {
    // Same repository, priorities swapped: Rule 1 (beta) sees all three images and marks
    // A and B; Rule 2 (prod) has nothing left to act on. Result: A and B are expired.
    // Image B is expired although Rule 2 alone would keep it (it is the newest prod
    // image): a multi-tag image follows the first rule whose tag list it matches.
    let images = multiple_rules_repository();
    let want = [("A".to_owned(), 1), ("B".to_owned(), 1)];
    assert_eq!(
        expired(
            &two_count_rules("tagPatternList", "beta*", "prod*"),
            &images
        ),
        want
    );
    assert_eq!(
        expired(&two_count_rules("tagPrefixList", "beta", "prod"), &images),
        want
    );
}

// ---- "Filtering on multiple tags in a single rule" ----------------------------------

#[test]
fn multiple_tags_single_rule_example_a() {
    // Images must match all listed patterns: Rule 1 sees C and F, and C is older than
    // five days. Result: Image C is expired.
    let images = [
        image("A", &["alpha-1"], 12),
        image("B", &["beta-1"], 11),
        image("C", &["alpha-2", "beta-2"], 10),
        image("D", &["alpha-3"], 4),
        image("E", &["beta-3"], 3),
        image("F", &["alpha-4", "beta-4"], 2),
    ];
    for (list, entries) in [
        ("tagPatternList", r#"["alpha*", "beta*"]"#),
        ("tagPrefixList", r#"["alpha", "beta"]"#),
    ] {
        let text = format!(
            r#"{{"rules": [{{"rulePriority": 1, "description": "Rule 1",
            "selection": {{"tagStatus": "tagged", "{list}": {entries}, "countType": "sinceImagePushed",
                           "countNumber": 5, "countUnit": "days"}},
            "action": {{"type": "expire"}}}}]}}"#
        );
        assert_eq!(expired(&text, &images), [("C".to_owned(), 1)], "{list}");
    }
}

#[test]
fn multiple_tags_single_rule_example_b() {
    // Tags are not exclusive: all three images carry alpha and beta tags; keep the newest.
    // Result: Images A and B are expired.
    let images = [
        image("A", &["alpha-1", "beta-1", "gamma-1"], 10),
        image("B", &["alpha-2", "beta-2"], 9),
        image("C", &["alpha-3", "beta-3", "gamma-2"], 8),
    ];
    for (list, entries) in [
        ("tagPatternList", r#"["alpha*", "beta*"]"#),
        ("tagPrefixList", r#"["alpha", "beta"]"#),
    ] {
        let text = format!(
            r#"{{"rules": [{{"rulePriority": 1, "description": "Rule 1",
            "selection": {{"tagStatus": "tagged", "{list}": {entries}, "countType": "imageCountMoreThan", "countNumber": 1}},
            "action": {{"type": "expire"}}}}]}}"#
        );
        assert_eq!(names(&expired(&text, &images)), ["A", "B"], "{list}");
    }
}

// ---- "Filtering on all images" ------------------------------------------------------

#[test]
fn all_images_example_a() {
    // Rule 1 (any, keep one) sees A–D and expires all but the newest.
    let text = r#"{"rules": [{"rulePriority": 1, "description": "Rule 1",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1},
        "action": {"type": "expire"}}]}"#;
    let images = [
        image("A", &["alpha-1"], 4),
        image("B", &["beta-1"], 3),
        image("C", &[], 2),
        image("D", &["alpha-2"], 1),
    ];
    assert_eq!(
        expired(text, &images),
        [("A".into(), 1), ("B".into(), 1), ("C".into(), 1)]
    );
}

fn all_images_example_b_repository() -> Vec<LifecycleImage> {
    // D and E were both "pushed 1 day ago"; the guide's outcome (Rule 3 keeps E, expires
    // D) needs E to count as the newer one. With equal push times berth breaks the tie
    // by digest, and E's digest sorts after D's.
    vec![
        image("A", &["alpha-1", "beta-1"], 4),
        image("B", &[], 3),
        image("C", &["alpha-2"], 2),
        image("D", &["git hash"], 1),
        image("E", &[], 1),
    ]
}

fn all_images_example_b_policy(list: &str, entry: &str) -> String {
    format!(
        r#"{{"rules": [
        {{"rulePriority": 1, "description": "Rule 1",
          "selection": {{"tagStatus": "tagged", "{list}": ["{entry}"], "countType": "imageCountMoreThan", "countNumber": 1}},
          "action": {{"type": "expire"}}}},
        {{"rulePriority": 2, "description": "Rule 2",
          "selection": {{"tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1}},
          "action": {{"type": "expire"}}}},
        {{"rulePriority": 3, "description": "Rule 3",
          "selection": {{"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}},
          "action": {{"type": "expire"}}}}]}}"#
    )
}

#[test]
fn all_images_example_b() {
    // Rule 1 (alpha) identifies A and C, marks A. Rule 2 (untagged, > 1 day) identifies B
    // and E, marks B. Rule 3 (any, keep one) identifies A–E, keeps the newest (E) and
    // would mark the rest, but A, B, C and E were identified by higher priority rules:
    // it marks D. Result: Images A, B, and D are expired.
    let want = [
        ("A".to_owned(), 1),
        ("B".to_owned(), 2),
        ("D".to_owned(), 3),
    ];
    let images = all_images_example_b_repository();
    assert_eq!(
        expired(
            &all_images_example_b_policy("tagPatternList", "alpha*"),
            &images
        ),
        want
    );
    assert_eq!(
        expired(
            &all_images_example_b_policy("tagPrefixList", "alpha"),
            &images
        ),
        want
    );
    // Listing the images in another order changes nothing.
    let mut reversed = images.clone();
    reversed.reverse();
    assert_eq!(
        expired(
            &all_images_example_b_policy("tagPatternList", "alpha*"),
            &reversed
        ),
        want
    );
    // And with E pushed a minute after D, rather than tied, the result is the same.
    let mut spaced = images;
    spaced[4].pushed_at += 60_000;
    assert_eq!(
        expired(
            &all_images_example_b_policy("tagPatternList", "alpha*"),
            &spaced
        ),
        want
    );
}

// ---- "Filtering on last pulled time" and the archive examples -----------------------

fn refused_for_archive(text: &str) -> String {
    match LifecyclePolicy::parse(text) {
        Err(LifecyclePolicyError::Validation(v @ Violation::ArchiveNotSupported { .. })) => {
            LifecyclePolicyError::from(v).to_string()
        }
        other => panic!("expected an archive refusal, got {other:?}"),
    }
}

#[test]
fn filtering_on_last_pulled_time_is_refused_because_it_transitions() {
    let message = refused_for_archive(
        r#"{"rules": [{"rulePriority": 1, "description": "Archive images not pulled in 90 days",
        "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90},
        "action": {"type": "transition", "targetStorageClass": "archive"}}]}"#,
    );
    assert!(message.contains("berth does not support archive storage"));
}

#[test]
fn last_pulled_time_with_expire_works_on_berth() {
    // The same selection with `expire`: ECR requires `transition` here; berth, having no
    // archive tier, expires instead. Never-pulled images age from their push time.
    let text = r#"{"rules": [{"rulePriority": 1, "description": "Expire images not pulled in 90 days",
        "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90},
        "action": {"type": "expire"}}]}"#;
    let images = [
        image("A", &["v1"], 200).pulled_at(days_ago(100)),
        image("B", &["v2"], 200).pulled_at(days_ago(10)),
        image("C", &[], 95),
        image("D", &["v3"], 30),
    ];
    assert_eq!(names(&expired(text, &images)), ["A", "C"]);
}

#[test]
fn filtering_on_archive_transition_time_is_refused() {
    refused_for_archive(
        r#"{"rules": [{"rulePriority": 1, "description": "Expire images archived for more than 365 days",
        "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned",
                      "countUnit": "days", "countNumber": 365},
        "action": {"type": "expire"}}]}"#,
    );
}

#[test]
fn archive_examples_are_refused() {
    // "Archiving images older than a specified number of days"
    refused_for_archive(
        r#"{"rules": [{"rulePriority": 1, "description": "Archive production images older than 30 days",
        "selection": {"tagStatus": "tagged", "tagPatternList": ["prod*"], "countType": "sinceImagePushed",
                      "countUnit": "days", "countNumber": 30},
        "action": {"type": "transition", "targetStorageClass": "archive"}}]}"#,
    );
    // "Archiving images not pulled in a specified number of days"
    refused_for_archive(
        r#"{"rules": [{"rulePriority": 1, "description": "Archive images not pulled in 90 days",
        "selection": {"tagStatus": "any", "countType": "sinceImagePulled", "countUnit": "days", "countNumber": 90},
        "action": {"type": "transition", "targetStorageClass": "archive"}}]}"#,
    );
    // "Combining archive and expire rules"
    refused_for_archive(
        r#"{"rules": [
        {"rulePriority": 1, "description": "Archive images older than 30 days",
         "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30},
         "action": {"type": "transition", "targetStorageClass": "archive"}},
        {"rulePriority": 2, "description": "Expire images archived for more than 365 days",
         "selection": {"tagStatus": "any", "storageClass": "archive", "countType": "sinceImageTransitioned",
                       "countUnit": "days", "countNumber": 365},
         "action": {"type": "expire"}}]}"#,
    );
}
