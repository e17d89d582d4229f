//! Rows of berth-managed KMS keys: key metadata, key material versions (sealed by
//! the caller with the master key) and aliases.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Meta, StoreError};

#[derive(Debug, Clone)]
pub struct KmsKeyRow {
    pub key_id: String,
    pub account_id: String,
    pub description: String,
    /// `Enabled`, `Disabled` or `PendingDeletion`.
    pub key_state: String,
    pub created_at: i64,
    pub deletion_date: Option<i64>,
    pub rotation_enabled: bool,
    pub current_version: i64,
    pub policy: Option<String>,
    /// JSON list of `{"TagKey","TagValue"}`.
    pub tags: String,
}

const COLS: &str = "key_id, account_id, description, key_state, created_at, deletion_date, rotation_enabled, current_version, policy, tags";

fn from_row(r: &AnyRow) -> Result<KmsKeyRow, sqlx::Error> {
    Ok(KmsKeyRow {
        key_id: r.try_get(0)?,
        account_id: r.try_get(1)?,
        description: r.try_get(2)?,
        key_state: r.try_get(3)?,
        created_at: r.try_get(4)?,
        deletion_date: r.try_get(5)?,
        rotation_enabled: r.try_get::<i64, _>(6)? != 0,
        current_version: r.try_get(7)?,
        policy: r.try_get(8)?,
        tags: r.try_get(9)?,
    })
}

impl Meta {
    /// Creates a key with its first material version.
    pub async fn create_kms_key(&self, k: &KmsKeyRow, material: &[u8]) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(&format!(
            "INSERT INTO kms_keys ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(&k.key_id)
        .bind(&k.account_id)
        .bind(&k.description)
        .bind(&k.key_state)
        .bind(k.created_at)
        .bind(k.deletion_date)
        .bind(k.rotation_enabled as i64)
        .bind(k.current_version)
        .bind(k.policy.clone())
        .bind(&k.tags)
        .execute(&mut *g.tx)
        .await?;
        sqlx::query("INSERT INTO kms_key_material (key_id, version, material, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&k.key_id)
            .bind(k.current_version)
            .bind(material.to_vec())
            .bind(k.created_at)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    pub async fn kms_key(&self, key_id: &str) -> Result<Option<KmsKeyRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM kms_keys WHERE key_id = $1"))
            .bind(key_id)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    pub async fn list_kms_keys(&self, account_id: &str) -> Result<Vec<KmsKeyRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM kms_keys WHERE account_id = $1 ORDER BY created_at, key_id"
        ))
        .bind(account_id)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    pub async fn set_kms_key_state(
        &self,
        key_id: &str,
        state: &str,
        deletion_date: Option<i64>,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n =
            sqlx::query("UPDATE kms_keys SET key_state = $1, deletion_date = $2 WHERE key_id = $3")
                .bind(state)
                .bind(deletion_date)
                .bind(key_id)
                .execute(&mut *g.tx)
                .await?
                .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn set_kms_rotation(&self, key_id: &str, enabled: bool) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("UPDATE kms_keys SET rotation_enabled = $1 WHERE key_id = $2")
            .bind(enabled as i64)
            .bind(key_id)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn set_kms_description_policy_tags(
        &self,
        key_id: &str,
        description: Option<&str>,
        policy: Option<&str>,
        tags: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        if let Some(d) = description {
            sqlx::query("UPDATE kms_keys SET description = $1 WHERE key_id = $2")
                .bind(d)
                .bind(key_id)
                .execute(&mut *g.tx)
                .await?;
        }
        if let Some(p) = policy {
            sqlx::query("UPDATE kms_keys SET policy = $1 WHERE key_id = $2")
                .bind(p)
                .bind(key_id)
                .execute(&mut *g.tx)
                .await?;
        }
        if let Some(t) = tags {
            sqlx::query("UPDATE kms_keys SET tags = $1 WHERE key_id = $2")
                .bind(t)
                .bind(key_id)
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await
    }

    /// Adds a new material version and makes it current.
    pub async fn add_kms_version(
        &self,
        key_id: &str,
        version: i64,
        material: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("INSERT INTO kms_key_material (key_id, version, material, created_at) VALUES ($1, $2, $3, $4)")
            .bind(key_id)
            .bind(version)
            .bind(material.to_vec())
            .bind(now)
            .execute(&mut *g.tx)
            .await?;
        sqlx::query("UPDATE kms_keys SET current_version = $1 WHERE key_id = $2")
            .bind(version)
            .bind(key_id)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    pub async fn kms_material(
        &self,
        key_id: &str,
        version: i64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT material FROM kms_key_material WHERE key_id = $1 AND version = $2",
        )
        .bind(key_id)
        .bind(version)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Creates an alias; false if the name is taken in the account.
    pub async fn create_kms_alias(
        &self,
        account_id: &str,
        alias: &str,
        key_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("INSERT INTO kms_aliases (account_id, alias_name, key_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, alias_name) DO NOTHING")
            .bind(account_id)
            .bind(alias)
            .bind(key_id)
            .bind(now)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn update_kms_alias(
        &self,
        account_id: &str,
        alias: &str,
        key_id: &str,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE kms_aliases SET key_id = $1 WHERE account_id = $2 AND alias_name = $3",
        )
        .bind(key_id)
        .bind(account_id)
        .bind(alias)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn delete_kms_alias(
        &self,
        account_id: &str,
        alias: &str,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM kms_aliases WHERE account_id = $1 AND alias_name = $2")
            .bind(account_id)
            .bind(alias)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// (alias name, key id, created at) of an account.
    pub async fn list_kms_aliases(
        &self,
        account_id: &str,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT alias_name, key_id, created_at FROM kms_aliases WHERE account_id = $1 ORDER BY alias_name")
            .bind(account_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Links and manifests of the repositories encrypted with a KMS key, for
    /// re-wrapping after rotation: (repo_id, digest, wrapped key) of links.
    pub async fn links_of_repo(
        &self,
        repo_id: i64,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, StoreError> {
        let rows = sqlx::query("SELECT digest, data_key FROM repo_blobs WHERE repo_id = $1")
            .bind(repo_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub async fn set_link_key(
        &self,
        repo_id: i64,
        digest: &str,
        key: &[u8],
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE repo_blobs SET data_key = $1 WHERE repo_id = $2 AND digest = $3")
            .bind(key.to_vec())
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    /// Every manifest body of a repository: (digest, sealed body).
    pub async fn manifest_bodies(
        &self,
        repo_id: i64,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows = sqlx::query("SELECT digest, body FROM manifests WHERE repo_id = $1")
            .bind(repo_id)
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    pub async fn set_manifest_body(
        &self,
        repo_id: i64,
        digest: &str,
        body: &[u8],
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("UPDATE manifests SET body = $1 WHERE repo_id = $2 AND digest = $3")
            .bind(body.to_vec())
            .bind(repo_id)
            .bind(digest)
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    /// Repositories (of every account) whose `kms_key` is this key's ARN.
    pub async fn repositories_with_kms_key(
        &self,
        key_arn: &str,
    ) -> Result<Vec<crate::RepositoryRow>, StoreError> {
        let mut out = Vec::new();
        for account in self.list_accounts().await? {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .list_repositories(&account, after.as_deref(), 500)
                    .await?;
                if page.is_empty() {
                    break;
                }
                after = page.last().map(|r| r.name.clone());
                out.extend(
                    page.into_iter()
                        .filter(|r| r.kms_key.as_deref() == Some(key_arn)),
                );
            }
        }
        Ok(out)
    }
}
