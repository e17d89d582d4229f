//! Operations of the ECR model berth does not implement. They answer at once with a
//! 4xx JSON error — never a 5xx, which would make the AWS SDKs retry for minutes —
//! after authenticating the caller like every other call.
//!
//! Those that need a service only AWS runs stay here for good, with the reason in
//! their answer: managed image signing (`Put|Get|DeleteSigningConfiguration`,
//! `DescribeImageSigningStatus` — signatures made by AWS Signer with AWS-held
//! keys; push your own signatures as referrers instead) and the archive storage
//! class (`UpdateImageStorageClass` — ECR's cold-storage tier, which berth's one
//! blob store has no equivalent of).

use serde_json::Value;

use super::{Ctx, EcrError, EcrException, Input};

/// Every operation in botocore's ECR model (2015-09-21).
const KNOWN: &[&str] = &[
    "BatchCheckLayerAvailability",
    "BatchDeleteImage",
    "BatchGetImage",
    "BatchGetRepositoryScanningConfiguration",
    "CompleteLayerUpload",
    "CreatePullThroughCacheRule",
    "CreateRepository",
    "CreateRepositoryCreationTemplate",
    "DeleteLifecyclePolicy",
    "DeletePullThroughCacheRule",
    "DeleteRegistryPolicy",
    "DeleteRepository",
    "DeleteRepositoryCreationTemplate",
    "DeleteRepositoryPolicy",
    "DeleteSigningConfiguration",
    "DeregisterPullTimeUpdateExclusion",
    "DescribeImageReplicationStatus",
    "DescribeImageScanFindings",
    "DescribeImageSigningStatus",
    "DescribeImages",
    "DescribePullThroughCacheRules",
    "DescribeRegistry",
    "DescribeRepositories",
    "DescribeRepositoryCreationTemplates",
    "GetAccountSetting",
    "GetAuthorizationToken",
    "GetDownloadUrlForLayer",
    "GetLifecyclePolicy",
    "GetLifecyclePolicyPreview",
    "GetRegistryPolicy",
    "GetRegistryScanningConfiguration",
    "GetRepositoryPolicy",
    "GetSigningConfiguration",
    "InitiateLayerUpload",
    "ListImageReferrers",
    "ListImages",
    "ListPullTimeUpdateExclusions",
    "ListTagsForResource",
    "PutAccountSetting",
    "PutImage",
    "PutImageScanningConfiguration",
    "PutImageTagMutability",
    "PutLifecyclePolicy",
    "PutRegistryPolicy",
    "PutRegistryScanningConfiguration",
    "PutReplicationConfiguration",
    "PutSigningConfiguration",
    "RegisterPullTimeUpdateExclusion",
    "SetRepositoryPolicy",
    "StartImageScan",
    "StartLifecyclePolicyPreview",
    "TagResource",
    "UntagResource",
    "UpdateImageStorageClass",
    "UpdatePullThroughCacheRule",
    "UpdateRepositoryCreationTemplate",
    "UploadLayerPart",
    "ValidatePullThroughCacheRule",
];

/// Operations that need a service only AWS runs, and which.
const AWS_ONLY: &[(&str, &str)] = &[
    ("PutSigningConfiguration", "managed signing (AWS Signer)"),
    ("GetSigningConfiguration", "managed signing (AWS Signer)"),
    ("DeleteSigningConfiguration", "managed signing (AWS Signer)"),
    ("DescribeImageSigningStatus", "managed signing (AWS Signer)"),
    ("UpdateImageStorageClass", "the archive storage class"),
];

pub async fn answer(_ctx: &Ctx, op: &str, _input: &Input) -> Result<Value, EcrError> {
    if let Some((_, why)) = AWS_ONLY.iter().find(|(o, _)| *o == op) {
        Err(EcrError::validation(format!(
            "The operation {op} needs {why}, which only AWS provides; this registry does not support it."
        )))
    } else if KNOWN.contains(&op) {
        Err(EcrError::validation(format!(
            "The operation {op} is not supported by this registry yet."
        )))
    } else {
        Err(EcrError::new(
            EcrException::UnknownOperation,
            format!("Unknown operation {op}"),
        ))
    }
}
