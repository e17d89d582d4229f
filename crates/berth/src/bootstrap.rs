//! First-start bootstrap: the master key, the default account and its root key.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use berth_registry::identity::Identity;
use berth_registry::Stores;

use crate::config::Config;

pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(contents)
        .and_then(|_| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(crate) fn parse_key(text: &str, from: &str) -> Result<[u8; 32], String> {
    let raw = hex::decode(text.trim())
        .map_err(|_| format!("{from}: the master key must be 64 hex characters"))?;
    raw.try_into()
        .map_err(|_| format!("{from}: the master key must be 64 hex characters (32 bytes)"))
}

pub fn master_key_path(cfg: &Config) -> PathBuf {
    cfg.master_key_file
        .clone()
        .unwrap_or_else(|| cfg.data_dir.join("master.key"))
}

/// Loads the master key from `BERTH_MASTER_KEY` or the key file. With neither, a
/// key is generated into the key file — unless the metadata store already holds
/// secrets sealed with some key, in which case berth refuses to start.
pub async fn master_key_bytes(cfg: &Config, stores: &Stores) -> Result<[u8; 32], String> {
    if let Some(k) = &cfg.master_key {
        return parse_key(k, "BERTH_MASTER_KEY");
    }
    let path = master_key_path(cfg);
    match std::fs::read_to_string(&path) {
        Ok(text) => return parse_key(&text, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "cannot read the master key {}: {e}",
                path.display()
            ))
        }
    }
    let sealed = stores
        .has_sealed_secrets()
        .await
        .map_err(|e| format!("metadata store: {e}"))?;
    if sealed {
        return Err(format!(
            "the master key file {} is missing, but this registry's data was sealed with a master key. \
             Restore the key file (or set BERTH_MASTER_KEY); without it the data cannot be read.",
            path.display()
        ));
    }
    let mut raw = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
        .map_err(|_| "cannot generate a master key".to_string())?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_private(&path, format!("{}\n", hex::encode(raw)).as_bytes())?;
    tracing::warn!(
        path = %path.display(),
        "generated a new master key; in production keep it away from the data (BERTH_MASTER_KEY or master_key_file) — losing it loses the data"
    );
    Ok(raw)
}

/// Ensures the default account has a root access key: the configured one, or a
/// generated one written once to `<data_dir>/root-credentials` (mode 0600).
pub async fn root_key(cfg: &Config, identity: &Identity, now: i64) -> Result<(), String> {
    let account = &cfg.account_id;
    if let (Some(id), Some(secret)) = (&cfg.root_access_key_id, &cfg.root_secret_access_key) {
        let current = identity.secret_for(id).await.map_err(|e| e.to_string())?;
        let same = matches!(&current, Some((s, p)) if s == secret.as_bytes() && p.account_id == *account && p.user_name.is_none());
        if !same {
            identity
                .store_access_key(account, None, id, secret, now)
                .await
                .map_err(|e| e.to_string())?;
        }
        return Ok(());
    }
    let keys = identity
        .list_access_keys(account)
        .await
        .map_err(|e| e.to_string())?;
    if keys.iter().any(|k| k.user_name.is_none()) {
        return Ok(());
    }
    let k = identity
        .create_access_key(account, None, now)
        .await
        .map_err(|e| e.to_string())?;
    let path = cfg.data_dir.join("root-credentials");
    let text = format!(
        "# berth root credentials for account {account} (shown once; keep them safe)\n[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        k.access_key_id, k.secret_access_key
    );
    write_private(&path, text.as_bytes())?;
    tracing::warn!(path = %path.display(), account = %account, "generated the root access key; its credentials are in this file (mode 0600)");
    eprintln!(
        "berth: generated root credentials for account {account}: see {}",
        path.display()
    );
    Ok(())
}
