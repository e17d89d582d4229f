//! Identity: accounts, users, access keys, identity policies, the master key and
//! registry tokens — who a signature or a registry token belongs to, and what the
//! CLI (`berth admin`) manages. Every front end reaches identity through here
//! (`docs/architecture.md`, "Rooms": the core owns identity and authorization inputs).
//!
//! Access-key secrets are sealed with the master key before they reach the metadata
//! store; tokens are MACed with a key derived from it, so any node with the same
//! master key verifies any other node's tokens without shared state.

use std::sync::Arc;

use berth_iam::arn::AccountId;
use berth_iam::token::{self, TokenClaims, TokenError};
use berth_store::{AccessKeyRow, Meta, StoreError};

pub use berth_store::UserRow;

use crate::master_ring::MasterRing;
use crate::secrets::SecretError;

/// An authenticated principal: the account root or an IAM-style user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account_id: String,
    /// `None` for the account root.
    pub user_name: Option<String>,
}

impl Principal {
    pub fn root(account_id: &str) -> Self {
        Principal {
            account_id: account_id.to_string(),
            user_name: None,
        }
    }

    pub fn arn(&self) -> String {
        match &self.user_name {
            None => format!("arn:aws:iam::{}:root", self.account_id),
            Some(u) => format!("arn:aws:iam::{}:user/{u}", self.account_id),
        }
    }

    /// Whether `arn` is this principal's ARN (`self.arn() == arn`, without
    /// building it).
    pub fn has_arn(&self, arn: &str) -> bool {
        let Some(rest) = arn
            .strip_prefix("arn:aws:iam::")
            .and_then(|r| r.strip_prefix(self.account_id.as_str()))
        else {
            return false;
        };
        match &self.user_name {
            None => rest == ":root",
            Some(u) => rest.strip_prefix(":user/") == Some(u.as_str()),
        }
    }

    /// Parses an ARN produced by [`Principal::arn`].
    pub fn from_arn(arn: &str) -> Option<Self> {
        let rest = arn.strip_prefix("arn:aws:iam::")?;
        let (account, res) = rest.split_once(':')?;
        if !berth_iam::arn::is_account_id(account) {
            return None;
        }
        if res == "root" {
            return Some(Principal::root(account));
        }
        let user = res.strip_prefix("user/")?;
        let name = user.rsplit('/').next()?;
        (!name.is_empty()).then(|| Principal {
            account_id: account.to_string(),
            user_name: Some(name.to_string()),
        })
    }

    pub fn is_root(&self) -> bool {
        self.user_name.is_none()
    }

    /// The `UserId` STS and IAM report: the account id for the root, else a stable id.
    pub fn user_id(&self) -> String {
        match &self.user_name {
            None => self.account_id.clone(),
            Some(u) => format!("AIDA{}", stable_id(&self.account_id, u)),
        }
    }
}

/// A deterministic 16-character uppercase id for a user.
fn stable_id(account: &str, user: &str) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{account}/{user}").as_bytes(),
    );
    d.as_ref()[..10]
        .iter()
        .map(|b| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[(b % 32) as usize]))
        .chain("BERTHUSR".chars())
        .take(16)
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("{0}")]
    Invalid(String),
}

pub struct Identity {
    meta: Meta,
    master: Arc<MasterRing>,
}

/// An access key as listed (never with its secret).
#[derive(Debug, Clone)]
pub struct AccessKeyInfo {
    pub access_key_id: String,
    pub account_id: String,
    pub user_name: Option<String>,
    pub status: String,
    pub created_at: i64,
}

/// An identity policy attached to a user: its name and, for an inline policy, its
/// document (`None` for a managed policy, named by `name`).
#[derive(Debug, Clone)]
pub struct UserPolicy {
    pub name: String,
    pub document: Option<String>,
}

/// A freshly created access key (the only time the secret is shown).
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl Identity {
    pub(crate) fn new(meta: Meta, master: Arc<MasterRing>) -> Self {
        Identity { meta, master }
    }

    /// The master keyring (sealing other stored secrets, such as webhook secrets).
    pub(crate) fn master(&self) -> &MasterRing {
        &self.master
    }

    /// A key derived from the (primary) master key for one purpose.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        self.master.derive(purpose)
    }

    /// [`Self::derive_key`] under every master key in use (during a rotation, the
    /// old and the new one), for verifying what another node made.
    pub fn derive_keys(&self, purpose: &str) -> Vec<[u8; 32]> {
        self.master.derive_all(purpose)
    }

    // ---- accounts ------------------------------------------------------------------

    /// Creates the account if it does not exist yet.
    pub async fn ensure_account(&self, account_id: &str, now: i64) -> Result<(), IdentityError> {
        Ok(self.meta.ensure_account(account_id, now).await?)
    }

    pub async fn account_exists(&self, account_id: &str) -> Result<bool, IdentityError> {
        Ok(self.meta.account_exists(account_id).await?)
    }

    pub async fn list_accounts(&self) -> Result<Vec<String>, IdentityError> {
        Ok(self.meta.list_accounts().await?)
    }

    // ---- users ---------------------------------------------------------------------

    /// Creates a user; `Ok(None)` when the name is taken. Returns the new principal.
    pub async fn create_user(
        &self,
        account_id: &str,
        user_name: &str,
        now: i64,
    ) -> Result<Option<Principal>, IdentityError> {
        berth_iam::arn::validate_user_name(user_name)
            .map_err(|e| IdentityError::Invalid(e.to_string()))?;
        let p = Principal {
            account_id: account_id.to_string(),
            user_name: Some(user_name.to_string()),
        };
        let created = self
            .meta
            .create_user(account_id, user_name, &p.user_id(), now)
            .await?;
        Ok(created.then_some(p))
    }

    pub async fn user(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Option<UserRow>, IdentityError> {
        Ok(self.meta.get_user(account_id, user_name).await?)
    }

    pub async fn list_users(&self, account_id: &str) -> Result<Vec<UserRow>, IdentityError> {
        Ok(self.meta.list_users(account_id).await?)
    }

    /// Deletes a user with its keys and policies; false when there was no such user.
    pub async fn delete_user(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<bool, IdentityError> {
        Ok(self.meta.delete_user(account_id, user_name).await?)
    }

    // ---- identity policies ---------------------------------------------------------

    /// Attaches a managed policy (`document` None) or an inline one.
    pub async fn put_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
        document: Option<&str>,
    ) -> Result<(), IdentityError> {
        Ok(self
            .meta
            .put_user_policy(account_id, user_name, policy_name, document)
            .await?)
    }

    pub async fn delete_user_policy(
        &self,
        account_id: &str,
        user_name: &str,
        policy_name: &str,
    ) -> Result<bool, IdentityError> {
        Ok(self
            .meta
            .delete_user_policy(account_id, user_name, policy_name)
            .await?)
    }

    pub async fn user_policies(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> Result<Vec<UserPolicy>, IdentityError> {
        Ok(self
            .meta
            .user_policies(account_id, user_name)
            .await?
            .into_iter()
            .map(|(name, document)| UserPolicy { name, document })
            .collect())
    }

    // ---- access keys ---------------------------------------------------------------

    pub async fn list_access_keys(
        &self,
        account_id: &str,
    ) -> Result<Vec<AccessKeyInfo>, IdentityError> {
        Ok(self
            .meta
            .list_access_keys(account_id)
            .await?
            .into_iter()
            .map(|k| AccessKeyInfo {
                access_key_id: k.access_key_id,
                account_id: k.account_id,
                user_name: k.user_name,
                status: k.status,
                created_at: k.created_at,
            })
            .collect())
    }

    /// Enables or disables a key; false when there is no such key.
    pub async fn set_access_key_active(
        &self,
        access_key_id: &str,
        active: bool,
    ) -> Result<bool, IdentityError> {
        let status = if active { "Active" } else { "Inactive" };
        Ok(self
            .meta
            .set_access_key_status(access_key_id, status)
            .await?)
    }

    pub async fn delete_access_key(&self, access_key_id: &str) -> Result<bool, IdentityError> {
        Ok(self.meta.delete_access_key(access_key_id).await?)
    }

    fn random_string(&self, alphabet: &[u8], n: usize) -> Result<String, IdentityError> {
        let mut buf = vec![0u8; n];
        self.master.random(&mut buf)?;
        Ok(buf
            .iter()
            .map(|b| char::from(alphabet[(*b as usize) % alphabet.len()]))
            .collect())
    }

    /// Creates an access key for the root (`user` None) or a user.
    pub async fn create_access_key(
        &self,
        account_id: &str,
        user: Option<&str>,
        now: i64,
    ) -> Result<NewAccessKey, IdentityError> {
        let id = format!(
            "AKIA{}",
            self.random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)?
        );
        let secret = self.random_string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            40,
        )?;
        self.store_access_key(account_id, user, &id, &secret, now)
            .await?;
        Ok(NewAccessKey {
            access_key_id: id,
            secret_access_key: secret,
        })
    }

    /// Stores a given key pair (replacing the secret of an existing key with that id).
    pub async fn store_access_key(
        &self,
        account_id: &str,
        user: Option<&str>,
        access_key_id: &str,
        secret: &str,
        now: i64,
    ) -> Result<(), IdentityError> {
        if access_key_id.len() < 16
            || access_key_id.len() > 128
            || !access_key_id.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(IdentityError::Invalid(
                "access key ids are 16-128 letters and digits".into(),
            ));
        }
        if secret.len() < 16 {
            return Err(IdentityError::Invalid(
                "secret access keys must be at least 16 characters".into(),
            ));
        }
        let row = AccessKeyRow {
            access_key_id: access_key_id.to_string(),
            account_id: account_id.to_string(),
            user_name: user.map(str::to_string),
            secret: self.master.seal(access_key_id, secret.as_bytes())?,
            status: "Active".into(),
            created_at: now,
        };
        if !self.meta.insert_access_key(&row).await? {
            self.meta.delete_access_key(access_key_id).await?;
            self.meta.insert_access_key(&row).await?;
        }
        Ok(())
    }

    /// The secret and principal of an active access key.
    pub async fn secret_for(
        &self,
        access_key_id: &str,
    ) -> Result<Option<(Vec<u8>, Principal)>, IdentityError> {
        let Some(row) = self.meta.get_access_key(access_key_id).await? else {
            return Ok(None);
        };
        if row.status != "Active" {
            return Ok(None);
        }
        let secret = self.master.open(access_key_id, &row.secret)?;
        Ok(Some((
            secret,
            Principal {
                account_id: row.account_id,
                user_name: row.user_name,
            },
        )))
    }

    /// Mints a registry token for `p`, valid 12 hours from `now_secs`.
    pub fn mint_token(&self, p: &Principal, now_secs: i64) -> Result<(String, i64), IdentityError> {
        let account =
            AccountId::parse(&p.account_id).map_err(|e| IdentityError::Invalid(e.to_string()))?;
        let claims = TokenClaims::new(account, p.arn(), now_secs);
        let t = token::mint(&self.master.primary().token_key, &claims)?;
        Ok((t, claims.expires_at))
    }

    /// Verifies a `Basic` Authorization header value carrying `AWS:<token>`.
    pub fn verify_basic(&self, header: &str, now_secs: i64) -> Result<Principal, IdentityError> {
        let claims = token::verify_basic(&self.master.token_keys(), header, now_secs)?;
        Principal::from_arn(&claims.principal)
            .ok_or_else(|| IdentityError::Invalid("token names an unknown principal".into()))
    }

    /// Whether the principal still exists (a deleted user's tokens stop working).
    pub async fn principal_exists(&self, p: &Principal) -> Result<bool, IdentityError> {
        Ok(match &p.user_name {
            None => self.meta.account_exists(&p.account_id).await?,
            Some(u) => self.meta.get_user(&p.account_id, u).await?.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_round_trip() {
        let r = Principal::root("123456789012");
        assert_eq!(r.arn(), "arn:aws:iam::123456789012:root");
        assert_eq!(Principal::from_arn(&r.arn()), Some(r));
        let u = Principal {
            account_id: "123456789012".into(),
            user_name: Some("alice".into()),
        };
        assert_eq!(u.arn(), "arn:aws:iam::123456789012:user/alice");
        assert_eq!(Principal::from_arn(&u.arn()), Some(u.clone()));
        assert_eq!(u.user_id().len(), 20);
        assert!(Principal::from_arn("arn:aws:iam::12:root").is_none());
    }
}
