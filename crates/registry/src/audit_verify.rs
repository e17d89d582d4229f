//! Verifying the audit log's hash chain (`berth admin audit verify`;
//! `crates/store/src/meta/audit_chain.rs` writes it).

use berth_store::meta::audit_chain::{audit_hash, GENESIS};

use crate::{Registry, RegistryError};

/// The outcome of a verification.
#[derive(Debug, Clone)]
pub struct AuditVerdict {
    /// Records written before the chain started (not covered by it).
    pub before_chain: i64,
    /// Chained records verified (up to the first broken one).
    pub verified: i64,
    /// The first broken record's id (`None` past the last record) and why.
    pub broken: Option<(Option<i64>, String)>,
}

const PAGE: i64 = 1000;

impl Registry {
    /// Walks the chain from its start marker to the head read first (records
    /// appended meanwhile are left for the next run).
    pub async fn verify_audit_chain(&self) -> Result<AuditVerdict, RegistryError> {
        let head = self.meta.audit_chain_head().await?;
        let before_chain = self.meta.audit_before_chain(head.start_id).await?;
        let mut v = AuditVerdict {
            before_chain,
            verified: 0,
            broken: None,
        };
        let mut prev = GENESIS.to_string();
        let mut expected = 1i64;
        let mut after = head.start_id;
        'walk: loop {
            let page = self.meta.audit_chain_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for r in &page {
                if expected > head.seq {
                    // Appended after the head was read.
                    break 'walk;
                }
                let fail = |why: String| Some((Some(r.id), why));
                let (Some(seq), Some(prev_hash), Some(hash)) = (r.chain_seq, &r.prev_hash, &r.hash)
                else {
                    v.broken = fail("the record is not chained (written around the chain, or its chain fields were cleared)".into());
                    break 'walk;
                };
                if seq != expected {
                    v.broken = fail(format!(
                        "it is chain record {seq} where {expected} was expected: records were deleted or reordered"
                    ));
                    break 'walk;
                }
                if *prev_hash != prev {
                    v.broken = fail("its previous-record hash does not match the record before it: records were deleted or reordered".into());
                    break 'walk;
                }
                if audit_hash(prev_hash, seq, &r.row) != *hash {
                    v.broken =
                        fail("its contents do not match its hash: the record was modified".into());
                    break 'walk;
                }
                prev = hash.clone();
                expected += 1;
                v.verified += 1;
            }
        }
        if v.broken.is_none() && (expected - 1 != head.seq || prev != head.hash) {
            v.broken = Some((
                None,
                format!(
                    "the chain's head is record {} but the log ends at record {}: records were deleted from its end",
                    head.seq,
                    expected - 1
                ),
            ));
        }
        Ok(v)
    }
}
