//! The keyring: which key encrypts what (`docs/architecture.md`, "Storage").
//!
//! - Each blob's data key is wrapped by the *registry key* (derived from the master
//!   key) in its upload row and blob row, so a new link (another repository pushing
//!   or mounting the same content) can be given the key without re-encrypting.
//! - Each repository link wraps the same data key under the *repository's key*:
//!   the registry's AES256 key, or the repository's berth-managed KMS key (the
//!   current version of its key material). Reads go through the link's wrapping,
//!   so a disabled or deleted KMS key makes its repositories' pulls and pushes fail
//!   while the ciphertext stays shared.
//! - Manifest bodies are sealed under the repository's key too.
//!
//! KMS key material is stored sealed by the master key. Rotation adds a material
//! version; wrapped values name the version that sealed them.

use berth_store::crypt::{self, DataKey};
use berth_store::kms::KmsKeyRow;
use berth_store::{Meta, RepositoryRow};

use crate::RegistryError;

type Result<T> = std::result::Result<T, RegistryError>;

const SCHEME_REGISTRY: u8 = 1;
const SCHEME_KMS: u8 = 2;

fn derive(master: &[u8; 32], purpose: &str) -> [u8; 32] {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, master);
    let tag = ring::hmac::sign(&k, purpose.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

fn kms_err(msg: impl Into<String>) -> RegistryError {
    RegistryError::Kms(msg.into())
}

fn tampered(_: crypt::CryptError) -> RegistryError {
    RegistryError::Store(berth_store::StoreError::Tampered(
        "a wrapped key or sealed value failed authentication".into(),
    ))
}

/// A repository's key: how values for it are sealed.
pub struct RepoKey {
    scheme: u8,
    version: u32,
    key: [u8; 32],
}

pub struct Keyring {
    meta: Meta,
    /// Wraps data keys in upload and blob rows.
    registry_wrap: [u8; 32],
    /// The AES256 repositories' key.
    aes256: [u8; 32],
    /// Seals KMS key material.
    kms_seal: [u8; 32],
}

impl Keyring {
    pub fn new(master: [u8; 32], meta: Meta) -> Self {
        Keyring {
            meta,
            registry_wrap: derive(&master, "berth data-key wrap v1"),
            aes256: derive(&master, "berth aes256 repository key v1"),
            kms_seal: derive(&master, "berth kms key material v1"),
        }
    }

    // ---- registry-level wrapping ------------------------------------------------

    pub fn wrap_registry(&self, dek: &DataKey, aad: &str) -> Result<Vec<u8>> {
        crypt::seal(&self.registry_wrap, aad.as_bytes(), dek.bytes()).map_err(tampered)
    }

    pub fn unwrap_registry(&self, wrapped: &[u8], aad: &str) -> Result<DataKey> {
        let raw = crypt::open(&self.registry_wrap, aad.as_bytes(), wrapped).map_err(tampered)?;
        DataKey::from_bytes(&raw).map_err(tampered)
    }

    // ---- KMS key material ----------------------------------------------------------

    /// Seals fresh key material for a KMS key version.
    pub fn seal_kms_material(
        &self,
        key_id: &str,
        version: i64,
        material: &[u8; 32],
    ) -> Result<Vec<u8>> {
        crypt::seal(
            &self.kms_seal,
            format!("kms:{key_id}:{version}").as_bytes(),
            material,
        )
        .map_err(tampered)
    }

    async fn kms_material(&self, key: &KmsKeyRow, version: i64) -> Result<[u8; 32]> {
        let sealed = self
            .meta
            .kms_material(&key.key_id, version)
            .await?
            .ok_or_else(|| {
                kms_err(format!(
                    "key material version {version} of {} is missing",
                    key.key_id
                ))
            })?;
        let raw = crypt::open(
            &self.kms_seal,
            format!("kms:{}:{version}", key.key_id).as_bytes(),
            &sealed,
        )
        .map_err(tampered)?;
        raw.try_into()
            .map_err(|_| kms_err("malformed key material"))
    }

    /// The usable KMS key a repository names, or the KmsException reason.
    async fn kms_key_of(&self, repo: &RepositoryRow) -> Result<KmsKeyRow> {
        let arn = repo
            .kms_key
            .as_deref()
            .ok_or_else(|| kms_err("the repository has no KMS key"))?;
        let key_id = arn.rsplit('/').next().unwrap_or(arn);
        let key = self
            .meta
            .kms_key(key_id)
            .await?
            .ok_or_else(|| kms_err(format!("KMS key {arn} does not exist")))?;
        match key.key_state.as_str() {
            "Enabled" => Ok(key),
            "Disabled" => Err(kms_err(format!("KMS key {arn} is disabled"))),
            "PendingDeletion" => Err(kms_err(format!("KMS key {arn} is pending deletion"))),
            other => Err(kms_err(format!("KMS key {arn} is in state {other}"))),
        }
    }

    /// The key new values of `repo` are sealed with (KMS: its current version).
    pub async fn repo_key(&self, repo: &RepositoryRow) -> Result<RepoKey> {
        match repo.encryption_type.as_str() {
            "KMS" | "KMS_DSSE" => {
                let key = self.kms_key_of(repo).await?;
                let material = self.kms_material(&key, key.current_version).await?;
                Ok(RepoKey {
                    scheme: SCHEME_KMS,
                    version: key.current_version as u32,
                    key: material,
                })
            }
            _ => Ok(RepoKey {
                scheme: SCHEME_REGISTRY,
                version: 0,
                key: self.aes256,
            }),
        }
    }

    /// Seals `plain` for `repo` with an already fetched key.
    pub fn seal_with(&self, k: &RepoKey, plain: &[u8], aad: &str) -> Result<Vec<u8>> {
        let sealed = crypt::seal(&k.key, aad.as_bytes(), plain).map_err(tampered)?;
        let mut out = Vec::with_capacity(5 + sealed.len());
        out.push(k.scheme);
        out.extend_from_slice(&k.version.to_be_bytes());
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a value sealed for `repo` (any key version it names).
    pub async fn open_for(
        &self,
        repo: &RepositoryRow,
        sealed: &[u8],
        aad: &str,
    ) -> Result<Vec<u8>> {
        if sealed.len() < 5 {
            return Err(tampered(crypt::CryptError::Tampered));
        }
        let scheme = sealed[0];
        let version = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let key = match scheme {
            SCHEME_REGISTRY => self.aes256,
            SCHEME_KMS => {
                let k = self.kms_key_of(repo).await?;
                self.kms_material(&k, i64::from(version)).await?
            }
            _ => return Err(tampered(crypt::CryptError::Tampered)),
        };
        crypt::open(&key, aad.as_bytes(), &sealed[5..]).map_err(tampered)
    }

    pub fn link_aad(repo: &RepositoryRow, digest: &str) -> String {
        format!("link:{}:{digest}", repo.repo_id)
    }

    pub fn manifest_aad(repo: &RepositoryRow, digest: &str) -> String {
        format!("manifest:{}:{digest}", repo.repo_id)
    }

    /// The data key of a blob as linked in `repo`.
    pub async fn link_key(
        &self,
        repo: &RepositoryRow,
        digest: &str,
        wrapped: Option<&[u8]>,
    ) -> Result<DataKey> {
        let wrapped = wrapped.ok_or_else(|| tampered(crypt::CryptError::Tampered))?;
        let raw = self
            .open_for(repo, wrapped, &Self::link_aad(repo, digest))
            .await?;
        DataKey::from_bytes(&raw).map_err(tampered)
    }

    /// Re-seals every link key and manifest of `repo` under its current key (after a
    /// KMS key rotation). Blobs are not rewritten.
    pub async fn rewrap_repository(&self, repo: &RepositoryRow) -> Result<usize> {
        let current = self.repo_key(repo).await?;
        let mut n = 0;
        for (digest, wrapped) in self.meta.links_of_repo(repo.repo_id).await? {
            let Some(w) = wrapped else { continue };
            let aad = Self::link_aad(repo, &digest);
            let plain = self.open_for(repo, &w, &aad).await?;
            let again = self.seal_with(&current, &plain, &aad)?;
            self.meta
                .set_link_key(repo.repo_id, &digest, &again)
                .await?;
            n += 1;
        }
        for (digest, body) in self.meta.manifest_bodies(repo.repo_id).await? {
            let aad = Self::manifest_aad(repo, &digest);
            let plain = self.open_for(repo, &body, &aad).await?;
            let again = self.seal_with(&current, &plain, &aad)?;
            self.meta
                .set_manifest_body(repo.repo_id, &digest, &again)
                .await?;
            n += 1;
        }
        Ok(n)
    }
}
