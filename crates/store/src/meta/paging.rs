//! Keyset pages of a repository's image ids (`ListImages`): one bounded query per
//! page whose cost does not depend on the repository's size. The order is
//! (digest, tag), an untagged image standing as (digest, ""): the order of the
//! `tags_digest_tag (repo_id, digest, tag)` index (schema version 26) and of the
//! manifests' primary key, so neither SQLite nor PostgreSQL sorts.

use super::*;

/// One entry of `ListImages`: a (digest, tag) pair, or an untagged digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIdRow {
    pub digest: String,
    pub tag: Option<String>,
}

impl Meta {
    /// At most `limit` image ids of a repository strictly after `after`
    /// (digest, tag; "" for an untagged image), in (digest, tag) order.
    /// `tag_status` is `TAGGED`, `UNTAGGED` or anything else for both.
    pub async fn image_ids_page(
        &self,
        repo_id: i64,
        after: Option<(&str, &str)>,
        tag_status: &str,
        limit: i64,
    ) -> Result<Vec<ImageIdRow>, StoreError> {
        let (d, t) = after.unwrap_or(("", ""));
        let q = match tag_status {
            "TAGGED" => sqlx::query(
                "SELECT digest, tag FROM tags WHERE repo_id = $1 AND (digest, tag) > ($2, $3) \
                 ORDER BY digest, tag LIMIT $4",
            )
            .bind(repo_id)
            .bind(d)
            .bind(t),
            // An untagged image is (digest, ""), so its digest alone bounds the page.
            "UNTAGGED" => sqlx::query(
                "SELECT m.digest, CAST(NULL AS TEXT) FROM manifests m WHERE m.repo_id = $1 AND m.digest > $2 \
                 AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo_id = m.repo_id AND t.digest = m.digest) \
                 ORDER BY m.digest LIMIT $3",
            )
            .bind(repo_id)
            .bind(d),
            // PostgreSQL's generic plan for the join below (prepared statements
            // switch to it) walks the repository (158 ms for a page of a 10,000-image
            // repository): there, bound the manifests first (a page needs at most
            // `limit` of them after the cursor's own) and look their tags up one by one.
            _ if self.dialect == Dialect::Postgres => sqlx::query(
                "SELECT m.digest, t.tag FROM \
                 (SELECT digest FROM manifests WHERE repo_id = $1 AND digest >= $2 ORDER BY digest LIMIT $4 + 1) m \
                 LEFT JOIN LATERAL (SELECT tag FROM tags WHERE repo_id = $1 AND digest = m.digest) t ON true \
                 WHERE m.digest > $2 OR COALESCE(t.tag, '') > $3 \
                 ORDER BY m.digest, t.tag LIMIT $4",
            )
            .bind(repo_id)
            .bind(d)
            .bind(t),
            _ => sqlx::query(
                "SELECT m.digest, t.tag FROM manifests m \
                 LEFT JOIN tags t ON t.repo_id = m.repo_id AND t.digest = m.digest \
                 WHERE m.repo_id = $1 AND m.digest >= $2 AND (m.digest > $2 OR COALESCE(t.tag, '') > $3) \
                 ORDER BY m.digest, t.tag LIMIT $4",
            )
            .bind(repo_id)
            .bind(d)
            .bind(t),
        };
        let rows = q.bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ImageIdRow {
                    digest: r.try_get(0)?,
                    tag: r.try_get(1)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }
}
