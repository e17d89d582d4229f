//! The metadata schema, one migration list per dialect. The two lists must stay in
//! step: migration N means the same thing on SQLite and PostgreSQL.
//!
//! Conventions that keep one query text valid on both: every integer is 64-bit
//! (`BIGINT`; SQLite's INTEGER is 64-bit anyway), flags are 0/1 integers, times are
//! unix milliseconds, digests are text, and bytes are BLOB/BYTEA.

/// (version, statements) for SQLite.
pub const SQLITE: &[(i64, &str)] = &[
    (1, COMMON_V1_SQLITE),
    (2, V2_SQLITE),
    (4, V4),
    (5, V5_SQLITE),
    (6, V6),
    (7, V7_SQLITE),
    (11, V11_SQLITE),
    (12, V12),
    (10, V10),
    (14, V14),
    (13, V13),
    (17, V17_SQLITE),
    (16, V16_SQLITE),
    (21, V21),
    (19, V19),
    (23, V23),
    (18, V18),
    (20, V20_SQLITE),
    (28, V28),
    (26, V26),
];
/// (version, statements) for PostgreSQL.
pub const POSTGRES: &[(i64, &str)] = &[
    (1, COMMON_V1_POSTGRES),
    (2, V2_POSTGRES),
    (4, V4),
    (5, V5_POSTGRES),
    (6, V6),
    (7, V7_POSTGRES),
    (11, V11_POSTGRES),
    (12, V12),
    (10, V10),
    (14, V14),
    (13, V13),
    (17, V17_POSTGRES),
    (16, V16_POSTGRES),
    (21, V21),
    (19, V19),
    (23, V23),
    (18, V18),
    (20, V20_POSTGRES),
    (28, V28),
    (26, V26),
];

macro_rules! v1 {
    ($serial:literal, $blob:literal) => {
        concat!(
            "CREATE TABLE accounts (
                account_id TEXT PRIMARY KEY,
                created_at BIGINT NOT NULL,
                registry_policy TEXT,
                scanning_configuration TEXT,
                replication_configuration TEXT
            );
            CREATE TABLE users (
                account_id TEXT NOT NULL,
                user_name TEXT NOT NULL,
                user_id TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (account_id, user_name)
            );
            CREATE TABLE access_keys (
                access_key_id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL,
                user_name TEXT,
                secret ",
            $blob,
            " NOT NULL,
                status TEXT NOT NULL,
                created_at BIGINT NOT NULL
            );
            CREATE TABLE user_policies (
                account_id TEXT NOT NULL,
                user_name TEXT NOT NULL,
                policy_name TEXT NOT NULL,
                document TEXT,
                PRIMARY KEY (account_id, user_name, policy_name)
            );
            CREATE TABLE repositories (
                repo_id ",
            $serial,
            ",
                account_id TEXT NOT NULL,
                name TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                tag_mutability TEXT NOT NULL,
                mutability_exclusions TEXT NOT NULL,
                scan_on_push BIGINT NOT NULL,
                encryption_type TEXT NOT NULL,
                kms_key TEXT,
                policy TEXT,
                lifecycle_policy TEXT,
                lifecycle_evaluated_at BIGINT,
                UNIQUE (account_id, name)
            );
            CREATE TABLE repository_tags (
                repo_id BIGINT NOT NULL,
                tag_key TEXT NOT NULL,
                tag_value TEXT NOT NULL,
                PRIMARY KEY (repo_id, tag_key)
            );
            CREATE TABLE blobs (
                digest TEXT PRIMARY KEY,
                size BIGINT NOT NULL,
                created_at BIGINT NOT NULL
            );
            CREATE TABLE repo_blobs (
                repo_id BIGINT NOT NULL,
                digest TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (repo_id, digest)
            );
            CREATE INDEX repo_blobs_digest ON repo_blobs (digest);
            CREATE TABLE manifests (
                repo_id BIGINT NOT NULL,
                digest TEXT NOT NULL,
                media_type TEXT NOT NULL,
                artifact_type TEXT,
                subject TEXT,
                config_digest TEXT,
                image_size BIGINT NOT NULL,
                body ",
            $blob,
            " NOT NULL,
                pushed_at BIGINT NOT NULL,
                last_pulled_at BIGINT,
                PRIMARY KEY (repo_id, digest)
            );
            CREATE INDEX manifests_subject ON manifests (repo_id, subject);
            CREATE TABLE manifest_refs (
                repo_id BIGINT NOT NULL,
                digest TEXT NOT NULL,
                child TEXT NOT NULL,
                kind TEXT NOT NULL,
                PRIMARY KEY (repo_id, digest, child)
            );
            CREATE INDEX manifest_refs_child ON manifest_refs (repo_id, child);
            CREATE TABLE tags (
                repo_id BIGINT NOT NULL,
                tag TEXT NOT NULL,
                digest TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (repo_id, tag)
            );
            CREATE INDEX tags_digest ON tags (repo_id, digest);
            CREATE TABLE uploads (
                upload_id TEXT PRIMARY KEY,
                repo_id BIGINT NOT NULL,
                size BIGINT NOT NULL,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            );
            CREATE TABLE jobs (
                job_id ",
            $serial,
            ",
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                run_after BIGINT NOT NULL,
                claimed_until BIGINT NOT NULL,
                attempts BIGINT NOT NULL,
                created_at BIGINT NOT NULL
            );
            CREATE TABLE audit_log (
                id ",
            $serial,
            ",
                ts BIGINT NOT NULL,
                account_id TEXT,
                principal TEXT,
                action TEXT NOT NULL,
                resource TEXT,
                source TEXT,
                outcome TEXT NOT NULL,
                detail TEXT
            );"
        )
    };
}

const COMMON_V1_SQLITE: &str = v1!("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB");
const COMMON_V1_POSTGRES: &str = v1!("BIGSERIAL PRIMARY KEY", "BYTEA");

/// v2: lifecycle previews; image scans and the advisory database.
macro_rules! v2 {
    ($blob:literal) => {
        concat!(
            "ALTER TABLE repositories ADD COLUMN lifecycle_preview TEXT;
            CREATE TABLE image_scans (
                repo_id BIGINT NOT NULL,
                digest TEXT NOT NULL,
                status TEXT NOT NULL,
                description TEXT,
                findings TEXT,
                started_at BIGINT NOT NULL,
                completed_at BIGINT,
                PRIMARY KEY (repo_id, digest)
            );
            CREATE TABLE advisories (
                advisory_id TEXT PRIMARY KEY,
                body ",
            $blob,
            " NOT NULL,
                imported_at BIGINT NOT NULL
            );
            CREATE TABLE settings (
                name TEXT PRIMARY KEY,
                value TEXT NOT NULL
            )"
        )
    };
}

const V2_SQLITE: &str = v2!("BLOB");
const V2_POSTGRES: &str = v2!("BYTEA");

/// v4: garbage-collection candidates. A row `(repo_id, digest)` says "this link may
/// have become unreferenced since `since`"; `repo_id = 0` says "this blob may have
/// lost its last link". Collection visits only these rows, so its work is
/// proportional to what changed, not to the size of the store.
const V4: &str = "CREATE TABLE gc_candidates (
    repo_id BIGINT NOT NULL,
    digest TEXT NOT NULL,
    since BIGINT NOT NULL,
    PRIMARY KEY (repo_id, digest)
)";

/// v5: encryption at rest — data keys (wrapped) for uploads, blobs and each
/// repository link; berth-managed KMS keys, their key material versions (sealed
/// with the master key) and aliases.
macro_rules! v5 {
    ($blob:literal) => {
        concat!(
            "ALTER TABLE uploads ADD COLUMN data_key ",
            $blob,
            ";
            ALTER TABLE blobs ADD COLUMN data_key ",
            $blob,
            ";
            ALTER TABLE repo_blobs ADD COLUMN data_key ",
            $blob,
            ";
            CREATE TABLE kms_keys (
                key_id TEXT PRIMARY KEY,
                account_id TEXT NOT NULL,
                description TEXT NOT NULL,
                key_state TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                deletion_date BIGINT,
                rotation_enabled BIGINT NOT NULL,
                current_version BIGINT NOT NULL,
                policy TEXT,
                tags TEXT NOT NULL
            );
            CREATE TABLE kms_key_material (
                key_id TEXT NOT NULL,
                version BIGINT NOT NULL,
                material ",
            $blob,
            " NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (key_id, version)
            );
            CREATE TABLE kms_aliases (
                account_id TEXT NOT NULL,
                alias_name TEXT NOT NULL,
                key_id TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (account_id, alias_name)
            )"
        )
    };
}

const V5_SQLITE: &str = v5!("BLOB");
const V5_POSTGRES: &str = v5!("BYTEA");

/// v6: generic durable jobs (`crates/store/src/meta/jobs.rs`): a state (`queued`,
/// `running`, `parked`), the worker holding the claim, the last error, when the row
/// last changed, and an optional unique key (one row per periodic job). Rows left
/// claimed by v5 are `running`, so their leases expire as before.
const V6: &str = "ALTER TABLE jobs ADD COLUMN state TEXT NOT NULL DEFAULT 'queued';
    ALTER TABLE jobs ADD COLUMN claimed_by TEXT;
    ALTER TABLE jobs ADD COLUMN last_error TEXT;
    ALTER TABLE jobs ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN unique_key TEXT;
    UPDATE jobs SET state = 'running' WHERE claimed_until > 0;
    UPDATE jobs SET updated_at = created_at;
    CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key);
    CREATE INDEX jobs_due ON jobs (kind, state, run_after)";

/// v7: two-layer blob storage (`docs/architecture.md`, "Blobs: a dumb backend under
/// one pipeline"). A blob row names its object's key, so no backend has to move an
/// object into a digest-derived place; rows from before get the key of the layout
/// they were written in, `blobs/<alg>/<2 hex>/<hex>`. An upload row names its staged
/// object and keeps its staging state (JSON: a multipart upload's id and part
/// tokens, the tail not yet in a part), so any process can continue it; uploads from
/// before were staged in `uploads/<id>`.
const V7_SQLITE: &str = "ALTER TABLE blobs ADD COLUMN object_key TEXT;
UPDATE blobs SET object_key = 'blobs/' || substr(digest, 1, instr(digest, ':') - 1) || '/' || substr(digest, instr(digest, ':') + 1, 2) || '/' || substr(digest, instr(digest, ':') + 1);
CREATE INDEX blobs_object_key ON blobs (object_key);
ALTER TABLE uploads ADD COLUMN object_key TEXT;
ALTER TABLE uploads ADD COLUMN staging TEXT;
UPDATE uploads SET object_key = 'uploads/' || upload_id";
const V7_POSTGRES: &str = "ALTER TABLE blobs ADD COLUMN object_key TEXT;
UPDATE blobs SET object_key = 'blobs/' || split_part(digest, ':', 1) || '/' || substr(split_part(digest, ':', 2), 1, 2) || '/' || split_part(digest, ':', 2);
CREATE INDEX blobs_object_key ON blobs (object_key);
ALTER TABLE uploads ADD COLUMN object_key TEXT;
ALTER TABLE uploads ADD COLUMN staging TEXT;
UPDATE uploads SET object_key = 'uploads/' || upload_id";

/// v11: events (`crates/store/src/events.rs`): one row per event, written in the
/// transaction of the change that caused it; the last event of each repository
/// (`event_streams`, which webhook deliveries are dispatched from); webhooks; and
/// each webhook's delivery cursor per repository.
macro_rules! v11 {
    ($serial:literal) => {
        concat!(
            "CREATE TABLE events (
                seq ",
            $serial,
            ",
                event_id TEXT NOT NULL,
                account_id TEXT NOT NULL,
                repository TEXT NOT NULL,
                detail_type TEXT NOT NULL,
                detail TEXT NOT NULL,
                created_at BIGINT NOT NULL
            );
            CREATE INDEX events_stream ON events (account_id, repository, seq);
            CREATE TABLE event_streams (
                account_id TEXT NOT NULL,
                repository TEXT NOT NULL,
                last_seq BIGINT NOT NULL,
                PRIMARY KEY (account_id, repository)
            );
            CREATE TABLE webhooks (
                webhook_id ",
            $serial,
            ",
                name TEXT NOT NULL UNIQUE,
                url TEXT NOT NULL,
                secret TEXT NOT NULL,
                detail_types TEXT NOT NULL,
                repository_prefix TEXT NOT NULL,
                accounts TEXT NOT NULL,
                format TEXT NOT NULL,
                origin TEXT NOT NULL,
                start_seq BIGINT NOT NULL,
                created_at BIGINT NOT NULL
            );
            CREATE TABLE webhook_cursors (
                webhook_id BIGINT NOT NULL,
                account_id TEXT NOT NULL,
                repository TEXT NOT NULL,
                last_seq BIGINT NOT NULL,
                PRIMARY KEY (webhook_id, account_id, repository)
            )"
        )
    };
}

const V11_SQLITE: &str = v11!("INTEGER PRIMARY KEY AUTOINCREMENT");
const V11_POSTGRES: &str = v11!("BIGSERIAL PRIMARY KEY");
/// Console sessions (`crates/api/src/console/`): the session id is stored only as
/// its SHA-256 (a leaked table does not sign anyone in); the access key it was
/// opened with is kept so disabling or deleting the key ends the session.
const V12: &str = "CREATE TABLE console_sessions (
    session_hash TEXT PRIMARY KEY,
    access_key_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    user_name TEXT,
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at)";
/// v10: replication statuses (`crates/store/src/replication.rs`), one row per
/// (image, destination registry).
const V10: &str = "CREATE TABLE replication_status (
    repo_id BIGINT NOT NULL,
    digest TEXT NOT NULL,
    region TEXT NOT NULL,
    registry_id TEXT NOT NULL,
    status TEXT NOT NULL,
    failure_code TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, digest, region, registry_id)
)";
/// v14: ECR's account settings (`GetAccountSetting`/`PutAccountSetting`), one row
/// per (account, name) that was ever put (a missing row reads as the default); and
/// repository creation templates and pull-through cache rules, one row per
/// (account, prefix) whose body is JSON (`crates/registry/src/templates.rs`,
/// `pull_through.rs`); Secrets Manager secrets, one row per (account, name) whose
/// body is JSON with sealed values, changed by compare-and-swap on `rev`
/// (`crates/registry/src/secrets_manager.rs`); when each cached tag of a
/// pull-through cache repository was last checked upstream, and the leases that let
/// one node at a time fetch an image into the cache; and the principals whose pulls
/// do not update `lastRecordedPullTime` (one row per (account, ARN)).
const V14: &str = "CREATE TABLE account_flags (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE creation_templates (
    account_id TEXT NOT NULL,
    prefix TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, prefix)
);
CREATE TABLE pull_through_rules (
    account_id TEXT NOT NULL,
    prefix TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, prefix)
);
CREATE TABLE sm_secrets (
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    rev BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, name)
);
CREATE TABLE pull_through_checks (
    repo_id BIGINT NOT NULL,
    tag TEXT NOT NULL,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, tag)
);
CREATE TABLE pull_through_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until BIGINT NOT NULL
);
CREATE TABLE pull_time_exclusions (
    account_id TEXT NOT NULL,
    prefix TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, prefix)
)";
/// The write lease on an upload row: which request may append to (or finish) the
/// upload until when, so two nodes never write one upload at the same time; and the
/// ECR layer-part bookkeeping (the last part's length, whether a part under ECR's
/// minimum was followed by another), kept with the upload so any node sees it and
/// it goes when the upload does.
const V13: &str = "ALTER TABLE uploads ADD COLUMN lease_owner TEXT;
ALTER TABLE uploads ADD COLUMN lease_until BIGINT;
ALTER TABLE uploads ADD COLUMN part_last BIGINT;
ALTER TABLE uploads ADD COLUMN part_too_small BIGINT NOT NULL DEFAULT 0";

/// Severity counts of each scan in columns, so the console's registry-wide
/// "findings by severity" is one SUM (`Meta::findings_by_severity`); filled from
/// the result document of scans already complete.
macro_rules! v17 {
    ($($sev:literal => $extract:literal),*) => {
        concat!(
            $("ALTER TABLE image_scans ADD COLUMN sev_", $sev, " BIGINT;\n",)*
            "UPDATE image_scans SET ",
            $("sev_", $sev, " = ", $extract, ", ",)*
            "status = status WHERE findings IS NOT NULL"
        )
    };
}
const V17_SQLITE: &str = v17!(
    "critical" => "CAST(json_extract(findings, '$.findingSeverityCounts.CRITICAL') AS BIGINT)",
    "high" => "CAST(json_extract(findings, '$.findingSeverityCounts.HIGH') AS BIGINT)",
    "medium" => "CAST(json_extract(findings, '$.findingSeverityCounts.MEDIUM') AS BIGINT)",
    "low" => "CAST(json_extract(findings, '$.findingSeverityCounts.LOW') AS BIGINT)",
    "informational" => "CAST(json_extract(findings, '$.findingSeverityCounts.INFORMATIONAL') AS BIGINT)",
    "undefined" => "CAST(json_extract(findings, '$.findingSeverityCounts.UNDEFINED') AS BIGINT)"
);
const V17_POSTGRES: &str = v17!(
    "critical" => "CAST(CAST(findings AS JSONB) -> 'findingSeverityCounts' ->> 'CRITICAL' AS BIGINT)",
    "high" => "CAST(CAST(findings AS JSONB) -> 'findingSeverityCounts' ->> 'HIGH' AS BIGINT)",
    "medium" => "CAST(CAST(findings AS JSONB) -> 'findingSeverityCounts' ->> 'MEDIUM' AS BIGINT)",
    "low" => "CAST(CAST(findings AS JSONB) -> 'findingSeverityCounts' ->> 'LOW' AS BIGINT)",
    "informational" => "CAST(CAST(findings AS JSONB) -> 'findingSeverityCounts' ->> 'INFORMATIONAL' AS BIGINT)",
    "undefined" => "CAST(CAST(findings AS JSONB) -> 'findingSeverityCounts' ->> 'UNDEFINED' AS BIGINT)"
);

/// The statements of a migration: its text split at `;`, except inside a trigger
/// body (SQLite: `CREATE TRIGGER … BEGIN …; …; END`) or a `$$`-quoted function
/// body (PostgreSQL), which hold `;` of their own.
pub fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for piece in sql.split(';') {
        if !cur.is_empty() {
            cur.push(';');
        }
        cur.push_str(piece);
        let t = cur.trim();
        let in_dollars = t.matches("$$").count() % 2 == 1;
        let in_trigger =
            t.starts_with("CREATE TRIGGER") && t.contains(" BEGIN ") && !t.ends_with("END");
        if !in_dollars && !in_trigger {
            if !t.is_empty() {
                out.push(t.to_string());
            }
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// v16: running totals for the console's Overview, so it reads one row per
/// repository (and per repository and day) instead of every manifest of the
/// account: `repo_totals` (images, bytes, and the severity counts of the last
/// complete scan of each stored image) and `activity_days` (images pushed and
/// images last pulled per UTC day). Triggers keep them in step with `manifests`
/// and `image_scans` in the transaction of every change, whichever code (or SQL)
/// makes it; the figures are exactly those of the aggregates they replace
/// (`Meta::storage_by_repository`, `activity_by_day`, `findings_by_severity`;
/// `crates/store/tests/console_totals.rs` checks them after every kind of change).
///
/// The tables and their backfill, the same on both dialects.
macro_rules! v16_tables {
    () => {
        "CREATE TABLE repo_totals (
    repo_id BIGINT PRIMARY KEY,
    images BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    sev_critical BIGINT NOT NULL DEFAULT 0,
    sev_high BIGINT NOT NULL DEFAULT 0,
    sev_medium BIGINT NOT NULL DEFAULT 0,
    sev_low BIGINT NOT NULL DEFAULT 0,
    sev_informational BIGINT NOT NULL DEFAULT 0,
    sev_undefined BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE activity_days (
    repo_id BIGINT NOT NULL,
    day BIGINT NOT NULL,
    pushes BIGINT NOT NULL DEFAULT 0,
    pulls BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (repo_id, day)
);
INSERT INTO repo_totals (repo_id, images, bytes, sev_critical, sev_high, sev_medium, sev_low, sev_informational, sev_undefined)
SELECT m.repo_id, COUNT(*), CAST(SUM(m.image_size) AS BIGINT),
    CAST(SUM(COALESCE(s.sev_critical, 0)) AS BIGINT), CAST(SUM(COALESCE(s.sev_high, 0)) AS BIGINT),
    CAST(SUM(COALESCE(s.sev_medium, 0)) AS BIGINT), CAST(SUM(COALESCE(s.sev_low, 0)) AS BIGINT),
    CAST(SUM(COALESCE(s.sev_informational, 0)) AS BIGINT), CAST(SUM(COALESCE(s.sev_undefined, 0)) AS BIGINT)
FROM manifests m LEFT JOIN image_scans s ON s.repo_id = m.repo_id AND s.digest = m.digest AND s.status = 'COMPLETE'
GROUP BY m.repo_id;
INSERT INTO activity_days (repo_id, day, pushes, pulls)
SELECT repo_id, day, CAST(SUM(p) AS BIGINT), CAST(SUM(l) AS BIGINT) FROM (
    SELECT repo_id, pushed_at / 86400000 AS day, 1 AS p, 0 AS l FROM manifests
    UNION ALL SELECT repo_id, last_pulled_at / 86400000, 0, 1 FROM manifests WHERE last_pulled_at IS NOT NULL
) x GROUP BY repo_id, day;
"
    };
}
/// An SQLite trigger: `AFTER <event> FOR EACH ROW [WHEN …] BEGIN <body> END`.
/// (SQLite has one writer at a time: a row trigger's reads are never stale.)
macro_rules! sqlite_trigger {
    ($name:literal, $event:literal, $when:literal, $body:literal) => {
        concat!(
            "CREATE TRIGGER ",
            $name,
            " AFTER ",
            $event,
            " FOR EACH ROW ",
            $when,
            " BEGIN ",
            $body,
            "\nEND;\n"
        )
    };
}
const V16_SQLITE: &str = concat!(
    v16_tables!(),
    sqlite_trigger!("totals_manifest_insert", "INSERT ON manifests", "",
                "INSERT INTO repo_totals (repo_id) VALUES (NEW.repo_id) ON CONFLICT (repo_id) DO NOTHING;
    UPDATE repo_totals SET images = images + 1, bytes = bytes + COALESCE(NEW.image_size, 0),
        sev_critical = sev_critical + COALESCE((SELECT s.sev_critical FROM image_scans s WHERE s.repo_id = NEW.repo_id AND s.digest = NEW.digest AND s.status = 'COMPLETE'), 0),
        sev_high = sev_high + COALESCE((SELECT s.sev_high FROM image_scans s WHERE s.repo_id = NEW.repo_id AND s.digest = NEW.digest AND s.status = 'COMPLETE'), 0),
        sev_medium = sev_medium + COALESCE((SELECT s.sev_medium FROM image_scans s WHERE s.repo_id = NEW.repo_id AND s.digest = NEW.digest AND s.status = 'COMPLETE'), 0),
        sev_low = sev_low + COALESCE((SELECT s.sev_low FROM image_scans s WHERE s.repo_id = NEW.repo_id AND s.digest = NEW.digest AND s.status = 'COMPLETE'), 0),
        sev_informational = sev_informational + COALESCE((SELECT s.sev_informational FROM image_scans s WHERE s.repo_id = NEW.repo_id AND s.digest = NEW.digest AND s.status = 'COMPLETE'), 0),
        sev_undefined = sev_undefined + COALESCE((SELECT s.sev_undefined FROM image_scans s WHERE s.repo_id = NEW.repo_id AND s.digest = NEW.digest AND s.status = 'COMPLETE'), 0)
        WHERE repo_id = NEW.repo_id;
    INSERT INTO activity_days (repo_id, day, pushes, pulls) VALUES (NEW.repo_id, NEW.pushed_at / 86400000, 1, 0)
        ON CONFLICT (repo_id, day) DO UPDATE SET pushes = activity_days.pushes + 1;
    INSERT INTO activity_days (repo_id, day, pushes, pulls) SELECT NEW.repo_id, NEW.last_pulled_at / 86400000, 0, 1 WHERE NEW.last_pulled_at IS NOT NULL
        ON CONFLICT (repo_id, day) DO UPDATE SET pulls = activity_days.pulls + 1;"),
            sqlite_trigger!("totals_manifest_delete", "DELETE ON manifests", "",
                "UPDATE repo_totals SET images = images - 1, bytes = bytes - COALESCE(OLD.image_size, 0),
        sev_critical = sev_critical - COALESCE((SELECT s.sev_critical FROM image_scans s WHERE s.repo_id = OLD.repo_id AND s.digest = OLD.digest AND s.status = 'COMPLETE'), 0),
        sev_high = sev_high - COALESCE((SELECT s.sev_high FROM image_scans s WHERE s.repo_id = OLD.repo_id AND s.digest = OLD.digest AND s.status = 'COMPLETE'), 0),
        sev_medium = sev_medium - COALESCE((SELECT s.sev_medium FROM image_scans s WHERE s.repo_id = OLD.repo_id AND s.digest = OLD.digest AND s.status = 'COMPLETE'), 0),
        sev_low = sev_low - COALESCE((SELECT s.sev_low FROM image_scans s WHERE s.repo_id = OLD.repo_id AND s.digest = OLD.digest AND s.status = 'COMPLETE'), 0),
        sev_informational = sev_informational - COALESCE((SELECT s.sev_informational FROM image_scans s WHERE s.repo_id = OLD.repo_id AND s.digest = OLD.digest AND s.status = 'COMPLETE'), 0),
        sev_undefined = sev_undefined - COALESCE((SELECT s.sev_undefined FROM image_scans s WHERE s.repo_id = OLD.repo_id AND s.digest = OLD.digest AND s.status = 'COMPLETE'), 0)
        WHERE repo_id = OLD.repo_id;
    UPDATE activity_days SET pushes = pushes - 1 WHERE repo_id = OLD.repo_id AND day = OLD.pushed_at / 86400000;
    UPDATE activity_days SET pulls = pulls - 1 WHERE repo_id = OLD.repo_id AND day = OLD.last_pulled_at / 86400000;
    DELETE FROM activity_days WHERE repo_id = OLD.repo_id AND day IN (OLD.pushed_at / 86400000, OLD.last_pulled_at / 86400000) AND pushes = 0 AND pulls = 0;"),
            sqlite_trigger!("totals_manifest_pull", "UPDATE OF last_pulled_at ON manifests",
                "WHEN ((OLD.last_pulled_at IS NULL) <> (NEW.last_pulled_at IS NULL) OR OLD.last_pulled_at / 86400000 <> NEW.last_pulled_at / 86400000)",
                "UPDATE activity_days SET pulls = pulls - 1 WHERE repo_id = OLD.repo_id AND day = OLD.last_pulled_at / 86400000;
    INSERT INTO activity_days (repo_id, day, pushes, pulls) SELECT NEW.repo_id, NEW.last_pulled_at / 86400000, 0, 1 WHERE NEW.last_pulled_at IS NOT NULL
        ON CONFLICT (repo_id, day) DO UPDATE SET pulls = activity_days.pulls + 1;"),
            sqlite_trigger!("totals_manifest_resize", "UPDATE OF image_size, pushed_at ON manifests", "",
                "UPDATE repo_totals SET bytes = bytes - COALESCE(OLD.image_size, 0) + COALESCE(NEW.image_size, 0) WHERE repo_id = NEW.repo_id;
    UPDATE activity_days SET pushes = pushes - 1 WHERE repo_id = OLD.repo_id AND day = OLD.pushed_at / 86400000;
    INSERT INTO activity_days (repo_id, day, pushes, pulls) VALUES (NEW.repo_id, NEW.pushed_at / 86400000, 1, 0)
        ON CONFLICT (repo_id, day) DO UPDATE SET pushes = activity_days.pushes + 1;"),
            sqlite_trigger!("totals_scan_insert", "INSERT ON image_scans", "WHEN (NEW.status = 'COMPLETE')",
                "INSERT INTO repo_totals (repo_id) VALUES (NEW.repo_id) ON CONFLICT (repo_id) DO NOTHING;
    UPDATE repo_totals SET sev_critical = sev_critical + COALESCE(NEW.sev_critical, 0), sev_high = sev_high + COALESCE(NEW.sev_high, 0),
        sev_medium = sev_medium + COALESCE(NEW.sev_medium, 0), sev_low = sev_low + COALESCE(NEW.sev_low, 0),
        sev_informational = sev_informational + COALESCE(NEW.sev_informational, 0), sev_undefined = sev_undefined + COALESCE(NEW.sev_undefined, 0)
        WHERE repo_id = NEW.repo_id AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = NEW.repo_id AND m.digest = NEW.digest);"),
            sqlite_trigger!("totals_scan_update", "UPDATE ON image_scans", "WHEN (OLD.status = 'COMPLETE' OR NEW.status = 'COMPLETE')",
                "INSERT INTO repo_totals (repo_id) VALUES (NEW.repo_id) ON CONFLICT (repo_id) DO NOTHING;
    UPDATE repo_totals SET
        sev_critical = sev_critical - (CASE WHEN OLD.status = 'COMPLETE' THEN COALESCE(OLD.sev_critical, 0) ELSE 0 END) + (CASE WHEN NEW.status = 'COMPLETE' THEN COALESCE(NEW.sev_critical, 0) ELSE 0 END),
        sev_high = sev_high - (CASE WHEN OLD.status = 'COMPLETE' THEN COALESCE(OLD.sev_high, 0) ELSE 0 END) + (CASE WHEN NEW.status = 'COMPLETE' THEN COALESCE(NEW.sev_high, 0) ELSE 0 END),
        sev_medium = sev_medium - (CASE WHEN OLD.status = 'COMPLETE' THEN COALESCE(OLD.sev_medium, 0) ELSE 0 END) + (CASE WHEN NEW.status = 'COMPLETE' THEN COALESCE(NEW.sev_medium, 0) ELSE 0 END),
        sev_low = sev_low - (CASE WHEN OLD.status = 'COMPLETE' THEN COALESCE(OLD.sev_low, 0) ELSE 0 END) + (CASE WHEN NEW.status = 'COMPLETE' THEN COALESCE(NEW.sev_low, 0) ELSE 0 END),
        sev_informational = sev_informational - (CASE WHEN OLD.status = 'COMPLETE' THEN COALESCE(OLD.sev_informational, 0) ELSE 0 END) + (CASE WHEN NEW.status = 'COMPLETE' THEN COALESCE(NEW.sev_informational, 0) ELSE 0 END),
        sev_undefined = sev_undefined - (CASE WHEN OLD.status = 'COMPLETE' THEN COALESCE(OLD.sev_undefined, 0) ELSE 0 END) + (CASE WHEN NEW.status = 'COMPLETE' THEN COALESCE(NEW.sev_undefined, 0) ELSE 0 END)
        WHERE repo_id = NEW.repo_id AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = NEW.repo_id AND m.digest = NEW.digest);"),
            sqlite_trigger!("totals_scan_delete", "DELETE ON image_scans", "WHEN (OLD.status = 'COMPLETE')",
                "UPDATE repo_totals SET sev_critical = sev_critical - COALESCE(OLD.sev_critical, 0), sev_high = sev_high - COALESCE(OLD.sev_high, 0),
        sev_medium = sev_medium - COALESCE(OLD.sev_medium, 0), sev_low = sev_low - COALESCE(OLD.sev_low, 0),
        sev_informational = sev_informational - COALESCE(OLD.sev_informational, 0), sev_undefined = sev_undefined - COALESCE(OLD.sev_undefined, 0)
        WHERE repo_id = OLD.repo_id AND EXISTS (SELECT 1 FROM manifests m WHERE m.repo_id = OLD.repo_id AND m.digest = OLD.digest);"),
            sqlite_trigger!("totals_repository_delete", "DELETE ON repositories", "",
                "DELETE FROM repo_totals WHERE repo_id = OLD.repo_id;
    DELETE FROM activity_days WHERE repo_id = OLD.repo_id;")
);
/// PostgreSQL: statement-level triggers over transition tables, so a statement
/// touching many rows (a repository's deletion, a bulk insert) updates each
/// totals row once rather than once per row (repeated updates of one row inside
/// one transaction make a version chain that every later update walks). Each
/// function first locks the affected totals rows in repository order and reads
/// the other table only in a later statement, which in READ COMMITTED runs on a
/// fresh snapshot: a scan completing while its image is deleted is counted once
/// or not at all.
const V16_POSTGRES: &str = concat!(
    v16_tables!(),
    r#"CREATE FUNCTION totals_manifest_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    INSERT INTO repo_totals (repo_id) SELECT DISTINCT repo_id FROM new_rows ON CONFLICT (repo_id) DO NOTHING;
    PERFORM 1 FROM repo_totals WHERE repo_id IN (SELECT repo_id FROM new_rows) ORDER BY repo_id FOR UPDATE;
    UPDATE repo_totals t SET images = t.images + x.n, bytes = t.bytes + x.b, sev_critical = t.sev_critical + x.critical, sev_high = t.sev_high + x.high, sev_medium = t.sev_medium + x.medium, sev_low = t.sev_low + x.low, sev_informational = t.sev_informational + x.informational, sev_undefined = t.sev_undefined + x.undefined
        FROM (SELECT m.repo_id, COUNT(*) AS n, SUM(COALESCE(m.image_size, 0)) AS b, SUM(COALESCE(s.sev_critical, 0)) AS critical, SUM(COALESCE(s.sev_high, 0)) AS high, SUM(COALESCE(s.sev_medium, 0)) AS medium, SUM(COALESCE(s.sev_low, 0)) AS low, SUM(COALESCE(s.sev_informational, 0)) AS informational, SUM(COALESCE(s.sev_undefined, 0)) AS undefined
            FROM new_rows m LEFT JOIN image_scans s ON s.repo_id = m.repo_id AND s.digest = m.digest AND s.status = 'COMPLETE' GROUP BY m.repo_id) x
        WHERE t.repo_id = x.repo_id;
    INSERT INTO activity_days (repo_id, day, pushes, pulls) SELECT repo_id, pushed_at / 86400000, COUNT(*), 0 FROM new_rows WHERE pushed_at IS NOT NULL GROUP BY 1, 2
        ON CONFLICT (repo_id, day) DO UPDATE SET pushes = activity_days.pushes + excluded.pushes;
    INSERT INTO activity_days (repo_id, day, pushes, pulls) SELECT repo_id, last_pulled_at / 86400000, 0, COUNT(*) FROM new_rows WHERE last_pulled_at IS NOT NULL GROUP BY 1, 2
        ON CONFLICT (repo_id, day) DO UPDATE SET pulls = activity_days.pulls + excluded.pulls;
    RETURN NULL;
END $$;
CREATE TRIGGER totals_manifest_insert AFTER INSERT ON manifests REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION totals_manifest_insert();
CREATE FUNCTION totals_manifest_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    PERFORM 1 FROM repo_totals WHERE repo_id IN (SELECT repo_id FROM old_rows) ORDER BY repo_id FOR UPDATE;
    UPDATE repo_totals t SET images = t.images - x.n, bytes = t.bytes - x.b, sev_critical = t.sev_critical - x.critical, sev_high = t.sev_high - x.high, sev_medium = t.sev_medium - x.medium, sev_low = t.sev_low - x.low, sev_informational = t.sev_informational - x.informational, sev_undefined = t.sev_undefined - x.undefined
        FROM (SELECT m.repo_id, COUNT(*) AS n, SUM(COALESCE(m.image_size, 0)) AS b, SUM(COALESCE(s.sev_critical, 0)) AS critical, SUM(COALESCE(s.sev_high, 0)) AS high, SUM(COALESCE(s.sev_medium, 0)) AS medium, SUM(COALESCE(s.sev_low, 0)) AS low, SUM(COALESCE(s.sev_informational, 0)) AS informational, SUM(COALESCE(s.sev_undefined, 0)) AS undefined
            FROM old_rows m LEFT JOIN image_scans s ON s.repo_id = m.repo_id AND s.digest = m.digest AND s.status = 'COMPLETE' GROUP BY m.repo_id) x
        WHERE t.repo_id = x.repo_id;
    UPDATE activity_days a SET pushes = a.pushes - x.n FROM (SELECT repo_id, pushed_at / 86400000 AS day, COUNT(*) AS n FROM old_rows WHERE pushed_at IS NOT NULL GROUP BY 1, 2) x
        WHERE a.repo_id = x.repo_id AND a.day = x.day;
    UPDATE activity_days a SET pulls = a.pulls - x.n FROM (SELECT repo_id, last_pulled_at / 86400000 AS day, COUNT(*) AS n FROM old_rows WHERE last_pulled_at IS NOT NULL GROUP BY 1, 2) x
        WHERE a.repo_id = x.repo_id AND a.day = x.day;
    DELETE FROM activity_days a USING (SELECT DISTINCT repo_id FROM old_rows) x WHERE a.repo_id = x.repo_id AND a.pushes = 0 AND a.pulls = 0;
    RETURN NULL;
END $$;
CREATE TRIGGER totals_manifest_delete AFTER DELETE ON manifests REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION totals_manifest_delete();
CREATE FUNCTION totals_manifest_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    IF EXISTS (SELECT 1 FROM old_rows o JOIN new_rows n ON n.repo_id = o.repo_id AND n.digest = o.digest WHERE (o.last_pulled_at IS NULL) <> (n.last_pulled_at IS NULL) OR o.last_pulled_at / 86400000 <> n.last_pulled_at / 86400000 OR o.pushed_at / 86400000 <> n.pushed_at / 86400000 OR COALESCE(o.image_size, 0) <> COALESCE(n.image_size, 0)) THEN
    UPDATE activity_days a SET pulls = a.pulls - x.c FROM (SELECT o.repo_id, o.last_pulled_at / 86400000 AS day, COUNT(*) AS c FROM old_rows o JOIN new_rows n ON n.repo_id = o.repo_id AND n.digest = o.digest
            WHERE o.last_pulled_at IS NOT NULL AND ((o.last_pulled_at IS NULL) <> (n.last_pulled_at IS NULL) OR o.last_pulled_at / 86400000 <> n.last_pulled_at / 86400000) GROUP BY 1, 2) x WHERE a.repo_id = x.repo_id AND a.day = x.day;
    INSERT INTO activity_days (repo_id, day, pushes, pulls) SELECT n.repo_id, n.last_pulled_at / 86400000, 0, COUNT(*) FROM old_rows o JOIN new_rows n ON n.repo_id = o.repo_id AND n.digest = o.digest
            WHERE n.last_pulled_at IS NOT NULL AND ((o.last_pulled_at IS NULL) <> (n.last_pulled_at IS NULL) OR o.last_pulled_at / 86400000 <> n.last_pulled_at / 86400000) GROUP BY 1, 2
        ON CONFLICT (repo_id, day) DO UPDATE SET pulls = activity_days.pulls + excluded.pulls;
    UPDATE activity_days a SET pushes = a.pushes - x.c FROM (SELECT o.repo_id, o.pushed_at / 86400000 AS day, COUNT(*) AS c FROM old_rows o JOIN new_rows n ON n.repo_id = o.repo_id AND n.digest = o.digest
            WHERE o.pushed_at / 86400000 <> n.pushed_at / 86400000 GROUP BY 1, 2) x WHERE a.repo_id = x.repo_id AND a.day = x.day;
    INSERT INTO activity_days (repo_id, day, pushes, pulls) SELECT n.repo_id, n.pushed_at / 86400000, COUNT(*), 0 FROM old_rows o JOIN new_rows n ON n.repo_id = o.repo_id AND n.digest = o.digest
            WHERE o.pushed_at / 86400000 <> n.pushed_at / 86400000 GROUP BY 1, 2
        ON CONFLICT (repo_id, day) DO UPDATE SET pushes = activity_days.pushes + excluded.pushes;
    UPDATE repo_totals t SET bytes = t.bytes + x.d FROM (SELECT n.repo_id, SUM(COALESCE(n.image_size, 0) - COALESCE(o.image_size, 0)) AS d FROM old_rows o JOIN new_rows n ON n.repo_id = o.repo_id AND n.digest = o.digest
            WHERE COALESCE(o.image_size, 0) <> COALESCE(n.image_size, 0) GROUP BY 1) x WHERE t.repo_id = x.repo_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER totals_manifest_update AFTER UPDATE ON manifests REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION totals_manifest_update();
CREATE FUNCTION totals_scan_insert() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE status = 'COMPLETE') THEN
    INSERT INTO repo_totals (repo_id) SELECT DISTINCT repo_id FROM new_rows ON CONFLICT (repo_id) DO NOTHING;
    PERFORM 1 FROM repo_totals WHERE repo_id IN (SELECT repo_id FROM new_rows) ORDER BY repo_id FOR UPDATE;
    UPDATE repo_totals t SET sev_critical = t.sev_critical + x.critical, sev_high = t.sev_high + x.high, sev_medium = t.sev_medium + x.medium, sev_low = t.sev_low + x.low, sev_informational = t.sev_informational + x.informational, sev_undefined = t.sev_undefined + x.undefined
        FROM (SELECT s.repo_id, SUM(COALESCE(s.sev_critical, 0)) AS critical, SUM(COALESCE(s.sev_high, 0)) AS high, SUM(COALESCE(s.sev_medium, 0)) AS medium, SUM(COALESCE(s.sev_low, 0)) AS low, SUM(COALESCE(s.sev_informational, 0)) AS informational, SUM(COALESCE(s.sev_undefined, 0)) AS undefined FROM new_rows s JOIN manifests m ON m.repo_id = s.repo_id AND m.digest = s.digest WHERE s.status = 'COMPLETE' GROUP BY s.repo_id) x
        WHERE t.repo_id = x.repo_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER totals_scan_insert AFTER INSERT ON image_scans REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION totals_scan_insert();
CREATE FUNCTION totals_scan_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    IF EXISTS (SELECT 1 FROM old_rows WHERE status = 'COMPLETE' UNION ALL SELECT 1 FROM new_rows WHERE status = 'COMPLETE') THEN
    INSERT INTO repo_totals (repo_id) SELECT DISTINCT repo_id FROM new_rows ON CONFLICT (repo_id) DO NOTHING;
    PERFORM 1 FROM repo_totals WHERE repo_id IN (SELECT repo_id FROM new_rows) ORDER BY repo_id FOR UPDATE;
    UPDATE repo_totals t SET sev_critical = t.sev_critical - x.critical, sev_high = t.sev_high - x.high, sev_medium = t.sev_medium - x.medium, sev_low = t.sev_low - x.low, sev_informational = t.sev_informational - x.informational, sev_undefined = t.sev_undefined - x.undefined
        FROM (SELECT s.repo_id, SUM(COALESCE(s.sev_critical, 0)) AS critical, SUM(COALESCE(s.sev_high, 0)) AS high, SUM(COALESCE(s.sev_medium, 0)) AS medium, SUM(COALESCE(s.sev_low, 0)) AS low, SUM(COALESCE(s.sev_informational, 0)) AS informational, SUM(COALESCE(s.sev_undefined, 0)) AS undefined FROM old_rows s JOIN manifests m ON m.repo_id = s.repo_id AND m.digest = s.digest WHERE s.status = 'COMPLETE' GROUP BY s.repo_id) x
        WHERE t.repo_id = x.repo_id;
    UPDATE repo_totals t SET sev_critical = t.sev_critical + x.critical, sev_high = t.sev_high + x.high, sev_medium = t.sev_medium + x.medium, sev_low = t.sev_low + x.low, sev_informational = t.sev_informational + x.informational, sev_undefined = t.sev_undefined + x.undefined
        FROM (SELECT s.repo_id, SUM(COALESCE(s.sev_critical, 0)) AS critical, SUM(COALESCE(s.sev_high, 0)) AS high, SUM(COALESCE(s.sev_medium, 0)) AS medium, SUM(COALESCE(s.sev_low, 0)) AS low, SUM(COALESCE(s.sev_informational, 0)) AS informational, SUM(COALESCE(s.sev_undefined, 0)) AS undefined FROM new_rows s JOIN manifests m ON m.repo_id = s.repo_id AND m.digest = s.digest WHERE s.status = 'COMPLETE' GROUP BY s.repo_id) x
        WHERE t.repo_id = x.repo_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER totals_scan_update AFTER UPDATE ON image_scans REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION totals_scan_update();
CREATE FUNCTION totals_scan_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    IF EXISTS (SELECT 1 FROM old_rows WHERE status = 'COMPLETE') THEN
    PERFORM 1 FROM repo_totals WHERE repo_id IN (SELECT repo_id FROM old_rows) ORDER BY repo_id FOR UPDATE;
    UPDATE repo_totals t SET sev_critical = t.sev_critical - x.critical, sev_high = t.sev_high - x.high, sev_medium = t.sev_medium - x.medium, sev_low = t.sev_low - x.low, sev_informational = t.sev_informational - x.informational, sev_undefined = t.sev_undefined - x.undefined
        FROM (SELECT s.repo_id, SUM(COALESCE(s.sev_critical, 0)) AS critical, SUM(COALESCE(s.sev_high, 0)) AS high, SUM(COALESCE(s.sev_medium, 0)) AS medium, SUM(COALESCE(s.sev_low, 0)) AS low, SUM(COALESCE(s.sev_informational, 0)) AS informational, SUM(COALESCE(s.sev_undefined, 0)) AS undefined FROM old_rows s JOIN manifests m ON m.repo_id = s.repo_id AND m.digest = s.digest WHERE s.status = 'COMPLETE' GROUP BY s.repo_id) x
        WHERE t.repo_id = x.repo_id;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER totals_scan_delete AFTER DELETE ON image_scans REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION totals_scan_delete();
CREATE FUNCTION totals_repository_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
    DELETE FROM repo_totals WHERE repo_id IN (SELECT repo_id FROM old_rows);
    DELETE FROM activity_days WHERE repo_id IN (SELECT repo_id FROM old_rows);
    RETURN NULL;
END $$;
CREATE TRIGGER totals_repository_delete AFTER DELETE ON repositories REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION totals_repository_delete();
"#
);

/// v21: the latest outcome of each copy of an image to a destination (one per tag
/// it was pushed under, `''` for a push by digest), and the job that produced it, so
/// an older copy finishing late never overwrites a newer one's outcome; the
/// image's status there is that of the latest push's finished copy
/// (`crates/store/src/replication.rs`).
const V21: &str = "CREATE TABLE replication_copies (
    repo_id BIGINT NOT NULL,
    digest TEXT NOT NULL,
    region TEXT NOT NULL,
    registry_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    job_id BIGINT NOT NULL,
    status TEXT NOT NULL,
    failure_code TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repo_id, digest, region, registry_id, tag)
)";

/// Principal tags of IAM users (`aws:PrincipalTag/<key>` in policy conditions);
/// the principal that opened an upload (the per-principal upload limit).
const V19: &str = "CREATE TABLE user_tags (
    account_id TEXT NOT NULL,
    user_name TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (account_id, user_name, tag_key)
);
ALTER TABLE uploads ADD COLUMN principal TEXT;
CREATE INDEX uploads_principal ON uploads (principal);";

/// Manifest trees a node fetched from a pull-through cache's upstream and has not
/// stored yet (their blobs are still being fetched), by the import's lease name:
/// another node that waited on the lease serves them instead of asking the
/// upstream again.
/// v28: the nodes of a deployment (`crates/store/src/meta/nodes.rs`): each
/// running `berth serve` renews its row every few seconds, so every node knows
/// how many share the registry (the throttle divides an account's rates among
/// them).
const V28: &str = "CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
)";
const V23: &str = "CREATE TABLE pull_through_fetched (
    name TEXT PRIMARY KEY,
    fetched_at BIGINT NOT NULL,
    tree TEXT NOT NULL
)";
/// v18: the master keyring's shared state (`crates/registry/src/master_ring.rs`):
/// the id of the key that seals (`active_id`) and, during a rotation, the phase
/// (`introduce`: every node learns the new key, `switch`: every node seals with it)
/// and the two keys, each sealed under the other (hex), so a node holding either
/// one learns both. One row, `id = 1`. And the audit log's hash chain
/// (`crates/store/src/meta/audit_chain.rs`): each record's place, the previous
/// record's hash and its own; the chain's head, whose `start_id` marks the records
/// written before the chain started (those already stored when this migration ran).
const V18: &str = "CREATE TABLE master_key_state (
    id BIGINT PRIMARY KEY,
    active_id TEXT NOT NULL,
    phase TEXT NOT NULL,
    old_id TEXT,
    new_id TEXT,
    new_under_old TEXT,
    old_under_new TEXT,
    updated_at BIGINT NOT NULL
);
ALTER TABLE audit_log ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE TABLE audit_chain (
    chain TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    start_id BIGINT NOT NULL
);
INSERT INTO audit_chain (chain, seq, hash, start_id)
    SELECT 'main', 0, '0000000000000000000000000000000000000000000000000000000000000000', COALESCE(MAX(id), 0) FROM audit_log";
/// v20: the cache epoch (`crates/registry/src/cache.rs`): one counter that every
/// change to an input of authorization or of a manifest read increments in the
/// changing transaction — accounts, users, access keys, identity policies, user
/// tags, repositories (policies, settings), repository tags, tags, manifests
/// (added, deleted or re-sealed; not pull times), account flags, pull-through
/// rules and pull-time exclusions — whichever node, process or code path makes
/// it. A node's caches are valid only while the counter is the value they were
/// loaded under. Row triggers on SQLite (one writer at a time); on PostgreSQL
/// deferred constraint triggers that increment it once per transaction, at commit:
/// the row is locked only while a transaction commits, after all its other work,
/// so concurrent writers queue briefly there and can never deadlock on it.
macro_rules! v20_table {
    () => {
        "CREATE TABLE cache_epoch (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
INSERT INTO cache_epoch (id, n) VALUES (1, 0);
"
    };
}
const V20_SQLITE: &str = concat!(
    v20_table!(),
    "CREATE TRIGGER cache_epoch_accounts_insert AFTER INSERT ON accounts BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_accounts_update AFTER UPDATE ON accounts BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_accounts_delete AFTER DELETE ON accounts BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_users_insert AFTER INSERT ON users BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_users_update AFTER UPDATE ON users BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_users_delete AFTER DELETE ON users BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_access_keys_insert AFTER INSERT ON access_keys BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_access_keys_update AFTER UPDATE ON access_keys BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_access_keys_delete AFTER DELETE ON access_keys BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_user_policies_insert AFTER INSERT ON user_policies BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_user_policies_update AFTER UPDATE ON user_policies BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_user_policies_delete AFTER DELETE ON user_policies BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_user_tags_insert AFTER INSERT ON user_tags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_user_tags_update AFTER UPDATE ON user_tags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_user_tags_delete AFTER DELETE ON user_tags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_repositories_insert AFTER INSERT ON repositories BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_repositories_update AFTER UPDATE ON repositories BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_repositories_delete AFTER DELETE ON repositories BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_repository_tags_insert AFTER INSERT ON repository_tags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_repository_tags_update AFTER UPDATE ON repository_tags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_repository_tags_delete AFTER DELETE ON repository_tags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_tags_insert AFTER INSERT ON tags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_tags_update AFTER UPDATE ON tags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_tags_delete AFTER DELETE ON tags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_account_flags_insert AFTER INSERT ON account_flags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_account_flags_update AFTER UPDATE ON account_flags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_account_flags_delete AFTER DELETE ON account_flags BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_pull_through_rules_insert AFTER INSERT ON pull_through_rules BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_pull_through_rules_update AFTER UPDATE ON pull_through_rules BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_pull_through_rules_delete AFTER DELETE ON pull_through_rules BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_pull_time_exclusions_insert AFTER INSERT ON pull_time_exclusions BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_pull_time_exclusions_update AFTER UPDATE ON pull_time_exclusions BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_pull_time_exclusions_delete AFTER DELETE ON pull_time_exclusions BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_manifests_insert AFTER INSERT ON manifests BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_manifests_delete AFTER DELETE ON manifests BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
    "CREATE TRIGGER cache_epoch_manifests_update_body AFTER UPDATE OF body ON manifests BEGIN UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END;\n",
);
const V20_POSTGRES: &str = concat!(
    v20_table!(),
    "CREATE FUNCTION cache_epoch_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF current_setting('berth.cache_epoch_bumped', true) IS DISTINCT FROM 'y' THEN PERFORM set_config('berth.cache_epoch_bumped', 'y', true); UPDATE cache_epoch SET n = n + 1 WHERE id = 1; END IF; RETURN NULL; END $$;\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_accounts AFTER INSERT OR UPDATE OR DELETE ON accounts DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_users AFTER INSERT OR UPDATE OR DELETE ON users DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_access_keys AFTER INSERT OR UPDATE OR DELETE ON access_keys DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_user_policies AFTER INSERT OR UPDATE OR DELETE ON user_policies DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_user_tags AFTER INSERT OR UPDATE OR DELETE ON user_tags DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_repositories AFTER INSERT OR UPDATE OR DELETE ON repositories DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_repository_tags AFTER INSERT OR UPDATE OR DELETE ON repository_tags DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_tags AFTER INSERT OR UPDATE OR DELETE ON tags DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_account_flags AFTER INSERT OR UPDATE OR DELETE ON account_flags DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_pull_through_rules AFTER INSERT OR UPDATE OR DELETE ON pull_through_rules DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_pull_time_exclusions AFTER INSERT OR UPDATE OR DELETE ON pull_time_exclusions DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
    "CREATE CONSTRAINT TRIGGER cache_epoch_manifests AFTER INSERT OR DELETE OR UPDATE OF body ON manifests DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION cache_epoch_bump();\n",
);

/// v26: keyset pages of `ListImages` in (digest, tag) order
/// (`crates/store/src/meta/paging.rs`): the index that matches that ORDER BY. It
/// replaces `tags_digest (repo_id, digest)`, a prefix of it that served the same
/// lookups.
const V26: &str = "CREATE INDEX tags_digest_tag ON tags (repo_id, digest, tag);
DROP INDEX tags_digest";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_keep_trigger_and_function_bodies_whole() {
        assert_eq!(
            statements("CREATE TABLE a (x INT);\n  ;CREATE INDEX i ON a (x)"),
            ["CREATE TABLE a (x INT)", "CREATE INDEX i ON a (x)"]
        );
        let sqlite = statements(V16_SQLITE);
        let pg = statements(V16_POSTGRES);
        // Two tables, two backfills, then the triggers: eight row triggers on SQLite,
        // seven statement triggers (each a function too) on PostgreSQL.
        assert_eq!(sqlite.len(), 4 + 8, "{sqlite:#?}");
        assert_eq!(pg.len(), 4 + 14, "{pg:#?}");
        assert!(
            sqlite[4].starts_with("CREATE TRIGGER totals_manifest_insert")
                && sqlite[4].ends_with("END")
        );
        assert!(
            pg[4].starts_with("CREATE FUNCTION totals_manifest_insert") && pg[4].ends_with("$$")
        );
        assert!(pg[5].starts_with("CREATE TRIGGER totals_manifest_insert"));
        // v20: the table and its row, then 36 row triggers on SQLite; on
        // PostgreSQL one function and 12 deferred constraint triggers.
        let sqlite = statements(V20_SQLITE);
        let pg = statements(V20_POSTGRES);
        assert_eq!(sqlite.len(), 2 + 36, "{sqlite:#?}");
        assert_eq!(pg.len(), 2 + 1 + 12, "{pg:#?}");
        assert!(sqlite[2..].iter().all(|t| t.ends_with("END")));
        assert!(pg[2].starts_with("CREATE FUNCTION cache_epoch_bump") && pg[2].ends_with("$$"));
        // Every earlier migration splits exactly as before.
        for (v, sql) in SQLITE
            .iter()
            .chain(POSTGRES)
            .filter(|(v, _)| *v != 16 && *v != 20)
        {
            let old: Vec<&str> = sql
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            assert_eq!(statements(sql), old, "v{v}");
        }
    }
}
