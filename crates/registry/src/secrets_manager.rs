//! Secrets Manager secrets (the subset berth serves: create, read, put a value,
//! describe, list, tag, delete with a recovery window, restore). A secret is one
//! stored document — its metadata and its versions — changed by compare-and-swap, so
//! writers on several nodes never lose one another's change. Every value is sealed
//! with the master key bound to (account, name, version), like every other secret
//! berth keeps (`secrets.rs`); nothing here logs a value.
//!
//! Staging labels follow Secrets Manager: a new value gets `AWSCURRENT` unless told
//! otherwise, the version that had it gets `AWSPREVIOUS`, a label is on at most one
//! version, and versions without a label are kept up to [`MAX_VERSIONS`].

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{Registry, RegistryError};

pub const CURRENT: &str = "AWSCURRENT";
pub const PREVIOUS: &str = "AWSPREVIOUS";
/// Versions kept per secret; the oldest unlabelled ones go first.
pub const MAX_VERSIONS: usize = 100;
const DAY_MS: i64 = 24 * 3600 * 1000;
const CAS_ATTEMPTS: usize = 16;

/// What can go wrong, in Secrets Manager's terms.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("Secrets Manager can't find the specified secret.")]
    NotFound,
    #[error("Secrets Manager can't find the specified secret value for {0}.")]
    ValueNotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("Secrets Manager can't decrypt the protected secret text using the provided key.")]
    Decryption,
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<berth_store::StoreError> for SecretsError {
    fn from(e: berth_store::StoreError) -> Self {
        SecretsError::Registry(RegistryError::Store(e))
    }
}

type Result<T> = std::result::Result<T, SecretsError>;

pub fn marked_for_deletion() -> SecretsError {
    SecretsError::InvalidRequest(
        "You can't perform this operation on the secret because it was marked for deletion.".into(),
    )
}

/// A secret value as given and returned.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    Text(String),
    Binary(Vec<u8>),
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// One version of a secret; its value stays sealed until [`Registry::secret_value`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretVersion {
    pub id: String,
    pub stages: Vec<String>,
    pub created_at: i64,
    binary: bool,
    /// `nonce || ciphertext+tag`, base64.
    sealed: String,
}

/// A secret and its versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Secret {
    #[serde(skip)]
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    /// Recorded and echoed; values are always sealed with the master key.
    pub kms_key_id: Option<String>,
    pub tags: Vec<(String, String)>,
    pub versions: Vec<SecretVersion>,
    pub created_at: i64,
    pub changed_at: i64,
    /// When a scheduled deletion happens (DeleteSecret with a recovery window).
    pub deletion_date: Option<i64>,
    #[serde(skip)]
    rev: i64,
}

impl Secret {
    /// The version carrying `stage`.
    pub fn staged(&self, stage: &str) -> Option<&SecretVersion> {
        self.versions
            .iter()
            .find(|v| v.stages.iter().any(|s| s == stage))
    }

    fn marked_for_deletion(&self) -> bool {
        self.deletion_date.is_some()
    }
}

/// New secret fields (CreateSecret).
pub struct NewSecret {
    pub name: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub tags: Vec<(String, String)>,
    /// The first value and its version id, if given.
    pub value: Option<(String, SecretValue)>,
}

/// `…:secret:<name>` with the 6-character suffix Secrets Manager appends.
fn secret_arn(region: &str, account: &str, name: &str, suffix: &str) -> String {
    format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}")
}

/// The names a `SecretId` may mean in `account`: a name, a full ARN (name and
/// suffix) or a partial ARN (no suffix). `None` for an ARN of another account or
/// service.
fn candidates(account: &str, id: &str) -> Option<Vec<(String, Option<String>)>> {
    if !id.starts_with("arn:") {
        return Some(vec![(id.to_string(), None)]);
    }
    let parts: Vec<&str> = id.splitn(7, ':').collect();
    if parts.len() != 7
        || parts[2] != "secretsmanager"
        || parts[4] != account
        || parts[5] != "secret"
    {
        return None;
    }
    let tail = parts[6];
    let mut out = Vec::new();
    if let Some((name, suffix)) = tail.rsplit_once('-') {
        if suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            out.push((name.to_string(), Some(id.to_string())));
        }
    }
    out.push((tail.to_string(), None));
    Some(out)
}

fn seal_context(account: &str, name: &str, version: &str) -> String {
    format!("secretsmanager:{account}:{name}:{version}")
}

impl Registry {
    fn sm_parse(&self, row: berth_store::meta::SmSecretRow) -> Result<Secret> {
        let mut s: Secret = serde_json::from_str(&row.body).map_err(|e| {
            SecretsError::Registry(RegistryError::Store(berth_store::StoreError::Conflict(
                format!("stored secret {} does not parse: {e}", row.name),
            )))
        })?;
        s.name = row.name;
        s.rev = row.rev;
        Ok(s)
    }

    /// A secret by `SecretId`, including one marked for deletion. A secret whose
    /// recovery window has passed is deleted for good here and reads as missing.
    pub async fn secret(&self, account: &str, id: &str) -> Result<Option<Secret>> {
        let Some(cands) = candidates(account, id) else {
            return Ok(None);
        };
        for (name, full_arn) in cands {
            let Some(row) = self.meta.sm_secret(account, &name).await? else {
                continue;
            };
            let s = self.sm_parse(row)?;
            if full_arn.as_deref().is_some_and(|a| a != s.arn) {
                continue;
            }
            if s.deletion_date.is_some_and(|d| d <= self.now()) {
                self.meta.delete_sm_secret(account, &s.name, s.rev).await?;
                return Ok(None);
            }
            return Ok(Some(s));
        }
        Ok(None)
    }

    /// Every live secret of `account` (and those marked for deletion), by name.
    pub async fn secrets(&self, account: &str) -> Result<Vec<Secret>> {
        let now = self.now();
        let mut out = Vec::new();
        for row in self.meta.sm_secrets(account).await? {
            let s = self.sm_parse(row)?;
            if s.deletion_date.is_some_and(|d| d <= now) {
                self.meta.delete_sm_secret(account, &s.name, s.rev).await?;
                continue;
            }
            out.push(s);
        }
        Ok(out)
    }

    fn seal_version(
        &self,
        account: &str,
        name: &str,
        id: &str,
        value: &SecretValue,
        stages: Vec<String>,
    ) -> Result<SecretVersion> {
        let (binary, plain): (bool, &[u8]) = match value {
            SecretValue::Text(t) => (false, t.as_bytes()),
            SecretValue::Binary(b) => (true, b),
        };
        let sealed = self
            .identity()
            .master()
            .seal(&seal_context(account, name, id), plain)
            .map_err(|_| SecretsError::Decryption)?;
        Ok(SecretVersion {
            id: id.to_string(),
            stages,
            created_at: self.now(),
            binary,
            sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
        })
    }

    fn open_version(&self, account: &str, name: &str, v: &SecretVersion) -> Result<SecretValue> {
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&v.sealed)
            .map_err(|_| SecretsError::Decryption)?;
        let plain = self
            .identity()
            .master()
            .open(&seal_context(account, name, &v.id), &sealed)
            .map_err(|_| SecretsError::Decryption)?;
        Ok(if v.binary {
            SecretValue::Binary(plain)
        } else {
            SecretValue::Text(String::from_utf8(plain).map_err(|_| SecretsError::Decryption)?)
        })
    }

    /// CreateSecret. Retrying with the same version id (`ClientRequestToken`) and
    /// value answers the secret again instead of `ResourceExistsException`.
    pub async fn create_secret(
        &self,
        account: &str,
        region: &str,
        new: NewSecret,
    ) -> Result<Secret> {
        if let Some(existing) = self.secret(account, &new.name).await? {
            if existing.marked_for_deletion() {
                return Err(SecretsError::InvalidRequest(
                    "You can't create this secret because a secret with this name is already scheduled for deletion.".into(),
                ));
            }
            if let Some((vid, value)) = &new.value {
                if let Some(v) = existing.versions.iter().find(|v| &v.id == vid) {
                    if &self.open_version(account, &existing.name, v)? == value {
                        return Ok(existing);
                    }
                }
            }
            return Err(SecretsError::Exists(format!(
                "The operation failed because the secret {} already exists.",
                new.name
            )));
        }
        let mut suffix = [0u8; 6];
        self.identity()
            .master()
            .random(&mut suffix)
            .map_err(|_| SecretsError::Decryption)?;
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let suffix: String = suffix
            .iter()
            .map(|b| ALNUM[*b as usize % ALNUM.len()] as char)
            .collect();
        let now = self.now();
        let mut s = Secret {
            name: new.name.clone(),
            arn: secret_arn(region, account, &new.name, &suffix),
            description: new.description,
            kms_key_id: new.kms_key_id,
            tags: new.tags,
            versions: Vec::new(),
            created_at: now,
            changed_at: now,
            deletion_date: None,
            rev: 1,
        };
        if let Some((vid, value)) = &new.value {
            s.versions.push(self.seal_version(
                account,
                &new.name,
                vid,
                value,
                vec![CURRENT.to_string()],
            )?);
        }
        let body = serde_json::to_string(&s).expect("a secret serializes");
        if !self
            .meta
            .insert_sm_secret(account, &new.name, &body, now)
            .await?
        {
            return Err(SecretsError::Exists(format!(
                "The operation failed because the secret {} already exists.",
                new.name
            )));
        }
        Ok(s)
    }

    /// Applies `f` to the secret `id` and stores the result, retrying when another
    /// writer changed it in between. `f` sees secrets marked for deletion too.
    pub async fn update_secret<T>(
        &self,
        account: &str,
        id: &str,
        mut f: impl FnMut(&mut Secret) -> Result<T>,
    ) -> Result<(Secret, T)> {
        for _ in 0..CAS_ATTEMPTS {
            let mut s = self
                .secret(account, id)
                .await?
                .ok_or(SecretsError::NotFound)?;
            let out = f(&mut s)?;
            let body = serde_json::to_string(&s).expect("a secret serializes");
            if self
                .meta
                .replace_sm_secret(account, &s.name, s.rev, &body, self.now())
                .await?
            {
                s.rev += 1;
                return Ok((s, out));
            }
        }
        Err(SecretsError::InvalidRequest(
            "The secret is being changed by another request; try again.".into(),
        ))
    }

    /// PutSecretValue (and the value of UpdateSecret): a new version with `stages`
    /// (default `AWSCURRENT`). The same version id with the same value changes
    /// nothing; with another value it is `ResourceExistsException`.
    pub async fn put_secret_value(
        &self,
        account: &str,
        id: &str,
        version_id: &str,
        value: &SecretValue,
        stages: Option<Vec<String>>,
    ) -> Result<(Secret, Vec<String>)> {
        // Decide outside the closure whether the version exists, with its value
        // opened once; the closure re-checks by id.
        let stages = stages.unwrap_or_else(|| vec![CURRENT.to_string()]);
        let current = self
            .secret(account, id)
            .await?
            .ok_or(SecretsError::NotFound)?;
        if let Some(v) = current.versions.iter().find(|v| v.id == version_id) {
            if current.marked_for_deletion() {
                return Err(marked_for_deletion());
            }
            if &self.open_version(account, &current.name, v)? == value {
                let st = v.stages.clone();
                return Ok((current, st));
            }
            return Err(SecretsError::Exists(
                "You can't modify an existing version, you can only create a new version.".into(),
            ));
        }
        let version =
            self.seal_version(account, &current.name, version_id, value, stages.clone())?;
        let now = self.now();
        self.update_secret(account, id, |s| {
            if s.marked_for_deletion() {
                return Err(marked_for_deletion());
            }
            if s.versions.iter().any(|v| v.id == version_id) {
                return Err(SecretsError::Exists(
                    "You can't modify an existing version, you can only create a new version."
                        .into(),
                ));
            }
            let moves_current = stages.iter().any(|x| x == CURRENT);
            let old_current = s.staged(CURRENT).map(|v| v.id.clone());
            for v in &mut s.versions {
                v.stages.retain(|x| !stages.contains(x));
            }
            if let (true, Some(old)) = (moves_current, old_current) {
                for v in &mut s.versions {
                    v.stages.retain(|x| x != PREVIOUS);
                }
                if let Some(v) = s.versions.iter_mut().find(|v| v.id == old) {
                    v.stages.push(PREVIOUS.to_string());
                }
            }
            s.versions.push(version.clone());
            while s.versions.len() > MAX_VERSIONS {
                match s.versions.iter().position(|v| v.stages.is_empty()) {
                    Some(i) => {
                        s.versions.remove(i);
                    }
                    None => break,
                }
            }
            s.changed_at = now;
            Ok(stages.clone())
        })
        .await
    }

    /// GetSecretValue: by version id, by staging label, or `AWSCURRENT`.
    pub async fn secret_value(
        &self,
        account: &str,
        id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<(Secret, SecretVersion, SecretValue)> {
        let s = self
            .secret(account, id)
            .await?
            .ok_or(SecretsError::NotFound)?;
        if s.marked_for_deletion() {
            return Err(marked_for_deletion());
        }
        let v = match (version_id, stage) {
            (Some(vid), st) => s
                .versions
                .iter()
                .find(|v| v.id == vid && st.is_none_or(|st| v.stages.iter().any(|x| x == st)))
                .ok_or_else(|| SecretsError::ValueNotFound(format!("VersionId: {vid}")))?,
            (None, st) => {
                let st = st.unwrap_or(CURRENT);
                s.staged(st)
                    .ok_or_else(|| SecretsError::ValueNotFound(format!("staging label: {st}")))?
            }
        }
        .clone();
        let value = self.open_version(account, &s.name, &v)?;
        Ok((s, v, value))
    }

    /// DeleteSecret: with a recovery window of `days` (7–30), or at once.
    pub async fn delete_secret(
        &self,
        account: &str,
        id: &str,
        days: Option<i64>,
    ) -> Result<(Secret, i64)> {
        match days {
            Some(days) => {
                let date = self.now() + days * DAY_MS;
                self.update_secret(account, id, |s| {
                    if s.marked_for_deletion() {
                        return Err(marked_for_deletion());
                    }
                    s.deletion_date = Some(date);
                    Ok(date)
                })
                .await
            }
            None => {
                for _ in 0..CAS_ATTEMPTS {
                    let s = self
                        .secret(account, id)
                        .await?
                        .ok_or(SecretsError::NotFound)?;
                    if self.meta.delete_sm_secret(account, &s.name, s.rev).await? {
                        let now = self.now();
                        return Ok((s, now));
                    }
                }
                Err(SecretsError::InvalidRequest(
                    "The secret is being changed by another request; try again.".into(),
                ))
            }
        }
    }

    /// RestoreSecret: cancels a scheduled deletion.
    pub async fn restore_secret(&self, account: &str, id: &str) -> Result<Secret> {
        Ok(self
            .update_secret(account, id, |s| {
                s.deletion_date = None;
                Ok(())
            })
            .await?
            .0)
    }

    /// The `{"username", "accessToken"}` of a pull-through cache rule's credential
    /// (an ARN of a secret `ecr-pullthroughcache/…` of `account`), as its
    /// `AWSCURRENT` value holds them.
    pub async fn pull_through_credentials(
        &self,
        account: &str,
        arn: &str,
    ) -> Result<(String, String)> {
        let (_, _, value) = self.secret_value(account, arn, None, None).await?;
        let SecretValue::Text(text) = value else {
            return Err(SecretsError::InvalidParameter(
                "the secret holds binary data, not {\"username\", \"accessToken\"}".into(),
            ));
        };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|_| {
            SecretsError::InvalidParameter(
                "the secret is not JSON {\"username\", \"accessToken\"}".into(),
            )
        })?;
        match (v["username"].as_str(), v["accessToken"].as_str()) {
            (Some(u), Some(t)) => Ok((u.to_string(), t.to_string())),
            _ => Err(SecretsError::InvalidParameter(
                "the secret lacks \"username\" or \"accessToken\"".into(),
            )),
        }
    }
}

impl Registry {
    /// Re-seals, under the primary master key, every secret version sealed under
    /// another key (a master-key rotation, `rotation.rs`). A secret changed by a
    /// request in between is left for the next pass. Returns the versions re-sealed.
    pub(crate) async fn reseal_secrets(&self) -> std::result::Result<usize, RegistryError> {
        let ring = self.identity().master();
        let mut n = 0;
        for (account, row) in self.meta.all_sm_secrets().await? {
            let mut s = match self.sm_parse(row) {
                Ok(s) => s,
                Err(SecretsError::Registry(e)) => return Err(e),
                Err(e) => {
                    return Err(RegistryError::Store(berth_store::StoreError::Tampered(
                        e.to_string(),
                    )))
                }
            };
            let mut changed = 0;
            for v in &mut s.versions {
                let sealed = base64::engine::general_purpose::STANDARD
                    .decode(&v.sealed)
                    .map_err(|_| {
                        berth_store::StoreError::Tampered("a stored secret is corrupt".into())
                    })?;
                if ring.sealed_by_primary(&sealed) {
                    continue;
                }
                let context = seal_context(&account, &s.name, &v.id);
                let plain = ring.open(&context, &sealed).map_err(|_| {
                    berth_store::StoreError::Tampered(format!(
                        "secret {} of account {account} does not open under the master keys",
                        s.name
                    ))
                })?;
                let again = ring
                    .seal(&context, &plain)
                    .map_err(|e| berth_store::StoreError::Tampered(e.to_string()))?;
                v.sealed = base64::engine::general_purpose::STANDARD.encode(again);
                changed += 1;
            }
            if changed == 0 {
                continue;
            }
            let body = serde_json::to_string(&s).expect("a secret serializes");
            if self
                .meta
                .replace_sm_secret(&account, &s.name, s.rev, &body, self.now())
                .await?
            {
                n += changed;
            } else {
                // Changed meanwhile: counted so the caller passes again.
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_ids() {
        let a = "123456789012";
        assert_eq!(
            candidates(a, "ecr-pullthroughcache/hub"),
            Some(vec![("ecr-pullthroughcache/hub".into(), None)])
        );
        let full =
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf";
        assert_eq!(
            candidates(a, full),
            Some(vec![
                ("ecr-pullthroughcache/hub".into(), Some(full.into())),
                ("ecr-pullthroughcache/hub-AbCdEf".into(), None)
            ])
        );
        let partial = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db";
        assert_eq!(candidates(a, partial), Some(vec![("db".into(), None)]));
        assert_eq!(
            candidates(a, "arn:aws:secretsmanager:us-east-1:999999999999:secret:db"),
            None
        );
        assert_eq!(candidates(a, "arn:aws:s3:::bucket"), None);
    }
}
