//! The policy the user's Terraform (`seed/terraform/main.tf`, `aws_ecr_lifecycle_policy`
//! `cleanup_policy`) attaches: keep the last 10 `prod` images; expire untagged images
//! older than 7 days. The text is what Terraform's `jsonencode` sends (keys sorted).

use berth_lifecycle::{
    check_policy_text_length, evaluate, preview, LifecycleImage, LifecyclePolicy, MILLIS_PER_DAY,
};

const SEED_POLICY: &str = r#"{"rules":[{"action":{"type":"expire"},"description":"Keep last 10 'prod' images","rulePriority":1,"selection":{"countNumber":10,"countType":"imageCountMoreThan","tagPrefixList":["prod"],"tagStatus":"tagged"}},{"action":{"type":"expire"},"description":"Delete untagged images older than 7 days","rulePriority":2,"selection":{"countNumber":7,"countType":"sinceImagePushed","countUnit":"days","tagStatus":"untagged"}}]}"#;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn seed() -> LifecyclePolicy {
    if let Err(e) = check_policy_text_length(SEED_POLICY) {
        panic!("seed policy length refused: {e}");
    }
    match LifecyclePolicy::parse(SEED_POLICY) {
        Ok(p) => p,
        Err(e) => panic!("seed policy refused: {e}"),
    }
}

fn image(name: &str, tags: &[&str], pushed_at: i64) -> LifecycleImage {
    LifecycleImage::new(
        name,
        tags.iter().map(|t| (*t).to_owned()).collect(),
        pushed_at,
    )
}

fn expired_at(images: &[LifecycleImage], now: i64) -> Vec<(&str, u32)> {
    evaluate(&seed(), images, now)
        .iter()
        .map(|e| (images[e.position].digest.as_str(), e.rule_priority))
        .collect()
}

/// 15 prod releases pushed a day apart (prod-1 oldest, 20 days before `now`), untagged
/// images of various ages, and tagged images the policy must never touch.
fn repository(now: i64) -> Vec<LifecycleImage> {
    let mut images: Vec<LifecycleImage> = (1..=15)
        .map(|i| {
            image(
                &format!("prod-{i:02}"),
                &[&format!("prod-{i}")],
                now - (21 - i) * MILLIS_PER_DAY,
            )
        })
        .collect();
    images.extend([
        image("untagged-30d", &[], now - 30 * MILLIS_PER_DAY),
        image("untagged-8d", &[], now - 8 * MILLIS_PER_DAY),
        image("untagged-7d-plus-1ms", &[], now - 7 * MILLIS_PER_DAY - 1),
        image("untagged-7d-exactly", &[], now - 7 * MILLIS_PER_DAY),
        image("untagged-6d-23h", &[], now - 7 * MILLIS_PER_DAY + HOUR),
        image("untagged-1h", &[], now - HOUR),
        // A platform manifest of a multi-arch index: untagged, old, but in use.
        image("index-child-40d", &[], now - 40 * MILLIS_PER_DAY).referenced_by_manifest_list(),
        // Tagged images outside rule 1's selection: never expired, however old.
        image("dev-old", &["dev-1"], now - 300 * MILLIS_PER_DAY),
        image("latest-old", &["latest"], now - 90 * MILLIS_PER_DAY),
        image("v1-prod", &["v1-prod"], now - 60 * MILLIS_PER_DAY),
    ]);
    images
}

#[test]
fn seed_policy_parses_as_two_rules() {
    let p = seed();
    assert_eq!(p.rules().len(), 2);
    assert_eq!(
        p.rules()[0].description(),
        Some("Keep last 10 'prod' images")
    );
}

#[test]
fn keeps_newest_ten_prod_and_expires_untagged_older_than_seven_days() {
    let now = T0;
    let images = repository(now);
    assert_eq!(
        expired_at(&images, now),
        [
            ("untagged-30d", 2),
            ("prod-01", 1),
            ("prod-02", 1),
            ("prod-03", 1),
            ("prod-04", 1),
            ("prod-05", 1),
            ("untagged-8d", 2),
            ("untagged-7d-plus-1ms", 2),
        ]
    );
}

#[test]
fn moving_the_clock_expires_untagged_images_as_they_age() {
    let pushed_at = T0;
    let images = repository(pushed_at);
    // Two hours later the 6d23h image is past seven days and the exact-7d one too.
    let later = pushed_at + 2 * HOUR;
    let untagged: Vec<&str> = expired_at(&images, later)
        .into_iter()
        .filter(|(_, rule)| *rule == 2)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        untagged,
        [
            "untagged-30d",
            "untagged-8d",
            "untagged-7d-plus-1ms",
            "untagged-7d-exactly",
            "untagged-6d-23h"
        ]
    );
    // A week later the one-hour-old image goes too; the index child never does.
    let week = pushed_at + 7 * MILLIS_PER_DAY;
    let expired = expired_at(&images, week);
    assert!(expired.contains(&("untagged-1h", 2)));
    assert!(!expired.iter().any(|(n, _)| *n == "index-child-40d"));
    // The prod count does not depend on time.
    assert_eq!(expired.iter().filter(|(_, rule)| *rule == 1).count(), 5);
}

#[test]
fn successive_runs_keep_exactly_ten_prod_images() {
    let mut now = T0;
    let mut images = repository(now);
    let mut prod_counter = 15;
    for _day in 0..5 {
        // A run: delete what the policy expires.
        let expired: std::collections::HashSet<usize> = evaluate(&seed(), &images, now)
            .iter()
            .map(|e| e.position)
            .collect();
        images = images
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !expired.contains(i))
            .map(|(_, img)| img)
            .collect();
        let prod: Vec<&str> = images
            .iter()
            .filter(|i| i.tags.iter().any(|t| t.starts_with("prod")))
            .map(|i| i.digest.as_str())
            .collect();
        assert_eq!(prod.len(), 10, "after run at {now}: {prod:?}");
        // The run leaves nothing further to do.
        assert!(evaluate(&seed(), &images, now).is_empty());
        // A day passes, two more releases and a dangling build are pushed.
        now += MILLIS_PER_DAY;
        for _ in 0..2 {
            prod_counter += 1;
            images.push(image(
                &format!("prod-{prod_counter:02}"),
                &[&format!("prod-{prod_counter}")],
                now,
            ));
        }
        images.push(image(&format!("build-{now}"), &[], now));
    }
    // Twelve releases now: the next run expires the two oldest, prod-14 and prod-15
    // (prod-24 and prod-25 were pushed last), and keeps prod-16..=prod-25.
    let mut latest_run: Vec<&str> = evaluate(&seed(), &images, now)
        .iter()
        .filter(|e| e.rule_priority == 1)
        .map(|e| images[e.position].digest.as_str())
        .collect();
    latest_run.sort_unstable();
    assert_eq!(prod_counter, 25);
    assert_eq!(latest_run, ["prod-14", "prod-15"]);
}

#[test]
fn prefix_prod_also_selects_production_and_multi_tag_images() {
    // tagPrefixList ["prod"] selects any image with a tag starting with "prod", whatever
    // its other tags: an image tagged both "latest" and "prod-9" counts as a prod image.
    let now = T0;
    let mut images: Vec<LifecycleImage> = (0..11)
        .map(|i| {
            image(
                &format!("rel-{i:02}"),
                &[&format!("production-{i}")],
                now - (20 - i) * MILLIS_PER_DAY,
            )
        })
        .collect();
    images.push(image("both", &["latest", "prod-9"], now));
    assert_eq!(expired_at(&images, now), [("rel-00", 1), ("rel-01", 1)]);
}

#[test]
fn preview_lists_what_a_run_expires() {
    let now = T0;
    let images = repository(now);
    let p = preview(&seed(), &images, now);
    assert_eq!(p.summary.expiring_image_total_count, 8);
    let digests: Vec<&str> = p
        .preview_results
        .iter()
        .map(|r| r.image_digest.as_str())
        .collect();
    let run: Vec<&str> = expired_at(&images, now)
        .into_iter()
        .map(|(d, _)| d)
        .collect();
    assert_eq!(digests, run);
}
