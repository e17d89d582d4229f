//! Synthetic repository shared by the 100k-image performance test and the
//! `bench_100k` example.

use berth_lifecycle::{LifecycleImage, MILLIS_PER_DAY};

/// The clock the synthetic images are generated against.
pub const NOW: i64 = 1_767_225_600_000;

/// The seed policy plus a pattern rule, a pull-based rule and a catch-all `any` rule, so
/// every rule kind and both tag-list kinds run.
pub const POLICY: &str = r#"{"rules":[
  {"rulePriority":1,"description":"Keep last 10 prod images","selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}},
  {"rulePriority":2,"description":"Delete untagged images older than 7 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7},"action":{"type":"expire"}},
  {"rulePriority":3,"description":"Feature branches not pulled for 30 days","selection":{"tagStatus":"tagged","tagPatternList":["feature-*-build*"],"countType":"sinceImagePulled","countUnit":"days","countNumber":30},"action":{"type":"expire"}},
  {"rulePriority":4,"description":"Release candidates","selection":{"tagStatus":"tagged","tagPatternList":["v*.*.*","*rc*"],"countType":"imageCountMoreThan","countNumber":50},"action":{"type":"expire"}},
  {"rulePriority":9,"description":"Everything else: keep 60000","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":60000},"action":{"type":"expire"}}]}"#;

/// 100,000 images with a mix of tag shapes and push/pull times (deterministic).
pub fn synthetic_images(n: usize) -> Vec<LifecycleImage> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..n)
        .map(|i| {
            let r = next();
            let pushed_at = NOW - (r % (400 * MILLIS_PER_DAY as u64)) as i64;
            let tags = match i % 10 {
                0..=3 => vec![format!("prod-{i}")],
                4 | 5 => vec![],
                6 | 7 => vec![format!("feature-{}-build{i}", r % 97)],
                8 => vec![
                    "latest".to_owned(),
                    format!("prod-{i}"),
                    format!("sha-{r:x}"),
                ],
                _ => vec![format!("v1.{}.{i}-rc{}", r % 13, r % 3)],
            };
            let mut image = LifecycleImage::new(format!("sha256:{r:064x}"), tags, pushed_at)
                .with_index(i as u64);
            if r % 3 == 0 {
                image.last_pulled_at =
                    Some(pushed_at + ((r >> 8) % (60 * MILLIS_PER_DAY as u64)) as i64);
            }
            image
        })
        .collect()
}
