//! The operation table of the JSON APIs on `POST /`: one row per operation — its
//! name, the IAM action it authorizes, its handler (`docs/architecture.md`, "The
//! request path"). Handlers read the action from [`Ctx::action`], never from a
//! literal of their own, so this table is the one place that says which action an
//! operation needs.

use std::future::Future;
use std::pin::Pin;

use serde_json::Value;

use super::{
    cloudtrail, images, kms, layers, lifecycle, policies, pull_through, pull_time, replication,
    repos, scanning, secretsmanager, settings, templates, unsupported,
};
use super::{Ctx, EcrError, Input};

/// The service a target header addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `AmazonEC2ContainerRegistry_V20150921.<Op>`
    Ecr,
    /// `TrentService.<Op>`
    Kms,
    /// `com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.<Op>`
    CloudTrail,
    /// `secretsmanager.<Op>`
    SecretsManager,
}

impl Service {
    /// The SigV4 signing name, also the prefix of its IAM actions.
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::Ecr => "ecr",
            Service::Kms => "kms",
            Service::CloudTrail => "cloudtrail",
            Service::SecretsManager => "secretsmanager",
        }
    }
}

/// How an operation's IAM action is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionRule {
    /// This action (`ecr:…`).
    Fixed(&'static str),
    /// The service's prefix and the operation's name (`kms:DescribeKey`), as AWS
    /// KMS names its actions.
    ServiceAndName,
}

impl ActionRule {
    pub fn name(self, service: Service, op: &str) -> String {
        match self {
            ActionRule::Fixed(a) => a.to_string(),
            ActionRule::ServiceAndName => format!("{}:{op}", service.signing_name()),
        }
    }
}

pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, EcrError>> + Send + 'a>>;
pub type Handler = for<'a> fn(&'a Ctx, &'a Input) -> HandlerFuture<'a>;

/// One row of the table.
pub struct Operation {
    pub service: Service,
    pub name: &'static str,
    pub action: ActionRule,
    pub handler: Handler,
}

macro_rules! op {
    ($service:ident, $name:literal, $action:expr, $handler:path) => {
        Operation {
            service: Service::$service,
            name: $name,
            action: $action,
            handler: {
                fn h<'a>(ctx: &'a Ctx, input: &'a Input) -> HandlerFuture<'a> {
                    Box::pin($handler(ctx, input))
                }
                h
            },
        }
    };
}

macro_rules! ecr {
    ($name:literal, $action:literal, $handler:path) => {
        op!(Ecr, $name, ActionRule::Fixed($action), $handler)
    };
}

macro_rules! kms {
    ($name:literal) => {
        op!(Kms, $name, ActionRule::ServiceAndName, kms::serve)
    };
}

macro_rules! secrets {
    ($name:literal) => {
        op!(
            SecretsManager,
            $name,
            ActionRule::ServiceAndName,
            secretsmanager::serve
        )
    };
}

/// Every operation served. Operations of the ECR model that are not here answer
/// per `unsupported.rs`; unknown KMS and Secrets Manager operations are authorized
/// as `kms:<Op>` / `secretsmanager:<Op>` and then refused.
pub static OPERATIONS: &[Operation] = &[
    // repositories (repos.rs)
    ecr!(
        "CreateRepository",
        "ecr:CreateRepository",
        repos::create_repository
    ),
    ecr!(
        "DescribeRepositories",
        "ecr:DescribeRepositories",
        repos::describe_repositories
    ),
    ecr!(
        "DeleteRepository",
        "ecr:DeleteRepository",
        repos::delete_repository
    ),
    ecr!(
        "PutImageTagMutability",
        "ecr:PutImageTagMutability",
        repos::put_image_tag_mutability
    ),
    ecr!(
        "PutImageScanningConfiguration",
        "ecr:PutImageScanningConfiguration",
        repos::put_image_scanning_configuration
    ),
    ecr!("TagResource", "ecr:TagResource", repos::tag_resource),
    ecr!("UntagResource", "ecr:UntagResource", repos::untag_resource),
    ecr!(
        "ListTagsForResource",
        "ecr:ListTagsForResource",
        repos::list_tags_for_resource
    ),
    ecr!(
        "GetAuthorizationToken",
        "ecr:GetAuthorizationToken",
        repos::get_authorization_token
    ),
    // policies and registry documents (policies.rs)
    ecr!(
        "DescribeRegistry",
        "ecr:DescribeRegistry",
        policies::describe_registry
    ),
    ecr!(
        "SetRepositoryPolicy",
        "ecr:SetRepositoryPolicy",
        policies::set_repository_policy
    ),
    ecr!(
        "GetRepositoryPolicy",
        "ecr:GetRepositoryPolicy",
        policies::get_repository_policy
    ),
    ecr!(
        "DeleteRepositoryPolicy",
        "ecr:DeleteRepositoryPolicy",
        policies::delete_repository_policy
    ),
    ecr!(
        "PutRegistryPolicy",
        "ecr:PutRegistryPolicy",
        policies::put_registry_policy
    ),
    ecr!(
        "GetRegistryPolicy",
        "ecr:GetRegistryPolicy",
        policies::get_registry_policy
    ),
    ecr!(
        "DeleteRegistryPolicy",
        "ecr:DeleteRegistryPolicy",
        policies::delete_registry_policy
    ),
    ecr!(
        "PutLifecyclePolicy",
        "ecr:PutLifecyclePolicy",
        policies::put_lifecycle_policy
    ),
    ecr!(
        "GetLifecyclePolicy",
        "ecr:GetLifecyclePolicy",
        policies::get_lifecycle_policy
    ),
    ecr!(
        "DeleteLifecyclePolicy",
        "ecr:DeleteLifecyclePolicy",
        policies::delete_lifecycle_policy
    ),
    ecr!(
        "GetRegistryScanningConfiguration",
        "ecr:GetRegistryScanningConfiguration",
        policies::get_registry_scanning_configuration
    ),
    ecr!(
        "PutRegistryScanningConfiguration",
        "ecr:PutRegistryScanningConfiguration",
        policies::put_registry_scanning_configuration
    ),
    ecr!(
        "PutReplicationConfiguration",
        "ecr:PutReplicationConfiguration",
        policies::put_replication_configuration
    ),
    ecr!(
        "DescribeImageReplicationStatus",
        "ecr:DescribeImageReplicationStatus",
        replication::describe_image_replication_status
    ),
    // account settings (settings.rs)
    ecr!(
        "GetAccountSetting",
        "ecr:GetAccountSetting",
        settings::get_account_setting
    ),
    ecr!(
        "PutAccountSetting",
        "ecr:PutAccountSetting",
        settings::put_account_setting
    ),
    // pull-through cache rules (pull_through.rs)
    ecr!(
        "CreatePullThroughCacheRule",
        "ecr:CreatePullThroughCacheRule",
        pull_through::create_pull_through_cache_rule
    ),
    ecr!(
        "DescribePullThroughCacheRules",
        "ecr:DescribePullThroughCacheRules",
        pull_through::describe_pull_through_cache_rules
    ),
    ecr!(
        "UpdatePullThroughCacheRule",
        "ecr:UpdatePullThroughCacheRule",
        pull_through::update_pull_through_cache_rule
    ),
    ecr!(
        "DeletePullThroughCacheRule",
        "ecr:DeletePullThroughCacheRule",
        pull_through::delete_pull_through_cache_rule
    ),
    // pull-time update exclusions (pull_time.rs)
    ecr!(
        "RegisterPullTimeUpdateExclusion",
        "ecr:RegisterPullTimeUpdateExclusion",
        pull_time::register_pull_time_update_exclusion
    ),
    ecr!(
        "DeregisterPullTimeUpdateExclusion",
        "ecr:DeregisterPullTimeUpdateExclusion",
        pull_time::deregister_pull_time_update_exclusion
    ),
    ecr!(
        "ListPullTimeUpdateExclusions",
        "ecr:ListPullTimeUpdateExclusions",
        pull_time::list_pull_time_update_exclusions
    ),
    ecr!(
        "ValidatePullThroughCacheRule",
        "ecr:ValidatePullThroughCacheRule",
        pull_through::validate_pull_through_cache_rule
    ),
    // repository creation templates (templates.rs)
    ecr!(
        "CreateRepositoryCreationTemplate",
        "ecr:CreateRepositoryCreationTemplate",
        templates::create_repository_creation_template
    ),
    ecr!(
        "DescribeRepositoryCreationTemplates",
        "ecr:DescribeRepositoryCreationTemplates",
        templates::describe_repository_creation_templates
    ),
    ecr!(
        "UpdateRepositoryCreationTemplate",
        "ecr:UpdateRepositoryCreationTemplate",
        templates::update_repository_creation_template
    ),
    ecr!(
        "DeleteRepositoryCreationTemplate",
        "ecr:DeleteRepositoryCreationTemplate",
        templates::delete_repository_creation_template
    ),
    // lifecycle previews (lifecycle.rs)
    ecr!(
        "StartLifecyclePolicyPreview",
        "ecr:StartLifecyclePolicyPreview",
        lifecycle::start_lifecycle_policy_preview
    ),
    ecr!(
        "GetLifecyclePolicyPreview",
        "ecr:GetLifecyclePolicyPreview",
        lifecycle::get_lifecycle_policy_preview
    ),
    // images (images.rs)
    ecr!(
        "DescribeImages",
        "ecr:DescribeImages",
        images::describe_images
    ),
    ecr!("ListImages", "ecr:ListImages", images::list_images),
    ecr!(
        "BatchGetImage",
        "ecr:BatchGetImage",
        images::batch_get_image
    ),
    ecr!(
        "BatchDeleteImage",
        "ecr:BatchDeleteImage",
        images::batch_delete_image
    ),
    ecr!("PutImage", "ecr:PutImage", images::put_image),
    // ECR has no action of its own for referrers: reading them is reading images.
    ecr!(
        "ListImageReferrers",
        "ecr:BatchGetImage",
        images::list_image_referrers
    ),
    // layers (layers.rs)
    ecr!(
        "BatchCheckLayerAvailability",
        "ecr:BatchCheckLayerAvailability",
        layers::batch_check_layer_availability
    ),
    ecr!(
        "InitiateLayerUpload",
        "ecr:InitiateLayerUpload",
        layers::initiate_layer_upload
    ),
    ecr!(
        "UploadLayerPart",
        "ecr:UploadLayerPart",
        layers::upload_layer_part
    ),
    ecr!(
        "CompleteLayerUpload",
        "ecr:CompleteLayerUpload",
        layers::complete_layer_upload
    ),
    ecr!(
        "GetDownloadUrlForLayer",
        "ecr:GetDownloadUrlForLayer",
        layers::get_download_url_for_layer
    ),
    // scanning (scanning.rs)
    ecr!(
        "StartImageScan",
        "ecr:StartImageScan",
        scanning::start_image_scan
    ),
    ecr!(
        "DescribeImageScanFindings",
        "ecr:DescribeImageScanFindings",
        scanning::describe_image_scan_findings
    ),
    ecr!(
        "BatchGetRepositoryScanningConfiguration",
        "ecr:BatchGetRepositoryScanningConfiguration",
        scanning::batch_get_repository_scanning_configuration
    ),
    // CloudTrail (cloudtrail.rs)
    op!(
        CloudTrail,
        "LookupEvents",
        ActionRule::Fixed("cloudtrail:LookupEvents"),
        cloudtrail::lookup_events
    ),
    // KMS (kms.rs)
    kms!("CreateKey"),
    kms!("DescribeKey"),
    kms!("ListKeys"),
    kms!("EnableKey"),
    kms!("DisableKey"),
    kms!("ScheduleKeyDeletion"),
    kms!("CancelKeyDeletion"),
    kms!("EnableKeyRotation"),
    kms!("DisableKeyRotation"),
    kms!("GetKeyRotationStatus"),
    kms!("RotateKeyOnDemand"),
    kms!("GetKeyPolicy"),
    kms!("PutKeyPolicy"),
    kms!("UpdateKeyDescription"),
    kms!("ListResourceTags"),
    kms!("TagResource"),
    kms!("UntagResource"),
    kms!("CreateAlias"),
    kms!("UpdateAlias"),
    kms!("DeleteAlias"),
    kms!("ListAliases"),
    // Secrets Manager (secretsmanager.rs)
    secrets!("CreateSecret"),
    secrets!("DescribeSecret"),
    secrets!("ListSecrets"),
    secrets!("GetSecretValue"),
    secrets!("PutSecretValue"),
    secrets!("UpdateSecret"),
    secrets!("DeleteSecret"),
    secrets!("RestoreSecret"),
    secrets!("TagResource"),
    secrets!("UntagResource"),
    secrets!("GetResourcePolicy"),
];

/// The row of `op` in `service`.
pub fn find(service: Service, op: &str) -> Option<&'static Operation> {
    OPERATIONS
        .iter()
        .find(|o| o.service == service && o.name == op)
}

/// The action an operation authorizes: its row's, or for an operation not in the
/// table the one its service would name it by.
pub fn action_of(service: Service, op: &str) -> String {
    match find(service, op) {
        Some(row) => row.action.name(service, op),
        None => ActionRule::ServiceAndName.name(service, op),
    }
}

/// An operation not in the table.
pub async fn unknown(ctx: &Ctx, service: Service, input: &Input) -> Result<Value, EcrError> {
    match service {
        Service::Ecr => unsupported::answer(ctx, &ctx.op, input).await,
        // Authorized like any KMS call, then refused as unsupported.
        Service::Kms => kms::serve(ctx, input).await,
        Service::CloudTrail => Err(EcrError::new(
            super::EcrException::UnknownOperation,
            format!("berth answers CloudTrail LookupEvents only, not {}", ctx.op),
        )),
        Service::SecretsManager => secretsmanager::serve(ctx, input).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_operation() {
        for (i, a) in OPERATIONS.iter().enumerate() {
            for b in &OPERATIONS[i + 1..] {
                assert!(
                    a.service != b.service || a.name != b.name,
                    "{} is listed twice",
                    a.name
                );
            }
        }
    }

    #[test]
    fn actions() {
        assert_eq!(action_of(Service::Ecr, "PutImage"), "ecr:PutImage");
        assert_eq!(
            action_of(Service::Ecr, "ListImageReferrers"),
            "ecr:BatchGetImage"
        );
        assert_eq!(action_of(Service::Kms, "DescribeKey"), "kms:DescribeKey");
        assert_eq!(action_of(Service::Kms, "Encrypt"), "kms:Encrypt");
        assert_eq!(
            action_of(Service::SecretsManager, "GetSecretValue"),
            "secretsmanager:GetSecretValue"
        );
        // Every ECR row authorizes an ECR action.
        for o in OPERATIONS.iter().filter(|o| o.service == Service::Ecr) {
            assert!(
                o.action.name(o.service, o.name).starts_with("ecr:"),
                "{}",
                o.name
            );
        }
    }
}
