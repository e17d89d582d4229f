//! Many manifests of one repository stored in one transaction with a few
//! statements per batch instead of a dozen per manifest (`Meta::put_manifests`,
//! used by the bulk import of `crates/registry/src/bulk.rs`).
//!
//! Each statement is a round trip to the database (on SQLite a wake-up of the
//! connection's worker thread and one back), and a push stores a manifest with
//! about twelve: the digest locks, a presence check per blob, the manifest, a
//! reference row per blob, the tag read and upsert, the events and their stream.
//! On a loaded 2-core machine that held a bulk fill to ~400 images/s whatever the
//! transaction size. Here the same checks and writes are made for the whole
//! batch at once — the blobs locked once (sorted, shared, as a push does), every
//! referenced blob checked with one `IN` query, the manifests, references, tags
//! and events inserted as multi-row statements — and the outcome is the one the
//! per-manifest path ([`Meta::put_manifest`], one after the other in the same
//! transaction) would give: the first manifest whose blob is missing or whose
//! immutable tag points elsewhere fails the batch, a manifest and tag already
//! stored are left unchanged (and record no event).
//!
//! A batch this cannot decide statement by statement without knowing the order
//! of its own writes — several repositories, a digest or tag twice, an image
//! index (its children may be earlier manifests of the batch), an immutable tag,
//! a job to enqueue — is stored manifest by manifest, as before.

use std::collections::{HashMap, HashSet};

use super::*;

/// Rows per multi-row statement (9 parameters a manifest row: well under
/// SQLite's 32,766 and PostgreSQL's 65,535 parameters).
const ROWS: usize = 400;

/// Whether `writes` can take the batched path (see the module's comment).
pub(super) fn batchable(writes: &[ManifestWrite]) -> bool {
    let Some(first) = writes.first() else {
        return false;
    };
    let mut digests = HashSet::with_capacity(writes.len());
    let mut tags = HashSet::with_capacity(writes.len());
    writes.iter().all(|w| {
        w.repo_id == first.repo_id
            && w.children.is_empty()
            && w.jobs.is_empty()
            && digests.insert(w.digest.as_str())
            && match &w.tag {
                Some((t, immutable)) => !immutable && tags.insert(t.as_str()),
                None => true,
            }
    })
}

/// `($k+1, …, $k+n), (…)` for `rows` rows of `n` parameters.
fn values(rows: usize, n: usize) -> String {
    let mut s = String::with_capacity(rows * n * 5);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..n {
            if c > 0 {
                s.push_str(", ");
            }
            s.push_str(&format!("${}", r * n + c + 1));
        }
        s.push(')');
    }
    s
}

/// `$from, $from+1, …` (`n` parameters).
fn list(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Meta {
    /// The batched body of [`Meta::put_manifests`] for writes that are
    /// [`batchable`]; the caller commits an `Ok(())`.
    pub(super) async fn put_manifests_batched_tx(
        &self,
        tx: &mut Transaction<'_, Any>,
        writes: &[ManifestWrite],
    ) -> Result<Result<(), (usize, PutManifestOutcome)>, StoreError> {
        let repo_id = writes[0].repo_id;
        // The blobs' locks (shared), in digest order, as each push takes its own.
        // On SQLite the lock is the database's write lock, taken by the first.
        let mut blobs: Vec<&String> = writes.iter().flat_map(|w| &w.blobs).collect();
        blobs.sort();
        blobs.dedup();
        for b in &blobs {
            lock_digest(self.dialect, tx, b, false).await?;
            if self.dialect == Dialect::Sqlite {
                break;
            }
        }
        // Which of them are linked in the repository.
        let mut linked: HashSet<String> = HashSet::with_capacity(blobs.len());
        for chunk in blobs.chunks(ROWS * 4) {
            let sql = format!(
                "SELECT digest FROM repo_blobs WHERE repo_id = $1 AND digest IN ({})",
                list(2, chunk.len())
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql).bind(repo_id);
            for b in chunk {
                q = q.bind(b.as_str());
            }
            linked.extend(q.fetch_all(&mut **tx).await?);
        }
        for (i, w) in writes.iter().enumerate() {
            let missing: Vec<String> = w
                .blobs
                .iter()
                .filter(|b| !linked.contains(*b))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Ok(Err((i, PutManifestOutcome::MissingBlobs(missing))));
            }
        }
        // The tags as they are before the batch.
        let tagged: Vec<&str> = writes
            .iter()
            .filter_map(|w| w.tag.as_ref().map(|(t, _)| t.as_str()))
            .collect();
        let mut existing_tags: HashMap<String, String> = HashMap::with_capacity(tagged.len());
        for chunk in tagged.chunks(ROWS * 4) {
            let sql = format!(
                "SELECT tag, digest FROM tags WHERE repo_id = $1 AND tag IN ({})",
                list(2, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (String, String)>(&sql).bind(repo_id);
            for t in chunk {
                q = q.bind(*t);
            }
            existing_tags.extend(q.fetch_all(&mut **tx).await?);
        }
        // The manifests; `inserted` are the new ones (the others were stored).
        let mut inserted: HashSet<String> = HashSet::with_capacity(writes.len());
        for chunk in writes.chunks(ROWS) {
            let sql = format!(
                "INSERT INTO manifests (repo_id, digest, media_type, artifact_type, subject, config_digest, image_size, body, pushed_at) \
                 VALUES {} ON CONFLICT (repo_id, digest) DO NOTHING RETURNING digest",
                values(chunk.len(), 9)
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for w in chunk {
                q = q
                    .bind(w.repo_id)
                    .bind(w.digest.as_str())
                    .bind(w.media_type.as_str())
                    .bind(w.artifact_type.clone())
                    .bind(w.subject.clone())
                    .bind(w.config_digest.clone())
                    .bind(w.image_size)
                    .bind(w.body.clone())
                    .bind(w.pushed_at);
            }
            inserted.extend(q.fetch_all(&mut **tx).await?);
        }
        // Their references.
        let refs: Vec<(&str, &str)> = writes
            .iter()
            .filter(|w| inserted.contains(&w.digest))
            .flat_map(|w| w.blobs.iter().map(|b| (w.digest.as_str(), b.as_str())))
            .collect();
        for chunk in refs.chunks(ROWS * 2) {
            let sql = format!(
                "INSERT INTO manifest_refs (repo_id, digest, child, kind) VALUES {} ON CONFLICT DO NOTHING",
                values(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for (digest, child) in chunk {
                q = q.bind(repo_id).bind(*digest).bind(*child).bind("blob");
            }
            q.execute(&mut **tx).await?;
        }
        // Tags: a tag already on its manifest, for a manifest already stored, is
        // an unchanged image; any other tag (new, or moved: none is immutable
        // here) is written.
        let mut stored = Vec::with_capacity(writes.len());
        let mut tag_rows: Vec<(&str, &str, i64)> = Vec::with_capacity(tagged.len());
        for w in writes {
            let new = inserted.contains(&w.digest);
            let changed = match &w.tag {
                Some((t, _)) => {
                    let same = existing_tags.get(t) == Some(&w.digest);
                    if !same {
                        tag_rows.push((t.as_str(), w.digest.as_str(), w.pushed_at));
                    }
                    new || !same
                }
                None => new,
            };
            if changed {
                stored.push(w);
            }
        }
        for chunk in tag_rows.chunks(ROWS * 2) {
            let sql = format!(
                "INSERT INTO tags (repo_id, tag, digest, updated_at) VALUES {} \
                 ON CONFLICT (repo_id, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
                values(chunk.len(), 4)
            );
            let mut q = sqlx::query(&sql);
            for (tag, digest, at) in chunk {
                q = q.bind(repo_id).bind(*tag).bind(*digest).bind(*at);
            }
            q.execute(&mut **tx).await?;
        }
        // The events of the stored ones, in order.
        let events: Vec<(&crate::events::NewEvent, i64)> = stored
            .iter()
            .flat_map(|w| w.events.iter().map(|e| (e, w.pushed_at)))
            .collect();
        if !events.is_empty() {
            let (account, repository) = crate::events::stream_of_tx(tx, repo_id).await?;
            let mut last = 0i64;
            for chunk in events.chunks(ROWS) {
                let sql = format!(
                    "INSERT INTO events (event_id, account_id, repository, detail_type, detail, created_at) \
                     VALUES {} RETURNING seq",
                    values(chunk.len(), 6)
                );
                let mut q = sqlx::query_scalar::<_, i64>(&sql);
                for (e, at) in chunk {
                    q = q
                        .bind(uuid::Uuid::new_v4().to_string())
                        .bind(account.as_str())
                        .bind(repository.as_str())
                        .bind(e.detail_type)
                        .bind(e.detail.to_string())
                        .bind(*at);
                }
                for seq in q.fetch_all(&mut **tx).await? {
                    last = last.max(seq);
                }
            }
            crate::events::set_stream_last_tx(tx, &account, &repository, last).await?;
            crate::events::PRODUCED
                .fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(repo_id: i64, digest: &str, tag: Option<(&str, bool)>) -> ManifestWrite {
        ManifestWrite {
            repo_id,
            digest: digest.into(),
            media_type: "m".into(),
            artifact_type: None,
            subject: None,
            config_digest: None,
            image_size: 0,
            body: Vec::new(),
            pushed_at: 0,
            blobs: Vec::new(),
            children: Vec::new(),
            tag: tag.map(|(t, i)| (t.to_string(), i)),
            jobs: Vec::new(),
            events: Vec::new(),
        }
    }

    #[test]
    fn only_independent_writes_are_batched() {
        assert!(batchable(&[w(1, "a", Some(("x", false))), w(1, "b", None)]));
        assert!(!batchable(&[]));
        assert!(!batchable(&[w(1, "a", None), w(2, "b", None)]));
        assert!(!batchable(&[w(1, "a", None), w(1, "a", None)]));
        assert!(!batchable(&[
            w(1, "a", Some(("x", false))),
            w(1, "b", Some(("x", false)))
        ]));
        assert!(!batchable(&[w(1, "a", Some(("x", true)))]));
        let mut index = w(1, "c", None);
        index.children.push("a".into());
        assert!(!batchable(&[index]));
    }

    #[test]
    fn placeholders() {
        assert_eq!(values(2, 2), "($1, $2), ($3, $4)");
        assert_eq!(list(2, 3), "$2, $3, $4");
    }
}
