//! berth-managed KMS keys: `arn:aws:kms:<region>:<account>:key/<uuid>`
//! with aliases, enable/disable, scheduled deletion and rotation. Key material never
//! leaves the server unsealed; rotation adds a material version and re-wraps the
//! data keys and manifests of every repository using the key (blobs are not
//! rewritten).

use berth_store::crypt::DataKey;
use berth_store::kms::KmsKeyRow;

use crate::{Registry, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// The alias ECR's AWS-managed key has; berth creates it on first use.
pub const ECR_DEFAULT_ALIAS: &str = "alias/aws/ecr";

pub fn key_arn(region: &str, k: &KmsKeyRow) -> String {
    format!("arn:aws:kms:{region}:{}:key/{}", k.account_id, k.key_id)
}

impl Registry {
    /// Creates a key with fresh key material.
    pub async fn create_kms_key(
        &self,
        account: &str,
        description: &str,
        policy: Option<&str>,
        tags: &str,
    ) -> Result<KmsKeyRow> {
        let key_id = uuid::Uuid::new_v4().to_string();
        let material = DataKey::generate().map_err(|e| RegistryError::Kms(e.to_string()))?;
        let sealed = self.keys.seal_kms_material(&key_id, 1, material.bytes())?;
        let row = KmsKeyRow {
            key_id,
            account_id: account.to_string(),
            description: description.to_string(),
            key_state: "Enabled".into(),
            created_at: self.now(),
            deletion_date: None,
            rotation_enabled: false,
            current_version: 1,
            policy: policy.map(str::to_string),
            tags: tags.to_string(),
        };
        self.meta.create_kms_key(&row, &sealed).await?;
        Ok(row)
    }

    /// Resolves a key id, key ARN, alias name (`alias/x`) or alias ARN of `account`.
    pub async fn resolve_kms_key(&self, account: &str, id: &str) -> Result<Option<KmsKeyRow>> {
        let (acct, rest) = match id.strip_prefix("arn:aws:kms:") {
            Some(r) => {
                let parts: Vec<&str> = r.splitn(3, ':').collect();
                if parts.len() != 3 {
                    return Ok(None);
                }
                (parts[1].to_string(), parts[2].to_string())
            }
            None => (account.to_string(), id.to_string()),
        };
        let key_id = if let Some(k) = rest.strip_prefix("key/") {
            k.to_string()
        } else if rest.starts_with("alias/") {
            let aliases = self.meta.list_kms_aliases(&acct).await?;
            match aliases.into_iter().find(|(a, _, _)| *a == rest) {
                Some((_, k, _)) => k,
                None if rest == ECR_DEFAULT_ALIAS => {
                    return Ok(Some(self.default_ecr_key(&acct).await?))
                }
                None => return Ok(None),
            }
        } else {
            rest
        };
        let key = self.meta.kms_key(&key_id).await?;
        Ok(key.filter(|k| k.account_id == acct))
    }

    /// The account's `aws/ecr` key, created on first use (ECR's AWS-managed key).
    pub async fn default_ecr_key(&self, account: &str) -> Result<KmsKeyRow> {
        let aliases = self.meta.list_kms_aliases(account).await?;
        if let Some((_, k, _)) = aliases.iter().find(|(a, _, _)| a == ECR_DEFAULT_ALIAS) {
            if let Some(row) = self.meta.kms_key(k).await? {
                return Ok(row);
            }
        }
        let row = self
            .create_kms_key(
                account,
                "Default key that protects my ECR data when no other key is defined",
                None,
                "[]",
            )
            .await?;
        if !self
            .meta
            .create_kms_alias(account, ECR_DEFAULT_ALIAS, &row.key_id, self.now())
            .await?
        {
            // Another node created it first: use theirs.
            let aliases = self.meta.list_kms_aliases(account).await?;
            if let Some((_, k, _)) = aliases.iter().find(|(a, _, _)| a == ECR_DEFAULT_ALIAS) {
                if let Some(r) = self.meta.kms_key(k).await? {
                    return Ok(r);
                }
            }
        }
        Ok(row)
    }

    /// Adds a new material version to `key` and re-wraps every repository using it.
    /// Returns the number of re-wrapped values.
    pub async fn rotate_kms_key(&self, key: &KmsKeyRow, region: &str) -> Result<usize> {
        let version = key.current_version + 1;
        let material = DataKey::generate().map_err(|e| RegistryError::Kms(e.to_string()))?;
        let sealed = self
            .keys
            .seal_kms_material(&key.key_id, version, material.bytes())?;
        self.meta
            .add_kms_version(&key.key_id, version, &sealed, self.now())
            .await?;
        let mut n = 0;
        for repo in self
            .meta
            .repositories_with_kms_key(&key_arn(region, key))
            .await?
        {
            n += self.keys.rewrap_repository(&repo).await?;
        }
        Ok(n)
    }

    pub async fn list_kms_keys(&self, account: &str) -> Result<Vec<KmsKeyRow>> {
        Ok(self.meta.list_kms_keys(account).await?)
    }

    /// Sets a key's state (`Enabled`, `Disabled`, `PendingDeletion` with its date).
    pub async fn set_kms_key_state(
        &self,
        key: &KmsKeyRow,
        state: &str,
        deletion_date: Option<i64>,
    ) -> Result<()> {
        self.meta
            .set_kms_key_state(&key.key_id, state, deletion_date)
            .await?;
        Ok(())
    }

    pub async fn set_kms_rotation(&self, key: &KmsKeyRow, enabled: bool) -> Result<()> {
        self.meta.set_kms_rotation(&key.key_id, enabled).await?;
        Ok(())
    }

    /// Replaces the given ones of a key's description, policy and tags (JSON).
    pub async fn update_kms_key(
        &self,
        key: &KmsKeyRow,
        description: Option<&str>,
        policy: Option<&str>,
        tags: Option<&str>,
    ) -> Result<()> {
        self.meta
            .set_kms_description_policy_tags(&key.key_id, description, policy, tags)
            .await?;
        Ok(())
    }

    /// Creates an alias; false when the account already has one by that name.
    pub async fn create_kms_alias(
        &self,
        account: &str,
        alias: &str,
        key: &KmsKeyRow,
    ) -> Result<bool> {
        Ok(self
            .meta
            .create_kms_alias(account, alias, &key.key_id, self.now())
            .await?)
    }

    /// Points an existing alias at another key; false when there is no such alias.
    pub async fn update_kms_alias(
        &self,
        account: &str,
        alias: &str,
        key: &KmsKeyRow,
    ) -> Result<bool> {
        Ok(self
            .meta
            .update_kms_alias(account, alias, &key.key_id)
            .await?)
    }

    pub async fn delete_kms_alias(&self, account: &str, alias: &str) -> Result<bool> {
        Ok(self.meta.delete_kms_alias(account, alias).await?)
    }

    /// The account's aliases: (alias name, key id, created at).
    pub async fn list_kms_aliases(&self, account: &str) -> Result<Vec<(String, String, i64)>> {
        Ok(self.meta.list_kms_aliases(account).await?)
    }
}
