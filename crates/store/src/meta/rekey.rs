//! What a master-key rotation reads and writes (`crates/registry/src/master_ring.rs`):
//! the keyring's shared state, and every column that holds a value sealed under a
//! key derived from the master key, read in pages and rewritten by compare-and-set
//! (a row changed in between is left alone and seen again by the next pass).

use sqlx::any::AnyRow;
use sqlx::Row;

use super::Meta;
use crate::StoreError;

/// The keyring's shared state (table `master_key_state`, one row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterKeyState {
    /// Hex id of the key values are sealed with (`steady`), or of the old key.
    pub active_id: String,
    /// `steady`, `introduce` or `switch`.
    pub phase: String,
    pub old_id: Option<String>,
    pub new_id: Option<String>,
    /// The new key sealed under the old one (hex), during a rotation.
    pub new_under_old: Option<String>,
    /// The old key sealed under the new one (hex), during a rotation.
    pub old_under_new: Option<String>,
    pub updated_at: i64,
}

/// A column holding values sealed under a master-derived key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    /// `access_keys.secret`, keyed by access key id.
    AccessKeys,
    /// `uploads.data_key` (registry wrap), keyed by upload id.
    Uploads,
    /// `blobs.data_key` (registry wrap), keyed by digest.
    Blobs,
    /// `repo_blobs.data_key` (the repository's key), keyed by (repo id, digest).
    Links,
    /// `manifests.body` (the repository's key), keyed by (repo id, digest).
    Manifests,
    /// `kms_key_material.material`, keyed by (key id, version).
    KmsMaterial,
    /// `webhooks.secret` (hex text), keyed by webhook id.
    Webhooks,
}

impl SealedColumn {
    pub const ALL: [SealedColumn; 7] = [
        SealedColumn::AccessKeys,
        SealedColumn::KmsMaterial,
        SealedColumn::Webhooks,
        SealedColumn::Uploads,
        SealedColumn::Blobs,
        SealedColumn::Links,
        SealedColumn::Manifests,
    ];

    /// (table, key columns with whether each is an integer, value column, value is text).
    fn desc(
        self,
    ) -> (
        &'static str,
        &'static [(&'static str, bool)],
        &'static str,
        bool,
    ) {
        match self {
            SealedColumn::AccessKeys => {
                ("access_keys", &[("access_key_id", false)], "secret", false)
            }
            SealedColumn::Uploads => ("uploads", &[("upload_id", false)], "data_key", false),
            SealedColumn::Blobs => ("blobs", &[("digest", false)], "data_key", false),
            SealedColumn::Links => (
                "repo_blobs",
                &[("repo_id", true), ("digest", false)],
                "data_key",
                false,
            ),
            SealedColumn::Manifests => (
                "manifests",
                &[("repo_id", true), ("digest", false)],
                "body",
                false,
            ),
            SealedColumn::KmsMaterial => (
                "kms_key_material",
                &[("key_id", false), ("version", true)],
                "material",
                false,
            ),
            SealedColumn::Webhooks => ("webhooks", &[("webhook_id", true)], "secret", true),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SealedColumn::AccessKeys => "access keys",
            SealedColumn::Uploads => "upload data keys",
            SealedColumn::Blobs => "blob data keys",
            SealedColumn::Links => "repository data keys",
            SealedColumn::Manifests => "manifests",
            SealedColumn::KmsMaterial => "KMS key material",
            SealedColumn::Webhooks => "webhook secrets",
        }
    }

    /// Rows per page (manifest bodies may be up to 4 MiB each).
    pub fn page_size(self) -> i64 {
        match self {
            SealedColumn::Manifests => 16,
            _ => 500,
        }
    }
}

/// One part of a row's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyPart {
    Text(String),
    Int(i64),
}

impl std::fmt::Display for KeyPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPart::Text(s) => f.write_str(s),
            KeyPart::Int(i) => write!(f, "{i}"),
        }
    }
}

/// A sealed value and the key of its row.
#[derive(Debug, Clone)]
pub struct SealedRow {
    pub key: Vec<KeyPart>,
    /// The stored bytes (for a text column, its UTF-8 bytes).
    pub value: Vec<u8>,
}

fn state_from_row(r: &AnyRow) -> Result<MasterKeyState, sqlx::Error> {
    Ok(MasterKeyState {
        active_id: r.try_get("active_id")?,
        phase: r.try_get("phase")?,
        old_id: r.try_get("old_id")?,
        new_id: r.try_get("new_id")?,
        new_under_old: r.try_get("new_under_old")?,
        old_under_new: r.try_get("old_under_new")?,
        updated_at: r.try_get("updated_at")?,
    })
}

impl Meta {
    /// The keyring state, if any node recorded it yet.
    pub async fn master_key_state(&self) -> Result<Option<MasterKeyState>, StoreError> {
        let row = sqlx::query(
            "SELECT active_id, phase, old_id, new_id, new_under_old, old_under_new, updated_at \
             FROM master_key_state WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(state_from_row).transpose()?)
    }

    /// Records `active_id` as the sealing key unless a state exists already.
    pub async fn init_master_key_state(&self, active_id: &str, now: i64) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO master_key_state (id, active_id, phase, updated_at) \
             VALUES (1, $1, 'steady', $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(active_id)
        .bind(now)
        .execute(&mut *g.tx)
        .await?;
        g.commit().await
    }

    /// Replaces the state if it is still in `expected_phase` with `expected_active`;
    /// false when another writer moved it.
    pub async fn replace_master_key_state(
        &self,
        expected_phase: &str,
        expected_active: &str,
        next: &MasterKeyState,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE master_key_state SET active_id = $1, phase = $2, old_id = $3, new_id = $4, \
             new_under_old = $5, old_under_new = $6, updated_at = $7 \
             WHERE id = 1 AND phase = $8 AND active_id = $9",
        )
        .bind(&next.active_id)
        .bind(&next.phase)
        .bind(next.old_id.clone())
        .bind(next.new_id.clone())
        .bind(next.new_under_old.clone())
        .bind(next.old_under_new.clone())
        .bind(next.updated_at)
        .bind(expected_phase)
        .bind(expected_active)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// A page of sealed values of `col` whose key sorts after `after` (from the
    /// start with `None`), in key order.
    pub async fn sealed_page(
        &self,
        col: SealedColumn,
        after: Option<&[KeyPart]>,
    ) -> Result<Vec<SealedRow>, StoreError> {
        let (table, keys, value, text) = col.desc();
        let names: Vec<&str> = keys.iter().map(|(k, _)| *k).collect();
        let list = names.join(", ");
        let mut sql = format!("SELECT {list}, {value} FROM {table} WHERE {value} IS NOT NULL");
        if after.is_some() {
            let params: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" AND ({list}) > ({})", params.join(", ")));
        }
        sql.push_str(&format!(" ORDER BY {list} LIMIT {}", col.page_size()));
        let mut q = sqlx::query(&sql);
        if let Some(after) = after {
            for p in after {
                q = match p {
                    KeyPart::Text(s) => q.bind(s.clone()),
                    KeyPart::Int(i) => q.bind(*i),
                };
            }
        }
        let rows = q.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut key = Vec::with_capacity(keys.len());
            for (i, (_, int)) in keys.iter().enumerate() {
                key.push(if *int {
                    KeyPart::Int(r.try_get(i)?)
                } else {
                    KeyPart::Text(r.try_get(i)?)
                });
            }
            let value = if text {
                r.try_get::<String, _>(keys.len())?.into_bytes()
            } else {
                r.try_get::<Vec<u8>, _>(keys.len())?
            };
            out.push(SealedRow { key, value });
        }
        Ok(out)
    }

    /// Sets the sealed value of one row to `new` if it still holds `old`.
    pub async fn reseal(
        &self,
        col: SealedColumn,
        key: &[KeyPart],
        old: &[u8],
        new: &[u8],
    ) -> Result<bool, StoreError> {
        let (table, keys, value, text) = col.desc();
        let mut conds: Vec<String> = keys
            .iter()
            .enumerate()
            .map(|(i, (k, _))| format!("{k} = ${}", i + 2))
            .collect();
        conds.push(format!("{value} = ${}", keys.len() + 2));
        let sql = format!(
            "UPDATE {table} SET {value} = $1 WHERE {}",
            conds.join(" AND ")
        );
        let bytes = |b: &[u8]| -> Result<Option<String>, StoreError> {
            if text {
                String::from_utf8(b.to_vec())
                    .map(Some)
                    .map_err(|_| StoreError::Tampered("a sealed text value is not UTF-8".into()))
            } else {
                Ok(None)
            }
        };
        let mut g = self.begin_write().await?;
        let mut q = sqlx::query(&sql);
        q = match bytes(new)? {
            Some(s) => q.bind(s),
            None => q.bind(new.to_vec()),
        };
        for p in key {
            q = match p {
                KeyPart::Text(s) => q.bind(s.clone()),
                KeyPart::Int(i) => q.bind(*i),
            };
        }
        q = match bytes(old)? {
            Some(s) => q.bind(s),
            None => q.bind(old.to_vec()),
        };
        let n = q.execute(&mut *g.tx).await?.rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Every Secrets Manager secret: (account, row).
    pub async fn all_sm_secrets(&self) -> Result<Vec<(String, super::SmSecretRow)>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_id, name, body, rev FROM sm_secrets ORDER BY account_id, name",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push((
                r.try_get("account_id")?,
                super::SmSecretRow {
                    name: r.try_get("name")?,
                    body: r.try_get("body")?,
                    rev: r.try_get("rev")?,
                },
            ));
        }
        Ok(out)
    }
}
