//! berth-lifecycle: ECR lifecycle policies as pure logic.
//!
//! This room owns the meaning of a lifecycle policy, following the Amazon ECR User Guide
//! pages "Lifecycle policy properties" (lifecycle_policy_parameters), "Automate the cleanup
//! of images by using lifecycle policies" (LifecyclePolicies, its "Lifecycle policy
//! evaluation rules") and "Examples of lifecycle policies" (lifecycle_policy_examples):
//!
//! - [`LifecyclePolicy::parse`] validates the text `PutLifecyclePolicy` and
//!   `StartLifecyclePolicyPreview` receive, refusing it with a [`LifecyclePolicyError`]
//!   whose `Display` is ECR's `InvalidParameterException` message and whose
//!   [`LifecyclePolicyError::exception_name`] is the `__type`;
//!   [`check_policy_text_length`] is the 100..=30,720-character check the API layer does
//!   first.
//! - [`evaluate`] decides which images a policy expires, given the images of one
//!   repository and the current time.
//! - [`preview`] gives the same answer in `GetLifecyclePolicyPreview`'s `previewResults`
//!   and `summary` shape.
//!
//! ```
//! use berth_lifecycle::{evaluate, LifecycleImage, LifecyclePolicy, MILLIS_PER_DAY};
//!
//! let policy = LifecyclePolicy::parse(r#"{"rules": [{"rulePriority": 1,
//!     "selection": {"tagStatus": "untagged", "countType": "sinceImagePushed",
//!                   "countUnit": "days", "countNumber": 7},
//!     "action": {"type": "expire"}}]}"#)?;
//! let now = 1_767_225_600_000;
//! let images = [
//!     LifecycleImage::new("sha256:aa", vec![], now - 8 * MILLIS_PER_DAY),
//!     LifecycleImage::new("sha256:bb", vec!["prod-1".into()], now - 30 * MILLIS_PER_DAY),
//! ];
//! let expired = evaluate(&policy, &images, now);
//! assert_eq!(expired.len(), 1);
//! assert_eq!((expired[0].position, expired[0].rule_priority), (0, 1));
//! # Ok::<(), berth_lifecycle::LifecyclePolicyError>(())
//! ```
//!
//! What it may not touch: no I/O, no async, no clock (callers pass `now` in unix
//! milliseconds, so tests move time freely), no database or blob store, no deleting. The
//! lifecycle worker and the API layer load images, call these functions and apply the
//! result (untag, delete manifests, write the audit row with the rule priority).
//!
//! berth has no archive storage tier: policies using `transition`, `storageClass:
//! archive` or `sinceImageTransitioned` are refused with a message saying so.

mod error;
mod evaluate;
mod pattern;
mod policy;
mod preview;

pub use error::{
    JsonType, LifecyclePolicyError, Violation, INVALID_PARAMETER_EXCEPTION,
    LIFECYCLE_POLICY_TEXT_MAX_LEN, LIFECYCLE_POLICY_TEXT_MIN_LEN,
};
pub use evaluate::{evaluate, Expiration, LifecycleImage, MILLIS_PER_DAY};
pub use pattern::{TagPattern, MAX_WILDCARDS_PER_PATTERN};
pub use policy::{
    check_policy_text_length, CountCriterion, LifecyclePolicy, LifecycleRule, RuleAction,
    TagFilter, TagSelector, TagStatus, MAX_INTEGER,
};
pub use preview::{
    preview, ImageActionType, LifecyclePolicyPreview, LifecyclePolicyPreviewResult,
    LifecyclePolicyPreviewSummary, LifecyclePolicyRuleAction, LifecyclePolicyStorageClass,
};
