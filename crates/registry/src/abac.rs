//! Attribute inputs of authorization: the tags policy conditions read
//! (`aws:PrincipalTag/<key>` from the caller's user, `aws:ResourceTag/<key>` and
//! `ecr:ResourceTag/<key>` from the target repository). Reading them fails closed
//! like the policies themselves (`authz.rs`): a store error refuses the request,
//! since a missing tag could turn a conditional Deny off.

use std::sync::Arc;

use crate::authz::AuthzError;
use crate::identity::Principal;
use crate::{Registry, RegistryError};

/// The tags of one request's caller and target.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttributeInputs {
    /// The caller's principal tags (none for an account root).
    pub principal_tags: Vec<(String, String)>,
    /// The target repository's resource tags (none when there is no repository).
    pub resource_tags: Vec<(String, String)>,
}

/// Principal tag keys and values: IAM's limits (keys 1–128, values ≤ 256 characters;
/// at most 50 tags a user).
pub const MAX_USER_TAGS: usize = 50;

impl Registry {
    /// Reads the tags `p`'s request on `account`'s repository `repo` (or on no
    /// repository) is evaluated with.
    pub async fn attribute_inputs(
        &self,
        p: &Principal,
        account: &str,
        repo: Option<&str>,
    ) -> Result<AttributeInputs, AuthzError> {
        let epoch = self.cache_epoch().await;
        let principal_tags = match &p.user_name {
            None => Vec::new(),
            Some(u) => {
                let key = p.arn();
                match epoch.and_then(|e| self.cache.user_tags.get(&key, e)) {
                    Some(t) => t.to_vec(),
                    None => match self.meta.user_tags(&p.account_id, u).await {
                        Ok(t) => {
                            if let Some(e) = epoch {
                                self.cache.user_tags.put(key, e, Arc::new(t.clone()));
                            }
                            t
                        }
                        Err(e) => return Err(self.unreadable("principal tags", &e).await),
                    },
                }
            }
        };
        let resource_tags = match repo {
            None => Vec::new(),
            Some(name) => {
                let key = (account.to_string(), name.to_string());
                match epoch.and_then(|e| self.cache.repository_tags.get(&key, e)) {
                    Some(t) => t.to_vec(),
                    None => match self.meta.repository_tags_by_name(account, name).await {
                        Ok(t) => {
                            if let Some(e) = epoch {
                                self.cache.repository_tags.put(key, e, Arc::new(t.clone()));
                            }
                            t
                        }
                        Err(e) => return Err(self.unreadable("resource tags", &e).await),
                    },
                }
            }
        };
        Ok(AttributeInputs {
            principal_tags,
            resource_tags,
        })
    }

    /// A user's principal tags, in key order.
    pub async fn user_tags(
        &self,
        account: &str,
        user: &str,
    ) -> Result<Vec<(String, String)>, RegistryError> {
        Ok(self.meta.user_tags(account, user).await?)
    }

    /// Sets a user's principal tag (`berth admin user tag`); the inner error is a
    /// refused tag (IAM's rules), with its message.
    pub async fn tag_user(
        &self,
        account: &str,
        user: &str,
        key: &str,
        value: &str,
    ) -> Result<Result<(), String>, RegistryError> {
        if key.is_empty() || key.chars().count() > 128 {
            return Ok(Err("tag keys are 1 to 128 characters".into()));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Ok(Err("tag keys starting with 'aws:' are reserved".into()));
        }
        if value.chars().count() > 256 {
            return Ok(Err("tag values are at most 256 characters".into()));
        }
        let existing = self.meta.user_tags(account, user).await?;
        if existing.len() >= MAX_USER_TAGS && !existing.iter().any(|(k, _)| k == key) {
            return Ok(Err(format!("a user has at most {MAX_USER_TAGS} tags")));
        }
        self.meta.put_user_tag(account, user, key, value).await?;
        Ok(Ok(()))
    }

    /// Removes a user's principal tag; false when it had no such tag.
    pub async fn untag_user(
        &self,
        account: &str,
        user: &str,
        key: &str,
    ) -> Result<bool, RegistryError> {
        Ok(self.meta.delete_user_tag(account, user, key).await?)
    }

    /// Opens an upload session for `principal`, unless it already has `max` open
    /// (`Ok(None)`; 0 is no limit). Sessions end when completed, cancelled or
    /// expired (`BERTH_UPLOAD_TTL_SECS`). Nodes do not coordinate the count, so
    /// starts racing on several nodes may pass the limit by a few.
    pub async fn start_upload_as(
        &self,
        repo: &berth_store::RepositoryRow,
        principal: &Principal,
        max: u32,
    ) -> Result<Option<crate::UploadState>, RegistryError> {
        let arn = principal.arn();
        if max > 0 && self.meta.count_uploads_of(&arn).await? >= i64::from(max) {
            return Ok(None);
        }
        let u = self.start_upload(repo).await?;
        self.meta.set_upload_principal(&u.id, &arn).await?;
        Ok(Some(u))
    }
}
