//! The tamper-evident audit log (`docs/architecture.md`, "Tamper-evident audit
//! log"): every record appended through [`insert_audit_tx`] carries its place in
//! the chain (`chain_seq`), the previous record's hash and its own,
//! SHA-256 over the previous hash and every field of the record. The chain's head
//! (table `audit_chain`) is taken with an `UPDATE … RETURNING` in the appending
//! transaction, which serializes appends on every node (PostgreSQL holds the row
//! lock until the commit; SQLite has one writer). Records written before the chain
//! existed are those with an id up to `audit_chain.start_id`, the chain start
//! marker written by migration 18.

use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{AuditRow, Meta};
use crate::StoreError;

/// The only chain: the whole log.
pub const CHAIN: &str = "main";
/// The "previous hash" of the first chained record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn field(h: &mut ring::digest::Context, v: Option<&str>) {
    match v {
        None => h.update(b"-"),
        Some(s) => {
            h.update(format!("+{}:", s.len()).as_bytes());
            h.update(s.as_bytes());
        }
    }
}

/// SHA-256 (hex) of a record at `seq` after `prev`: every field length-prefixed, a
/// missing one distinct from an empty one.
pub fn audit_hash(prev: &str, seq: i64, r: &AuditRow) -> String {
    let mut h = ring::digest::Context::new(&ring::digest::SHA256);
    h.update(b"berth audit v1\n");
    field(&mut h, Some(prev));
    field(&mut h, Some(&seq.to_string()));
    field(&mut h, Some(&r.ts.to_string()));
    field(&mut h, r.account_id.as_deref());
    field(&mut h, r.principal.as_deref());
    field(&mut h, Some(&r.action));
    field(&mut h, r.resource.as_deref());
    field(&mut h, r.source.as_deref());
    field(&mut h, Some(&r.outcome));
    field(&mut h, r.detail.as_deref());
    hex::encode(h.finish().as_ref())
}

/// Appends `r` to the audit log and its chain inside `tx`.
pub async fn insert_audit_tx(
    tx: &mut Transaction<'_, Any>,
    r: &AuditRow,
) -> Result<(), StoreError> {
    let head =
        sqlx::query("UPDATE audit_chain SET seq = seq + 1 WHERE chain = $1 RETURNING seq, hash")
            .bind(CHAIN)
            .fetch_one(&mut **tx)
            .await?;
    let seq: i64 = head.try_get(0)?;
    let prev: String = head.try_get(1)?;
    let hash = audit_hash(&prev, seq, r);
    sqlx::query(
        "INSERT INTO audit_log (ts, account_id, principal, action, resource, source, outcome, detail, chain_seq, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(r.ts)
    .bind(r.account_id.clone())
    .bind(r.principal.clone())
    .bind(&r.action)
    .bind(r.resource.clone())
    .bind(r.source.clone())
    .bind(&r.outcome)
    .bind(r.detail.clone())
    .bind(seq)
    .bind(&prev)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE audit_chain SET hash = $1 WHERE chain = $2")
        .bind(&hash)
        .bind(CHAIN)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A stored record with its chain columns.
#[derive(Debug, Clone)]
pub struct ChainedAuditRow {
    pub id: i64,
    pub chain_seq: Option<i64>,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
    pub row: AuditRow,
}

/// The chain's head: its last sequence number and hash, and the start marker.
#[derive(Debug, Clone)]
pub struct AuditChainHead {
    pub seq: i64,
    pub hash: String,
    /// Records with an id up to this were written before the chain started.
    pub start_id: i64,
}

fn chained_from_row(r: &AnyRow) -> Result<ChainedAuditRow, sqlx::Error> {
    Ok(ChainedAuditRow {
        id: r.try_get("id")?,
        chain_seq: r.try_get("chain_seq")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
        row: super::audit_from_row(r)?,
    })
}

impl Meta {
    pub async fn audit_chain_head(&self) -> Result<AuditChainHead, StoreError> {
        let r = sqlx::query("SELECT seq, hash, start_id FROM audit_chain WHERE chain = $1")
            .bind(CHAIN)
            .fetch_one(&self.pool)
            .await?;
        Ok(AuditChainHead {
            seq: r.try_get(0)?,
            hash: r.try_get(1)?,
            start_id: r.try_get(2)?,
        })
    }

    /// How many records precede the chain start marker.
    pub async fn audit_before_chain(&self, start_id: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE id <= $1")
                .bind(start_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Up to `limit` records with an id above `after`, in id order.
    pub async fn audit_chain_page(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ChainedAuditRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, ts, account_id, principal, action, resource, source, outcome, detail, chain_seq, prev_hash, hash \
             FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(chained_from_row)
            .collect::<Result<_, sqlx::Error>>()?)
    }
}
