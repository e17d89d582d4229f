//! Secrets Manager secrets: one row per (account, name) whose body is the secret as
//! JSON owned by the registry core (its metadata and its versions, each value sealed
//! with the master key before it reaches this table). Every change is a
//! compare-and-swap on `rev`, so concurrent writers on any node never lose one.

use super::*;

/// One stored secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmSecretRow {
    pub name: String,
    pub body: String,
    pub rev: i64,
}

fn sm_row(r: &AnyRow) -> Result<SmSecretRow, StoreError> {
    Ok(SmSecretRow {
        name: r.try_get("name")?,
        body: r.try_get("body")?,
        rev: r.try_get("rev")?,
    })
}

impl Meta {
    pub async fn sm_secret(
        &self,
        account_id: &str,
        name: &str,
    ) -> Result<Option<SmSecretRow>, StoreError> {
        sqlx::query("SELECT name, body, rev FROM sm_secrets WHERE account_id = $1 AND name = $2")
            .bind(account_id)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(sm_row)
            .transpose()
    }

    /// Every secret of an account, in name order.
    pub async fn sm_secrets(&self, account_id: &str) -> Result<Vec<SmSecretRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, body, rev FROM sm_secrets WHERE account_id = $1 ORDER BY name",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(sm_row).collect()
    }

    /// Inserts a secret at revision 1; false (and no change) when the name is taken.
    pub async fn insert_sm_secret(
        &self,
        account_id: &str,
        name: &str,
        body: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "INSERT INTO sm_secrets (account_id, name, body, rev, updated_at)
             VALUES ($1, $2, $3, 1, $4) ON CONFLICT (account_id, name) DO NOTHING",
        )
        .bind(account_id)
        .bind(name)
        .bind(body)
        .bind(now)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Replaces a secret's body if it is still at revision `rev`; false otherwise.
    pub async fn replace_sm_secret(
        &self,
        account_id: &str,
        name: &str,
        rev: i64,
        body: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE sm_secrets SET body = $1, rev = rev + 1, updated_at = $2
             WHERE account_id = $3 AND name = $4 AND rev = $5",
        )
        .bind(body)
        .bind(now)
        .bind(account_id)
        .bind(name)
        .bind(rev)
        .execute(&mut *g.tx)
        .await?
        .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Deletes a secret if it is still at revision `rev`; false otherwise.
    pub async fn delete_sm_secret(
        &self,
        account_id: &str,
        name: &str,
        rev: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n =
            sqlx::query("DELETE FROM sm_secrets WHERE account_id = $1 AND name = $2 AND rev = $3")
                .bind(account_id)
                .bind(name)
                .bind(rev)
                .execute(&mut *g.tx)
                .await?
                .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }
}
