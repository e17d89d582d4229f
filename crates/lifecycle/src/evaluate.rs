//! Evaluating a lifecycle policy over a repository's images.
//!
//! Implements ECR User Guide, "Lifecycle policy evaluation rules" (LifecyclePolicies),
//! checked against every worked example in lifecycle_policy_examples (see
//! `tests/guide_examples.rs`). The guide's rules and how each is encoded:
//!
//! 1. "All rules are evaluated at the same time, regardless of rule priority. After all
//!    rules are evaluated, they are then applied based on rule priority." — each rule
//!    identifies its images and marks candidates on its own, over all images.
//! 2. "An image is expired … by exactly one or zero rules." and
//!    3. "An image that matches the tagging requirements of a rule cannot be expired … by a
//!    rule with a lower priority." — each image belongs to the *first* rule (ascending
//!    `rulePriority`) whose tag selection it matches; only that rule may expire it. If that
//!    rule keeps it, it is kept, whatever later rules think (Examples "Filtering on
//!    multiple rules" A: Image B is protected by Rule 1 although Rule 2 marks it).
//!    This is *not* "an image with several tags is kept if any rule would keep it": the
//!    converse also holds, and the guide's Example B expires Image B (`beta-2`, `prod-2`)
//!    under Rule 1 (`beta`, keep 1) although Rule 2 (`prod`, keep 1) would keep it. A
//!    multi-tag image is kept exactly when the first rule whose tag list it matches keeps
//!    it (or no rule matches it).
//! 4. "Rules can never mark images that are marked by higher priority rules, but can still
//!    identify them as if they haven't been expired." — a rule's `imageCountMoreThan`
//!    counts every image it identifies, including images that belong to, or are expired
//!    by, earlier rules ("Filtering on all images" Example B: Rule 3 keeps one image out of
//!    A–E, where E is the newest, and so expires D, even though A, B, C and E belong to
//!    Rules 1 and 2).
//! 5. "With `countType = imageCountMoreThan`, images are sorted from youngest to oldest
//!    based on `pushed_at_time` and then all images greater than the specified count are
//!    expired." Ties in push time are broken by digest (the larger digest counts as
//!    newer), so the result does not depend on the order the caller lists images in —
//!    a preview and a later run over the same repository agree.
//! 6. "With `countType = sinceImagePushed`, all images whose `pushed_at_time` is older than
//!    the specified number of days … are expired." Older means strictly: an image pushed
//!    exactly N days ago is kept ("Filtering on all images" Example B keeps image E,
//!    pushed 1 day ago, under a 1-day untagged rule). A day is 86,400,000 ms.
//! 7. `sinceImagePulled`: "all images whose `last_recorded_pulltime` is older than the
//!    specified number of days … If an image was never pulled, the image's
//!    `pushed_at_time` is used instead". berth uses the later of the two times, so an image
//!    re-pushed after its last pull is not treated as idle since that pull.
//! 8. "If an image is referenced by a manifest list, it cannot be expired … without the
//!    manifest list being deleted … first." — such an image is identified and counted like
//!    any other, but never expired ([`LifecycleImage::referenced_by_manifest_list`]).
//! 9. "Expiration is always ordered by `pushed_at_time` and always expires older images
//!    before newer ones." — the result lists images oldest first.
//!
//! Cost: one sort of the images (O(n log n)) and one pass per rule over the sorted
//! images (O(rules × n × tags)), no allocation per image beyond the result.

use std::cmp::Ordering;

use crate::policy::{CountCriterion, LifecyclePolicy};

/// Milliseconds in one `countUnit: days`.
pub const MILLIS_PER_DAY: i64 = 86_400_000;

/// What the evaluator needs to know about one image (one manifest digest) in a repository.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LifecycleImage {
    /// The manifest digest (`sha256:…`).
    pub digest: String,
    /// Tags currently pointing at the digest; empty for an untagged image.
    pub tags: Vec<String>,
    /// When the image was pushed, unix milliseconds.
    pub pushed_at: i64,
    /// When the image was last pulled, unix milliseconds; `None` if never.
    pub last_pulled_at: Option<i64>,
    /// True while a manifest list / image index in the repository references this image:
    /// it is counted by rules but never expired.
    pub referenced_by_manifest_list: bool,
    /// Opaque to the evaluator; handed back in [`Expiration::index`] (a row id, say).
    pub index: u64,
}

impl LifecycleImage {
    /// An image that was never pulled and is not referenced by a manifest list.
    pub fn new(digest: impl Into<String>, tags: Vec<String>, pushed_at: i64) -> Self {
        Self {
            digest: digest.into(),
            tags,
            pushed_at,
            ..Self::default()
        }
    }

    /// Sets the last pull time (unix milliseconds).
    pub fn pulled_at(mut self, last_pulled_at: i64) -> Self {
        self.last_pulled_at = Some(last_pulled_at);
        self
    }

    /// Sets the opaque caller index.
    pub fn with_index(mut self, index: u64) -> Self {
        self.index = index;
        self
    }

    /// Marks the image as referenced by a manifest list.
    pub fn referenced_by_manifest_list(mut self) -> Self {
        self.referenced_by_manifest_list = true;
        self
    }
}

/// One image the policy expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiration {
    /// Position of the image in the slice given to [`evaluate`].
    pub position: usize,
    /// The image's [`LifecycleImage::index`].
    pub index: u64,
    /// `rulePriority` of the rule that expires it (`appliedRulePriority` in a preview).
    pub rule_priority: u32,
}

/// Which images `policy` expires at time `now` (unix milliseconds), oldest push first
/// (ties: smaller digest first, then position). Pure: the caller owns the clock.
pub fn evaluate(policy: &LifecyclePolicy, images: &[LifecycleImage], now: i64) -> Vec<Expiration> {
    // Newest first, per rule 5 of the module comment.
    let mut order: Vec<usize> = (0..images.len()).collect();
    order.sort_unstable_by(|&a, &b| newest_first(&images[a], &images[b]).then(b.cmp(&a)));

    // `owned[i]`: true once some rule has identified image i (rules 2–3).
    let mut owned = vec![false; images.len()];
    let mut expired_by: Vec<Option<u32>> = vec![None; images.len()];

    for rule in policy.rules() {
        let selector = rule.tag_selector();
        let mut identified: u64 = 0;
        for &i in &order {
            let image = &images[i];
            if !selector.matches(&image.tags) {
                continue;
            }
            identified += 1;
            if owned[i] {
                // Counted (rule 4) but belongs to an earlier rule.
                continue;
            }
            owned[i] = true;
            let marked = match rule.count() {
                CountCriterion::ImageCountMoreThan { count } => identified > u64::from(count),
                CountCriterion::SinceImagePushed { days } => older_than(image.pushed_at, now, days),
                CountCriterion::SinceImagePulled { days } => {
                    let idle_since = image
                        .last_pulled_at
                        .map_or(image.pushed_at, |pulled| pulled.max(image.pushed_at));
                    older_than(idle_since, now, days)
                }
            };
            if marked && !image.referenced_by_manifest_list {
                expired_by[i] = Some(rule.rule_priority());
            }
        }
    }

    order
        .iter()
        .rev()
        .filter_map(|&position| {
            expired_by[position].map(|rule_priority| Expiration {
                position,
                index: images[position].index,
                rule_priority,
            })
        })
        .collect()
}

fn newest_first(a: &LifecycleImage, b: &LifecycleImage) -> Ordering {
    b.pushed_at
        .cmp(&a.pushed_at)
        .then_with(|| b.digest.cmp(&a.digest))
}

/// `now - at > days`, without overflow for any inputs.
fn older_than(at: i64, now: i64, days: u32) -> bool {
    i128::from(now) - i128::from(at) > i128::from(days) * i128::from(MILLIS_PER_DAY)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;

    fn policy(text: &str) -> LifecyclePolicy {
        match LifecyclePolicy::parse(text) {
            Ok(p) => p,
            Err(e) => panic!("policy refused: {e}"),
        }
    }

    fn days_ago(d: i64) -> i64 {
        NOW - d * MILLIS_PER_DAY
    }

    fn img(name: &str, tags: &[&str], pushed_at: i64) -> LifecycleImage {
        LifecycleImage::new(
            format!("sha256:{name}"),
            tags.iter().map(|t| (*t).to_owned()).collect(),
            pushed_at,
        )
    }

    fn expired_names(p: &LifecyclePolicy, images: &[LifecycleImage], now: i64) -> Vec<String> {
        evaluate(p, images, now)
            .iter()
            .map(|e| {
                images[e.position]
                    .digest
                    .trim_start_matches("sha256:")
                    .to_owned()
            })
            .collect()
    }

    const KEEP_ONE_UNTAGGED: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;

    #[test]
    fn boundary_of_since_image_pushed_is_strict() {
        let p = policy(
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}}]}"#,
        );
        let images = [
            img("exactly7", &[], days_ago(7)),
            img("just-over", &[], days_ago(7) - 1),
            img("future", &[], NOW + 5),
        ];
        assert_eq!(expired_names(&p, &images, NOW), ["just-over"]);
        // Moving the clock one millisecond expires the boundary image too.
        assert_eq!(
            expired_names(&p, &images, NOW + 1),
            ["just-over", "exactly7"]
        );
    }

    #[test]
    fn since_image_pulled_falls_back_to_push_time() {
        let p = policy(
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}"#,
        );
        let images = [
            img("never-pulled-old", &["a"], days_ago(40)),
            img("never-pulled-new", &["b"], days_ago(10)),
            img("pulled-recently", &["c"], days_ago(100)).pulled_at(days_ago(2)),
            img("pulled-long-ago", &[], days_ago(100)).pulled_at(days_ago(31)),
            // A pull time before the push (re-pushed image) does not age it.
            img("repushed", &["d"], days_ago(5)).pulled_at(days_ago(60)),
        ];
        assert_eq!(
            expired_names(&p, &images, NOW),
            ["pulled-long-ago", "never-pulled-old"]
        );
    }

    #[test]
    fn count_ties_are_broken_by_digest_not_input_order() {
        let p = policy(KEEP_ONE_UNTAGGED);
        let a = img("aaa", &[], days_ago(1));
        let b = img("bbb", &[], days_ago(1));
        assert_eq!(expired_names(&p, &[a.clone(), b.clone()], NOW), ["aaa"]);
        assert_eq!(expired_names(&p, &[b, a], NOW), ["aaa"]);
    }

    #[test]
    fn manifest_list_children_are_counted_but_never_expired() {
        let p = policy(KEEP_ONE_UNTAGGED);
        let images = [
            img("child-old", &[], days_ago(5)).referenced_by_manifest_list(),
            img("orphan", &[], days_ago(4)),
            img("child-new", &[], days_ago(1)).referenced_by_manifest_list(),
        ];
        // child-new is the one kept; orphan is past the count; child-old is protected.
        assert_eq!(expired_names(&p, &images, NOW), ["orphan"]);
    }

    #[test]
    fn expiration_carries_index_and_priority() {
        let p = policy(KEEP_ONE_UNTAGGED);
        let images = [
            img("new", &[], days_ago(1)).with_index(10),
            img("old", &[], days_ago(2)).with_index(20),
        ];
        assert_eq!(
            evaluate(&p, &images, NOW),
            [Expiration {
                position: 1,
                index: 20,
                rule_priority: 1
            }]
        );
    }

    #[test]
    fn empty_repository_expires_nothing() {
        assert!(evaluate(&policy(KEEP_ONE_UNTAGGED), &[], NOW).is_empty());
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let p = policy(
            r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":2147483647},"action":{"type":"expire"}}]}"#,
        );
        let images = [img("min", &["x"], i64::MIN), img("max", &[], i64::MAX)];
        assert_eq!(expired_names(&p, &images, i64::MAX), ["min"]);
        assert!(expired_names(&p, &images, i64::MIN).is_empty());
    }

    fn arb_images() -> impl Strategy<Value = Vec<LifecycleImage>> {
        let tag = prop_oneof![Just("prod-1"), Just("prod-2"), Just("beta"), Just("v1")];
        prop::collection::vec(
            (
                0u8..40,
                prop::collection::vec(tag, 0..3),
                0i64..20,
                prop::option::of(0i64..20),
            ),
            0..30,
        )
        .prop_map(|raw| {
            raw.into_iter()
                .enumerate()
                .map(|(i, (name, tags, pushed, pulled))| {
                    let mut image = LifecycleImage::new(
                        format!("sha256:{name:02}-{i}"),
                        tags.into_iter().map(str::to_owned).collect(),
                        days_ago(pushed),
                    )
                    .with_index(i as u64);
                    image.last_pulled_at = pulled.map(days_ago);
                    image
                })
                .collect()
        })
    }

    const MIXED: &str = r#"{"rules":[
        {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":3},"action":{"type":"expire"}},
        {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPatternList":["*e*"],"countType":"sinceImagePulled","countUnit":"days","countNumber":5},"action":{"type":"expire"}},
        {"rulePriority":3,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}},
        {"rulePriority":9,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":4},"action":{"type":"expire"}}]}"#;

    proptest! {
        #[test]
        fn result_does_not_depend_on_input_order(images in arb_images(), seed in any::<u64>()) {
            let p = policy(MIXED);
            let mut shuffled: Vec<LifecycleImage> = images.clone();
            // Deterministic shuffle from the seed.
            let n = shuffled.len();
            let mut state = seed | 1;
            for i in (1..n).rev() {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let by_index = |imgs: &[LifecycleImage], r: Vec<Expiration>| -> Vec<(u64, u32)> {
                r.iter().map(|e| (imgs[e.position].index, e.rule_priority)).collect()
            };
            prop_assert_eq!(
                by_index(&images, evaluate(&p, &images, NOW)),
                by_index(&shuffled, evaluate(&p, &shuffled, NOW))
            );
        }

        #[test]
        fn each_image_expires_at_most_once_by_its_first_matching_rule(images in arb_images()) {
            let p = policy(MIXED);
            let result = evaluate(&p, &images, NOW);
            let mut seen = std::collections::HashSet::new();
            let mut last_pushed = i64::MIN;
            for e in &result {
                prop_assert!(seen.insert(e.position));
                let image = &images[e.position];
                prop_assert!(image.pushed_at >= last_pushed, "oldest first");
                last_pushed = image.pushed_at;
                let first = p.rules().iter().find(|r| r.tag_selector().matches(&image.tags));
                prop_assert_eq!(first.map(|r| r.rule_priority()), Some(e.rule_priority));
            }
        }

        #[test]
        fn single_count_rule_keeps_exactly_the_newest(images in arb_images(), keep in 1u32..6) {
            let text = format!(
                r#"{{"rules":[{{"rulePriority":1,"selection":{{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":{keep}}},"action":{{"type":"expire"}}}}]}}"#
            );
            let p = policy(&text);
            let result = evaluate(&p, &images, NOW);
            prop_assert_eq!(result.len(), images.len().saturating_sub(keep as usize));
            let expired: std::collections::HashSet<usize> = result.iter().map(|e| e.position).collect();
            for (i, kept) in images.iter().enumerate().filter(|(i, _)| !expired.contains(i)) {
                for &j in &expired {
                    let gone = &images[j];
                    prop_assert!(
                        (kept.pushed_at, &kept.digest) > (gone.pushed_at, &gone.digest),
                        "kept {} older than expired {}", i, j
                    );
                }
            }
        }
    }
}
