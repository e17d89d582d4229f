//! Manifests, tags, referrers and pull records.

use super::*;

/// The jobs a deletion causes, given the digest of the image concerned (for a tag,
/// the one it named): enqueued inside the deletion's transaction.
pub type DeletionJobs<'a> =
    dyn Fn(&str) -> Result<Vec<super::jobs::NewJob>, StoreError> + Send + Sync + 'a;

/// No jobs: a deletion that causes none.
pub fn no_jobs(_: &str) -> Result<Vec<super::jobs::NewJob>, StoreError> {
    Ok(Vec::new())
}

impl Meta {
    /// Stores a manifest and moves its tag, atomically, checking every reference and
    /// the tag's immutability inside the transaction.
    pub async fn put_manifest(&self, w: &ManifestWrite) -> Result<PutManifestOutcome, StoreError> {
        let mut g = self.begin_write().await?;
        let out = self.put_manifest_tx(&mut g.tx, w).await?;
        // Anything but a stored manifest wrote nothing worth keeping: rolled back.
        if matches!(out, PutManifestOutcome::Stored { .. }) {
            g.commit().await?;
        }
        Ok(out)
    }

    /// Stores many manifests in one transaction (a bulk import, `crates/registry/src/bulk.rs`),
    /// each exactly as [`Meta::put_manifest`] would. All or nothing: the first
    /// manifest that is not stored (a missing blob or child, an immutable tag)
    /// rolls the whole batch back and is returned with its index.
    pub async fn put_manifests(
        &self,
        writes: &[ManifestWrite],
    ) -> Result<Result<(), (usize, PutManifestOutcome)>, StoreError> {
        let mut g = self.begin_write().await?;
        if super::bulk_put::batchable(writes) {
            let out = self.put_manifests_batched_tx(&mut g.tx, writes).await?;
            if out.is_ok() {
                g.commit().await?;
            }
            return Ok(out);
        }
        for (i, w) in writes.iter().enumerate() {
            match self.put_manifest_tx(&mut g.tx, w).await? {
                PutManifestOutcome::Stored { .. } | PutManifestOutcome::Unchanged => {}
                other => return Ok(Err((i, other))),
            }
        }
        g.commit().await?;
        Ok(Ok(()))
    }

    async fn put_manifest_tx(
        &self,
        tx: &mut Transaction<'_, Any>,
        w: &ManifestWrite,
    ) -> Result<PutManifestOutcome, StoreError> {
        // Hold the blobs' locks (shared) so the collector cannot unlink one between
        // the check below and the commit.
        let mut sorted: Vec<&String> = w.blobs.iter().collect();
        sorted.sort();
        sorted.dedup();
        for b in sorted {
            lock_digest(self.dialect, tx, b, false).await?;
        }
        let mut missing = Vec::new();
        for b in &w.blobs {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM repo_blobs WHERE repo_id = $1 AND digest = $2")
                    .bind(w.repo_id)
                    .bind(b)
                    .fetch_optional(&mut **tx)
                    .await?;
            if found.is_none() {
                missing.push(b.clone());
            }
        }
        if !missing.is_empty() {
            return Ok(PutManifestOutcome::MissingBlobs(missing));
        }
        for c in &w.children {
            let found: Option<i64> =
                sqlx::query_scalar("SELECT 1 FROM manifests WHERE repo_id = $1 AND digest = $2")
                    .bind(w.repo_id)
                    .bind(c)
                    .fetch_optional(&mut **tx)
                    .await?;
            if found.is_none() {
                missing.push(c.clone());
            }
        }
        if !missing.is_empty() {
            return Ok(PutManifestOutcome::MissingManifests(missing));
        }
        let inserted = sqlx::query(
            "INSERT INTO manifests (repo_id, digest, media_type, artifact_type, subject, config_digest, image_size, body, pushed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (repo_id, digest) DO NOTHING",
        )
        .bind(w.repo_id)
        .bind(&w.digest)
        .bind(&w.media_type)
        .bind(w.artifact_type.clone())
        .bind(w.subject.clone())
        .bind(w.config_digest.clone())
        .bind(w.image_size)
        .bind(w.body.clone())
        .bind(w.pushed_at)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            for job in &w.jobs {
                crate::scans::enqueue_caused_tx(tx, job, w.pushed_at).await?;
            }
            for (child, kind) in w
                .blobs
                .iter()
                .map(|b| (b, "blob"))
                .chain(w.children.iter().map(|c| (c, "manifest")))
            {
                sqlx::query("INSERT INTO manifest_refs (repo_id, digest, child, kind) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                    .bind(w.repo_id)
                    .bind(&w.digest)
                    .bind(child)
                    .bind(kind)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        let mut previous = None;
        if let Some((tag, immutable)) = &w.tag {
            let existing: Option<String> =
                sqlx::query_scalar("SELECT digest FROM tags WHERE repo_id = $1 AND tag = $2")
                    .bind(w.repo_id)
                    .bind(tag)
                    .fetch_optional(&mut **tx)
                    .await?;
            match existing {
                Some(d) if d == w.digest => {
                    if !inserted {
                        return Ok(PutManifestOutcome::Unchanged);
                    }
                }
                Some(d) if *immutable => {
                    return Ok(PutManifestOutcome::TagImmutable { existing: d })
                }
                _ => {
                    // A conditional upsert: on PostgreSQL two racing writers of an
                    // immutable tag serialise on the primary key and the loser
                    // updates nothing.
                    let sql = if *immutable {
                        "INSERT INTO tags (repo_id, tag, digest, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (repo_id, tag) DO NOTHING"
                    } else {
                        "INSERT INTO tags (repo_id, tag, digest, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (repo_id, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at"
                    };
                    let n = sqlx::query(sql)
                        .bind(w.repo_id)
                        .bind(tag)
                        .bind(&w.digest)
                        .bind(w.pushed_at)
                        .execute(&mut **tx)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        let now_there: Option<String> = sqlx::query_scalar(
                            "SELECT digest FROM tags WHERE repo_id = $1 AND tag = $2",
                        )
                        .bind(w.repo_id)
                        .bind(tag)
                        .fetch_optional(&mut **tx)
                        .await?;
                        return Ok(PutManifestOutcome::TagImmutable {
                            existing: now_there.unwrap_or_default(),
                        });
                    }
                    previous = existing;
                    // A new tag on a stored image is a push to replicate too.
                    if !inserted {
                        for job in w
                            .jobs
                            .iter()
                            .filter(|j| j.kind == crate::replication::REPLICATION_JOB)
                        {
                            crate::scans::enqueue_caused_tx(tx, job, w.pushed_at).await?;
                        }
                    }
                }
            }
        } else if !inserted {
            return Ok(PutManifestOutcome::Unchanged);
        }
        crate::events::record_tx(tx, w.repo_id, &w.events, w.pushed_at).await?;
        Ok(PutManifestOutcome::Stored {
            manifest_existed: !inserted,
            previous_tag_digest: previous,
        })
    }

    pub async fn get_manifest(
        &self,
        repo_id: i64,
        digest: &str,
    ) -> Result<Option<ManifestRow>, StoreError> {
        let sql = format!(
            "SELECT {MANIFEST_COLS}, body FROM manifests WHERE repo_id = $1 AND digest = $2"
        );
        let row = sqlx::query(&sql)
            .bind(repo_id)
            .bind(digest)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| manifest_from_row(&r, true)).transpose()?)
    }

    pub async fn get_manifest_by_tag(
        &self,
        repo_id: i64,
        tag: &str,
    ) -> Result<Option<ManifestRow>, StoreError> {
        let sql = format!(
            "SELECT m.{}, m.body FROM tags t JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.digest WHERE t.repo_id = $1 AND t.tag = $2",
            MANIFEST_COLS.replace(", ", ", m.")
        );
        let row = sqlx::query(&sql)
            .bind(repo_id)
            .bind(tag)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| manifest_from_row(&r, true)).transpose()?)
    }

    /// Deletes a manifest and its tags. Returns false if absent. The jobs the
    /// deletion causes (`jobs` of the deleted digest; e.g. its replication to other
    /// registries) are enqueued in the deletion's transaction: they exist exactly
    /// when the deletion committed, and an error building them undoes the deletion.
    pub async fn delete_manifest(
        &self,
        repo_id: i64,
        digest: &str,
        now: i64,
        jobs: &DeletionJobs<'_>,
    ) -> Result<DeleteManifestOutcome, StoreError> {
        let mut g = self.begin_write().await?;
        let out = delete_manifest_tx(&mut g.tx, repo_id, digest, now, jobs).await?;
        // Refused or not found: the transaction rolls back when dropped.
        if matches!(out, DeleteManifestOutcome::Deleted { .. }) {
            g.commit().await?;
        }
        Ok(out)
    }

    /// Deletes several manifests of one repository by digest in one write
    /// transaction — each exactly as [`Meta::delete_manifest`] does (tags, GC
    /// candidates, events, `jobs`), in a savepoint of its own so that one an index
    /// still lists is left alone — and writes each deletion's audit record, if it
    /// has one, in the same transaction. Lifecycle expiry uses it: on SQLite every write waits for
    /// the one writer, so a transaction per image could not keep up with pushes.
    /// Returns each digest's outcome, in order.
    pub async fn delete_manifests(
        &self,
        repo_id: i64,
        items: &[(String, Option<AuditRow>)],
        now: i64,
        jobs: &DeletionJobs<'_>,
    ) -> Result<Vec<DeleteManifestOutcome>, StoreError> {
        let mut g = self.begin_write().await?;
        let mut out = Vec::with_capacity(items.len());
        for (digest, audit) in items {
            sqlx::query("SAVEPOINT berth_batch_delete")
                .execute(&mut *g.tx)
                .await?;
            let o = delete_manifest_tx(&mut g.tx, repo_id, digest, now, jobs).await?;
            match &o {
                DeleteManifestOutcome::Deleted { .. } => {
                    if let Some(a) = audit {
                        super::audit_chain::insert_audit_tx(&mut g.tx, a).await?;
                    }
                }
                DeleteManifestOutcome::ReferencedBy(_) => {
                    sqlx::query("ROLLBACK TO SAVEPOINT berth_batch_delete")
                        .execute(&mut *g.tx)
                        .await?;
                }
                DeleteManifestOutcome::NotFound => {}
            }
            sqlx::query("RELEASE SAVEPOINT berth_batch_delete")
                .execute(&mut *g.tx)
                .await?;
            out.push(o);
        }
        g.commit().await?;
        Ok(out)
    }
}

/// The body of [`Meta::delete_manifest`] inside the caller's write transaction;
/// the caller commits a `Deleted` outcome and rolls back a `ReferencedBy` one.
async fn delete_manifest_tx(
    tx: &mut Transaction<'_, Any>,
    repo_id: i64,
    digest: &str,
    now: i64,
    jobs: &DeletionJobs<'_>,
) -> Result<DeleteManifestOutcome, StoreError> {
    // The write comes first: on SQLite it takes the write lock at once (waiting
    // for another process's writer), where a read first would make the later
    // write fail with "database is locked" if another process committed
    // in between. Refused below, the deletion rolls back with the transaction.
    let n = sqlx::query("DELETE FROM manifests WHERE repo_id = $1 AND digest = $2")
        .bind(repo_id)
        .bind(digest)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if n == 0 {
        return Ok(DeleteManifestOutcome::NotFound);
    }
    let parent: Option<String> = sqlx::query_scalar(
        "SELECT r.digest FROM manifest_refs r WHERE r.repo_id = $1 AND r.child = $2 AND r.kind = 'manifest' LIMIT 1",
    )
    .bind(repo_id)
    .bind(digest)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(parent) = parent {
        return Ok(DeleteManifestOutcome::ReferencedBy(parent));
    }
    let tags: Vec<String> =
        sqlx::query_scalar("DELETE FROM tags WHERE repo_id = $1 AND digest = $2 RETURNING tag")
            .bind(repo_id)
            .bind(digest)
            .fetch_all(&mut **tx)
            .await?;
    // Its blobs may now be unreferenced in this repository.
    sqlx::query("INSERT INTO gc_candidates (repo_id, digest, since) SELECT repo_id, child, $3 FROM manifest_refs WHERE repo_id = $1 AND digest = $2 AND kind = 'blob' ON CONFLICT (repo_id, digest) DO UPDATE SET since = excluded.since")
        .bind(repo_id)
        .bind(digest)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM manifest_refs WHERE repo_id = $1 AND digest = $2")
        .bind(repo_id)
        .bind(digest)
        .execute(&mut **tx)
        .await?;
    // Its replication statuses go with it (they would count in `/metrics` and
    // speak for a later push of the same digest).
    sqlx::query("DELETE FROM replication_status WHERE repo_id = $1 AND digest = $2")
        .bind(repo_id)
        .bind(digest)
        .execute(&mut **tx)
        .await?;
    // One DELETE event per tag it had (one untagged when none), in this
    // transaction.
    let (_, name) = crate::events::stream_of_tx(tx, repo_id).await?;
    let mut events: Vec<_> = tags
        .iter()
        .map(|t| crate::events::image_delete(&name, digest, Some(t)))
        .collect();
    if events.is_empty() {
        events.push(crate::events::image_delete(&name, digest, None));
    }
    crate::events::record_tx(tx, repo_id, &events, now).await?;
    for job in jobs(digest)? {
        super::jobs::enqueue_tx(tx, &job).await?;
    }
    Ok(DeleteManifestOutcome::Deleted { tags })
}

impl Meta {
    /// Removes a tag; returns the digest it pointed at. `jobs` of that digest are
    /// enqueued in the same transaction (see [`Meta::delete_manifest`]).
    pub async fn delete_tag(
        &self,
        repo_id: i64,
        tag: &str,
        jobs: &DeletionJobs<'_>,
    ) -> Result<Option<String>, StoreError> {
        let mut g = self.begin_write().await?;
        let d: Option<String> =
            sqlx::query_scalar("DELETE FROM tags WHERE repo_id = $1 AND tag = $2 RETURNING digest")
                .bind(repo_id)
                .bind(tag)
                .fetch_optional(&mut *g.tx)
                .await?;
        if let Some(digest) = &d {
            let (_, name) = crate::events::stream_of_tx(&mut g.tx, repo_id).await?;
            let e = crate::events::image_delete(&name, digest, Some(tag));
            crate::events::record_tx(&mut g.tx, repo_id, &[e], crate::now_millis()).await?;
            for job in jobs(digest)? {
                super::jobs::enqueue_tx(&mut g.tx, &job).await?;
            }
        }
        g.commit().await?;
        Ok(d)
    }

    /// Tags in lexical order after `last`, at most `limit`.
    pub async fn list_tags(
        &self,
        repo_id: i64,
        last: Option<&str>,
        limit: i64,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT tag FROM tags WHERE repo_id = $1 AND tag > $2 ORDER BY tag LIMIT $3",
        )
        .bind(repo_id)
        .bind(last.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Tags pointing at a manifest.
    pub async fn tags_of(&self, repo_id: i64, digest: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT tag FROM tags WHERE repo_id = $1 AND digest = $2 ORDER BY tag",
        )
        .bind(repo_id)
        .bind(digest)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Manifests whose subject is `subject` (bodies included, for annotations).
    pub async fn referrers(
        &self,
        repo_id: i64,
        subject: &str,
    ) -> Result<Vec<ManifestRow>, StoreError> {
        let sql = format!("SELECT {MANIFEST_COLS}, body FROM manifests WHERE repo_id = $1 AND subject = $2 ORDER BY digest");
        let rows = sqlx::query(&sql)
            .bind(repo_id)
            .bind(subject)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| manifest_from_row(r, true))
            .collect::<Result<_, _>>()?)
    }

    /// Records pulls in one write (the caller batches them).
    pub async fn record_pulls(&self, pulls: &[(i64, String, i64)]) -> Result<(), StoreError> {
        if pulls.is_empty() {
            return Ok(());
        }
        // In (repository, digest) order: the per-day pull totals these updates
        // move (schema v16) are then locked in one order by every batch.
        let mut pulls: Vec<&(i64, String, i64)> = pulls.iter().collect();
        pulls.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        let mut g = self.begin_write().await?;
        for (repo_id, digest, at) in pulls {
            sqlx::query("UPDATE manifests SET last_pulled_at = $1 WHERE repo_id = $2 AND digest = $3 AND (last_pulled_at IS NULL OR last_pulled_at < $1)")
                .bind(*at)
                .bind(*repo_id)
                .bind(digest)
                .execute(&mut *g.tx)
                .await?;
        }
        g.commit().await
    }
}
