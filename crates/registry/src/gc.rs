//! Online garbage collection (`docs/architecture.md`, "Deferred work: durable jobs").
//!
//! Work is driven by `gc_candidates` rows written in the same transactions that may
//! make something unreferenced (a manifest deleted, a blob uploaded or mounted, a
//! link or repository deleted), so a run visits only what changed.
//!
//! 1. A link candidate older than the grace period whose blob no manifest of its
//!    repository references loses its link (the grace period protects blobs uploaded
//!    for a manifest that is not pushed yet).
//! 2. A blob candidate with no link left anywhere is deleted: under the digest's
//!    exclusive lock, its object (the key its row names) is retired, its row
//!    deleted, the transaction committed, then the object deleted
//!    (`BlobStore::retire`). Writers that publish or link the same digest take the
//!    lock too, so a push racing the collector either finds the blob gone (and
//!    uploads it) or keeps it.

use berth_store::Meta;
use futures_util::TryStreamExt;

use crate::{Registry, RegistryError};

type Result<T> = std::result::Result<T, RegistryError>;

/// What a collection run did (or, dry, would do).
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    pub links_removed: u64,
    pub blobs_deleted: u64,
    pub bytes_reclaimed: u64,
    pub candidates_seen: u64,
    /// Trashed files left by a crash and deleted now.
    pub trash_swept: u64,
}

const BATCH: i64 = 500;
/// Candidates one SQLite transaction decides at most. SQLite has one writer at a
/// time (and berth queues its writers behind one lock), so a transaction per
/// candidate made a pass wait its turn once per candidate behind every push: with
/// 32 clients pushing, 10,000 candidates took minutes. A batch waits once.
const SQLITE_PER_TX: usize = 256;
/// A batch commits early once it has held the write lock this long, so writers
/// queued behind it wait at most about this long for the collector.
const MAX_TX_HOLD: std::time::Duration = std::time::Duration::from_millis(50);

/// Candidates one PostgreSQL transaction decides at most. A transaction per
/// candidate made 100,000 deletions a collection of minutes (a commit each). A
/// batch locks each further digest only if the lock is free at once
/// (`Meta::try_lock_digest_in`) and commits early otherwise, so the collector
/// waits for a lock only while it holds no other (no deadlock against a writer
/// locking two digests in another order), and a push of a digest it holds waits
/// at most [`MAX_TX_HOLD`].
const POSTGRES_PER_TX: usize = 128;

/// How many candidates one transaction decides.
fn candidates_per_tx(dialect: berth_store::meta::Dialect) -> usize {
    match dialect {
        berth_store::meta::Dialect::Sqlite => SQLITE_PER_TX,
        berth_store::meta::Dialect::Postgres => POSTGRES_PER_TX,
    }
}
/// Collected objects deleted at once after their batch commits.
const PURGES_AT_ONCE: usize = 16;
/// Trash entries this old are leftovers of an interrupted deletion.
const TRASH_GRACE_MS: i64 = 3600 * 1000;

impl Registry {
    /// Runs the collector once. `progress` is called after each candidate with
    /// (done, total-known) so a terminal can show a bar.
    pub async fn collect_garbage(
        &self,
        grace_ms: i64,
        dry_run: bool,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<GcReport> {
        let mut report = GcReport::default();
        let total = self.meta.gc_pending().await?.max(0) as u64;
        let before = self.now() - grace_ms;
        let per_tx = candidates_per_tx(self.meta.dialect());
        // Phase 1: links.
        let mut seen_links = std::collections::HashSet::new();
        loop {
            let batch = self.meta.gc_candidates(false, before, BATCH).await?;
            let batch: Vec<_> = batch
                .into_iter()
                .filter(|c| seen_links.insert(c.clone()))
                .collect();
            if batch.is_empty() {
                break;
            }
            let mut rest = batch.as_slice();
            while let Some((_, first)) = rest.first() {
                let mut tx = self.meta.begin_digest_tx(first, true).await?;
                let started = std::time::Instant::now();
                let mut done = 0;
                for (repo_id, digest) in rest {
                    if done == per_tx || (done > 0 && started.elapsed() >= MAX_TX_HOLD) {
                        break;
                    }
                    if done > 0
                        && !Meta::try_lock_digest_in(&mut tx, self.meta.dialect(), digest).await?
                    {
                        break;
                    }
                    done += 1;
                    report.candidates_seen += 1;
                    let referenced = Meta::gc_link_referenced(&mut tx, *repo_id, digest).await?;
                    if !referenced {
                        report.links_removed += 1;
                        if !dry_run {
                            Meta::gc_unlink(&mut tx, *repo_id, digest, self.now()).await?;
                        }
                    }
                    if !dry_run {
                        Meta::gc_drop_candidate(&mut tx, *repo_id, digest).await?;
                    }
                    progress(report.candidates_seen, total);
                }
                if !dry_run {
                    tx.commit().await?;
                }
                rest = &rest[done..];
            }
            if dry_run {
                break;
            }
        }
        // Phase 2: blobs (blob-level candidates need no grace: they have no links).
        let mut seen_blobs = std::collections::HashSet::new();
        loop {
            let batch = self.meta.gc_candidates(true, i64::MAX, BATCH).await?;
            let batch: Vec<_> = batch
                .into_iter()
                .filter(|c| seen_blobs.insert(c.clone()))
                .collect();
            if batch.is_empty() {
                break;
            }
            let mut rest = batch.as_slice();
            while let Some((_, first)) = rest.first() {
                let mut tx = self.meta.begin_digest_tx(first, true).await?;
                let started = std::time::Instant::now();
                let mut done = 0;
                // Objects retired in this transaction, purged once it commits and
                // put back if it does not.
                let mut retired = Vec::new();
                for (_, digest) in rest {
                    if done == per_tx || (done > 0 && started.elapsed() >= MAX_TX_HOLD) {
                        break;
                    }
                    if done > 0
                        && !Meta::try_lock_digest_in(&mut tx, self.meta.dialect(), digest).await?
                    {
                        break;
                    }
                    done += 1;
                    report.candidates_seen += 1;
                    progress(report.candidates_seen, total);
                    let (linked, size) = Meta::gc_blob_state(&mut tx, digest).await?;
                    if dry_run {
                        if !linked {
                            if let Some(s) = size {
                                report.blobs_deleted += 1;
                                report.bytes_reclaimed += s as u64;
                            }
                        }
                        continue;
                    }
                    Meta::gc_drop_candidate(&mut tx, 0, digest).await?;
                    if linked || size.is_none() {
                        continue;
                    }
                    let Some(object_key) = Meta::blob_object_key(&mut tx, digest).await? else {
                        continue;
                    };
                    let r = match self.blobs.retire(&object_key).await {
                        Ok(r) => r,
                        Err(e) => {
                            drop(tx);
                            self.undo_retired(&retired).await;
                            return Err(e.into());
                        }
                    };
                    retired.push((r, digest, size.unwrap_or(0)));
                    if let Err(e) = Meta::gc_delete_blob_row(&mut tx, digest).await {
                        drop(tx);
                        self.undo_retired(&retired).await;
                        return Err(e.into());
                    }
                }
                rest = &rest[done..];
                if dry_run {
                    continue;
                }
                match tx.commit().await {
                    Ok(()) => {
                        // The objects go several at once rather than one file
                        // unlink or object-store DELETE after another.
                        for chunk in retired.chunks(PURGES_AT_ONCE) {
                            let done = futures_util::future::join_all(
                                chunk.iter().map(|(r, _, _)| self.blobs.retire_commit(r)),
                            )
                            .await;
                            for ((_, digest, size), r) in chunk.iter().zip(done) {
                                if let Err(e) = r {
                                    tracing::warn!(error = %e, %digest, "could not delete a collected blob's object");
                                }
                                report.blobs_deleted += 1;
                                report.bytes_reclaimed += *size as u64;
                            }
                        }
                    }
                    Err(e) => {
                        self.undo_retired(&retired).await;
                        return Err(e.into());
                    }
                }
            }
            if dry_run {
                break;
            }
        }
        if !dry_run {
            // A crash between trashing a blob and purging it leaves the file in the
            // trash; nothing refers to it any more.
            let wall = berth_store::now_millis();
            report.trash_swept = self.blobs.sweep_trash(wall - TRASH_GRACE_MS).await?;
            self.gc_stats.record(&report, self.now());
        }
        Ok(report)
    }

    /// Puts back objects retired by a batch whose transaction did not commit.
    async fn undo_retired(&self, retired: &[(berth_store::blob::Retired, &String, i64)]) {
        for (r, digest, _) in retired {
            if let Err(e) = self.blobs.retire_undo(r).await {
                tracing::warn!(error = %e, %digest, "could not restore a blob's object after a failed collection");
            }
        }
    }

    /// The full sweep (`berth admin gc --full`): the backend's listing of blob
    /// objects is compared with the keys blob rows and upload sessions name, and
    /// objects named by neither — left by a crash between publishing an upload and
    /// committing it — older than the grace period are deleted. An object under a
    /// digest-derived key (`blobs/<alg>/<2 hex>/<hex>`, which a push of that digest
    /// may publish again) is checked and deleted under the digest's exclusive
    /// lock. Objects staged for uploads that no longer exist go too. Its work is
    /// proportional to the store, so it is not part of the background runs.
    pub async fn sweep_orphan_blobs(&self, grace_ms: i64, dry_run: bool) -> Result<(u64, u64)> {
        let before = berth_store::now_millis() - grace_ms;
        let (mut files, mut seen) = (0u64, 0u64);
        let mut listing = self.blobs.list();
        while let Some(o) = listing.try_next().await? {
            seen += 1;
            if o.modified_ms >= before || self.meta.object_key_in_use(&o.key).await? {
                continue;
            }
            match digest_of_key(&o.key) {
                Some(digest) => {
                    let mut tx = self.meta.begin_digest_tx(&digest, true).await?;
                    let named = Meta::blob_object_key(&mut tx, &digest).await?;
                    if named.as_deref() != Some(o.key.as_str()) {
                        files += 1;
                        if !dry_run {
                            self.blobs.delete_object(&o.key).await?;
                        }
                    }
                    tx.commit().await?;
                }
                None => {
                    files += 1;
                    if !dry_run {
                        self.blobs.delete_object(&o.key).await?;
                    }
                }
            }
        }
        // Objects staged for uploads (`uploads/<id>/…`, tail objects) whose upload
        // row is gone: a crash between staging a tail and recording it, or after
        // the commit and before the tail was deleted.
        let mut staged = self.blobs.list_staged();
        while let Some(o) = staged.try_next().await? {
            let Some((id, _)) = o
                .key
                .strip_prefix("uploads/")
                .and_then(|k| k.split_once('/'))
            else {
                continue;
            };
            seen += 1;
            if o.modified_ms >= before || self.meta.get_upload(id).await?.is_some() {
                continue;
            }
            files += 1;
            if !dry_run {
                self.blobs.delete_staged(&o.key).await?;
            }
        }
        Ok((files, seen))
    }
}

/// The digest of a digest-derived object key (`blobs/<alg>/<2 hex>/<hex>`).
fn digest_of_key(key: &str) -> Option<String> {
    let mut it = key.split('/');
    let (Some("blobs"), Some(alg), Some(pre), Some(hex), None) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return None;
    };
    let d = berth_oci::Digest::parse(&format!("{alg}:{hex}")).ok()?;
    (hex.starts_with(pre) && pre.len() == 2).then(|| d.to_string())
}

/// Counters exported on `/metrics`.
#[derive(Default)]
pub struct GcStats {
    pub reclaimed_bytes: std::sync::atomic::AtomicU64,
    pub reclaimed_blobs: std::sync::atomic::AtomicU64,
    pub runs: std::sync::atomic::AtomicU64,
    pub last_run_ms: std::sync::atomic::AtomicI64,
}

impl GcStats {
    fn record(&self, r: &GcReport, now: i64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.reclaimed_bytes.fetch_add(r.bytes_reclaimed, Relaxed);
        self.reclaimed_blobs.fetch_add(r.blobs_deleted, Relaxed);
        self.runs.fetch_add(1, Relaxed);
        self.last_run_ms.store(now, Relaxed);
    }
}
