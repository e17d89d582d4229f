//! Policy evaluation (IAM User Guide, "Policy evaluation logic", "Cross-account
//! policy evaluation logic").
//!
//! 1. An applicable `Deny` in any policy decides: explicit deny.
//! 2. Same account (principal's account = resource's account): allowed when an
//!    identity policy allows, or a resource policy (repository or registry
//!    policy) allows *this principal* — by its ARN or by `"*"`.
//! 3. Cross account: allowed only when an identity policy of the caller allows
//!    and a resource policy allows the principal, by its ARN, `"*"`, or its
//!    account root ARN.
//! 4. Otherwise implicit deny.
//!
//! As in AWS, a resource policy naming an *account* (`arn:aws:iam::A:root` or
//! `"A"`) delegates to that account's IAM policies rather than granting every
//! user of it outright: in the same account it adds nothing beyond the identity
//! policies, across accounts it is the resource half of the grant. For `Deny`
//! it covers every principal of the account.
//!
//! The account root has every permission identity-wise (it has no identity
//! policies to consult), so it is allowed in its own account unless denied, and
//! across accounts whenever a resource policy grants it. Anonymous callers have
//! no identity side: only a resource policy allowing `"*"` lets them in.

use std::collections::BTreeMap;

use super::condition::condition_holds;
use super::pattern::{arn_tokens_match, compile, tokens_match, VarLookup};
use super::{
    Effect, PatternList, PolicyDocument, PolicyVersion, PrincipalSpec, PrincipalType, Statement,
};
use crate::arn::{AccountId, Arn, IamPrincipal};
use crate::time::format_iso8601;

/// What kind of caller a request comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account root (`arn:aws:iam::<id>:root`).
    Root,
    /// An IAM user.
    User,
    /// An IAM role (or a session of one).
    Role,
    /// An AWS service principal such as `ecr.amazonaws.com`.
    Service,
    /// No credentials at all.
    Anonymous,
}

/// The caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The principal's ARN; the service name for services; empty for anonymous.
    pub arn: String,
    /// The 12-digit account; empty for services and anonymous callers.
    pub account: String,
    /// What it is.
    pub kind: PrincipalKind,
}

impl Principal {
    /// The root of `account`.
    pub fn root(account: &AccountId) -> Principal {
        Principal {
            arn: account.root_arn(),
            account: account.as_str().to_owned(),
            kind: PrincipalKind::Root,
        }
    }

    /// The principal an IAM ARN names (root, user, role, assumed role).
    pub fn from_arn(arn: &str) -> Option<Principal> {
        let parsed = Arn::parse(arn).ok()?;
        let p = parsed.iam_principal()?;
        let kind = match p {
            IamPrincipal::Root { .. } => PrincipalKind::Root,
            IamPrincipal::User { .. } => PrincipalKind::User,
            IamPrincipal::Role { .. } | IamPrincipal::AssumedRole { .. } => PrincipalKind::Role,
        };
        Some(Principal {
            arn: arn.to_owned(),
            account: p.account().as_str().to_owned(),
            kind,
        })
    }

    /// An AWS service principal, e.g. `replication.ecr.amazonaws.com`.
    pub fn service(name: &str) -> Principal {
        Principal {
            arn: name.to_owned(),
            account: String::new(),
            kind: PrincipalKind::Service,
        }
    }

    /// A caller without credentials.
    pub fn anonymous() -> Principal {
        Principal {
            arn: String::new(),
            account: String::new(),
            kind: PrincipalKind::Anonymous,
        }
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            PrincipalKind::Root => "Account",
            PrincipalKind::User => "User",
            PrincipalKind::Role => "AssumedRole",
            PrincipalKind::Service => "AWSService",
            PrincipalKind::Anonymous => "Anonymous",
        }
    }
}

/// Everything evaluation looks at: who, what, on what, and the condition keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The caller.
    pub principal: Principal,
    /// The action, e.g. `ecr:BatchGetImage`.
    pub action: String,
    /// The resource ARN, e.g. `arn:aws:ecr:us-east-1:123456789012:repository/app`, or `*`.
    pub resource: String,
    /// The account owning the resource: from the ARN, or the caller's account
    /// for resources without one (`*`).
    pub resource_account: String,
    /// Condition keys, lowercased, each with one or more values.
    keys: BTreeMap<String, Vec<String>>,
}

impl RequestContext {
    /// A context for `principal` performing `action` on `resource`, with the
    /// global keys derived from them filled in: `aws:PrincipalArn`,
    /// `aws:PrincipalAccount`, `aws:PrincipalType`, and `aws:username` for users.
    pub fn new(
        principal: Principal,
        action: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        let resource = resource.into();
        // Resources without an account ("*" for GetAuthorizationToken, IAM and
        // STS calls) belong to the caller's own account: identity policies decide.
        let resource_account = match resource.split(':').nth(4) {
            Some(a) if resource.starts_with("arn:") && !a.is_empty() => a.to_owned(),
            _ => principal.account.clone(),
        };
        let mut ctx = RequestContext {
            principal,
            action: action.into(),
            resource,
            resource_account,
            keys: BTreeMap::new(),
        };
        if ctx.principal.kind != PrincipalKind::Anonymous {
            let p = ctx.principal.clone();
            ctx.set("aws:PrincipalArn", vec![p.arn.clone()]);
            if !p.account.is_empty() {
                ctx.set("aws:PrincipalAccount", vec![p.account.clone()]);
            }
            if p.kind == PrincipalKind::User {
                if let Some(IamPrincipal::User { name, .. }) =
                    Arn::parse(&p.arn).ok().and_then(|a| a.iam_principal())
                {
                    ctx.set("aws:username", vec![name]);
                }
            }
        }
        let type_name = ctx.principal.type_name();
        ctx.set("aws:PrincipalType", vec![type_name.to_owned()]);
        ctx
    }

    /// A context without condition keys, for policies that consult none
    /// ([`needs_condition_keys`] is false for them): evaluating them looks only
    /// at the principal, the action, the resource and the resource's account, so
    /// the keys [`RequestContext::new`] and the front end would compute (the
    /// time, the principal's keys, tags) are not built on that path.
    pub fn without_keys(
        principal: Principal,
        action: impl Into<String>,
        resource: impl Into<String>,
        resource_account: impl Into<String>,
    ) -> Self {
        RequestContext {
            principal,
            action: action.into(),
            resource: resource.into(),
            resource_account: resource_account.into(),
            keys: BTreeMap::new(),
        }
    }

    /// Overrides the resource's account (for resources without an account in their ARN).
    pub fn with_resource_account(mut self, account: impl Into<String>) -> Self {
        self.resource_account = account.into();
        self
    }

    /// Sets a single-valued key (e.g. `aws:SourceIp`).
    pub fn with_key(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, vec![value.into()]);
        self
    }

    /// Sets `aws:CurrentTime` (ISO-8601) and `aws:EpochTime` from Unix seconds.
    pub fn with_time(self, now: i64) -> Self {
        self.with_key("aws:CurrentTime", format_iso8601(now))
            .with_key("aws:EpochTime", now.to_string())
    }

    /// Sets `aws:SecureTransport`.
    pub fn with_secure_transport(self, tls: bool) -> Self {
        self.with_key("aws:SecureTransport", tls.to_string())
    }

    /// Sets a key to several values (a multivalued key such as `aws:TagKeys`).
    pub fn set(&mut self, key: &str, values: Vec<String>) {
        self.keys.insert(key.to_ascii_lowercase(), values);
    }

    /// Removes a key.
    pub fn remove(&mut self, key: &str) {
        self.keys.remove(&key.to_ascii_lowercase());
    }

    /// The values of a key (case-insensitive).
    pub fn values(&self, key: &str) -> Option<&[String]> {
        self.keys.get(&key.to_ascii_lowercase()).map(Vec::as_slice)
    }

    /// The value of a single-valued key, for policy variables.
    pub fn single_value(&self, key: &str) -> Option<String> {
        match self.values(key) {
            Some([v]) => Some(v.clone()),
            _ => None,
        }
    }

    fn same_account(&self) -> bool {
        !self.principal.account.is_empty() && self.principal.account == self.resource_account
    }
}

/// Where a policy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicySource {
    /// Attached to the caller (managed or inline).
    Identity,
    /// Attached to the resource: a repository policy or the registry policy.
    Resource,
}

/// A policy to evaluate, with a name for audit messages (an ARN, a
/// policy name, `repository policy`…).
#[derive(Debug, Clone, Copy)]
pub struct PolicyRef<'a> {
    /// Name for messages.
    pub name: &'a str,
    /// Identity or resource policy.
    pub source: PolicySource,
    /// The document.
    pub document: &'a PolicyDocument,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// A `Deny` statement applies.
    ExplicitDeny,
    /// Nothing (or not enough) allows it.
    ImplicitDeny,
}

/// The statement that decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementRef {
    /// The policy's name as given in [`PolicyRef`].
    pub policy: String,
    /// Identity or resource policy.
    pub source: PolicySource,
    /// Index in the policy's `Statement` list.
    pub index: usize,
    /// The statement's `Sid`.
    pub sid: Option<String>,
}

/// Why the decision was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// This statement allowed (the resource statement for cross-account grants) or denied.
    Statement(StatementRef),
    /// The account root acting in its own account.
    AccountRoot,
    /// Nothing allows it (same account, or anonymous).
    NoAllow,
    /// Cross account: the caller's identity policies do not allow it.
    NoIdentityAllow,
    /// Cross account: no resource policy grants it to the caller.
    NoResourceAllow,
}

/// A decision and its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Allow, explicit deny, implicit deny.
    pub decision: Decision,
    /// What decided.
    pub reason: Reason,
}

impl Evaluation {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.decision == Decision::Allow
    }

    /// The AWS `AccessDeniedException` message for a refused request, e.g.
    /// `User: arn:aws:iam::123456789012:user/ci is not authorized to perform:
    /// ecr:PutImage on resource: arn:… because no identity-based policy allows
    /// the ecr:PutImage action`.
    pub fn denial_message(&self, ctx: &RequestContext) -> String {
        let who = if ctx.principal.kind == PrincipalKind::Anonymous {
            "anonymous"
        } else {
            &ctx.principal.arn
        };
        let head = format!(
            "User: {who} is not authorized to perform: {} on resource: {}",
            ctx.action, ctx.resource
        );
        match &self.reason {
            Reason::Statement(s) if self.decision == Decision::ExplicitDeny => {
                let kind = match s.source {
                    PolicySource::Identity => "identity-based",
                    PolicySource::Resource => "resource-based",
                };
                format!("{head} with an explicit deny in a {kind} policy")
            }
            Reason::NoResourceAllow => format!(
                "{head} because no resource-based policy allows the {} action",
                ctx.action
            ),
            _ => format!(
                "{head} because no identity-based policy allows the {} action",
                ctx.action
            ),
        }
    }
}

/// How a resource-policy statement's principal matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PrincipalMatch {
    /// Through the caller's account root: a delegation to that account.
    ViaAccount,
    /// By the caller's own ARN, or `*`.
    Direct,
}

fn principal_match(st: &Statement, p: &Principal) -> Option<PrincipalMatch> {
    let Some(block) = &st.principal else {
        return Some(PrincipalMatch::Direct);
    };
    let matched = match &block.spec {
        PrincipalSpec::Everyone => Some(PrincipalMatch::Direct),
        PrincipalSpec::Entries(entries) => entries
            .iter()
            .filter_map(|e| match e.kind {
                PrincipalType::Aws if e.value == "*" => Some(PrincipalMatch::Direct),
                PrincipalType::Aws if p.kind == PrincipalKind::Anonymous => None,
                PrincipalType::Aws if e.value == p.arn => Some(PrincipalMatch::Direct),
                PrincipalType::Aws
                    if !p.account.is_empty()
                        && e.value
                            .strip_prefix("arn:aws:iam::")
                            .and_then(|r| r.strip_suffix(":root"))
                            == Some(p.account.as_str()) =>
                {
                    Some(PrincipalMatch::ViaAccount)
                }
                PrincipalType::Service if p.kind == PrincipalKind::Service && e.value == p.arn => {
                    Some(PrincipalMatch::Direct)
                }
                _ => None,
            })
            .max(),
    };
    if block.negated {
        matched.is_none().then_some(PrincipalMatch::Direct)
    } else {
        matched
    }
}

/// Whether evaluating `policies` can consult a condition key: a statement with a
/// `Condition`, or (policy version 2012-10-17) a `Resource`/`NotResource` pattern
/// with a policy variable. When it cannot, [`RequestContext::without_keys`]
/// decides exactly as a full context would.
pub fn needs_condition_keys(policies: &[PolicyRef<'_>]) -> bool {
    policies.iter().any(|p| {
        let vars = p.document.version == PolicyVersion::V2012_10_17;
        p.document.statements.iter().any(|st| {
            !st.conditions.is_empty()
                || (vars
                    && st
                        .resource
                        .as_ref()
                        .is_some_and(|r| r.patterns.iter().any(|p| p.contains("${"))))
        })
    })
}

/// The common shapes of an `Action` pattern decided without compiling it: `*`, a
/// literal, or a literal followed by one trailing `*` (`ecr:*`, `ecr:Batch*`),
/// matched case-insensitively; only for ASCII pattern and text (outside ASCII,
/// case folding can map a character onto an ASCII one). `None`: the general path.
fn simple_action_match(pattern: &str, action: &str) -> Option<bool> {
    if pattern == "*" {
        return Some(true);
    }
    if !pattern.is_ascii() || !action.is_ascii() || pattern.contains('?') {
        return None;
    }
    match pattern.find('*') {
        None => Some(pattern.eq_ignore_ascii_case(action)),
        Some(i) if i + 1 == pattern.len() => Some(
            action.len() >= i
                && action.as_bytes()[..i].eq_ignore_ascii_case(&pattern.as_bytes()[..i]),
        ),
        Some(_) => None,
    }
}

fn action_matches(list: &PatternList, action: &str) -> bool {
    let any = list
        .patterns
        .iter()
        .any(|p| match simple_action_match(p, action) {
            Some(m) => m,
            None => compile(p, true, None).is_some_and(|t| tokens_match(&t, action, true)),
        });
    any != list.negated
}

/// The common shapes of a `Resource` pattern without variables decided without
/// compiling it, with the result [`arn_tokens_match`]/[`tokens_match`] give
/// (case-sensitive): a literal, or an ARN pattern whose only wildcard is one
/// trailing `*` in its last component. `None`: the general path.
fn simple_resource_match(pattern: &str, resource: &str) -> Option<bool> {
    if pattern.contains('?') {
        return None;
    }
    let arn = resource.starts_with("arn:");
    match pattern.find('*') {
        // A literal: equal text, and for an ARN resource either a whole ARN
        // pattern (six components) or one that is not ARN-shaped at all.
        None => Some(
            pattern == resource
                && (!arn || !pattern.starts_with("arn:") || pattern.matches(':').count() >= 5),
        ),
        Some(i) if arn && i + 1 == pattern.len() => {
            let prefix = &pattern[..i];
            // The star must lie in the sixth component (after five `:`).
            (prefix.matches(':').count() >= 5).then(|| resource.starts_with(prefix))
        }
        Some(_) => None,
    }
}

fn resource_matches(list: Option<&PatternList>, ctx: &RequestContext, vars: bool) -> bool {
    let Some(list) = list else {
        return true;
    };
    let lookup = |key: &str| ctx.single_value(key);
    let vars: Option<VarLookup<'_>> = if vars { Some(&lookup) } else { None };
    let any = list.patterns.iter().any(|p| {
        if p == "*" {
            return true;
        }
        if vars.is_none() || !p.contains("${") {
            if let Some(m) = simple_resource_match(p, &ctx.resource) {
                return m;
            }
        }
        compile(p, true, vars).is_some_and(|t| {
            if ctx.resource.starts_with("arn:") {
                arn_tokens_match(&t, &ctx.resource)
            } else {
                tokens_match(&t, &ctx.resource, false)
            }
        })
    });
    any != list.negated
}

fn statement_applies(
    st: &Statement,
    ctx: &RequestContext,
    source: PolicySource,
    vars: bool,
) -> Option<PrincipalMatch> {
    if !action_matches(&st.action, &ctx.action)
        || !resource_matches(st.resource.as_ref(), ctx, vars)
    {
        return None;
    }
    let principal = match source {
        PolicySource::Identity => PrincipalMatch::Direct,
        PolicySource::Resource => principal_match(st, &ctx.principal)?,
    };
    st.conditions
        .iter()
        .all(|c| condition_holds(c, ctx, vars))
        .then_some(principal)
}

/// Decides a request against the caller's identity policies and the resource's
/// policies; see the module documentation for the rules.
pub fn evaluate(ctx: &RequestContext, policies: &[PolicyRef<'_>]) -> Evaluation {
    let mut identity_allow: Option<StatementRef> = None;
    let mut resource_direct: Option<StatementRef> = None;
    let mut resource_via_account: Option<StatementRef> = None;
    for policy in policies {
        let vars = policy.document.version == PolicyVersion::V2012_10_17;
        for (index, st) in policy.document.statements.iter().enumerate() {
            let Some(how) = statement_applies(st, ctx, policy.source, vars) else {
                continue;
            };
            let sref = || StatementRef {
                policy: policy.name.to_owned(),
                source: policy.source,
                index,
                sid: st.sid.clone(),
            };
            match (st.effect, policy.source, how) {
                (Effect::Deny, _, _) => {
                    return Evaluation {
                        decision: Decision::ExplicitDeny,
                        reason: Reason::Statement(sref()),
                    }
                }
                (Effect::Allow, PolicySource::Identity, _) => {
                    identity_allow.get_or_insert_with(sref);
                }
                (Effect::Allow, PolicySource::Resource, PrincipalMatch::Direct) => {
                    resource_direct.get_or_insert_with(sref);
                }
                (Effect::Allow, PolicySource::Resource, PrincipalMatch::ViaAccount) => {
                    resource_via_account.get_or_insert_with(sref);
                }
            }
        }
    }

    let allow = |reason| Evaluation {
        decision: Decision::Allow,
        reason,
    };
    let deny = |reason| Evaluation {
        decision: Decision::ImplicitDeny,
        reason,
    };
    let is_root = ctx.principal.kind == PrincipalKind::Root;

    if ctx.principal.kind == PrincipalKind::Anonymous {
        return match resource_direct {
            Some(s) => allow(Reason::Statement(s)),
            None => deny(Reason::NoAllow),
        };
    }
    if ctx.same_account() {
        return match (identity_allow, resource_direct) {
            (Some(s), _) | (None, Some(s)) => allow(Reason::Statement(s)),
            (None, None) if is_root => allow(Reason::AccountRoot),
            (None, None) => deny(Reason::NoAllow),
        };
    }
    let identity_ok = identity_allow.is_some() || is_root;
    match (identity_ok, resource_direct.or(resource_via_account)) {
        (true, Some(s)) => allow(Reason::Statement(s)),
        (false, _) => deny(Reason::NoIdentityAllow),
        (true, None) => deny(Reason::NoResourceAllow),
    }
}

#[cfg(test)]
mod fast_path_tests {
    //! The shortcuts give what the general matcher gives, on every shape.

    use super::*;

    const PATTERNS: &[&str] = &[
        "*",
        "ecr:*",
        "ecr:Batch*",
        "ECR:BATCHGETIMAGE",
        "ecr:BatchGetImage",
        "ecr:",
        "ecr:*Image",
        "ecr:?atchGetImage",
        "arn:aws:ecr:us-east-1:123456789012:repository/app",
        "arn:aws:ecr:us-east-1:123456789012:repository/*",
        "arn:aws:ecr:us-east-1:123456789012:repository/ap*",
        "arn:aws:ecr:us-east-1:123456789012:*",
        "arn:aws:ecr:us-east-1:123456789012*",
        "arn:aws:ecr:us-east-1:*",
        "arn:aws:ecr",
        "arn:aws:ecr*",
        "arn:aws:sns:us-east-1:1:topic:a:*",
        "arn:aws:ecr:us-east-1:123456789012:repository/App",
        "repository/app",
        "*repository/app",
        "ecr:BatchGetImagé",
        "\u{212A}",
        "k*",
    ];
    const TEXTS: &[&str] = &[
        "ecr:BatchGetImage",
        "ecr:batchgetimage",
        "ecr:",
        "ecr",
        "arn:aws:ecr:us-east-1:123456789012:repository/app",
        "arn:aws:ecr:us-east-1:123456789012:repository/app/x",
        "arn:aws:ecr:us-east-1:123456789012:repository/App",
        "arn:aws:ecr:us-east-1:123456789012",
        "arn:aws:ecr",
        "arn:aws:ecr*",
        "arn:aws:sns:us-east-1:1:topic:a:b",
        "*",
        "",
        "repository/app",
        "k",
        "\u{212A}",
    ];

    #[test]
    fn shortcuts_agree_with_the_general_matcher() {
        for p in PATTERNS {
            for t in TEXTS {
                let general = compile(p, true, None).is_some_and(|k| tokens_match(&k, t, true));
                if let Some(fast) = simple_action_match(p, t) {
                    assert_eq!(fast, general, "action {p:?} ~ {t:?}");
                }
                let toks = compile(p, true, None).unwrap();
                let general = if t.starts_with("arn:") {
                    arn_tokens_match(&toks, t)
                } else {
                    tokens_match(&toks, t, false)
                };
                if let Some(fast) = simple_resource_match(p, t) {
                    assert_eq!(fast, general, "resource {p:?} ~ {t:?}");
                }
            }
        }
        // The shortcuts do cover the common shapes.
        assert_eq!(simple_action_match("ecr:*", "ecr:PutImage"), Some(true));
        assert_eq!(
            simple_resource_match(
                "arn:aws:ecr:us-east-1:123456789012:repository/*",
                "arn:aws:ecr:us-east-1:123456789012:repository/app"
            ),
            Some(true)
        );
    }

    #[test]
    fn condition_keys_are_needed_only_by_conditions_and_variables() {
        use crate::policy::{PolicyDocument, PolicyKind};
        let doc = |s: &str| PolicyDocument::parse(s, PolicyKind::Identity).unwrap();
        let plain = doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#,
        );
        let cond = doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}"#,
        );
        let var = doc(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}/*"}]}"#,
        );
        let old_var = doc(
            r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}/*"}]}"#,
        );
        let r = |d| PolicyRef {
            name: "p",
            source: PolicySource::Identity,
            document: d,
        };
        assert!(!needs_condition_keys(&[r(&plain)]));
        assert!(!needs_condition_keys(&[r(&plain), r(&old_var)]));
        assert!(needs_condition_keys(&[r(&plain), r(&cond)]));
        assert!(needs_condition_keys(&[r(&var)]));
        assert!(!needs_condition_keys(&[]));
    }
}
