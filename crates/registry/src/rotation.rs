//! Master-key rotation without downtime (`docs/architecture.md`, "Master-key
//! rotation").
//!
//! The shared state (table `master_key_state`) says which key seals. A rotation
//! moves it through three phases, each a compare-and-set, and every node applies
//! the state at start and every [`REFRESH`] while it runs:
//!
//! 1. `introduce`: the new key is stored sealed under the old one (and the old
//!    under the new), so every node learns it and opens what it seals, while still
//!    sealing with the old key;
//! 2. `switch` (once every node has had time to learn the new key): every node
//!    seals, wraps and mints tokens with the new key; the rotating process re-seals
//!    every stored value that does not name the new key, in passes, until a pass
//!    finds none;
//! 3. `steady` under the new key: the old key is forgotten by every node, and a
//!    process started with it refuses to start.
//!
//! Each step is idempotent and every value stays readable by the ring of either
//! phase, so a crash at any point leaves everything readable and running the
//! rotation again finishes it.
//!
//! **Token grace.** Registry tokens (`GetAuthorizationToken`, `docker login`) are
//! MACs under a key derived from the master key that minted them, and a client
//! keeps using one until it expires ([`DEFAULT_TOKEN_TTL_SECS`]). So the `steady`
//! state written at retirement keeps the old key (sealed under the new one, as
//! during the rotation) for [`TOKEN_GRACE_MS`] after it: every node verifies
//! tokens with it meanwhile — and does nothing else with it: it seals, opens and
//! wraps nothing, and a process configured with it still refuses to start. After
//! the grace the key is ignored and the next rotation drops it (a second rotation
//! within the grace ends the first one's early: tokens from two keys back must be
//! fetched again).
//!
//! Every phase change is written to the audit log (hash-chained like every
//! record): action `berth:RotateMasterKey`, the phase and both key ids (never a
//! key).

use std::sync::Arc;
use std::time::Duration;

use berth_store::meta::{KeyPart, MasterKeyState, SealedColumn};
use berth_store::StoreError;

use berth_iam::token::DEFAULT_TOKEN_TTL_SECS;

use crate::keys::Keyring;
use crate::master_ring::{key_id, Generation, RingKeys};
use crate::{Registry, RegistryError};

/// How often a running node applies the shared state.
pub const REFRESH: Duration = Duration::from_secs(2);

/// How long after retirement the old key still verifies the registry tokens it
/// minted: their longest lifetime.
pub const TOKEN_GRACE_MS: i64 = DEFAULT_TOKEN_TTL_SECS * 1000;

const STEADY: &str = "steady";
const INTRODUCE: &str = "introduce";
const SWITCH: &str = "switch";

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(
        "the configured master key (id {configured}) is not this registry's master key (id {active}); \
         if the key was rotated, configure the new key"
    )]
    WrongKey { configured: String, active: String },
    #[error("the master-key state is corrupt: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Refused(String),
}

impl From<StoreError> for RotationError {
    fn from(e: StoreError) -> Self {
        RotationError::Registry(e.into())
    }
}

/// Where the keyring stands, for `berth admin master-key status`.
#[derive(Debug, Clone)]
pub struct KeyringStatus {
    pub phase: String,
    /// The id of the key values are sealed with.
    pub sealing_id: String,
    /// The other key during a rotation.
    pub other_id: Option<String>,
    /// After a rotation: the retired key that still verifies registry tokens, and
    /// until when (milliseconds since the epoch).
    pub token_grace: Option<(String, i64)>,
}

/// What one re-sealing pass changed, per kind of value.
#[derive(Debug, Default, Clone)]
pub struct ResealReport {
    pub counts: Vec<(&'static str, usize)>,
}

impl ResealReport {
    pub fn total(&self) -> usize {
        self.counts.iter().map(|(_, n)| n).sum()
    }
}

const NEW_CONTEXT: &str = "berth master key rotation: new key";
const OLD_CONTEXT: &str = "berth master key rotation: old key";

fn raw_of(bytes: Vec<u8>) -> Result<[u8; 32], RotationError> {
    bytes
        .try_into()
        .map_err(|_| RotationError::Corrupt("a stored key is not 32 bytes".into()))
}

impl Registry {
    fn ring(&self) -> &Arc<crate::master_ring::MasterRing> {
        self.keys.ring()
    }

    /// Reads the shared state (recording this process's key as the sealing key on
    /// first use) and sets the ring from it. Fails when this process holds neither
    /// key the state names.
    pub async fn apply_master_key_state(&self) -> Result<KeyringStatus, RotationError> {
        let state = match self.meta.master_key_state().await? {
            Some(s) => s,
            None => {
                let id = self.ring().configured().id_hex();
                self.meta.init_master_key_state(&id, self.now()).await?;
                self.meta
                    .master_key_state()
                    .await?
                    .ok_or_else(|| RotationError::Corrupt("the state row vanished".into()))?
            }
        };
        let keys = self.ring_for(&state)?;
        let status = KeyringStatus {
            phase: state.phase.clone(),
            sealing_id: keys.primary.id_hex(),
            other_id: keys.others.first().map(|g| g.id_hex()),
            token_grace: keys
                .token_only
                .first()
                .map(|g| (g.id_hex(), state.updated_at + TOKEN_GRACE_MS)),
        };
        self.ring().set_keys(keys);
        Ok(status)
    }

    /// The ring a state calls for, from the keys this process knows.
    fn ring_for(&self, state: &MasterKeyState) -> Result<RingKeys, RotationError> {
        let ring = self.ring();
        let mut known: Vec<Arc<Generation>> = ring.keys().all().cloned().collect();
        known.push(ring.configured().clone());
        let find = |id: &str| known.iter().find(|g| g.id_hex() == id).cloned();
        match state.phase.as_str() {
            STEADY => match find(&state.active_id) {
                Some(g) => {
                    let token_only = self.token_grace_key(state, &g)?.into_iter().collect();
                    Ok(RingKeys {
                        primary: g,
                        others: Vec::new(),
                        token_only,
                    })
                }
                None => Err(RotationError::WrongKey {
                    configured: ring.configured().id_hex(),
                    active: state.active_id.clone(),
                }),
            },
            INTRODUCE | SWITCH => {
                let (Some(old_id), Some(new_id)) = (&state.old_id, &state.new_id) else {
                    return Err(RotationError::Corrupt("a rotation without its keys".into()));
                };
                let unhex = |v: &Option<String>| -> Result<Vec<u8>, RotationError> {
                    v.as_deref()
                        .and_then(|h| hex::decode(h).ok())
                        .ok_or_else(|| RotationError::Corrupt("a sealed key is missing".into()))
                };
                let (old, new) = match (find(old_id), find(new_id)) {
                    (Some(o), Some(n)) => (o, n),
                    (Some(o), None) => {
                        let raw = o
                            .master
                            .open(NEW_CONTEXT, &unhex(&state.new_under_old)?)
                            .map_err(|_| {
                                RotationError::Corrupt("the new key does not open".into())
                            })?;
                        (o, Arc::new(Generation::new(raw_of(raw)?)))
                    }
                    (None, Some(n)) => {
                        let raw = n
                            .master
                            .open(OLD_CONTEXT, &unhex(&state.old_under_new)?)
                            .map_err(|_| {
                                RotationError::Corrupt("the old key does not open".into())
                            })?;
                        (Arc::new(Generation::new(raw_of(raw)?)), n)
                    }
                    (None, None) => {
                        return Err(RotationError::WrongKey {
                            configured: ring.configured().id_hex(),
                            active: format!("{old_id}, rotating to {new_id}"),
                        })
                    }
                };
                if old.id_hex() != *old_id || new.id_hex() != *new_id {
                    return Err(RotationError::Corrupt("a stored key has another id".into()));
                }
                Ok(if state.phase == INTRODUCE {
                    RingKeys {
                        primary: old,
                        others: vec![new],
                        token_only: Vec::new(),
                    }
                } else {
                    RingKeys {
                        primary: new,
                        others: vec![old],
                        token_only: Vec::new(),
                    }
                })
            }
            other => Err(RotationError::Corrupt(format!("unknown phase {other:?}"))),
        }
    }

    /// In `steady` after a rotation, within [`TOKEN_GRACE_MS`] of it: the retired
    /// key, opened with the active one.
    fn token_grace_key(
        &self,
        state: &MasterKeyState,
        active: &Generation,
    ) -> Result<Option<Arc<Generation>>, RotationError> {
        let (Some(old_id), Some(sealed)) = (&state.old_id, &state.old_under_new) else {
            return Ok(None);
        };
        if self.now() >= state.updated_at + TOKEN_GRACE_MS {
            return Ok(None);
        }
        let raw = hex::decode(sealed)
            .ok()
            .and_then(|s| active.master.open(OLD_CONTEXT, &s).ok())
            .ok_or_else(|| RotationError::Corrupt("the retired key does not open".into()))?;
        let old = Generation::new(raw_of(raw)?);
        if old.id_hex() != *old_id {
            return Err(RotationError::Corrupt(
                "the retired key has another id".into(),
            ));
        }
        Ok(Some(Arc::new(old)))
    }

    /// Appends the audit record of a rotation's phase change.
    async fn audit_rotation(&self, phase: &str, old_id: &str, new_id: &str) {
        let resource = format!("master-key/{new_id}");
        let outcome = format!("{phase}: old key {old_id}, new key {new_id}");
        let r = self
            .audit(&crate::AuditRecord {
                account: "",
                principal: "berth:admin",
                action: "berth:RotateMasterKey",
                resource: Some(&resource),
                source: "berth admin master-key rotate",
                outcome: &outcome,
            })
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, phase, "could not audit a master-key rotation step");
        }
    }

    /// The state as it stands (applied to this process's ring).
    pub async fn master_key_status(&self) -> Result<KeyringStatus, RotationError> {
        self.apply_master_key_state().await
    }

    /// The new key of the rotation in progress, if one is.
    pub async fn rotation_new_key(&self) -> Result<Option<[u8; 32]>, RotationError> {
        let status = self.apply_master_key_state().await?;
        if status.phase == STEADY {
            return Ok(None);
        }
        let keys = self.ring().keys();
        let state = self
            .meta
            .master_key_state()
            .await?
            .ok_or_else(|| RotationError::Corrupt("the state row vanished".into()))?;
        let found = keys
            .all()
            .find(|g| Some(g.id_hex()) == state.new_id)
            .map(|g| g.raw);
        Ok(found)
    }

    /// Phase 1: stores `new` beside the current key. Only from `steady` under this
    /// process's key.
    pub async fn begin_master_key_rotation(&self, new: [u8; 32]) -> Result<(), RotationError> {
        let status = self.apply_master_key_state().await?;
        if status.phase != STEADY {
            return Err(RotationError::Refused(format!(
                "a rotation is already in progress ({})",
                status.phase
            )));
        }
        let old = self.ring().primary();
        if key_id(&new) == old.id {
            return Err(RotationError::Refused(
                "the new master key is the current one".into(),
            ));
        }
        let new_gen = Generation::new(new);
        let seal_err = |e: crate::secrets::SecretError| RotationError::Corrupt(e.to_string());
        let next = MasterKeyState {
            active_id: old.id_hex(),
            phase: INTRODUCE.into(),
            old_id: Some(old.id_hex()),
            new_id: Some(new_gen.id_hex()),
            new_under_old: Some(hex::encode(
                old.master.seal(NEW_CONTEXT, &new).map_err(seal_err)?,
            )),
            old_under_new: Some(hex::encode(
                new_gen
                    .master
                    .seal(OLD_CONTEXT, &old.raw)
                    .map_err(seal_err)?,
            )),
            updated_at: self.now(),
        };
        if !self
            .meta
            .replace_master_key_state(STEADY, &old.id_hex(), &next)
            .await?
        {
            return Err(RotationError::Refused(
                "the master-key state changed meanwhile; run the rotation again".into(),
            ));
        }
        self.audit_rotation(INTRODUCE, &old.id_hex(), &new_gen.id_hex())
            .await;
        self.apply_master_key_state().await?;
        Ok(())
    }

    /// Phase 2: every node seals with the new key from its next refresh.
    pub async fn switch_master_key(&self) -> Result<(), RotationError> {
        let state = self.current_state().await?;
        if state.phase == SWITCH {
            return Ok(());
        }
        if state.phase != INTRODUCE {
            return Err(RotationError::Refused("no rotation is in progress".into()));
        }
        let next = MasterKeyState {
            active_id: state.new_id.clone().unwrap_or_default(),
            phase: SWITCH.into(),
            updated_at: self.now(),
            ..state.clone()
        };
        if self
            .meta
            .replace_master_key_state(INTRODUCE, &state.active_id, &next)
            .await?
        {
            self.audit_rotation(
                SWITCH,
                state.old_id.as_deref().unwrap_or_default(),
                &next.active_id,
            )
            .await;
        }
        self.apply_master_key_state().await?;
        Ok(())
    }

    /// Phase 3: forgets the old key. Only after a pass that re-sealed nothing.
    pub async fn retire_old_master_key(&self) -> Result<(), RotationError> {
        let state = self.current_state().await?;
        if state.phase != SWITCH {
            return Err(RotationError::Refused(
                "the rotation has not switched to the new key".into(),
            ));
        }
        let pass = self.reseal_pass().await?;
        if pass.total() != 0 {
            return Err(RotationError::Refused(format!(
                "{} value(s) were still sealed under the old key; run the rotation again",
                pass.total()
            )));
        }
        // The old key stays (sealed under the new one) for the token grace.
        let next = MasterKeyState {
            active_id: state.active_id.clone(),
            phase: STEADY.into(),
            old_id: state.old_id.clone(),
            new_id: None,
            new_under_old: None,
            old_under_new: state.old_under_new.clone(),
            updated_at: self.now(),
        };
        if self
            .meta
            .replace_master_key_state(SWITCH, &state.active_id, &next)
            .await?
        {
            self.audit_rotation(
                "retire",
                state.old_id.as_deref().unwrap_or_default(),
                &state.active_id,
            )
            .await;
        }
        self.apply_master_key_state().await?;
        Ok(())
    }

    async fn current_state(&self) -> Result<MasterKeyState, RotationError> {
        self.apply_master_key_state().await?;
        self.meta
            .master_key_state()
            .await?
            .ok_or_else(|| RotationError::Corrupt("the state row vanished".into()))
    }

    /// Re-seals every stored value that does not name the primary key (during a
    /// rotation's `switch` phase: the new key). Rows changed by a request meanwhile
    /// are counted and left for the next pass.
    pub async fn reseal_pass(&self) -> Result<ResealReport, RotationError> {
        let state = self.current_state().await?;
        if state.phase != SWITCH {
            return Err(RotationError::Refused(
                "re-sealing runs only once a rotation switched to the new key".into(),
            ));
        }
        let mut report = ResealReport::default();
        for col in SealedColumn::ALL {
            let mut n = 0;
            let mut after: Option<Vec<KeyPart>> = None;
            loop {
                let page = self.meta.sealed_page(col, after.as_deref()).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.key.clone());
                for row in &page {
                    if let Some(again) = self.resealed(col, &row.key, &row.value)? {
                        self.meta.reseal(col, &row.key, &row.value, &again).await?;
                        // Counted even when the row changed meanwhile: the next pass
                        // looks at it again.
                        n += 1;
                    }
                }
            }
            report.counts.push((col.name(), n));
        }
        report.counts.push((
            "Secrets Manager secret versions",
            self.reseal_secrets().await?,
        ));
        Ok(report)
    }

    /// A stored value re-sealed under the primary key, or `None` if it needs none.
    fn resealed(
        &self,
        col: SealedColumn,
        key: &[KeyPart],
        value: &[u8],
    ) -> Result<Option<Vec<u8>>, RotationError> {
        let text = |i: usize| match key.get(i) {
            Some(KeyPart::Text(s)) => Ok(s.as_str()),
            _ => Err(RotationError::Corrupt(format!("a {} row key", col.name()))),
        };
        let int = |i: usize| match key.get(i) {
            Some(KeyPart::Int(n)) => Ok(*n),
            _ => Err(RotationError::Corrupt(format!("a {} row key", col.name()))),
        };
        let ring = self.ring();
        let tampered = |what: String| {
            RotationError::Registry(RegistryError::Store(StoreError::Tampered(what)))
        };
        Ok(match col {
            SealedColumn::AccessKeys => {
                if ring.sealed_by_primary(value) {
                    return Ok(None);
                }
                let id = text(0)?;
                let plain = ring
                    .open(id, value)
                    .map_err(|_| tampered(format!("access key {id} does not open")))?;
                Some(ring.seal(id, &plain).map_err(|e| tampered(e.to_string()))?)
            }
            SealedColumn::Webhooks => {
                let sealed = hex::decode(value)
                    .map_err(|_| tampered("a stored webhook secret is corrupt".into()))?;
                if ring.sealed_by_primary(&sealed) {
                    return Ok(None);
                }
                let ctx = crate::events::SECRET_CONTEXT;
                let plain = ring
                    .open(ctx, &sealed)
                    .map_err(|_| tampered("a webhook secret does not open".into()))?;
                let again = ring
                    .seal(ctx, &plain)
                    .map_err(|e| tampered(e.to_string()))?;
                Some(hex::encode(again).into_bytes())
            }
            SealedColumn::Uploads => self
                .keys
                .rewrap_registry(value, &crate::registry::upload_aad(text(0)?))?,
            SealedColumn::Blobs => self
                .keys
                .rewrap_registry(value, &crate::registry::blob_aad(text(0)?))?,
            SealedColumn::KmsMaterial => self.keys.reseal_kms_material(text(0)?, int(1)?, value)?,
            SealedColumn::Links => self
                .keys
                .reseal_registry_scheme(value, &Keyring::link_aad_of(int(0)?, text(1)?))?,
            SealedColumn::Manifests => self
                .keys
                .reseal_registry_scheme(value, &Keyring::manifest_aad_of(int(0)?, text(1)?))?,
        })
    }
}
