//! Pull-through cache rules: prefixes, the upstream URL (`host[:port]` over HTTPS,
//! or an explicit `http://host:port`), the upstream kind and the credential's ARN.

use crate::templates::valid_prefix;
use crate::{check_len, Input, InputError};

pub const UPSTREAM_KINDS: &[&str] = &[
    "ecr",
    "ecr-public",
    "quay",
    "k8s",
    "docker-hub",
    "github-container-registry",
    "azure-container-registry",
    "gitlab-container-registry",
    "chainguard",
];

/// The upstream kind ECR would name for a well-known host; none for any other OCI
/// registry.
pub fn infer_kind(url: &str) -> Option<&'static str> {
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    let host = host.split(':').next().unwrap_or(host);
    Some(match host {
        "public.ecr.aws" => "ecr-public",
        "registry-1.docker.io" | "docker.io" | "index.docker.io" => "docker-hub",
        "ghcr.io" => "github-container-registry",
        "registry.gitlab.com" => "gitlab-container-registry",
        "registry.k8s.io" => "k8s",
        "quay.io" => "quay",
        "cgr.dev" => "chainguard",
        h if h.ends_with(".azurecr.io") => "azure-container-registry",
        h if h.contains(".dkr.ecr.") && h.ends_with(".amazonaws.com") => "ecr",
        _ => return None,
    })
}

/// `host[:port]`, `https://host[:port]` or `http://host:port`.
pub fn valid_url(url: &str) -> bool {
    let (rest, plain) = match url.strip_prefix("http://") {
        Some(r) => (r, true),
        None => (url.strip_prefix("https://").unwrap_or(url), false),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok = match port {
        None => !plain,
        Some(p) => p.parse::<u16>().is_ok_and(|n| n > 0),
    };
    host_ok && port_ok
}

/// `^arn:aws(-\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr\-pullthroughcache\/[a-zA-Z0-9\/_+=.@-]+$`
pub fn valid_credential_arn(arn: &str) -> bool {
    let Some(rest) = arn.strip_prefix("arn:aws") else {
        return false;
    };
    let Some((partition, rest)) = rest.split_once(":secretsmanager:") else {
        return false;
    };
    let partition_ok =
        partition.is_empty()
            || partition.split('-').skip(1).all(|w| {
                !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            }) && partition.starts_with('-');
    let Some((middle, name)) = rest.split_once(":secret:ecr-pullthroughcache/") else {
        return false;
    };
    partition_ok
        && !middle.is_empty()
        && middle
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b':')
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b))
}

pub fn prefix_field(input: &Input, field: &str) -> Result<Option<String>, InputError> {
    let Some(p) = input.opt_str(field)? else {
        return Ok(None);
    };
    check_len(field, p, 2, 30)?;
    if !valid_prefix(p) {
        return Err(InputError::invalid(format!(
            "Invalid parameter at '{field}' failed to satisfy constraint: 'must satisfy regular expression '^([a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*\\/?|ROOT)$'' (got '{p}')"
        )));
    }
    Ok(Some(p.to_string()))
}

pub fn ecr_prefix(input: &Input) -> Result<String, InputError> {
    prefix_field(input, "ecrRepositoryPrefix")?.ok_or_else(|| {
        InputError::invalid("Invalid parameter at 'ecrRepositoryPrefix' failed to satisfy constraint: 'Member must not be null'")
    })
}

pub fn credential_arn(input: &Input) -> Result<Option<String>, InputError> {
    let Some(a) = input.opt_str("credentialArn")? else {
        return Ok(None);
    };
    check_len("credentialArn", a, 50, 612)?;
    if !valid_credential_arn(a) {
        return Err(InputError::invalid(format!(
            "Invalid parameter at 'credentialArn' failed to satisfy constraint: 'must be the ARN of a Secrets Manager secret whose name starts with ecr-pullthroughcache/' (got '{a}')"
        )));
    }
    Ok(Some(a.to_string()))
}

pub fn role_arn(input: &Input) -> Result<Option<String>, InputError> {
    Ok(input
        .opt_len("customRoleArn", 0, 2048)?
        .filter(|r| !r.is_empty())
        .map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_kinds_and_credentials() {
        for ok in [
            "registry-1.docker.io",
            "ghcr.io",
            "localhost:5000",
            "http://127.0.0.1:5000",
            "https://quay.io",
        ] {
            assert!(valid_url(ok), "{ok}");
        }
        for bad in [
            "",
            "http://host",
            "host/path",
            "host:0",
            "host:x",
            "ftp://host:1",
            "a..b",
        ] {
            assert!(!valid_url(bad), "{bad}");
        }
        assert_eq!(infer_kind("registry-1.docker.io"), Some("docker-hub"));
        assert_eq!(infer_kind("public.ecr.aws"), Some("ecr-public"));
        assert_eq!(infer_kind("x.azurecr.io"), Some("azure-container-registry"));
        assert_eq!(
            infer_kind("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
            Some("ecr")
        );
        assert_eq!(infer_kind("http://127.0.0.1:5000"), None);
        assert!(valid_credential_arn(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf"
        ));
        assert!(valid_credential_arn(
            "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:ecr-pullthroughcache/a/b"
        ));
        assert!(!valid_credential_arn(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:other/hub"
        ));
        assert!(!valid_credential_arn(
            "arn:aws:s3:::bucket/ecr-pullthroughcache/x"
        ));
    }
}
