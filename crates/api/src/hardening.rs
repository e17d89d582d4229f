//! Hardening settings of the HTTP front end (the `[limits]` table of the
//! configuration, `BERTH_*` variables in `crates/berth/src/config.rs`): trusted
//! proxies (`request_attrs.rs`), throttling (`throttle.rs`).

use berth_iam::policy::CidrBlock;
use serde::Deserialize;

/// The settings as configured.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Addresses or CIDR blocks of reverse proxies whose `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are believed (`BERTH_TRUSTED_PROXIES`, comma-separated).
    pub trusted_proxies: Vec<String>,
    /// Rate limits per account and operation (`BERTH_THROTTLE`): `off` (the
    /// default), `ecr` (ECR's published rates), and/or `Operation=N[/BURST]`
    /// overrides, comma-separated (`throttle.rs`).
    pub throttle: String,
    /// The most bytes of request line and headers a request may send
    /// (`BERTH_MAX_HEADER_BYTES`); more is answered `431`.
    pub max_header_bytes: usize,
    /// Seconds a client has to send a request's headers (`BERTH_HEADER_TIMEOUT_SECS`);
    /// a slower one (slowloris) is disconnected.
    pub header_timeout_secs: u64,
    /// Open upload sessions one principal may hold (`BERTH_MAX_UPLOADS_PER_PRINCIPAL`;
    /// 0: no limit).
    pub max_uploads_per_principal: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            trusted_proxies: Vec::new(),
            throttle: "off".into(),
            max_header_bytes: 64 * 1024,
            header_timeout_secs: 30,
            max_uploads_per_principal: 1000,
        }
    }
}

impl LimitsConfig {
    /// Applies `BERTH_*` overrides read through `env`.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), String> {
        if let Some(v) = env("BERTH_TRUSTED_PROXIES") {
            self.trusted_proxies = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
        if let Some(v) = env("BERTH_THROTTLE") {
            self.throttle = v;
        }
        let num = |name: &str, v: String| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| format!("invalid value for {name}: {v}"))
        };
        if let Some(v) = env("BERTH_MAX_HEADER_BYTES") {
            self.max_header_bytes = num("BERTH_MAX_HEADER_BYTES", v)? as usize;
        }
        if let Some(v) = env("BERTH_MAX_UPLOADS_PER_PRINCIPAL") {
            self.max_uploads_per_principal = num("BERTH_MAX_UPLOADS_PER_PRINCIPAL", v)?
                .try_into()
                .map_err(|_| "BERTH_MAX_UPLOADS_PER_PRINCIPAL is too large".to_string())?;
        }
        if let Some(v) = env("BERTH_HEADER_TIMEOUT_SECS") {
            self.header_timeout_secs = num("BERTH_HEADER_TIMEOUT_SECS", v)?;
        }
        Ok(())
    }

    /// Checks and compiles the settings.
    pub fn build(&self) -> Result<Hardening, String> {
        if self.max_header_bytes < 1024 {
            return Err("max_header_bytes must be at least 1024".into());
        }
        if self.header_timeout_secs == 0 {
            return Err("header_timeout_secs must be at least 1".into());
        }
        Ok(Hardening {
            max_header_bytes: self.max_header_bytes,
            max_uploads_per_principal: self.max_uploads_per_principal,
            trusted_proxies: crate::request_attrs::parse_proxies(&self.trusted_proxies)?,
            throttle: crate::throttle::Throttle::new(
                crate::throttle::parse_setting(&self.throttle)
                    .map_err(|e| format!("throttle: {e}"))?,
            ),
            signin: Default::default(),
        })
    }
}

/// The settings in force.
#[derive(Debug, Default)]
pub struct Hardening {
    /// 0 (the default of a front end built without settings): no limit here.
    pub max_header_bytes: usize,
    /// 0: no limit.
    pub max_uploads_per_principal: u32,
    pub trusted_proxies: Vec<CidrBlock>,
    pub throttle: crate::throttle::Throttle,
    /// Failed sign-ins by source (`signin_guard.rs`).
    pub signin: crate::signin_guard::SignInGuard,
}
