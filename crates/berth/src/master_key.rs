//! `berth admin master-key …`: rotate the master key while every node keeps
//! serving, and show where a rotation stands (`crates/registry/src/rotation.rs`).

use std::path::PathBuf;
use std::time::Duration;

use berth_registry::master_ring::key_id;
use berth_registry::Registry;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum MasterKeyCmd {
    /// Re-seal every stored secret and data-key wrap under a new master key, without
    /// downtime: running nodes learn the new key from the database, switch to it,
    /// and forget the old one. Run it again to finish an interrupted rotation.
    Rotate {
        /// Where the new key is (64 hex characters). Generated and written here
        /// (mode 0600) when the file does not exist; configure it on every node
        /// afterwards.
        #[arg(long)]
        new_key_file: PathBuf,
        /// How long every node has to apply each phase (nodes check every 2 s).
        #[arg(long, default_value_t = 6)]
        settle_secs: u64,
    },
    /// Show the keyring: the key that seals and, during a rotation, the other one.
    Status,
}

fn hex_id(raw: &[u8; 32]) -> String {
    hex::encode(key_id(raw))
}

pub async fn admin(registry: &Registry, cmd: MasterKeyCmd) -> Result<(), String> {
    let e = |e: berth_registry::rotation::RotationError| e.to_string();
    match cmd {
        MasterKeyCmd::Status => {
            let s = registry.master_key_status().await.map_err(e)?;
            println!("phase\t{}", s.phase);
            println!("sealing key\t{}", s.sealing_id);
            if let Some(o) = s.other_id {
                println!("other key\t{o}");
            }
            if let Some((id, until)) = s.token_grace {
                println!("retired key\t{id}\tverifies registry tokens it minted until {until} (ms since the epoch)");
            }
        }
        MasterKeyCmd::Rotate {
            new_key_file,
            settle_secs,
        } => {
            let settle = Duration::from_secs(settle_secs);
            let status = registry.master_key_status().await.map_err(e)?;
            let existing = match std::fs::read_to_string(&new_key_file) {
                Ok(t) => Some(crate::bootstrap::parse_key(
                    &t,
                    &new_key_file.display().to_string(),
                )?),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
                Err(err) => return Err(format!("cannot read {}: {err}", new_key_file.display())),
            };
            let new = if status.phase == "steady" {
                if existing.is_some_and(|k| hex_id(&k) == status.sealing_id) {
                    println!(
                        "the master key already is the one in {} (id {}): nothing to rotate",
                        new_key_file.display(),
                        status.sealing_id
                    );
                    return Ok(());
                }
                let new = match existing {
                    Some(k) => k,
                    None => {
                        let mut raw = [0u8; 32];
                        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
                            .map_err(|_| "cannot generate a master key".to_string())?;
                        crate::bootstrap::write_private(
                            &new_key_file,
                            format!("{}\n", hex::encode(raw)).as_bytes(),
                        )?;
                        raw
                    }
                };
                registry.begin_master_key_rotation(new).await.map_err(e)?;
                println!(
                    "introduced the new master key {} beside {}; waiting {settle_secs} s for every node to learn it",
                    hex_id(&new),
                    status.sealing_id
                );
                tokio::time::sleep(settle).await;
                new
            } else {
                let new = registry
                    .rotation_new_key()
                    .await
                    .map_err(e)?
                    .ok_or("the rotation in progress names no new key")?;
                match existing {
                    Some(k) if k != new => {
                        return Err(format!(
                            "{} holds key {}, but the rotation in progress is to key {}",
                            new_key_file.display(),
                            hex_id(&k),
                            hex_id(&new)
                        ))
                    }
                    Some(_) => {}
                    None => crate::bootstrap::write_private(
                        &new_key_file,
                        format!("{}\n", hex::encode(new)).as_bytes(),
                    )?,
                }
                println!(
                    "continuing the rotation to {} ({})",
                    hex_id(&new),
                    status.phase
                );
                new
            };
            registry.switch_master_key().await.map_err(e)?;
            println!(
                "every node now seals with the new key; waiting {settle_secs} s before re-sealing"
            );
            tokio::time::sleep(settle).await;
            let mut done = false;
            for pass in 1..=10 {
                let report = registry.reseal_pass().await.map_err(e)?;
                let parts: Vec<String> = report
                    .counts
                    .iter()
                    .map(|(what, n)| format!("{n} {what}"))
                    .collect();
                println!("pass {pass}: re-sealed {}", parts.join(", "));
                if report.total() == 0 {
                    done = true;
                    break;
                }
            }
            if !done {
                return Err(
                    "values kept changing under the old key; run the rotation again".into(),
                );
            }
            registry.retire_old_master_key().await.map_err(e)?;
            println!(
                "rotation complete: everything is sealed under master key {}; configure {} as the master key \
                 (master_key_file or BERTH_MASTER_KEY) on every node before restarting it. The old key no longer works.",
                hex_id(&new),
                new_key_file.display()
            );
        }
    }
    Ok(())
}
