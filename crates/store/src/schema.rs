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
    (19, V19),
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
    (19, V19),
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
