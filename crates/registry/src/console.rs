//! Console sessions: signing in with an access key id and secret (the keys the AWS
//! CLI uses), the session that follows, and signing out. Sessions are rows in the
//! metadata store, so every node sharing the database knows them; a session ends
//! when it expires, when it is signed out, or when its access key is disabled or
//! deleted (the lookup joins the key).

pub use berth_store::meta::AuditSearch;
use berth_store::meta::SessionRow;
use ring::rand::SecureRandom;

use crate::identity::{IdentityError, Principal};
use crate::Registry;

type Result<T> = std::result::Result<T, IdentityError>;

/// A signed-in console session.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub principal: Principal,
    pub access_key_id: String,
    /// The token every state-changing form of this session carries.
    pub csrf_token: String,
    pub expires_at: i64,
}

/// The outcome of a sign-in attempt.
pub enum SignIn {
    /// The opaque session id (for the cookie; stored only as its hash) and the session.
    Ok(String, ConsoleSession),
    /// Unknown or inactive key, or a wrong secret (not told apart).
    Refused,
}

fn sha256_hex(s: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

fn random_token() -> Result<String> {
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| IdentityError::Invalid("no randomness for a session id".into()))?;
    Ok(hex::encode(b))
}

/// Equality of two secrets in time independent of where they differ: their SHA-256
/// digests (fixed length) are compared without an early exit.
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    let da = ring::digest::digest(&ring::digest::SHA256, a);
    let db = ring::digest::digest(&ring::digest::SHA256, b);
    da.as_ref()
        .iter()
        .zip(db.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn session_of(row: SessionRow) -> ConsoleSession {
    ConsoleSession {
        principal: Principal {
            account_id: row.account_id,
            user_name: row.user_name,
        },
        access_key_id: row.access_key_id,
        csrf_token: row.csrf_token,
        expires_at: row.expires_at,
    }
}

impl Registry {
    /// Verifies an access key id and secret and opens a session of `ttl_ms`.
    pub async fn console_sign_in(
        &self,
        access_key_id: &str,
        secret: &str,
        ttl_ms: i64,
    ) -> Result<SignIn> {
        let found = self.identity().secret_for(access_key_id).await?;
        let Some((stored, principal)) = found else {
            return Ok(SignIn::Refused);
        };
        if !secrets_equal(&stored, secret.as_bytes()) {
            return Ok(SignIn::Refused);
        }
        let id = random_token()?;
        let now = self.now();
        let row = SessionRow {
            access_key_id: access_key_id.to_string(),
            account_id: principal.account_id.clone(),
            user_name: principal.user_name.clone(),
            csrf_token: random_token()?,
            created_at: now,
            expires_at: now + ttl_ms,
        };
        self.meta
            .insert_console_session(&sha256_hex(&id), &row)
            .await?;
        Ok(SignIn::Ok(id, session_of(row)))
    }

    /// The live session with this id: unexpired, not signed out, its key active.
    pub async fn console_session(&self, session_id: &str) -> Result<Option<ConsoleSession>> {
        Ok(self
            .meta
            .console_session(&sha256_hex(session_id), self.now())
            .await?
            .map(session_of))
    }

    /// A keyset page of an account's repositories whose name contains `contains`
    /// (the console's Repositories page), in name order, descending with `desc`.
    pub async fn search_repositories(
        &self,
        account: &str,
        contains: &str,
        desc: bool,
        after: Option<&str>,
        n: i64,
    ) -> std::result::Result<Vec<crate::RepositoryRow>, crate::RegistryError> {
        Ok(self
            .meta
            .search_repositories(account, contains, desc, after, n)
            .await?)
    }

    /// A keyset page of an account's audit log, newest first (the console's Audit
    /// log page): (id, record) pairs older than `before`.
    pub async fn search_audit(
        &self,
        account: &str,
        filter: &AuditSearch,
        before: Option<i64>,
        n: i64,
    ) -> std::result::Result<Vec<(i64, crate::AuditRow)>, crate::RegistryError> {
        Ok(self.meta.search_audit(account, filter, before, n).await?)
    }

    /// The Overview's storage chart: the `n` largest repositories of an account.
    pub async fn storage_by_repository(
        &self,
        account: &str,
        n: i64,
    ) -> std::result::Result<Vec<(String, i64)>, crate::RegistryError> {
        Ok(self.meta.storage_by_repository(account, n).await?)
    }

    /// The Overview's activity chart: (day, pushes, last pulls) since `since` ms.
    pub async fn activity_by_day(
        &self,
        account: &str,
        since: i64,
    ) -> std::result::Result<Vec<(i64, i64, i64)>, crate::RegistryError> {
        Ok(self.meta.activity_by_day(account, since).await?)
    }

    /// The Overview's findings chart: findings by severity across the account's
    /// stored images (CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL, UNDEFINED).
    pub async fn findings_by_severity(
        &self,
        account: &str,
    ) -> std::result::Result<[i64; 6], crate::RegistryError> {
        Ok(self.meta.findings_by_severity(account).await?)
    }

    /// A keyset page of a repository's manifests in digest order, with the tags
    /// and scans of that page only (DescribeImages without `imageIds`).
    #[allow(clippy::type_complexity)]
    pub async fn manifests_page(
        &self,
        repo: &crate::RepositoryRow,
        after: Option<&str>,
        tag_status: &str,
        limit: i64,
    ) -> std::result::Result<
        (
            Vec<crate::ManifestRow>,
            Vec<(String, String)>,
            Vec<crate::ScanRow>,
        ),
        crate::RegistryError,
    > {
        let page = self
            .meta
            .manifests_page(repo.repo_id, after, tag_status, limit)
            .await?;
        let (Some(first), Some(last)) = (page.first(), page.last()) else {
            return Ok((page, Vec::new(), Vec::new()));
        };
        let (tags, scans) = tokio::try_join!(
            self.meta
                .tags_in_digest_range(repo.repo_id, &first.digest, &last.digest),
            self.meta
                .scans_in_digest_range(repo.repo_id, &first.digest, &last.digest),
        )?;
        Ok((page, tags, scans))
    }

    /// Ends a session (sign-out); false when there was none.
    pub async fn console_sign_out(&self, session_id: &str) -> Result<bool> {
        Ok(self
            .meta
            .delete_console_session(&sha256_hex(session_id))
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::secrets_equal;

    #[test]
    fn secrets_compare_by_value() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"abcd"));
        assert!(!secrets_equal(b"", b"a"));
    }
}
