//! ECR's account settings (`GetAccountSetting` / `PutAccountSetting`): their names,
//! allowed values and defaults, and the reads the rest of the core makes to honour
//! them. A setting never put reads as its default, so reading a known name never
//! fails for want of a row.

use crate::{Registry, RegistryError};

/// One of the account settings ECR defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountFlag {
    /// Which engine runs basic scanning. berth has one engine; the value is kept
    /// and echoed (`AWS_NATIVE` is ECR's current engine, `CLAIR` its old one).
    BasicScanTypeVersion,
    /// `V2`: the registry policy applies to every ECR action; `V1`: only to
    /// `ecr:ReplicateImage`, `ecr:BatchImportUpstreamImage` and
    /// `ecr:CreateRepository`.
    RegistryPolicyScope,
    /// `ENABLED`: `POST /v2/<name>/blobs/uploads/?mount=&from=` links the blob;
    /// `DISABLED`: it opens an ordinary upload session (`202`).
    BlobMounting,
}

impl AccountFlag {
    pub const ALL: [AccountFlag; 3] = [
        AccountFlag::BasicScanTypeVersion,
        AccountFlag::RegistryPolicyScope,
        AccountFlag::BlobMounting,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AccountFlag::BasicScanTypeVersion => "BASIC_SCAN_TYPE_VERSION",
            AccountFlag::RegistryPolicyScope => "REGISTRY_POLICY_SCOPE",
            AccountFlag::BlobMounting => "BLOB_MOUNTING",
        }
    }

    pub fn from_name(name: &str) -> Option<AccountFlag> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn values(self) -> &'static [&'static str] {
        match self {
            AccountFlag::BasicScanTypeVersion => &["AWS_NATIVE", "CLAIR"],
            AccountFlag::RegistryPolicyScope => &["V1", "V2"],
            AccountFlag::BlobMounting => &["ENABLED", "DISABLED"],
        }
    }

    /// The value of a setting never put. ECR's defaults, except `BLOB_MOUNTING`:
    /// berth mounted across repositories before the setting existed (as the OCI
    /// Distribution specification describes), so it stays `ENABLED` until an
    /// account turns it off.
    pub fn default_value(self) -> &'static str {
        match self {
            AccountFlag::BasicScanTypeVersion => "AWS_NATIVE",
            AccountFlag::RegistryPolicyScope => "V2",
            AccountFlag::BlobMounting => "ENABLED",
        }
    }
}

/// The actions a `V1`-scoped registry policy governs.
pub const V1_REGISTRY_POLICY_ACTIONS: &[&str] = &[
    "ecr:ReplicateImage",
    "ecr:BatchImportUpstreamImage",
    "ecr:CreateRepository",
];

impl Registry {
    /// The value of one account setting (its default when never put).
    pub async fn account_flag(
        &self,
        account: &str,
        f: AccountFlag,
    ) -> Result<String, RegistryError> {
        Ok(self
            .meta
            .account_flag(account, f.name())
            .await?
            .unwrap_or_else(|| f.default_value().to_string()))
    }

    /// Sets one account setting; `value` must be one of [`AccountFlag::values`].
    pub async fn put_account_flag(
        &self,
        account: &str,
        f: AccountFlag,
        value: &str,
    ) -> Result<(), RegistryError> {
        if !f.values().contains(&value) {
            return Err(RegistryError::PolicyInvalid(format!(
                "Invalid value '{value}' for account setting {}; valid values: {}",
                f.name(),
                f.values().join(", ")
            )));
        }
        self.meta
            .put_account_flag(account, f.name(), value, self.now())
            .await?;
        Ok(())
    }

    /// Whether cross-repository mounts are honoured in `account`'s registry.
    pub async fn blob_mounting_enabled(&self, account: &str) -> Result<bool, RegistryError> {
        Ok(self
            .account_flag(account, AccountFlag::BlobMounting)
            .await?
            == "ENABLED")
    }

    /// Whether `account`'s registry policy takes part in deciding `action`
    /// (`REGISTRY_POLICY_SCOPE`).
    pub async fn registry_policy_covers(
        &self,
        account: &str,
        action: &str,
    ) -> Result<bool, RegistryError> {
        if self
            .account_flag(account, AccountFlag::RegistryPolicyScope)
            .await?
            == "V2"
        {
            return Ok(true);
        }
        Ok(V1_REGISTRY_POLICY_ACTIONS.contains(&action))
    }
}
