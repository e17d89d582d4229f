//! The result shapes of `GetLifecyclePolicyPreview`.
//!
//! ECR API model (botocore `ecr/2015-09-21/service-2.json`): `LifecyclePolicyPreviewResult`
//! = `{imageTags, imageDigest, imagePushedAt, action: {type, targetStorageClass},
//! appliedRulePriority, storageClass}` and `LifecyclePolicyPreviewSummary` =
//! `{expiringImageTotalCount, transitioningImageTotalCounts}`. The structs serialize to
//! exactly those members (camelCase), so the API layer can put them straight into
//! `previewResults` / `summary`. `imagePushedAt` is an AWS JSON 1.1 timestamp: epoch
//! seconds as a number, with milliseconds as the fraction. A preview computes exactly what
//! a run would do: it is [`evaluate`] over the same images at the same `now`.

use serde::{Serialize, Serializer};

use crate::evaluate::{evaluate, LifecycleImage};
use crate::policy::{LifecyclePolicy, TagStatus};

/// `ImageActionType`: berth only ever expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ImageActionType {
    #[serde(rename = "EXPIRE")]
    Expire,
}

/// `LifecyclePolicyRuleAction` as it appears in a preview result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LifecyclePolicyRuleAction {
    #[serde(rename = "type")]
    pub action_type: ImageActionType,
}

/// `LifecyclePolicyStorageClass` of the image: berth keeps every image in standard storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum LifecyclePolicyStorageClass {
    #[serde(rename = "STANDARD")]
    Standard,
}

/// One entry of `previewResults`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyPreviewResult {
    /// Omitted for untagged images, as ECR omits empty tag lists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub image_tags: Vec<String>,
    pub image_digest: String,
    /// Unix milliseconds; serialized as epoch seconds.
    #[serde(serialize_with = "epoch_seconds")]
    pub image_pushed_at: i64,
    pub action: LifecyclePolicyRuleAction,
    pub applied_rule_priority: u32,
    pub storage_class: LifecyclePolicyStorageClass,
}

/// `summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyPreviewSummary {
    pub expiring_image_total_count: u64,
}

/// A complete preview: every image the policy would expire, oldest push first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LifecyclePolicyPreview {
    pub preview_results: Vec<LifecyclePolicyPreviewResult>,
    pub summary: LifecyclePolicyPreviewSummary,
}

impl LifecyclePolicyPreview {
    /// The results an image filter `{"tagStatus": …}` keeps (`GetLifecyclePolicyPreview`'s
    /// `filter`), in order. The summary stays that of the whole preview.
    pub fn results_with_tag_status(
        &self,
        tag_status: TagStatus,
    ) -> impl Iterator<Item = &LifecyclePolicyPreviewResult> {
        self.preview_results
            .iter()
            .filter(move |r| tag_status.matches_tags(&r.image_tags))
    }
}

/// What a run of `policy` at `now` would expire, in the API's preview shape.
pub fn preview(
    policy: &LifecyclePolicy,
    images: &[LifecycleImage],
    now: i64,
) -> LifecyclePolicyPreview {
    let preview_results: Vec<LifecyclePolicyPreviewResult> = evaluate(policy, images, now)
        .into_iter()
        .filter_map(|e| {
            images
                .get(e.position)
                .map(|image| LifecyclePolicyPreviewResult {
                    image_tags: image.tags.clone(),
                    image_digest: image.digest.clone(),
                    image_pushed_at: image.pushed_at,
                    action: LifecyclePolicyRuleAction {
                        action_type: ImageActionType::Expire,
                    },
                    applied_rule_priority: e.rule_priority,
                    storage_class: LifecyclePolicyStorageClass::Standard,
                })
        })
        .collect();
    let summary = LifecyclePolicyPreviewSummary {
        expiring_image_total_count: preview_results.len() as u64,
    };
    LifecyclePolicyPreview {
        preview_results,
        summary,
    }
}

fn epoch_seconds<S: Serializer>(millis: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    // Whole milliseconds are exact: write integral seconds as an integer and the rest
    // with exactly three decimals' worth of precision.
    if millis % 1000 == 0 {
        serializer.serialize_i64(millis / 1000)
    } else {
        serializer.serialize_f64(*millis as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const POLICY: &str = r#"{"rules":[
        {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
        {"rulePriority":2,"selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},"action":{"type":"expire"}}]}"#;

    fn parsed() -> LifecyclePolicy {
        match LifecyclePolicy::parse(POLICY) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn serializes_as_get_lifecycle_policy_preview_members() {
        let now = 1_700_000_000_000;
        let images = [
            LifecycleImage::new("sha256:old", vec!["prod-1".into()], 1_600_000_000_500),
            LifecycleImage::new("sha256:new", vec!["prod-2".into()], 1_650_000_000_000),
            LifecycleImage::new("sha256:dangling", vec![], 1_600_000_000_000),
        ];
        let p = preview(&parsed(), &images, now);
        assert_eq!(
            serde_json::to_value(&p).ok(),
            Some(json!({
                "previewResults": [
                    {
                        "imageDigest": "sha256:dangling",
                        "imagePushedAt": 1_600_000_000,
                        "action": {"type": "EXPIRE"},
                        "appliedRulePriority": 2,
                        "storageClass": "STANDARD"
                    },
                    {
                        "imageTags": ["prod-1"],
                        "imageDigest": "sha256:old",
                        "imagePushedAt": 1_600_000_000.5,
                        "action": {"type": "EXPIRE"},
                        "appliedRulePriority": 1,
                        "storageClass": "STANDARD"
                    }
                ],
                "summary": {"expiringImageTotalCount": 2}
            }))
        );
        let tagged: Vec<&str> = p
            .results_with_tag_status(TagStatus::Tagged)
            .map(|r| r.image_digest.as_str())
            .collect();
        assert_eq!(tagged, ["sha256:old"]);
        assert_eq!(p.results_with_tag_status(TagStatus::Any).count(), 2);
        assert_eq!(p.results_with_tag_status(TagStatus::Untagged).count(), 1);
    }

    #[test]
    fn preview_matches_evaluate() {
        let images: Vec<LifecycleImage> = (0..50)
            .map(|i| {
                let tags = if i % 3 == 0 {
                    vec![]
                } else {
                    vec![format!("prod-{i}")]
                };
                LifecycleImage::new(format!("sha256:{i:03}"), tags, i * 3_600_000)
            })
            .collect();
        let now = 60 * 3_600_000;
        let policy = parsed();
        let run = evaluate(&policy, &images, now);
        let p = preview(&policy, &images, now);
        assert_eq!(p.summary.expiring_image_total_count, run.len() as u64);
        let from_run: Vec<(&str, u32)> = run
            .iter()
            .map(|e| (images[e.position].digest.as_str(), e.rule_priority))
            .collect();
        let from_preview: Vec<(&str, u32)> = p
            .preview_results
            .iter()
            .map(|r| (r.image_digest.as_str(), r.applied_rule_priority))
            .collect();
        assert_eq!(from_run, from_preview);
    }

    #[test]
    fn negative_fractional_timestamps_serialize() {
        let images = [LifecycleImage::new("sha256:x", vec![], -1_500)];
        let p = preview(&parsed(), &images, 10 * 86_400_000);
        assert_eq!(
            serde_json::to_value(&p.preview_results[0])
                .ok()
                .map(|v| v["imagePushedAt"].clone()),
            Some(json!(-1.5))
        );
    }
}
