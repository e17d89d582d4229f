//! The one typed configuration: defaults that work with no file, then a TOML file,
//! then `BERTH_*` environment variables, then command-line flags.

use std::path::{Path, PathBuf};

use berth_registry::{BlobLocation, S3Config};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Where the embedded stores keep their data.
    pub data_dir: PathBuf,
    /// `sqlite://…` (default: `<data_dir>/meta.db`) or `postgres://…`.
    pub database_url: Option<String>,
    /// Host name clients use; default: the listen address.
    pub public_host: Option<String>,
    pub region: String,
    /// The default account's 12-digit id.
    pub account_id: String,
    pub root_access_key_id: Option<String>,
    pub root_secret_access_key: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Create repositories on first push (ECR's CREATE_ON_PUSH template behaviour).
    pub create_on_push: bool,
    /// Upload sessions idle this long expire.
    pub upload_ttl_secs: u64,
    /// `text` or `json`.
    pub log_format: String,
    /// Shifts the registry clock (tests use it to age images).
    pub clock_offset_secs: i64,
    /// A cached tag of a pull-through cache repository is re-checked upstream at
    /// most once per this many seconds (ECR: 24 hours).
    pub pull_through_refresh_secs: u64,
    /// MiB that the stores of blobs streamed from pull-through upstreams may hold
    /// in memory while they are behind their clients (a client never waits for
    /// the store; past this, the completion job fetches the blob again).
    pub pull_through_store_buffer_mib: usize,
    /// Seconds between background lifecycle-policy runs (0 turns them off).
    pub lifecycle_interval_secs: u64,
    /// Seconds between background garbage collections (0 turns them off).
    pub gc_interval_secs: u64,
    /// Uploaded blobs (and links) younger than this are never collected.
    pub gc_grace_secs: u64,
    /// On shutdown, seconds a background job in hand may still run before its
    /// claim is released for another process to take.
    pub job_shutdown_secs: u64,
    /// Seconds a background job's claim lasts unless renewed (renewed every
    /// third of it while the job runs); a crashed process's job is taken over
    /// after this long.
    pub job_lease_secs: u64,
    /// Seconds a request waits for a database connection; while the database is
    /// unreachable, requests fail after this long with 503 and `Retry-After`.
    pub database_timeout_secs: u64,
    /// Base URL of the OSV advisory mirror (`BERTH_VULNDB_URL`); `None` is `off`.
    pub vulndb_url: Option<String>,
    /// Seconds between background advisory syncs (0 turns them off).
    pub vulndb_sync_interval_secs: u64,
    /// Older than this (seconds), the advisory database is out of date.
    pub vulndb_max_age_secs: u64,
    /// Push every scanned image's CycloneDX SBOM into its repository as an OCI
    /// referrer (`BERTH_SBOM_REFERRERS`); a repository's `berth:sbom-referrer`
    /// resource tag overrides it.
    pub sbom_referrers: bool,
    /// The master key as 64 hex characters (prefer `master_key_file`).
    pub master_key: Option<String>,
    /// File holding the master key; default `<data_dir>/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// `[[webhook]]` tables: loaded into the database at start (`crate::webhooks`).
    pub webhook: Vec<WebhookConfig>,
    /// Delivery attempts of a webhook's event before it is a dead letter.
    pub webhook_max_attempts: i64,
    /// Other regions (other berth deployments) that replication may copy to: the
    /// `[[peer]]` sections.
    #[serde(rename = "peer")]
    pub peers: Vec<PeerConfig>,
    /// Where blob bytes live: `file://<dir>` (default: the data directory, objects
    /// under `<data_dir>/blobs`) or `s3://<bucket>[/<prefix>]`.
    pub blob_store: Option<String>,
    /// S3 endpoint, e.g. `http://127.0.0.1:3900`; default AWS's regional endpoint.
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    /// Without explicit keys the standard AWS credential chain applies.
    pub s3_access_key_id: Option<String>,
    pub s3_secret_access_key: Option<String>,
    /// Path-style addressing; default true when an endpoint is given.
    pub s3_path_style: Option<bool>,
    /// Allow an S3 blob store on SQLite metadata (one node only).
    pub single_node: bool,
    /// Trusted proxies, throttling and request limits (`[limits]`,
    /// `crates/api/src/hardening.rs`).
    pub limits: berth_api::hardening::LimitsConfig,
    /// OTLP/HTTP collector for traces (`http://host:4318` or a full
    /// `…/v1/traces` URL); none turns traces off (`crate::otlp`).
    pub otlp_endpoint: Option<String>,
    /// Headers sent with each export, `key=value,…` (e.g. a collector's API key).
    pub otlp_headers: Option<String>,
    /// Share of new traces recorded, 0–1 (a client's `traceparent` decides for its
    /// own).
    pub otlp_sample_ratio: f64,
    /// Longest wait of a finished span before it is sent, in milliseconds.
    pub otlp_flush_ms: u64,
    pub otlp_service_name: String,
}

/// One `[[webhook]]` of the config file.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// Default: the URL.
    pub name: Option<String>,
    pub url: String,
    /// HMAC key of `X-Berth-Signature`.
    pub secret: String,
    pub detail_types: Vec<String>,
    pub repository_prefix: String,
    pub accounts: Vec<String>,
    /// `eventbridge` (default) or `cloudevents`.
    pub format: Option<String>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("detail_types", &self.detail_types)
            .field("repository_prefix", &self.repository_prefix)
            .field("accounts", &self.accounts)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// One `[[peer]]` section: another berth deployment serving `region`, reached at
/// `endpoint` with a principal of that deployment.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub region: String,
    /// The peer's base URL (`http://…` or `https://…`).
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: Option<String>,
    /// File holding the secret access key (instead of `secret_access_key`).
    pub access_key_file: Option<PathBuf>,
    /// PEM certificate(s) the peer's HTTPS certificate must chain to, instead of
    /// the system's roots (a private CA, a self-signed peer).
    pub ca_file: Option<PathBuf>,
    /// `[[peer.account]]` sections: the principal to use for particular
    /// destination accounts in that deployment (the section's own key serves the
    /// others).
    #[serde(default, rename = "account")]
    pub accounts: Vec<PeerAccountConfig>,
}

/// One `[[peer.account]]` section: the principal a replication into
/// `registry_id` of the peer deployment signs with.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerAccountConfig {
    pub registry_id: String,
    pub access_key_id: String,
    pub secret_access_key: Option<String>,
    /// File holding the secret access key (instead of `secret_access_key`).
    pub access_key_file: Option<PathBuf>,
}

impl std::fmt::Debug for PeerAccountConfig {
    // The secret is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerAccountConfig")
            .field("registry_id", &self.registry_id)
            .field("access_key_id", &self.access_key_id)
            .field("access_key_file", &self.access_key_file)
            .finish_non_exhaustive()
    }
}

/// The secret access key given inline or in a file (exactly one of them).
fn peer_secret(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    what: &str,
) -> Result<String, ConfigError> {
    match (inline, file) {
        (Some(s), None) => Ok(s.clone()),
        (None, Some(p)) => std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .map_err(|e| ConfigError::Read(p.clone(), e)),
        _ => Err(ConfigError::Invalid(format!(
            "{what}: give exactly one of secret_access_key and access_key_file"
        ))),
    }
}

impl PeerAccountConfig {
    /// The secret access key, read from `access_key_file` when that is how it is given.
    pub fn secret(&self, region: &str) -> Result<String, ConfigError> {
        peer_secret(
            &self.secret_access_key,
            &self.access_key_file,
            &format!("[[peer]] {region}: account {}", self.registry_id),
        )
    }
}

impl std::fmt::Debug for PeerConfig {
    // The secret is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerConfig")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("access_key_file", &self.access_key_file)
            .field("ca_file", &self.ca_file)
            .field("accounts", &self.accounts)
            .finish_non_exhaustive()
    }
}

impl PeerConfig {
    /// The secret access key, read from `access_key_file` when that is how it is given.
    pub fn secret(&self) -> Result<String, ConfigError> {
        peer_secret(
            &self.secret_access_key,
            &self.access_key_file,
            &format!("[[peer]] {}", self.region),
        )
    }
}

/// ECR's region pattern, `[0-9a-z-]{2,25}`.
pub fn is_region(s: &str) -> bool {
    (2..=25).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:5000".into(),
            data_dir: PathBuf::from("./berth-data"),
            database_url: None,
            public_host: None,
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
            root_access_key_id: None,
            root_secret_access_key: None,
            tls_cert: None,
            tls_key: None,
            create_on_push: true,
            upload_ttl_secs: 24 * 3600,
            log_format: "text".into(),
            clock_offset_secs: 0,
            pull_through_refresh_secs: 24 * 3600,
            pull_through_store_buffer_mib: 64,
            lifecycle_interval_secs: 3600,
            gc_interval_secs: 3600,
            gc_grace_secs: 3600,
            job_shutdown_secs: 10,
            job_lease_secs: 60,
            database_timeout_secs: 10,
            vulndb_url: berth_registry::feeds::feed_base(None),
            vulndb_sync_interval_secs: 6 * 3600,
            vulndb_max_age_secs: berth_registry::feeds::DEFAULT_MAX_AGE_SECS,
            sbom_referrers: false,
            master_key: None,
            master_key_file: None,
            webhook: Vec::new(),
            webhook_max_attempts: 10,
            peers: Vec::new(),
            blob_store: None,
            s3_endpoint: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_path_style: None,
            single_node: false,
            limits: Default::default(),
            otlp_endpoint: None,
            otlp_headers: None,
            otlp_sample_ratio: 1.0,
            otlp_flush_ms: 1000,
            otlp_service_name: "berth".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("invalid config file {0}: {1}")]
    Parse(PathBuf, String),
    #[error("invalid value for {0}: {1}")]
    Env(&'static str, String),
    #[error("{0}")]
    Invalid(String),
}

fn env(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn parse_env<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, ConfigError> {
    match env(name) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ConfigError::Env(name, v)),
    }
}

/// Seconds, or a number with an `s`, `m`, `h` or `d` suffix (`6h`).
fn parse_interval(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, mult) = match v.char_indices().last()? {
        (i, 's') => (&v[..i], 1),
        (i, 'm') => (&v[..i], 60),
        (i, 'h') => (&v[..i], 3600),
        (i, 'd') => (&v[..i], 86400),
        _ => (v, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut c = match file {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|e| ConfigError::Read(p.into(), e))?;
                toml::from_str(&text).map_err(|e| ConfigError::Parse(p.into(), e.to_string()))?
            }
            None => Config::default(),
        };
        if let Some(v) = env("BERTH_LISTEN") {
            c.listen = v;
        }
        if let Some(v) = env("BERTH_DATA_DIR") {
            c.data_dir = v.into();
        }
        if let Some(v) = env("BERTH_DATABASE_URL") {
            c.database_url = Some(v);
        }
        if let Some(v) = env("BERTH_PUBLIC_HOST") {
            c.public_host = Some(v);
        }
        if let Some(v) = env("BERTH_REGION") {
            c.region = v;
        }
        if let Some(v) = env("BERTH_ACCOUNT_ID") {
            c.account_id = v;
        }
        if let Some(v) = env("BERTH_ROOT_ACCESS_KEY_ID") {
            c.root_access_key_id = Some(v);
        }
        if let Some(v) = env("BERTH_ROOT_SECRET_ACCESS_KEY") {
            c.root_secret_access_key = Some(v);
        }
        if let Some(v) = env("BERTH_TLS_CERT") {
            c.tls_cert = Some(v.into());
        }
        if let Some(v) = env("BERTH_TLS_KEY") {
            c.tls_key = Some(v.into());
        }
        if let Some(v) = parse_env("BERTH_CREATE_ON_PUSH")? {
            c.create_on_push = v;
        }
        if let Some(v) = parse_env("BERTH_UPLOAD_TTL_SECS")? {
            c.upload_ttl_secs = v;
        }
        if let Some(v) = env("BERTH_LOG_FORMAT") {
            c.log_format = v;
        }
        // Traces: berth's own names first, then OpenTelemetry's standard ones.
        if let Some(v) = env("BERTH_OTLP_ENDPOINT")
            .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            c.otlp_endpoint = Some(v);
        }
        if let Some(v) = env("BERTH_OTLP_HEADERS")
            .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_HEADERS"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
        {
            c.otlp_headers = Some(v);
        }
        if let Some(v) = parse_env("BERTH_OTLP_SAMPLE_RATIO")? {
            c.otlp_sample_ratio = v;
        }
        if let Some(v) = parse_env("BERTH_OTLP_FLUSH_MS")? {
            c.otlp_flush_ms = v;
        }
        if let Some(v) = env("BERTH_OTLP_SERVICE_NAME").or_else(|| env("OTEL_SERVICE_NAME")) {
            c.otlp_service_name = v;
        }
        if let Some(v) = parse_env("BERTH_LIFECYCLE_INTERVAL_SECS")? {
            c.lifecycle_interval_secs = v;
        }
        if let Some(v) = env("BERTH_VULNDB_URL") {
            c.vulndb_url = berth_registry::feeds::feed_base(Some(&v));
        }
        if let Some(v) = env("BERTH_VULNDB_SYNC_INTERVAL") {
            c.vulndb_sync_interval_secs =
                parse_interval(&v).ok_or(ConfigError::Env("BERTH_VULNDB_SYNC_INTERVAL", v))?;
        }
        if let Some(v) = env("BERTH_VULNDB_MAX_AGE") {
            c.vulndb_max_age_secs =
                parse_interval(&v).ok_or(ConfigError::Env("BERTH_VULNDB_MAX_AGE", v))?;
        }
        if let Some(v) = parse_env("BERTH_SBOM_REFERRERS")? {
            c.sbom_referrers = v;
        }
        if let Some(v) = parse_env("BERTH_GC_INTERVAL_SECS")? {
            c.gc_interval_secs = v;
        }
        if let Some(v) = parse_env("BERTH_GC_GRACE_SECS")? {
            c.gc_grace_secs = v;
        }
        if let Some(v) = parse_env("BERTH_JOB_SHUTDOWN_SECS")? {
            c.job_shutdown_secs = v;
        }
        if let Some(v) = parse_env::<u64>("BERTH_JOB_LEASE_SECS")? {
            if v == 0 {
                return Err(ConfigError::Env("BERTH_JOB_LEASE_SECS", v.to_string()));
            }
            c.job_lease_secs = v;
        }
        if let Some(v) = parse_env("BERTH_DATABASE_TIMEOUT_SECS")? {
            c.database_timeout_secs = v;
        }
        if let Some(v) = env("BERTH_MASTER_KEY") {
            c.master_key = Some(v);
        }
        if let Some(v) = env("BERTH_MASTER_KEY_FILE") {
            c.master_key_file = Some(v.into());
        }
        if let Some(v) = parse_env("BERTH_WEBHOOK_MAX_ATTEMPTS")? {
            c.webhook_max_attempts = v;
        }
        if let Some(v) = parse_env("BERTH_CLOCK_OFFSET_SECS")? {
            c.clock_offset_secs = v;
        }
        if let Some(v) = parse_env("BERTH_PULL_THROUGH_REFRESH_SECS")? {
            c.pull_through_refresh_secs = v;
        }
        if let Some(v) = parse_env("BERTH_PULL_THROUGH_STORE_BUFFER_MIB")? {
            c.pull_through_store_buffer_mib = v;
        }
        if let Some(v) = env("BERTH_BLOB_STORE") {
            c.blob_store = Some(v);
        }
        if let Some(v) = env("BERTH_S3_ENDPOINT") {
            c.s3_endpoint = Some(v);
        }
        if let Some(v) = env("BERTH_S3_REGION") {
            c.s3_region = Some(v);
        }
        if let Some(v) = env("BERTH_S3_ACCESS_KEY_ID") {
            c.s3_access_key_id = Some(v);
        }
        if let Some(v) = env("BERTH_S3_SECRET_ACCESS_KEY") {
            c.s3_secret_access_key = Some(v);
        }
        if let Some(v) = parse_env("BERTH_S3_PATH_STYLE")? {
            c.s3_path_style = Some(v);
        }
        if let Some(v) = parse_env("BERTH_SINGLE_NODE")? {
            c.single_node = v;
        }
        c.limits
            .apply_env(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
            .map_err(ConfigError::Invalid)?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.limits.build().map_err(ConfigError::Invalid)?;
        self.otlp().map_err(ConfigError::Invalid)?;
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConfigError::Invalid(format!(
                "account_id must be 12 digits, got {:?}",
                self.account_id
            )));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "--tls-cert and --tls-key must be given together".into(),
            ));
        }
        if self.root_access_key_id.is_some() != self.root_secret_access_key.is_some() {
            return Err(ConfigError::Invalid(
                "BERTH_ROOT_ACCESS_KEY_ID and BERTH_ROOT_SECRET_ACCESS_KEY must be given together"
                    .into(),
            ));
        }
        if !is_region(&self.region) {
            return Err(ConfigError::Invalid(format!(
                "region must match [0-9a-z-]{{2,25}}, got {:?}",
                self.region
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.peers {
            if !is_region(&p.region) {
                return Err(ConfigError::Invalid(format!(
                    "[[peer]] region must match [0-9a-z-]{{2,25}}, got {:?}",
                    p.region
                )));
            }
            if p.region == self.region {
                return Err(ConfigError::Invalid(format!(
                    "[[peer]] {}: that is this deployment's own region",
                    p.region
                )));
            }
            if !seen.insert(p.region.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "[[peer]] {}: region named twice",
                    p.region
                )));
            }
            let rest = p
                .endpoint
                .strip_prefix("http://")
                .or_else(|| p.endpoint.strip_prefix("https://"));
            if rest.is_none_or(|r| r.is_empty() || r.contains(char::is_whitespace)) {
                return Err(ConfigError::Invalid(format!(
                    "[[peer]] {}: endpoint must be an http:// or https:// base URL, got {:?}",
                    p.region, p.endpoint
                )));
            }
            if p.access_key_id.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "[[peer]] {}: access_key_id is empty",
                    p.region
                )));
            }
            if p.secret()?.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "[[peer]] {}: the secret access key is empty",
                    p.region
                )));
            }
            let mut accounts = std::collections::HashSet::new();
            for a in &p.accounts {
                if !berth_iam::arn::is_account_id(&a.registry_id) {
                    return Err(ConfigError::Invalid(format!(
                        "[[peer]] {}: account registry_id must be 12 digits, got {:?}",
                        p.region, a.registry_id
                    )));
                }
                if !accounts.insert(a.registry_id.as_str()) {
                    return Err(ConfigError::Invalid(format!(
                        "[[peer]] {}: account {} named twice",
                        p.region, a.registry_id
                    )));
                }
                if a.access_key_id.is_empty() || a.secret(&p.region)?.is_empty() {
                    return Err(ConfigError::Invalid(format!(
                        "[[peer]] {}: account {}: the access key is empty",
                        p.region, a.registry_id
                    )));
                }
            }
        }
        if self.s3_access_key_id.is_some() != self.s3_secret_access_key.is_some() {
            return Err(ConfigError::Invalid(
                "BERTH_S3_ACCESS_KEY_ID and BERTH_S3_SECRET_ACCESS_KEY must be given together"
                    .into(),
            ));
        }
        self.blob_location()?;
        Ok(())
    }

    /// The configured blob store; `None` is the default filesystem store under the
    /// data directory.
    pub fn blob_location(&self) -> Result<Option<BlobLocation>, ConfigError> {
        let Some(url) = &self.blob_store else {
            return Ok(None);
        };
        if let Some(dir) = url.strip_prefix("file://") {
            if dir.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "blob_store {url:?}: file:// needs a directory"
                )));
            }
            return Ok(Some(BlobLocation::File(PathBuf::from(dir))));
        }
        if url.starts_with("s3://") {
            let mut s3 = S3Config::from_url(url)
                .map_err(|e| ConfigError::Invalid(format!("blob_store: {e}")))?;
            s3.endpoint = self.s3_endpoint.clone();
            s3.region = self.s3_region.clone();
            s3.access_key_id = self.s3_access_key_id.clone();
            s3.secret_access_key = self.s3_secret_access_key.clone();
            s3.path_style = self.s3_path_style;
            return Ok(Some(BlobLocation::S3(s3)));
        }
        Err(ConfigError::Invalid(format!(
            "blob_store {url:?}: expected file://<dir> or s3://<bucket>[/<prefix>]"
        )))
    }

    /// What `berth serve` needs beyond [`Self::validate`]: a blob store several
    /// nodes can share is refused on SQLite metadata unless `single_node` is set.
    pub fn validate_serve(&self) -> Result<(), ConfigError> {
        let shared = self.blob_location()?.is_some_and(|l| l.is_shared());
        if shared && !self.database_url().starts_with("postgres") && !self.single_node {
            return Err(ConfigError::Invalid(
                "an S3 blob store needs PostgreSQL metadata (BERTH_DATABASE_URL=postgres://…): \
                 several nodes cannot share a SQLite database; give --single-node to run one \
                 node on SQLite with S3 blobs"
                    .into(),
            ));
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("meta.db").display()
            )
        })
    }
}

impl Config {
    /// The trace exporter's settings; `None` when traces are off.
    pub fn otlp(&self) -> Result<Option<crate::otlp::OtlpConfig>, String> {
        let Some(e) = &self.otlp_endpoint else {
            return Ok(None);
        };
        let mut o = crate::otlp::OtlpConfig::new(e)?;
        if let Some(h) = &self.otlp_headers {
            o.headers = crate::otlp::parse_headers(h)?;
        }
        if !(0.0..=1.0).contains(&self.otlp_sample_ratio) {
            return Err(format!(
                "otlp_sample_ratio must be between 0 and 1, got {}",
                self.otlp_sample_ratio
            ));
        }
        o.sample_ratio = self.otlp_sample_ratio;
        o.flush = std::time::Duration::from_millis(self.otlp_flush_ms.clamp(10, 60_000));
        o.service_name = self.otlp_service_name.clone();
        Ok(Some(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_store_and_s3_keys_from_toml() {
        let c: Config = toml::from_str(
            r#"
            blob_store = "s3://my-bucket/reg/one"
            s3_endpoint = "http://127.0.0.1:3900"
            s3_region = "garage"
            s3_access_key_id = "GKid"
            s3_secret_access_key = "secret"
            database_url = "postgres://db/berth"
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        c.validate_serve().unwrap();
        let Some(BlobLocation::S3(s3)) = c.blob_location().unwrap() else {
            panic!("not an S3 location");
        };
        assert_eq!(s3.bucket, "my-bucket");
        assert_eq!(s3.prefix, "reg/one");
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(s3.region.as_deref(), Some("garage"));
        assert_eq!(s3.access_key_id.as_deref(), Some("GKid"));
        assert_eq!(s3.secret_access_key.as_deref(), Some("secret"));
        // Path style is left to the backend's default (on with an endpoint).
        assert_eq!(s3.path_style, None);
        // The secret never shows in a debug print.
        assert!(!format!("{s3:?}").contains("\"secret\""));
    }

    #[test]
    fn s3_on_sqlite_needs_single_node() {
        let mut c: Config = toml::from_str("blob_store = \"s3://b\"").unwrap();
        c.validate().unwrap();
        let e = c.validate_serve().unwrap_err().to_string();
        assert!(
            e.contains("PostgreSQL") && e.contains("--single-node"),
            "{e}"
        );
        c.single_node = true;
        c.validate_serve().unwrap();
        let c: Config = toml::from_str("blob_store = \"file:///srv/blobs\"").unwrap();
        c.validate_serve().unwrap();
        assert!(matches!(
            c.blob_location().unwrap(),
            Some(BlobLocation::File(p)) if p == Path::new("/srv/blobs")
        ));
    }

    #[test]
    fn bad_blob_store_settings_are_refused() {
        for text in [
            "blob_store = \"ftp://x\"",
            "blob_store = \"file://\"",
            "blob_store = \"s3://Bad_Bucket\"",
            "blob_store = \"s3://b\"\ns3_access_key_id = \"only-the-id\"",
        ] {
            let c: Config = toml::from_str(text).unwrap();
            assert!(c.validate().is_err(), "accepted: {text}");
        }
    }
}
