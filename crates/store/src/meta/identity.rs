//! Users, access keys and their inline policies.

use super::*;

impl Meta {
    pub async fn create_user(
        &self,
        account_id: &str,
        user_name: &str,
        user_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("INSERT INTO users (account_id, user_name, user_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, user_name) DO NOTHING")
            .bind(account_id)
            .bind(user_name)
            .bind(user_id)
            .bind(now)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn get_user(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query("SELECT account_id, user_name, user_id, created_at FROM users WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(user_from_row).transpose()?)
    }

    pub async fn list_users(&self, account_id: &str) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query("SELECT account_id, user_name, user_id, created_at FROM users WHERE account_id = $1 ORDER BY user_name")
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(user_from_row).collect::<Result<_, _>>()?)
    }

    /// Deletes a user with its keys and policies.
    pub async fn delete_user(&self, account_id: &str, user_name: &str) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("DELETE FROM access_keys WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .execute(&mut *g.tx)
            .await?;
        sqlx::query("DELETE FROM user_policies WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .execute(&mut *g.tx)
            .await?;
        sqlx::query("DELETE FROM user_tags WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .execute(&mut *g.tx)
            .await?;
        let n = sqlx::query("DELETE FROM users WHERE account_id = $1 AND user_name = $2")
            .bind(account_id)
            .bind(user_name)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Stores an access key; `user_name` None means the account root.
    pub async fn insert_access_key(&self, k: &AccessKeyRow) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("INSERT INTO access_keys (access_key_id, account_id, user_name, secret, status, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (access_key_id) DO NOTHING")
            .bind(&k.access_key_id)
            .bind(&k.account_id)
            .bind(k.user_name.clone())
            .bind(k.secret.clone())
            .bind(&k.status)
            .bind(k.created_at)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn get_access_key(
        &self,
        access_key_id: &str,
    ) -> Result<Option<AccessKeyRow>, StoreError> {
        let row = sqlx::query("SELECT access_key_id, account_id, user_name, secret, status, created_at FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(key_from_row).transpose()?)
    }

    pub async fn list_access_keys(
        &self,
        account_id: &str,
    ) -> Result<Vec<AccessKeyRow>, StoreError> {
        let rows = sqlx::query("SELECT access_key_id, account_id, user_name, secret, status, created_at FROM access_keys WHERE account_id = $1 ORDER BY created_at")
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(key_from_row).collect::<Result<_, _>>()?)
    }

    pub async fn set_access_key_status(
        &self,
        access_key_id: &str,
        status: &str,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("UPDATE access_keys SET status = $1 WHERE access_key_id = $2")
            .bind(status)
            .bind(access_key_id)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    pub async fn delete_access_key(&self, access_key_id: &str) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// Attaches a policy to a user: `document` None names a managed policy.
    pub async fn put_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
        document: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut g = self.begin_write().await?;
        sqlx::query("INSERT INTO user_policies (account_id, user_name, policy_name, document) VALUES ($1, $2, $3, $4) ON CONFLICT (account_id, user_name, policy_name) DO UPDATE SET document = excluded.document")
            .bind(account_id)
            .bind(user_name)
            .bind(policy_name)
            .bind(document.map(str::to_string))
            .execute(&mut *g.tx)
            .await?;
        g.commit().await
    }

    pub async fn delete_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
    ) -> Result<bool, StoreError> {
        let mut g = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM user_policies WHERE account_id = $1 AND user_name = $2 AND policy_name = $3")
            .bind(account_id)
            .bind(user_name)
            .bind(policy_name)
            .execute(&mut *g.tx)
            .await?
            .rows_affected();
        g.commit().await?;
        Ok(n == 1)
    }

    /// (policy name, inline document or None for a managed policy).
    pub async fn user_policies(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let rows = sqlx::query("SELECT policy_name, document FROM user_policies WHERE account_id = $1 AND user_name = $2 ORDER BY policy_name")
            .bind(account_id)
            .bind(user_name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
