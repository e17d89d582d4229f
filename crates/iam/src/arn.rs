//! Amazon Resource Names and the principals they name.
//!
//! Grammar: `arn:partition:service:region:account-id:resource` (IAM User Guide,
//! "IAM identifiers" and "Amazon Resource Names (ARNs)"); the resource part may
//! itself contain `:` and `/`. IAM user names and paths follow the `CreateUser`
//! constraints of the IAM API reference.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a string is not a valid ARN, account id, user name or path.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArnError {
    /// Not of the form `arn:partition:service:region:account:resource`.
    #[error("invalid ARN {0:?}: expected arn:partition:service:region:account-id:resource")]
    Malformed(String),
    /// One of the six fields has characters or a length that ARNs never have.
    #[error("invalid ARN {arn:?}: bad {field}")]
    BadField {
        /// The offending ARN (truncated).
        arn: String,
        /// Which field.
        field: &'static str,
    },
    /// An account id that is not exactly twelve ASCII digits.
    #[error("invalid account id {0:?}: must be 12 digits")]
    BadAccountId(String),
    /// An IAM user name outside `[A-Za-z0-9+=,.@_-]{1,64}`.
    #[error("invalid IAM user name {0:?}: must be 1-64 characters of A-Z a-z 0-9 + = , . @ _ -")]
    BadUserName(String),
    /// An IAM path that does not start and end with `/`, or has characters outside `!`..`~`.
    #[error("invalid IAM path {0:?}: must begin and end with '/' and be at most 512 printable ASCII characters")]
    BadPath(String),
}

fn truncated(s: &str) -> String {
    s.chars().take(256).collect()
}

/// A 12-digit AWS account id, which berth also uses as the registry id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

impl AccountId {
    /// Validates a 12-digit account id.
    pub fn parse(s: &str) -> Result<Self, ArnError> {
        if is_account_id(s) {
            Ok(AccountId(s.to_owned()))
        } else {
            Err(ArnError::BadAccountId(truncated(s)))
        }
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `arn:aws:iam::<id>:root`, the account principal.
    pub fn root_arn(&self) -> String {
        format!("arn:aws:iam::{}:root", self.0)
    }
}

/// Whether `s` is exactly twelve ASCII digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

impl FromStr for AccountId {
    type Err = ArnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccountId::parse(s)
    }
}

impl TryFrom<String> for AccountId {
    type Error = ArnError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if is_account_id(&s) {
            Ok(AccountId(s))
        } else {
            Err(ArnError::BadAccountId(truncated(&s)))
        }
    }
}

impl From<AccountId> for String {
    fn from(a: AccountId) -> String {
        a.0
    }
}

impl AsRef<str> for AccountId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Validates an IAM user name (`CreateUser` `UserName`: `[\w+=,.@-]{1,64}`).
pub fn validate_user_name(name: &str) -> Result<(), ArnError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ArnError::BadUserName(truncated(name)))
    }
}

/// Validates an IAM path (`/` or `/division/team/`).
pub fn validate_path(path: &str) -> Result<(), ArnError> {
    let ok = (1..=512).contains(&path.len())
        && path.starts_with('/')
        && path.ends_with('/')
        && !path.contains("//")
        && path.bytes().all(|b| (0x21..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ArnError::BadPath(truncated(path)))
    }
}

/// A parsed ARN. Fields are kept verbatim; [`Display`](fmt::Display) re-forms the
/// original string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Arn {
    partition: String,
    service: String,
    region: String,
    account: String,
    resource: String,
}

/// An IAM identity named by an ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IamPrincipal {
    /// `arn:aws:iam::<account>:root`.
    Root {
        /// The account.
        account: AccountId,
    },
    /// `arn:aws:iam::<account>:user<path><name>`.
    User {
        /// The account.
        account: AccountId,
        /// `/` or `/a/b/`.
        path: String,
        /// The user name.
        name: String,
    },
    /// `arn:aws:iam::<account>:role<path><name>`.
    Role {
        /// The account.
        account: AccountId,
        /// `/` or `/a/b/`.
        path: String,
        /// The role name.
        name: String,
    },
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    AssumedRole {
        /// The account.
        account: AccountId,
        /// The role name.
        role: String,
        /// The session name.
        session: String,
    },
}

fn is_partition(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_service(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn is_region(s: &str) -> bool {
    s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The account field: empty (S3 buckets, global resources), 12 digits, or
/// `aws` (AWS managed policies: `arn:aws:iam::aws:policy/...`).
fn is_arn_account(s: &str) -> bool {
    s.is_empty() || s == "aws" || is_account_id(s)
}

impl Arn {
    /// Parses and validates an ARN. Wildcards are not accepted here; policy
    /// patterns are matched by the `policy` module without parsing.
    pub fn parse(s: &str) -> Result<Arn, ArnError> {
        let mut parts = s.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(ArnError::Malformed(truncated(s)));
        };
        let bad = |field| ArnError::BadField {
            arn: truncated(s),
            field,
        };
        if s.len() > 2048 {
            return Err(bad("length (at most 2048 characters)"));
        }
        if !is_partition(partition) {
            return Err(bad("partition"));
        }
        if !is_service(service) {
            return Err(bad("service"));
        }
        if !is_region(region) {
            return Err(bad("region"));
        }
        if !is_arn_account(account) {
            return Err(bad("account id"));
        }
        if resource.is_empty() || resource.chars().any(char::is_control) {
            return Err(bad("resource"));
        }
        Ok(Arn {
            partition: partition.to_owned(),
            service: service.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            resource: resource.to_owned(),
        })
    }

    /// `arn:aws:iam::<account>:root`.
    pub fn account_root(account: &AccountId) -> Arn {
        Arn {
            partition: "aws".into(),
            service: "iam".into(),
            region: String::new(),
            account: account.as_str().to_owned(),
            resource: "root".into(),
        }
    }

    /// `arn:aws:iam::<account>:user<path><name>`; `path` is `/` for most users.
    pub fn iam_user(account: &AccountId, path: &str, name: &str) -> Result<Arn, ArnError> {
        validate_path(path)?;
        validate_user_name(name)?;
        Ok(Arn {
            partition: "aws".into(),
            service: "iam".into(),
            region: String::new(),
            account: account.as_str().to_owned(),
            resource: format!("user{path}{name}"),
        })
    }

    /// `arn:aws:ecr:<region>:<account>:repository/<name>`. The repository name is
    /// taken as given; its grammar belongs to the OCI/registry rooms.
    pub fn ecr_repository(region: &str, account: &AccountId, repository_name: &str) -> Arn {
        Arn {
            partition: "aws".into(),
            service: "ecr".into(),
            region: region.to_owned(),
            account: account.as_str().to_owned(),
            resource: format!("repository/{repository_name}"),
        }
    }

    /// The partition, normally `aws`.
    pub fn partition(&self) -> &str {
        &self.partition
    }
    /// The service namespace, e.g. `iam`, `ecr`.
    pub fn service(&self) -> &str {
        &self.service
    }
    /// The region; empty for global services such as IAM.
    pub fn region(&self) -> &str {
        &self.region
    }
    /// The account field verbatim (may be empty or `aws`).
    pub fn account(&self) -> &str {
        &self.account
    }
    /// The account, when the account field is a 12-digit id.
    pub fn account_id(&self) -> Option<AccountId> {
        AccountId::parse(&self.account).ok()
    }
    /// Everything after the fifth `:`.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// The repository name of an ECR repository ARN.
    pub fn ecr_repository_name(&self) -> Option<&str> {
        if self.service != "ecr" {
            return None;
        }
        self.resource
            .strip_prefix("repository/")
            .filter(|n| !n.is_empty())
    }

    /// The IAM identity this ARN names, if it names one.
    pub fn iam_principal(&self) -> Option<IamPrincipal> {
        let account = self.account_id()?;
        match self.service.as_str() {
            "iam" => {
                if self.resource == "root" {
                    return Some(IamPrincipal::Root { account });
                }
                let (kind, rest) = if let Some(rest) = self.resource.strip_prefix("user/") {
                    ("user", rest)
                } else if let Some(rest) = self.resource.strip_prefix("role/") {
                    ("role", rest)
                } else {
                    return None;
                };
                let (path, name) = match rest.rfind('/') {
                    Some(i) => (format!("/{}", &rest[..=i]), &rest[i + 1..]),
                    None => ("/".to_owned(), rest),
                };
                if name.is_empty() || validate_path(&path).is_err() {
                    return None;
                }
                let name = name.to_owned();
                Some(if kind == "user" {
                    IamPrincipal::User {
                        account,
                        path,
                        name,
                    }
                } else {
                    IamPrincipal::Role {
                        account,
                        path,
                        name,
                    }
                })
            }
            "sts" => {
                let rest = self.resource.strip_prefix("assumed-role/")?;
                let (role, session) = rest.split_once('/')?;
                if role.is_empty() || session.is_empty() || session.contains('/') {
                    return None;
                }
                Some(IamPrincipal::AssumedRole {
                    account,
                    role: role.to_owned(),
                    session: session.to_owned(),
                })
            }
            _ => None,
        }
    }
}

impl IamPrincipal {
    /// The account the identity belongs to.
    pub fn account(&self) -> &AccountId {
        match self {
            IamPrincipal::Root { account }
            | IamPrincipal::User { account, .. }
            | IamPrincipal::Role { account, .. }
            | IamPrincipal::AssumedRole { account, .. } => account,
        }
    }
}

impl FromStr for Arn {
    type Err = ArnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arn::parse(s)
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

impl Serialize for Arn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Arn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Arn::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct() -> AccountId {
        AccountId::parse("123456789012").unwrap()
    }

    #[test]
    fn account_ids() {
        assert!(AccountId::parse("123456789012").is_ok());
        assert!(AccountId::parse("000000000000").is_ok());
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "12345678901a",
            "１23456789012",
            " 23456789012",
        ] {
            assert_eq!(
                AccountId::parse(bad),
                Err(ArnError::BadAccountId(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(acct().root_arn(), "arn:aws:iam::123456789012:root");
        assert_eq!(acct().to_string(), "123456789012");
        assert_eq!("123456789012".parse::<AccountId>(), Ok(acct()));
    }

    #[test]
    fn account_id_serde() {
        let json = serde_json::to_string(&acct()).unwrap();
        assert_eq!(json, "\"123456789012\"");
        assert_eq!(serde_json::from_str::<AccountId>(&json).unwrap(), acct());
        assert!(serde_json::from_str::<AccountId>("\"12\"").is_err());
    }

    #[test]
    fn parse_root() {
        let a = Arn::parse("arn:aws:iam::123456789012:root").unwrap();
        assert_eq!(a.partition(), "aws");
        assert_eq!(a.service(), "iam");
        assert_eq!(a.region(), "");
        assert_eq!(a.account(), "123456789012");
        assert_eq!(a.resource(), "root");
        assert_eq!(
            a.iam_principal(),
            Some(IamPrincipal::Root { account: acct() })
        );
        assert_eq!(a, Arn::account_root(&acct()));
        assert_eq!(a.to_string(), "arn:aws:iam::123456789012:root");
    }

    #[test]
    fn parse_users_with_and_without_path() {
        let a = Arn::parse("arn:aws:iam::123456789012:user/alice").unwrap();
        assert_eq!(
            a.iam_principal(),
            Some(IamPrincipal::User {
                account: acct(),
                path: "/".into(),
                name: "alice".into()
            })
        );
        let b = Arn::parse("arn:aws:iam::123456789012:user/division_abc/sub/Bob").unwrap();
        assert_eq!(
            b.iam_principal(),
            Some(IamPrincipal::User {
                account: acct(),
                path: "/division_abc/sub/".into(),
                name: "Bob".into()
            })
        );
        assert_eq!(
            Arn::iam_user(&acct(), "/division_abc/sub/", "Bob").unwrap(),
            b
        );
        assert_eq!(Arn::iam_user(&acct(), "/", "alice").unwrap(), a);
        assert_eq!(b.iam_principal().unwrap().account(), &acct());
        assert!(Arn::parse("arn:aws:iam::123456789012:user/")
            .unwrap()
            .iam_principal()
            .is_none());
        assert!(Arn::parse("arn:aws:iam::123456789012:user/a//b")
            .unwrap()
            .iam_principal()
            .is_none());
        assert!(Arn::parse("arn:aws:iam::123456789012:group/g")
            .unwrap()
            .iam_principal()
            .is_none());
    }

    #[test]
    fn roles_and_assumed_roles() {
        let r = Arn::parse("arn:aws:iam::123456789012:role/service-role/deployer").unwrap();
        assert_eq!(
            r.iam_principal(),
            Some(IamPrincipal::Role {
                account: acct(),
                path: "/service-role/".into(),
                name: "deployer".into()
            })
        );
        let s = Arn::parse("arn:aws:sts::123456789012:assumed-role/deployer/session-1").unwrap();
        assert_eq!(
            s.iam_principal(),
            Some(IamPrincipal::AssumedRole {
                account: acct(),
                role: "deployer".into(),
                session: "session-1".into()
            })
        );
        assert!(Arn::parse("arn:aws:sts::123456789012:assumed-role/x")
            .unwrap()
            .iam_principal()
            .is_none());
    }

    #[test]
    fn ecr_repository_arns() {
        let a = Arn::parse("arn:aws:ecr:us-east-1:123456789012:repository/a/b").unwrap();
        assert_eq!(a.ecr_repository_name(), Some("a/b"));
        assert_eq!(a.region(), "us-east-1");
        assert_eq!(a.account_id(), Some(acct()));
        assert_eq!(Arn::ecr_repository("us-east-1", &acct(), "a/b"), a);
        assert_eq!(
            a.to_string(),
            "arn:aws:ecr:us-east-1:123456789012:repository/a/b"
        );
        assert_eq!(a.iam_principal(), None);
        assert_eq!(
            Arn::parse("arn:aws:ecr:us-east-1:123456789012:repository/")
                .unwrap()
                .ecr_repository_name(),
            None
        );
        assert_eq!(
            Arn::parse("arn:aws:iam::123456789012:repository/x")
                .unwrap()
                .ecr_repository_name(),
            None
        );
    }

    #[test]
    fn managed_policy_and_resource_with_colons() {
        let p = Arn::parse("arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly").unwrap();
        assert_eq!(p.account(), "aws");
        assert_eq!(p.account_id(), None);
        let t = Arn::parse("arn:aws:sns:us-east-1:123456789012:topic:sub:id").unwrap();
        assert_eq!(t.resource(), "topic:sub:id");
        assert_eq!(
            t.to_string(),
            "arn:aws:sns:us-east-1:123456789012:topic:sub:id"
        );
        let s3 = Arn::parse("arn:aws:s3:::bucket/key").unwrap();
        assert_eq!(s3.account(), "");
        assert!(Arn::parse("arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/x").is_ok());
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "arn",
            "arn:aws:iam::123456789012",
            "arn:aws:iam:123456789012:root",
            "urn:aws:iam::123456789012:root",
            "ARN:aws:iam::123456789012:root",
        ] {
            assert!(
                matches!(Arn::parse(bad), Err(ArnError::Malformed(_))),
                "{bad:?}"
            );
        }
        for bad in [
            "arn::iam::123456789012:root",
            "arn:AWS:iam::123456789012:root",
            "arn:aws::us-east-1:123456789012:x",
            "arn:aws:IAM::123456789012:root",
            "arn:aws:ecr:US-EAST-1:123456789012:repository/x",
            "arn:aws:iam::12345:root",
            "arn:aws:iam::*:root",
            "arn:aws:iam::123456789012:",
            "arn:aws:iam::123456789012:user/a\nb",
        ] {
            assert!(
                matches!(Arn::parse(bad), Err(ArnError::BadField { .. })),
                "{bad:?}"
            );
        }
        let long = format!(
            "arn:aws:ecr:us-east-1:123456789012:repository/{}",
            "a".repeat(2100)
        );
        assert!(Arn::parse(&long).is_err());
    }

    #[test]
    fn user_names_and_paths() {
        for ok in ["a", "alice", "A.b-c_d+e=f,g@h", &"x".repeat(64)] {
            assert!(validate_user_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(validate_user_name(bad).is_err(), "{bad}");
        }
        for ok in ["/", "/a/", "/a/b-c/"] {
            assert!(validate_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/", "/a", "//", "/a b/", "/é/"] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
        assert!(Arn::iam_user(&acct(), "/", "bad name").is_err());
        assert!(Arn::iam_user(&acct(), "x", "ok").is_err());
    }

    #[test]
    fn arn_serde_and_round_trip() {
        for s in [
            "arn:aws:iam::123456789012:root",
            "arn:aws:iam::123456789012:user/p/q/alice",
            "arn:aws:ecr:eu-west-1:123456789012:repository/x/y/z",
        ] {
            let a: Arn = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
            let json = serde_json::to_string(&a).unwrap();
            assert_eq!(serde_json::from_str::<Arn>(&json).unwrap(), a);
        }
        assert!(serde_json::from_str::<Arn>("\"nope\"").is_err());
    }
}
