//! The AWS managed policies for ECR, with their published documents (AWS
//! Managed Policy Reference; ECR User Guide, "AWS managed policies for Amazon
//! Elastic Container Registry"). ReadOnly and PowerUser are version v3;
//! FullAccess is the version with the replication service-linked-role grant.

use super::{PolicyDocument, PolicyError, PolicyKind};

/// A built-in AWS managed policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedPolicy {
    /// e.g. `AmazonEC2ContainerRegistryReadOnly`.
    pub name: &'static str,
    /// `arn:aws:iam::aws:policy/<name>`.
    pub arn: &'static str,
    /// AWS's description.
    pub description: &'static str,
    /// The policy document, as AWS publishes it.
    pub document: &'static str,
}

impl ManagedPolicy {
    /// Parses the document as an identity policy.
    pub fn parse(&self) -> Result<PolicyDocument, PolicyError> {
        PolicyDocument::parse(self.document, PolicyKind::Identity)
    }
}

/// Read-only access to repositories and images.
pub const AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY: ManagedPolicy = ManagedPolicy {
    name: "AmazonEC2ContainerRegistryReadOnly",
    arn: "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    description: "Provides read-only access to Amazon EC2 Container Registry repositories.",
    document: r#"{
  "Version" : "2012-10-17",
  "Statement" : [
    {
      "Effect" : "Allow",
      "Action" : [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:GetRepositoryPolicy",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
        "ecr:DescribeImages",
        "ecr:BatchGetImage",
        "ecr:GetLifecyclePolicy",
        "ecr:GetLifecyclePolicyPreview",
        "ecr:ListTagsForResource",
        "ecr:DescribeImageScanFindings"
      ],
      "Resource" : "*"
    }
  ]
}"#,
};

/// Read and push, without repository deletion or policy changes.
pub const AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER: ManagedPolicy = ManagedPolicy {
    name: "AmazonEC2ContainerRegistryPowerUser",
    arn: "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser",
    description: "Provides full access to Amazon EC2 Container Registry repositories, but does not allow repository deletion or policy changes.",
    document: r#"{
  "Version" : "2012-10-17",
  "Statement" : [
    {
      "Effect" : "Allow",
      "Action" : [
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:GetRepositoryPolicy",
        "ecr:DescribeRepositories",
        "ecr:ListImages",
        "ecr:DescribeImages",
        "ecr:BatchGetImage",
        "ecr:GetLifecyclePolicy",
        "ecr:GetLifecyclePolicyPreview",
        "ecr:ListTagsForResource",
        "ecr:DescribeImageScanFindings",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage"
      ],
      "Resource" : "*"
    }
  ]
}"#,
};

/// Every ECR action.
pub const AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS: ManagedPolicy = ManagedPolicy {
    name: "AmazonEC2ContainerRegistryFullAccess",
    arn: "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryFullAccess",
    description: "Provides administrative access to Amazon ECR resources",
    document: r#"{
  "Version" : "2012-10-17",
  "Statement" : [
    {
      "Effect" : "Allow",
      "Action" : [
        "ecr:*",
        "cloudtrail:LookupEvents"
      ],
      "Resource" : "*"
    },
    {
      "Effect" : "Allow",
      "Action" : [
        "iam:CreateServiceLinkedRole"
      ],
      "Resource" : "*",
      "Condition" : {
        "StringEquals" : {
          "iam:AWSServiceName" : [
            "replication.ecr.amazonaws.com"
          ]
        }
      }
    }
  ]
}"#,
};

/// All built-in managed policies.
pub static MANAGED_POLICIES: [ManagedPolicy; 3] = [
    AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY,
    AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER,
    AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS,
];

/// Finds a managed policy by ARN (`arn:aws:iam::aws:policy/<Name>`) or by name.
pub fn managed_policy(name_or_arn: &str) -> Option<&'static ManagedPolicy> {
    let name = name_or_arn
        .strip_prefix("arn:aws:iam::aws:policy/")
        .unwrap_or(name_or_arn);
    MANAGED_POLICIES.iter().find(|p| p.name == name)
}
