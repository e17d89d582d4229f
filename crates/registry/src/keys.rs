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

use std::sync::Arc;

use crate::master_ring::{Generation, MasterRing};
use crate::RegistryError;

type Result<T> = std::result::Result<T, RegistryError>;

const SCHEME_REGISTRY: u8 = 1;

/// Whether `sealed` is sealed under the registry's own keys (not a KMS key).
pub(crate) fn sealed_by_registry_key(sealed: &[u8]) -> bool {
    sealed.first() == Some(&SCHEME_REGISTRY)
}
const SCHEME_KMS: u8 = 2;

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

/// Every key here derives from the master keyring ([`MasterRing`]): values are
/// sealed under its primary key and name it; any key of the ring opens.
pub struct Keyring {
    meta: Meta,
    ring: Arc<MasterRing>,
}

impl Keyring {
    pub fn new(ring: Arc<MasterRing>, meta: Meta) -> Self {
        Keyring { meta, ring }
    }

    pub fn ring(&self) -> &Arc<MasterRing> {
        &self.ring
    }

    // ---- registry-level wrapping ------------------------------------------------

    pub fn wrap_registry(&self, dek: &DataKey, aad: &str) -> Result<Vec<u8>> {
        self.ring
            .seal_derived(
                |g: &Generation| &g.registry_wrap,
                |k| crypt::seal(k, aad.as_bytes(), dek.bytes()),
            )
            .map_err(tampered)
    }

    pub fn unwrap_registry(&self, wrapped: &[u8], aad: &str) -> Result<DataKey> {
        let raw = self
            .ring
            .open_with(wrapped, |g, body| {
                crypt::open(&g.registry_wrap, aad.as_bytes(), body).ok()
            })
            .ok_or_else(|| tampered(crypt::CryptError::Tampered))?;
        DataKey::from_bytes(&raw).map_err(tampered)
    }

    /// Re-seals a registry wrap under the primary key; `None` when it is already.
    pub fn rewrap_registry(&self, wrapped: &[u8], aad: &str) -> Result<Option<Vec<u8>>> {
        if self.ring.sealed_by_primary(wrapped) {
            return Ok(None);
        }
        let dek = self.unwrap_registry(wrapped, aad)?;
        self.wrap_registry(&dek, aad).map(Some)
    }

    // ---- KMS key material ----------------------------------------------------------

    /// Seals fresh key material for a KMS key version.
    pub fn seal_kms_material(
        &self,
        key_id: &str,
        version: i64,
        material: &[u8; 32],
    ) -> Result<Vec<u8>> {
        let aad = format!("kms:{key_id}:{version}");
        self.ring
            .seal_derived(
                |g: &Generation| &g.kms_seal,
                |k| crypt::seal(k, aad.as_bytes(), material),
            )
            .map_err(tampered)
    }

    /// Re-seals stored KMS key material under the primary key; `None` when it is
    /// already.
    pub fn reseal_kms_material(
        &self,
        key_id: &str,
        version: i64,
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        if self.ring.sealed_by_primary(sealed) {
            return Ok(None);
        }
        let raw = self.open_kms_material(key_id, version, sealed)?;
        self.seal_kms_material(key_id, version, &raw).map(Some)
    }

    fn open_kms_material(&self, key_id: &str, version: i64, sealed: &[u8]) -> Result<[u8; 32]> {
        let aad = format!("kms:{key_id}:{version}");
        let raw = self
            .ring
            .open_with(sealed, |g, body| {
                crypt::open(&g.kms_seal, aad.as_bytes(), body).ok()
            })
            .ok_or_else(|| tampered(crypt::CryptError::Tampered))?;
        raw.try_into()
            .map_err(|_| kms_err("malformed key material"))
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
        self.open_kms_material(&key.key_id, version, &sealed)
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
            _ => {
                let p = self.ring.primary();
                Ok(RepoKey {
                    scheme: SCHEME_REGISTRY,
                    version: p.repo_tag(),
                    key: p.aes256,
                })
            }
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
            SCHEME_REGISTRY => return self.open_registry_scheme(version, &sealed[5..], aad),
            SCHEME_KMS => {
                let k = self.kms_key_of(repo).await?;
                self.kms_material(&k, i64::from(version)).await?
            }
            _ => return Err(tampered(crypt::CryptError::Tampered)),
        };
        crypt::open(&key, aad.as_bytes(), &sealed[5..]).map_err(tampered)
    }

    /// Opens a value sealed for an AES256 repository: by the key whose tag its
    /// version field carries, else (version 0: before tags were recorded) by trying
    /// each key.
    fn open_registry_scheme(&self, version: u32, body: &[u8], aad: &str) -> Result<Vec<u8>> {
        let keys = self.ring.keys();
        let try_key = |g: &Generation| crypt::open(&g.aes256, aad.as_bytes(), body).ok();
        let found = keys
            .all()
            .filter(|g| g.repo_tag() == version)
            .find_map(|g| try_key(g))
            .or_else(|| keys.all().find_map(|g| try_key(g)));
        found.ok_or_else(|| tampered(crypt::CryptError::Tampered))
    }

    /// Re-seals a value sealed for an AES256 repository (a link's data key or a
    /// manifest body) under the primary key; `None` when it already is, or when it
    /// is sealed under a KMS key (whose material is re-sealed instead) or not
    /// sealed at all.
    pub fn reseal_registry_scheme(&self, sealed: &[u8], aad: &str) -> Result<Option<Vec<u8>>> {
        if sealed.len() < 5 || sealed[0] != SCHEME_REGISTRY {
            return Ok(None);
        }
        let version = u32::from_be_bytes([sealed[1], sealed[2], sealed[3], sealed[4]]);
        let p = self.ring.primary();
        if version == p.repo_tag() && crypt::open(&p.aes256, aad.as_bytes(), &sealed[5..]).is_ok() {
            return Ok(None);
        }
        let plain = self.open_registry_scheme(version, &sealed[5..], aad)?;
        let k = RepoKey {
            scheme: SCHEME_REGISTRY,
            version: p.repo_tag(),
            key: p.aes256,
        };
        self.seal_with(&k, &plain, aad).map(Some)
    }

    pub fn link_aad(repo: &RepositoryRow, digest: &str) -> String {
        Self::link_aad_of(repo.repo_id, digest)
    }

    pub fn link_aad_of(repo_id: i64, digest: &str) -> String {
        format!("link:{repo_id}:{digest}")
    }

    pub fn manifest_aad(repo: &RepositoryRow, digest: &str) -> String {
        Self::manifest_aad_of(repo.repo_id, digest)
    }

    pub fn manifest_aad_of(repo_id: i64, digest: &str) -> String {
        format!("manifest:{repo_id}:{digest}")
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
