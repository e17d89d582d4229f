//! The tamper-evident audit log (`crates/store/src/meta/audit_chain.rs`): records
//! written concurrently by two nodes form one hash chain; `berth admin audit
//! verify` reports OK, or the first record whose modification, deletion or
//! reordering (made here with raw SQL) broke it; records from before the chain
//! existed are reported as such.

use std::process::Command;

use berth_testsupport::tools::require;
use berth_testsupport::{both_backends, Berth};
use serde_json::json;

/// Runs SQL against the server's metadata store, as an intruder with database
/// access would.
fn sql(berth: &Berth, statements: &str) -> String {
    let out = if let Some(url) = berth.database_url() {
        require("psql", "apt-get install -y postgresql-client");
        Command::new("psql")
            .args([
                url,
                "-v",
                "ON_ERROR_STOP=1",
                "-q",
                "-t",
                "-A",
                "-c",
                statements,
            ])
            .output()
            .expect("psql")
    } else {
        require("sqlite3", "apt-get install -y sqlite3");
        let db = berth.data_dir().join("meta.db");
        Command::new("sqlite3")
            .args([
                "-cmd",
                ".timeout 30000",
                db.to_str().expect("utf-8"),
                statements,
            ])
            .output()
            .expect("sqlite3")
    };
    assert!(
        out.status.success(),
        "{statements}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn verify(berth: &Berth) -> (bool, String) {
    let out = berth.command_output(&[], &["admin", "audit", "verify"]);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[track_caller]
fn verified_ok(berth: &Berth) -> String {
    let (ok, out) = verify(berth);
    assert!(ok && out.starts_with("OK: "), "{out}");
    out
}

#[track_caller]
fn broken_at(berth: &Berth, id: i64, why: &str) {
    let (ok, out) = verify(berth);
    assert!(!ok, "tampering went unnoticed: {out}");
    assert!(
        out.contains(&format!("BROKEN at audit record {id}: ")) && out.contains(why),
        "expected a break at {id} ({why}): {out}"
    );
}

fn chained_ids(berth: &Berth) -> Vec<i64> {
    sql(
        berth,
        "SELECT id FROM audit_log WHERE chain_seq IS NOT NULL ORDER BY id",
    )
    .lines()
    .map(|l| l.trim().parse().expect("an id"))
    .collect()
}

both_backends! {
    fn the_audit_log_is_a_hash_chain_that_reveals_tampering(backend) {
        let berth = Berth::start(backend);
        let peer = berth.peer().start();
        // Two nodes append concurrently.
        std::thread::scope(|s| {
            for (node, b) in [("a", &berth), ("b", &peer)] {
                for t in 0..2 {
                    s.spawn(move || {
                        for i in 0..8 {
                            b.ecr("CreateRepository", &json!({"repositoryName": format!("chain/{node}{t}-{i}")}))
                                .expect_status(200);
                        }
                    });
                }
            }
        });
        let out = verified_ok(&berth);
        let n: i64 = out["OK: ".len()..].split(' ').next().and_then(|n| n.parse().ok()).expect("a count");
        assert!(n >= 32, "{out}");
        assert!(out.contains("0 record(s) written before the chain started"), "{out}");
        drop(peer);

        let ids = chained_ids(&berth);
        let (x, y) = (ids[4], ids[9]);

        // Modification: one field of one record.
        let outcome = sql(&berth, &format!("SELECT outcome FROM audit_log WHERE id = {x}"));
        sql(&berth, &format!("UPDATE audit_log SET outcome = 'Denied' WHERE id = {x}"));
        broken_at(&berth, x, "the record was modified");
        sql(&berth, &format!("UPDATE audit_log SET outcome = '{outcome}' WHERE id = {x}"));
        verified_ok(&berth);

        // Reordering: two records swap places.
        let swap = format!(
            "UPDATE audit_log SET id = -id WHERE id IN ({x}, {y}); \
             UPDATE audit_log SET id = CASE WHEN id = -{x} THEN {y} ELSE {x} END WHERE id IN (-{x}, -{y});"
        );
        sql(&berth, &swap);
        broken_at(&berth, x, "deleted or reordered");
        sql(&berth, &swap);
        verified_ok(&berth);

        // Deletion: a record in the middle, then the last one.
        sql(&berth, &format!("DELETE FROM audit_log WHERE id = {x}"));
        broken_at(&berth, ids[5], "deleted or reordered");
        let last = *ids.last().expect("records");
        sql(&berth, &format!("DELETE FROM audit_log WHERE id > {}", ids[3]));
        let (ok, out) = verify(&berth);
        assert!(!ok && out.contains("BROKEN at the end of the log") && out.contains("deleted from its end"), "{out}");
        assert!(last > ids[3]);
    }
}

both_backends! {
    fn records_from_before_the_chain_are_marked_and_new_ones_chained(backend) {
        let mut berth = Berth::start(backend);
        for i in 0..3 {
            berth.ecr("CreateRepository", &json!({"repositoryName": format!("old/{i}")})).expect_status(200);
        }
        // Back to the schema before the chain: its records carry no chain fields.
        berth.stop_gracefully();
        sql(&berth, "DROP TABLE audit_chain; DROP TABLE master_key_state; \
                     ALTER TABLE audit_log DROP COLUMN chain_seq; ALTER TABLE audit_log DROP COLUMN prev_hash; \
                     ALTER TABLE audit_log DROP COLUMN hash; DELETE FROM schema_migrations WHERE version = 18;");
        let old: i64 = sql(&berth, "SELECT COUNT(*) FROM audit_log").parse().expect("a count");
        assert!(old >= 3);
        berth.restart();
        let out = verified_ok(&berth);
        assert!(out.starts_with("OK: 0 chained"), "{out}");
        assert!(out.contains(&format!("{old} record(s) written before the chain started")), "{out}");
        for i in 0..3 {
            berth.ecr("CreateRepository", &json!({"repositoryName": format!("new/{i}")})).expect_status(200);
        }
        let out = verified_ok(&berth);
        assert!(out.contains(&format!("{old} record(s) written before the chain started")), "{out}");
        let n: i64 = out["OK: ".len()..].split(' ').next().and_then(|n| n.parse().ok()).expect("a count");
        assert!(n >= 3, "{out}");
        // The chain's first record follows the marker.
        let start: i64 = sql(&berth, "SELECT start_id FROM audit_chain").parse().expect("start_id");
        let first = chained_ids(&berth)[0];
        assert!(first > start, "{first} <= {start}");
        assert_eq!(sql(&berth, &format!("SELECT chain_seq FROM audit_log WHERE id = {first}")), "1");
    }
}
