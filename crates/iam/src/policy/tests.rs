//! Parsing/validation and evaluation scenarios for IAM and ECR policies.

use super::*;
use crate::arn::AccountId;

const A: &str = "111122223333";
const B: &str = "444455556666";

fn repo(account: &str, name: &str) -> String {
    format!("arn:aws:ecr:us-east-1:{account}:repository/{name}")
}

fn user(account: &str, name: &str) -> Principal {
    Principal::from_arn(&format!("arn:aws:iam::{account}:user/{name}")).unwrap()
}

fn root(account: &str) -> Principal {
    Principal::root(&AccountId::parse(account).unwrap())
}

fn identity(text: &str) -> PolicyDocument {
    PolicyDocument::parse(text, PolicyKind::Identity).unwrap()
}

fn repo_policy(text: &str) -> PolicyDocument {
    PolicyDocument::parse(text, PolicyKind::EcrRepository).unwrap()
}

fn err(text: &str, kind: PolicyKind) -> String {
    PolicyDocument::parse(text, kind).unwrap_err().to_string()
}

// ---------------------------------------------------------------------------
// Parsing

#[test]
fn parses_statement_object_or_array_and_both_versions() {
    let one = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#,
    );
    assert_eq!(one.version, PolicyVersion::V2012_10_17);
    assert_eq!(one.statements.len(), 1);
    let many = identity(
        r#"{"Version":"2008-10-17","Id":"x","Statement":[
            {"Sid":"a","Effect":"Allow","Action":["ecr:Get*","ecr:List*"],"Resource":["*"]},
            {"Sid":"b","Effect":"Deny","NotAction":"ecr:Get*","NotResource":"arn:aws:ecr:*:*:repository/secret"}]}"#,
    );
    assert_eq!(many.version, PolicyVersion::V2008_10_17);
    assert_eq!(many.id.as_deref(), Some("x"));
    assert_eq!(many.statements[1].effect, Effect::Deny);
    assert!(many.statements[1].action.negated);
    assert!(many.statements[1].resource.as_ref().unwrap().negated);
    assert_eq!(
        many.statements[0].action.patterns,
        ["ecr:Get*", "ecr:List*"]
    );
    let no_version = identity(r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#);
    assert_eq!(no_version.version, PolicyVersion::V2008_10_17);
    assert_eq!(PolicyVersion::V2012_10_17.as_str(), "2012-10-17");
}

#[test]
fn principals_are_normalised() {
    let p = repo_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow",
            "Principal":{{"AWS":["{B}","arn:aws:iam::{A}:user/ci","*"],"Service":"ecr.amazonaws.com"}},
            "Action":"ecr:BatchGetImage"}}]}}"#
    ));
    let Some(PrincipalBlock {
        negated: false,
        spec: PrincipalSpec::Entries(entries),
    }) = &p.statements[0].principal
    else {
        panic!("{p:?}")
    };
    let values: Vec<&str> = entries.iter().map(|e| e.value.as_str()).collect();
    assert_eq!(
        values,
        [
            format!("arn:aws:iam::{B}:root").as_str(),
            &format!("arn:aws:iam::{A}:user/ci"),
            "*",
            "ecr.amazonaws.com"
        ]
    );
    assert_eq!(entries[3].kind, PrincipalType::Service);
    assert!(p.statements[0].resource.is_none());
    let star =
        repo_policy(r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*"}]}"#);
    assert_eq!(
        star.statements[0].principal.as_ref().unwrap().spec,
        PrincipalSpec::Everyone
    );
}

#[test]
fn conditions_parse() {
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*",
            "Condition":{"StringEquals":{"aws:PrincipalAccount":"111122223333","aws:username":["a","b"]},
                         "NumericLessThan":{"x:n":5},
                         "Bool":{"aws:SecureTransport":true},
                         "ForAnyValue:StringLikeIfExists":{"aws:TagKeys":"team*"}}}]}"#,
    );
    let c = &p.statements[0].conditions;
    assert_eq!(c.len(), 5);
    let n = c.iter().find(|c| c.key == "x:n").unwrap();
    assert_eq!(n.values, ["5"]);
    assert_eq!(n.operator.base, OperatorBase::NumericLessThan);
    let b = c.iter().find(|c| c.key == "aws:SecureTransport").unwrap();
    assert_eq!(b.values, ["true"]);
    let t = c.iter().find(|c| c.key == "aws:TagKeys").unwrap();
    assert_eq!(t.operator.qualifier, Some(SetQualifier::ForAnyValue));
    assert!(t.operator.if_exists);
}

#[test]
fn validation_messages() {
    use PolicyKind::*;
    let cases: &[(&str, PolicyKind, &str)] = &[
        ("not json", Identity, "not valid JSON"),
        ("[]", Identity, "must be a JSON object"),
        (
            r#"{"Statement":[],"Extra":1}"#,
            Identity,
            "Extra: unknown top-level element",
        ),
        (
            r#"{"Version":"2013-01-01","Statement":[]}"#,
            Identity,
            "Version: must be \"2012-10-17\" or \"2008-10-17\"",
        ),
        (
            r#"{"Version":2012,"Statement":[]}"#,
            Identity,
            "Version: must be",
        ),
        (
            r#"{"Version":"2012-10-17"}"#,
            Identity,
            "Statement: is required",
        ),
        (
            r#"{"Statement":"x"}"#,
            Identity,
            "must be an object or an array",
        ),
        (
            r#"{"Statement":["x"]}"#,
            Identity,
            "Statement[0]: a statement must be an object",
        ),
        (
            r#"{"Statement":[{"Action":"ecr:*","Resource":"*"}]}"#,
            Identity,
            "Statement[0].Effect: is required",
        ),
        (
            r#"{"Statement":[{"Effect":"allow","Action":"ecr:*","Resource":"*"}]}"#,
            Identity,
            "must be \"Allow\" or \"Deny\", not \"allow\"",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            Identity,
            "must have an Action or NotAction",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"a:b","NotAction":"a:c","Resource":"*"}]}"#,
            Identity,
            "both Action and NotAction",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
            Identity,
            "Statement[0].Action: must not be an empty array",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":[1],"Resource":"*"}]}"#,
            Identity,
            "Statement[0].Action[0]: must be a string",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"PutImage","Resource":"*"}]}"#,
            Identity,
            "invalid action \"PutImage\"",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:Put Image","Resource":"*"}]}"#,
            Identity,
            "invalid action",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*"}]}"#,
            Identity,
            "must have a Resource or NotResource",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"repo"}]}"#,
            Identity,
            "invalid resource \"repo\"",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","NotResource":"*"}]}"#,
            Identity,
            "both Resource and NotResource",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*"}]}"#,
            Identity,
            "Statement[0].Principal: an identity-based policy cannot name a principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Bogus":1}]}"#,
            Identity,
            "Statement[0].Bogus: unknown statement element",
        ),
        (
            r#"{"Statement":[{"Sid":1,"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#,
            Identity,
            "Sid: must be a string",
        ),
        (
            r#"{"Statement":[{"Sid":"s","Effect":"Allow","Action":"ecr:*","Resource":"*"},{"Sid":"s","Effect":"Deny","Action":"ecr:*","Resource":"*"}]}"#,
            Identity,
            "\"s\" is repeated",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*"}]}"#,
            EcrRepository,
            "must have a Principal or NotPrincipal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#,
            Resource,
            "must have a Principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*"}]}"#,
            Resource,
            "must have a Resource",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"ecr:*"}]}"#,
            EcrRepository,
            "both Principal and NotPrincipal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"111122223333"},"Action":"ecr:*"}]}"#,
            EcrRepository,
            "NotPrincipal may only be used with",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":"alice","Action":"ecr:*"}]}"#,
            EcrRepository,
            "Principal: must be \"*\" or an object",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{},"Action":"ecr:*"}]}"#,
            EcrRepository,
            "Principal: must be",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"ecr:*"}]}"#,
            EcrRepository,
            "Invalid principal in policy: \"AWS\":\"alice\"",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"12345"},"Action":"ecr:*"}]}"#,
            EcrRepository,
            "Invalid principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:ecr:us-east-1:111122223333:repository/x"},"Action":"ecr:*"}]}"#,
            EcrRepository,
            "Invalid principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Robot":"x"},"Action":"ecr:*"}]}"#,
            EcrRepository,
            "Principal.Robot: unknown principal type",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":""},"Action":"ecr:*"}]}"#,
            EcrRepository,
            "Invalid principal",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":[]}]}"#,
            Identity,
            "Condition: must be an object",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEqualz":{"a":"b"}}}]}"#,
            Identity,
            "Condition.StringEqualz: unknown condition operator",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":"x"}}]}"#,
            Identity,
            "must be an object of condition keys",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{}}}]}"#,
            Identity,
            "at least one condition key",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"k":[]}}}]}"#,
            Identity,
            "StringEquals.k: must not be an empty array",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"k":{"x":1}}}}]}"#,
            Identity,
            "condition values must be strings",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"NumericLessThan":{"k":"ten"}}}]}"#,
            Identity,
            "not valid for the NumericLessThan operator",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/99"}}}]}"#,
            Identity,
            "not valid for the IpAddress operator",
        ),
        (
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"NullIfExists":{"k":"true"}}}]}"#,
            Identity,
            "unknown condition operator",
        ),
    ];
    for (text, kind, needle) in cases {
        let e = err(text, *kind);
        assert!(e.contains(needle), "{text}\n  => {e}\n  expected: {needle}");
    }
}

// ---------------------------------------------------------------------------
// Managed policies

#[test]
fn managed_policies_parse_and_are_addressable() {
    for p in MANAGED_POLICIES.iter() {
        let doc = p.parse().unwrap();
        assert_eq!(doc.version, PolicyVersion::V2012_10_17);
        assert_eq!(p.arn, format!("arn:aws:iam::aws:policy/{}", p.name));
        assert_eq!(managed_policy(p.name), Some(p));
        assert_eq!(managed_policy(p.arn), Some(p));
    }
    assert_eq!(managed_policy("AdministratorAccess"), None);
    assert_eq!(managed_policy("arn:aws:iam::aws:policy/"), None);
}

fn allowed_by_managed(p: &ManagedPolicy, action: &str) -> bool {
    let doc = p.parse().unwrap();
    let ctx = RequestContext::new(user(A, "u"), action, repo(A, "app"));
    evaluate(
        &ctx,
        &[PolicyRef {
            name: p.arn,
            source: PolicySource::Identity,
            document: &doc,
        }],
    )
    .is_allowed()
}

#[test]
fn managed_policy_permissions() {
    let pull = [
        "ecr:GetAuthorizationToken",
        "ecr:BatchGetImage",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
        "ecr:DescribeImages",
    ];
    let push = [
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
    ];
    let admin = [
        "ecr:DeleteRepository",
        "ecr:SetRepositoryPolicy",
        "ecr:CreateRepository",
        "ecr:PutLifecyclePolicy",
    ];
    for a in pull {
        assert!(
            allowed_by_managed(&AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY, a),
            "{a}"
        );
        assert!(
            allowed_by_managed(&AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER, a),
            "{a}"
        );
        assert!(
            allowed_by_managed(&AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS, a),
            "{a}"
        );
    }
    for a in push {
        assert!(
            !allowed_by_managed(&AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY, a),
            "{a}"
        );
        assert!(
            allowed_by_managed(&AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER, a),
            "{a}"
        );
        assert!(
            allowed_by_managed(&AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS, a),
            "{a}"
        );
    }
    for a in admin {
        assert!(
            !allowed_by_managed(&AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY, a),
            "{a}"
        );
        assert!(
            !allowed_by_managed(&AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER, a),
            "{a}"
        );
        assert!(
            allowed_by_managed(&AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS, a),
            "{a}"
        );
    }
    // Actions match case-insensitively, as in AWS.
    assert!(allowed_by_managed(
        &AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY,
        "ECR:batchgetimage"
    ));
    assert!(!allowed_by_managed(
        &AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS,
        "sts:GetCallerIdentity"
    ));
    // The FullAccess service-linked-role grant is conditional.
    let doc = AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS.parse().unwrap();
    let refs = [PolicyRef {
        name: "full",
        source: PolicySource::Identity,
        document: &doc,
    }];
    let slr = RequestContext::new(user(A, "u"), "iam:CreateServiceLinkedRole", "*");
    assert!(!evaluate(&slr, &refs).is_allowed());
    let slr = slr.with_key("iam:AWSServiceName", "replication.ecr.amazonaws.com");
    assert!(evaluate(&slr, &refs).is_allowed());
}

// ---------------------------------------------------------------------------
// Evaluation

fn decide(
    ctx: &RequestContext,
    ident: &[&PolicyDocument],
    resource: &[&PolicyDocument],
) -> Evaluation {
    let mut refs: Vec<PolicyRef<'_>> = ident
        .iter()
        .enumerate()
        .map(|(i, d)| PolicyRef {
            name: ["identity-0", "identity-1", "identity-2"][i],
            source: PolicySource::Identity,
            document: d,
        })
        .collect();
    refs.extend(resource.iter().enumerate().map(|(i, d)| PolicyRef {
        name: ["repository policy", "registry policy"][i],
        source: PolicySource::Resource,
        document: d,
    }));
    evaluate(ctx, &refs)
}

#[test]
fn nothing_attached_is_an_implicit_deny() {
    let ctx = RequestContext::new(user(A, "u"), "ecr:BatchGetImage", repo(A, "app"));
    let e = decide(&ctx, &[], &[]);
    assert_eq!(e.decision, Decision::ImplicitDeny);
    assert_eq!(e.reason, Reason::NoAllow);
    assert_eq!(
        e.denial_message(&ctx),
        format!("User: arn:aws:iam::{A}:user/u is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:us-east-1:{A}:repository/app because no identity-based policy allows the ecr:BatchGetImage action")
    );
}

#[test]
fn account_root_is_implicitly_allowed_in_its_account_but_not_across() {
    let ctx = RequestContext::new(root(A), "ecr:DeleteRepository", repo(A, "app"));
    let e = decide(&ctx, &[], &[]);
    assert_eq!(
        e,
        Evaluation {
            decision: Decision::Allow,
            reason: Reason::AccountRoot
        }
    );
    // Still subject to an explicit deny in the repository policy.
    let deny = repo_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"NoDelete","Effect":"Deny","Principal":{{"AWS":"{A}"}},"Action":"ecr:DeleteRepository"}}]}}"#
    ));
    let e = decide(&ctx, &[], &[&deny]);
    assert_eq!(e.decision, Decision::ExplicitDeny);
    assert_eq!(
        e.reason,
        Reason::Statement(StatementRef {
            policy: "repository policy".into(),
            source: PolicySource::Resource,
            index: 0,
            sid: Some("NoDelete".into())
        })
    );
    assert!(e
        .denial_message(&ctx)
        .ends_with("with an explicit deny in a resource-based policy"));
    // Another account's root needs a resource grant.
    let other = RequestContext::new(root(B), "ecr:BatchGetImage", repo(A, "app"));
    let e = decide(&other, &[], &[]);
    assert_eq!(e.reason, Reason::NoResourceAllow);
    assert!(e
        .denial_message(&other)
        .ends_with("because no resource-based policy allows the ecr:BatchGetImage action"));
    let grant = repo_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Pull","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{B}:root"}},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}}]}}"#
    ));
    assert!(decide(&other, &[], &[&grant]).is_allowed());
    let push = RequestContext::new(root(B), "ecr:PutImage", repo(A, "app"));
    assert!(!decide(&push, &[], &[&grant]).is_allowed());
}

#[test]
fn same_account_allow_from_either_side() {
    let readonly = AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY.parse().unwrap();
    let pull = RequestContext::new(user(A, "reader"), "ecr:BatchGetImage", repo(A, "app"));
    let push = RequestContext::new(user(A, "reader"), "ecr:PutImage", repo(A, "app"));
    let e = decide(&pull, &[&readonly], &[]);
    assert!(e.is_allowed());
    assert_eq!(
        e.reason,
        Reason::Statement(StatementRef {
            policy: "identity-0".into(),
            source: PolicySource::Identity,
            index: 0,
            sid: None
        })
    );
    assert!(!decide(&push, &[&readonly], &[]).is_allowed());
    // A repository policy naming the user grants without any identity policy.
    let grant_user = repo_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{A}:user/reader"}},"Action":"ecr:PutImage"}}]}}"#
    ));
    assert!(decide(&push, &[&readonly], &[&grant_user]).is_allowed());
    assert!(decide(&push, &[], &[&grant_user]).is_allowed());
    let other_user = RequestContext::new(user(A, "other"), "ecr:PutImage", repo(A, "app"));
    assert!(!decide(&other_user, &[], &[&grant_user]).is_allowed());
    // Naming the account delegates to IAM: no grant by itself in the same account.
    let grant_account = repo_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{A}"}},"Action":"ecr:PutImage"}}]}}"#
    ));
    assert!(!decide(&push, &[], &[&grant_account]).is_allowed());
    // "*" grants everyone in the account (and anonymous callers).
    let grant_all = repo_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:PutImage"}]}"#,
    );
    assert!(decide(&push, &[], &[&grant_all]).is_allowed());
}

#[test]
fn explicit_deny_beats_allow_everywhere() {
    let full = AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS.parse().unwrap();
    let deny_identity = identity(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"NoProd","Effect":"Deny","Action":"ecr:*","Resource":"{}"}}]}}"#,
        repo(A, "prod/*")
    ));
    let ctx = RequestContext::new(user(A, "dev"), "ecr:PutImage", repo(A, "prod/api"));
    let e = decide(&ctx, &[&full, &deny_identity], &[]);
    assert_eq!(e.decision, Decision::ExplicitDeny);
    assert_eq!(
        e.reason,
        Reason::Statement(StatementRef {
            policy: "identity-1".into(),
            source: PolicySource::Identity,
            index: 0,
            sid: Some("NoProd".into())
        })
    );
    assert!(e
        .denial_message(&ctx)
        .ends_with("with an explicit deny in a identity-based policy"));
    let dev = RequestContext::new(user(A, "dev"), "ecr:PutImage", repo(A, "dev/api"));
    assert!(decide(&dev, &[&full, &deny_identity], &[]).is_allowed());
    // A Deny naming the account covers its users.
    let deny_account = repo_policy(&format!(
        r#"{{"Statement":[{{"Effect":"Deny","Principal":{{"AWS":"arn:aws:iam::{A}:root"}},"Action":"ecr:PutImage"}}]}}"#
    ));
    assert_eq!(
        decide(&dev, &[&full], &[&deny_account]).decision,
        Decision::ExplicitDeny
    );
    // Principal "*" Deny with a condition carving out one user.
    let deny_others = repo_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Deny","Principal":"*","Action":"ecr:PutImage",
            "Condition":{{"StringNotEquals":{{"aws:PrincipalArn":"arn:aws:iam::{A}:user/ci"}}}}}}]}}"#
    ));
    assert_eq!(
        decide(&dev, &[&full], &[&deny_others]).decision,
        Decision::ExplicitDeny
    );
    let ci = RequestContext::new(user(A, "ci"), "ecr:PutImage", repo(A, "dev/api"));
    assert!(decide(&ci, &[&full], &[&deny_others]).is_allowed());
}

#[test]
fn cross_account_needs_both_sides() {
    let readonly = AMAZON_EC2_CONTAINER_REGISTRY_READ_ONLY.parse().unwrap();
    let power = AMAZON_EC2_CONTAINER_REGISTRY_POWER_USER.parse().unwrap();
    let pull = RequestContext::new(user(B, "puller"), "ecr:BatchGetImage", repo(A, "app"));
    // Identity allows but the repository does not grant: denied.
    let e = decide(&pull, &[&readonly], &[]);
    assert_eq!(
        e,
        Evaluation {
            decision: Decision::ImplicitDeny,
            reason: Reason::NoResourceAllow
        }
    );
    // Repository grants account B (delegation) and B's identity policy allows: allowed.
    let grant_b = repo_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"CrossPull","Effect":"Allow","Principal":{{"AWS":"{B}"}},
            "Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchCheckLayerAvailability"]}}]}}"#
    ));
    let e = decide(&pull, &[&readonly], &[&grant_b]);
    assert!(e.is_allowed());
    assert_eq!(
        e.reason,
        Reason::Statement(StatementRef {
            policy: "repository policy".into(),
            source: PolicySource::Resource,
            index: 0,
            sid: Some("CrossPull".into())
        })
    );
    // Repository grants but B's identity policies do not allow: denied.
    let e = decide(&pull, &[], &[&grant_b]);
    assert_eq!(e.reason, Reason::NoIdentityAllow);
    // Push is not granted by the repository even though PowerUser allows it.
    let push = RequestContext::new(user(B, "puller"), "ecr:PutImage", repo(A, "app"));
    assert!(!decide(&push, &[&power], &[&grant_b]).is_allowed());
    // Principal "*" still needs the caller's identity allow across accounts.
    let public = repo_policy(
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}"#,
    );
    assert!(!decide(&pull, &[], &[&public]).is_allowed());
    assert!(decide(&pull, &[&readonly], &[&public]).is_allowed());
    // A grant to another account or user does not match.
    let grant_c = repo_policy(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"777788889999"},"Action":"ecr:*"}]}"#,
    );
    assert!(!decide(&pull, &[&readonly], &[&grant_c]).is_allowed());
    // The registry policy counts as a resource policy too.
    assert!(decide(&pull, &[&readonly], &[&grant_c, &grant_b]).is_allowed());
}

#[test]
fn anonymous_callers_need_a_public_grant() {
    let ctx = RequestContext::new(
        Principal::anonymous(),
        "ecr:BatchGetImage",
        repo(A, "public"),
    );
    assert_eq!(ctx.values("aws:PrincipalArn"), None);
    assert!(!decide(&ctx, &[], &[]).is_allowed());
    let account = repo_policy(&format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{A}"}},"Action":"ecr:*"}}]}}"#
    ));
    assert!(!decide(&ctx, &[], &[&account]).is_allowed());
    let public = repo_policy(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"ecr:BatchGetImage"}]}"#,
    );
    assert!(decide(&ctx, &[], &[&public]).is_allowed());
    assert!(decide(&ctx, &[], &[&public])
        .denial_message(&ctx)
        .starts_with("User: anonymous"));
}

#[test]
fn not_principal_deny() {
    let p = repo_policy(&format!(
        r#"{{"Statement":[
            {{"Effect":"Allow","Principal":"*","Action":"ecr:*"}},
            {{"Effect":"Deny","NotPrincipal":{{"AWS":["arn:aws:iam::{A}:user/admin"]}},"Action":"ecr:DeleteRepository"}}]}}"#
    ));
    let admin = RequestContext::new(user(A, "admin"), "ecr:DeleteRepository", repo(A, "x"));
    let other = RequestContext::new(user(A, "dev"), "ecr:DeleteRepository", repo(A, "x"));
    assert!(decide(&admin, &[], &[&p]).is_allowed());
    assert_eq!(decide(&other, &[], &[&p]).decision, Decision::ExplicitDeny);
}

#[test]
fn resources_and_not_resources() {
    let doc = identity(&format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:{A}:repository/team-?/*"}},
            {{"Effect":"Allow","Action":"ecr:DescribeRepositories","NotResource":"arn:aws:ecr:*:{A}:repository/secret"}}]}}"#
    ));
    let allowed = |action: &str, resource: &str| {
        decide(
            &RequestContext::new(user(A, "u"), action, resource),
            &[&doc],
            &[],
        )
        .is_allowed()
    };
    assert!(allowed("ecr:PutImage", &repo(A, "team-a/api")));
    assert!(!allowed("ecr:PutImage", &repo(A, "team-ab/api")));
    assert!(!allowed("ecr:PutImage", &repo(A, "Team-a/api")));
    assert!(!allowed("ecr:PutImage", &repo(A, "team-a")));
    assert!(allowed("ecr:DescribeRepositories", &repo(A, "public")));
    assert!(!allowed("ecr:DescribeRepositories", &repo(A, "secret")));
    // Resource "*" (GetAuthorizationToken has no resource).
    let token = identity(
        r#"{"Statement":[{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}"#,
    );
    let ctx = RequestContext::new(user(A, "u"), "ecr:GetAuthorizationToken", "*")
        .with_resource_account(A);
    assert!(decide(&ctx, &[&token], &[]).is_allowed());
}

#[test]
fn ecr_repository_policy_without_resource_applies_to_its_repository() {
    let p = repo_policy(&format!(
        r#"{{"Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{A}:user/u"}},"Action":"ecr:BatchGetImage"}}]}}"#
    ));
    for r in [repo(A, "one"), repo(A, "two/three")] {
        assert!(decide(
            &RequestContext::new(user(A, "u"), "ecr:BatchGetImage", r),
            &[],
            &[&p]
        )
        .is_allowed());
    }
}

#[test]
fn not_action() {
    let doc = identity(
        r#"{"Statement":[{"Effect":"Allow","NotAction":["ecr:Delete*","ecr:Set*"],"Resource":"*"}]}"#,
    );
    let allowed = |a: &str| {
        decide(
            &RequestContext::new(user(A, "u"), a, repo(A, "x")),
            &[&doc],
            &[],
        )
        .is_allowed()
    };
    assert!(allowed("ecr:PutImage"));
    assert!(allowed("sts:GetCallerIdentity"));
    assert!(!allowed("ecr:DeleteRepository"));
    assert!(!allowed("ecr:deleterepository"));
    assert!(!allowed("ecr:SetRepositoryPolicy"));
}

fn cond_allows(condition: &str, ctx: RequestContext) -> bool {
    let doc = identity(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{condition}}}]}}"#
    ));
    decide(&ctx, &[&doc], &[]).is_allowed()
}

fn ctx_u() -> RequestContext {
    RequestContext::new(user(A, "alice"), "ecr:BatchGetImage", repo(A, "app"))
}

#[test]
fn global_keys_are_filled_in() {
    let c = ctx_u();
    assert_eq!(
        c.values("aws:PrincipalArn").unwrap(),
        [format!("arn:aws:iam::{A}:user/alice")]
    );
    assert_eq!(c.values("AWS:PRINCIPALACCOUNT").unwrap(), [A]);
    assert_eq!(c.single_value("aws:username").as_deref(), Some("alice"));
    assert_eq!(c.single_value("aws:PrincipalType").as_deref(), Some("User"));
    assert_eq!(c.resource_account, A);
    let r = RequestContext::new(root(A), "ecr:X", "*");
    assert_eq!(
        r.single_value("aws:PrincipalType").as_deref(),
        Some("Account")
    );
    assert_eq!(r.values("aws:username"), None);
    let t = ctx_u().with_time(1_795_704_300);
    assert_eq!(
        t.single_value("aws:CurrentTime").as_deref(),
        Some("2026-11-26T14:45:00Z")
    );
    assert_eq!(
        t.single_value("aws:EpochTime").as_deref(),
        Some("1795704300")
    );
    let mut m = ctx_u();
    m.remove("aws:username");
    assert_eq!(m.values("aws:username"), None);
}

#[test]
fn string_conditions() {
    let pa = format!("arn:aws:iam::{A}:user/alice");
    assert!(cond_allows(
        &format!(r#"{{"StringEquals":{{"aws:PrincipalArn":"{pa}"}}}}"#),
        ctx_u()
    ));
    assert!(cond_allows(
        &format!(r#"{{"StringEquals":{{"AWS:principalarn":["x","{pa}"]}}}}"#),
        ctx_u()
    ));
    assert!(!cond_allows(
        r#"{"StringEquals":{"aws:username":"ALICE"}}"#,
        ctx_u()
    ));
    assert!(cond_allows(
        r#"{"StringEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
        ctx_u()
    ));
    assert!(!cond_allows(
        r#"{"StringNotEqualsIgnoreCase":{"aws:username":"ALICE"}}"#,
        ctx_u()
    ));
    assert!(cond_allows(
        r#"{"StringNotEquals":{"aws:username":["bob","carol"]}}"#,
        ctx_u()
    ));
    assert!(!cond_allows(
        r#"{"StringNotEquals":{"aws:username":["bob","alice"]}}"#,
        ctx_u()
    ));
    assert!(cond_allows(
        r#"{"StringLike":{"aws:username":"a*"}}"#,
        ctx_u()
    ));
    assert!(cond_allows(
        r#"{"StringLike":{"aws:username":"?lic?"}}"#,
        ctx_u()
    ));
    assert!(!cond_allows(
        r#"{"StringEquals":{"aws:username":"a*"}}"#,
        ctx_u()
    ));
    assert!(!cond_allows(
        r#"{"StringNotLike":{"aws:username":"a*"}}"#,
        ctx_u()
    ));
    assert!(cond_allows(
        r#"{"StringNotLike":{"aws:username":"b*"}}"#,
        ctx_u()
    ));
    // Values ORed, keys ANDed, operators ANDed.
    assert!(cond_allows(
        &format!(
            r#"{{"StringEquals":{{"aws:username":["x","alice"],"aws:PrincipalAccount":"{A}"}}}}"#
        ),
        ctx_u()
    ));
    assert!(!cond_allows(
        &format!(r#"{{"StringEquals":{{"aws:username":"alice","aws:PrincipalAccount":"{B}"}}}}"#),
        ctx_u()
    ));
    assert!(!cond_allows(
        r#"{"StringEquals":{"aws:username":"alice"},"StringLike":{"aws:PrincipalArn":"*:root"}}"#,
        ctx_u()
    ));
    // Policy variables in condition values.
    assert!(cond_allows(
        r#"{"StringLike":{"aws:PrincipalArn":"*:user/${aws:username}"}}"#,
        ctx_u()
    ));
    let other = RequestContext::new(user(A, "bob"), "ecr:X", repo(A, "alice"));
    assert!(cond_allows(
        r#"{"StringLike":{"aws:PrincipalArn":"*:user/${aws:username}"}}"#,
        other
    ));
}

#[test]
fn missing_keys_and_if_exists() {
    // Plain operator on a missing key: false; negated: true.
    assert!(!cond_allows(
        r#"{"StringEquals":{"aws:SourceIp":"1.2.3.4"}}"#,
        ctx_u()
    ));
    assert!(cond_allows(
        r#"{"StringNotEquals":{"aws:SourceIp":"1.2.3.4"}}"#,
        ctx_u()
    ));
    assert!(cond_allows(
        r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        ctx_u()
    ));
    assert!(!cond_allows(
        r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        ctx_u()
    ));
    // IfExists: true when missing, evaluated when present.
    assert!(cond_allows(
        r#"{"StringEqualsIfExists":{"ecr:ResourceTag/env":"dev"}}"#,
        ctx_u()
    ));
    assert!(cond_allows(
        r#"{"StringEqualsIfExists":{"ecr:ResourceTag/env":"dev"}}"#,
        ctx_u().with_key("ecr:ResourceTag/env", "dev")
    ));
    assert!(!cond_allows(
        r#"{"StringEqualsIfExists":{"ecr:ResourceTag/env":"dev"}}"#,
        ctx_u().with_key("ecr:ResourceTag/env", "prod")
    ));
    // Null.
    assert!(cond_allows(r#"{"Null":{"aws:SourceIp":"true"}}"#, ctx_u()));
    assert!(!cond_allows(
        r#"{"Null":{"aws:SourceIp":"false"}}"#,
        ctx_u()
    ));
    assert!(cond_allows(
        r#"{"Null":{"aws:SourceIp":false}}"#,
        ctx_u().with_key("aws:SourceIp", "10.1.2.3")
    ));
    assert!(!cond_allows(
        r#"{"Null":{"aws:SourceIp":"true"}}"#,
        ctx_u().with_key("aws:SourceIp", "10.1.2.3")
    ));
}

#[test]
fn set_qualifiers() {
    let mut tags = ctx_u();
    tags.set("aws:TagKeys", vec!["team".into(), "env".into()]);
    assert!(cond_allows(
        r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env","owner"]}}"#,
        tags.clone()
    ));
    assert!(!cond_allows(
        r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}"#,
        tags.clone()
    ));
    assert!(cond_allows(
        r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["team"]}}"#,
        tags.clone()
    ));
    assert!(!cond_allows(
        r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["owner"]}}"#,
        tags.clone()
    ));
    assert!(cond_allows(
        r#"{"ForAnyValue:StringLike":{"aws:TagKeys":["t*"]}}"#,
        tags.clone()
    ));
    assert!(cond_allows(
        r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["owner"]}}"#,
        tags.clone()
    ));
    assert!(!cond_allows(
        r#"{"ForAllValues:StringNotEquals":{"aws:TagKeys":["env"]}}"#,
        tags.clone()
    ));
    assert!(cond_allows(
        r#"{"ForAnyValue:StringNotEquals":{"aws:TagKeys":["env"]}}"#,
        tags.clone()
    ));
    // Missing or empty key: ForAllValues vacuously true, ForAnyValue false.
    assert!(cond_allows(
        r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["x"]}}"#,
        ctx_u()
    ));
    assert!(!cond_allows(
        r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["x"]}}"#,
        ctx_u()
    ));
    let mut empty = ctx_u();
    empty.set("aws:TagKeys", vec![]);
    assert!(cond_allows(
        r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["x"]}}"#,
        empty.clone()
    ));
    assert!(cond_allows(r#"{"Null":{"aws:TagKeys":"true"}}"#, empty));
}

#[test]
fn arn_conditions() {
    let own = ctx_u();
    assert!(cond_allows(
        &format!(r#"{{"ArnEquals":{{"aws:PrincipalArn":"arn:aws:iam::{A}:user/alice"}}}}"#),
        own.clone()
    ));
    assert!(cond_allows(
        &format!(r#"{{"ArnLike":{{"aws:PrincipalArn":"arn:aws:iam::{A}:user/*"}}}}"#),
        own.clone()
    ));
    assert!(cond_allows(
        r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/al*"}}"#,
        own.clone()
    ));
    assert!(!cond_allows(
        r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:root"}}"#,
        own.clone()
    ));
    assert!(!cond_allows(
        r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*"}}"#,
        own.clone()
    ));
    assert!(cond_allows(
        r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:root"}}"#,
        own.clone()
    ));
    assert!(!cond_allows(
        &format!(r#"{{"ArnNotEquals":{{"aws:PrincipalArn":"arn:aws:iam::{A}:user/alice"}}}}"#),
        own.clone()
    ));
    assert!(!cond_allows(
        r#"{"ArnLike":{"aws:username":"arn:*:*:*:*:*"}}"#,
        own
    ));
}

#[test]
fn numeric_date_bool_ip_binary_conditions() {
    let c = ctx_u()
        .with_key("x:n", "10")
        .with_time(1_795_704_300)
        .with_secure_transport(true)
        .with_key("aws:SourceIp", "10.1.2.3")
        .with_key("x:bin", "QUJD");
    let yes = |cond: &str| cond_allows(cond, c.clone());
    assert!(yes(r#"{"NumericEquals":{"x:n":10}}"#));
    assert!(yes(r#"{"NumericEquals":{"x:n":"10.0"}}"#));
    assert!(yes(r#"{"NumericNotEquals":{"x:n":[1,2]}}"#));
    assert!(!yes(r#"{"NumericNotEquals":{"x:n":[1,10]}}"#));
    assert!(yes(r#"{"NumericLessThan":{"x:n":11}}"#));
    assert!(!yes(r#"{"NumericLessThan":{"x:n":10}}"#));
    assert!(yes(r#"{"NumericLessThanEquals":{"x:n":10}}"#));
    assert!(yes(r#"{"NumericGreaterThan":{"x:n":9.5}}"#));
    assert!(yes(r#"{"NumericGreaterThanEquals":{"x:n":10}}"#));
    assert!(!yes(r#"{"NumericGreaterThan":{"x:n":10}}"#));
    assert!(!yes(r#"{"NumericEquals":{"aws:username":1}}"#));
    assert!(yes(
        r#"{"DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}"#
    ));
    assert!(!yes(
        r#"{"DateLessThan":{"aws:CurrentTime":"2026-11-26T14:45:00Z"}}"#
    ));
    assert!(yes(
        r#"{"DateLessThanEquals":{"aws:CurrentTime":"2026-11-26T14:45:00Z"}}"#
    ));
    assert!(yes(
        r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-11-26"}}"#
    ));
    assert!(yes(
        r#"{"DateGreaterThanEquals":{"aws:EpochTime":"2026-11-26T14:45:00Z"}}"#
    ));
    assert!(yes(r#"{"DateEquals":{"aws:CurrentTime":1795704300}}"#));
    assert!(yes(
        r#"{"DateNotEquals":{"aws:CurrentTime":"2020-01-01T00:00:00Z"}}"#
    ));
    assert!(yes(r#"{"Bool":{"aws:SecureTransport":"true"}}"#));
    assert!(yes(r#"{"Bool":{"aws:SecureTransport":true}}"#));
    assert!(!yes(r#"{"Bool":{"aws:SecureTransport":"false"}}"#));
    assert!(yes(
        r#"{"IpAddress":{"aws:SourceIp":["192.0.2.0/24","10.0.0.0/8"]}}"#
    ));
    assert!(!yes(r#"{"IpAddress":{"aws:SourceIp":"10.2.0.0/16"}}"#));
    assert!(yes(r#"{"NotIpAddress":{"aws:SourceIp":"10.2.0.0/16"}}"#));
    assert!(!yes(
        r#"{"NotIpAddress":{"aws:SourceIp":["10.2.0.0/16","10.1.0.0/16"]}}"#
    ));
    assert!(yes(r#"{"BinaryEquals":{"x:bin":"QUJD"}}"#));
    let v6 = ctx_u().with_key("aws:SourceIp", "2001:db8::7");
    assert!(cond_allows(
        r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
        v6.clone()
    ));
    assert!(!cond_allows(
        r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        v6
    ));
}

#[test]
fn deny_with_secure_transport_false() {
    let deny_http = identity(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"ecr:*","Resource":"*"},
            {"Effect":"Deny","Action":"ecr:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
    );
    let tls = ctx_u().with_secure_transport(true);
    let plain = ctx_u().with_secure_transport(false);
    assert!(decide(&tls, &[&deny_http], &[]).is_allowed());
    assert_eq!(
        decide(&plain, &[&deny_http], &[]).decision,
        Decision::ExplicitDeny
    );
    // Key absent: Bool is false, so the deny does not apply.
    assert!(decide(&ctx_u(), &[&deny_http], &[]).is_allowed());
}

#[test]
fn policy_variables_in_resources_only_in_2012_version() {
    let v2012 = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/home/${aws:username}/*"}]}"#,
    );
    let v2008 = identity(
        r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/home/${aws:username}/*"}]}"#,
    );
    let mine = RequestContext::new(user(A, "alice"), "ecr:PutImage", repo(A, "home/alice/app"));
    let theirs = RequestContext::new(user(A, "alice"), "ecr:PutImage", repo(A, "home/bob/app"));
    assert!(decide(&mine, &[&v2012], &[]).is_allowed());
    assert!(!decide(&theirs, &[&v2012], &[]).is_allowed());
    assert!(!decide(&mine, &[&v2008], &[]).is_allowed());
    // Root has no aws:username: the variable does not resolve, the statement does not match.
    let root_ctx = RequestContext::new(root(B), "ecr:PutImage", repo(A, "home/alice/app"));
    assert_eq!(
        decide(&root_ctx, &[&v2012], &[]).reason,
        Reason::NoResourceAllow
    );
}

#[test]
fn service_principals() {
    let p = repo_policy(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"replication.ecr.amazonaws.com"},"Action":"ecr:ReplicateImage"}]}"#,
    );
    let svc = RequestContext::new(
        Principal::service("replication.ecr.amazonaws.com"),
        "ecr:ReplicateImage",
        repo(A, "x"),
    );
    // A service has no account, so only the resource side is consulted.
    assert!(!decide(&svc, &[], &[&p]).is_allowed());
    let svc_same = svc.clone();
    let mut svc_same = svc_same;
    svc_same.principal.account = A.into();
    assert!(decide(&svc_same, &[], &[&p]).is_allowed());
    let someone = RequestContext::new(user(A, "u"), "ecr:ReplicateImage", repo(A, "x"));
    assert!(!decide(&someone, &[], &[&p]).is_allowed());
}

#[test]
fn principal_from_arn() {
    assert_eq!(
        Principal::from_arn(&format!("arn:aws:iam::{A}:root"))
            .unwrap()
            .kind,
        PrincipalKind::Root
    );
    assert_eq!(
        Principal::from_arn(&format!("arn:aws:iam::{A}:user/x"))
            .unwrap()
            .kind,
        PrincipalKind::User
    );
    assert_eq!(
        Principal::from_arn(&format!("arn:aws:iam::{A}:role/r"))
            .unwrap()
            .kind,
        PrincipalKind::Role
    );
    assert_eq!(
        Principal::from_arn(&format!("arn:aws:sts::{A}:assumed-role/r/s"))
            .unwrap()
            .account,
        A
    );
    assert_eq!(
        Principal::from_arn("arn:aws:ecr:us-east-1:111122223333:repository/x"),
        None
    );
    assert_eq!(Principal::from_arn("nope"), None);
}

#[test]
fn evaluation_never_panics_on_odd_contexts() {
    let docs = [
        identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}${*}?","Condition":{"ForAnyValue:ArnLike":{"k":"arn:*"},"DateLessThanIfExists":{"aws:CurrentTime":"2030-01-01"}}}]}"#,
        ),
        AMAZON_EC2_CONTAINER_REGISTRY_FULL_ACCESS.parse().unwrap(),
    ];
    let odd = [
        "",
        "*",
        ":",
        "arn:",
        "arn:aws:ecr:::",
        "ሴ",
        "arn:aws:ecr:us-east-1:111122223333:repository/ሴ*",
    ];
    for r in odd {
        for a in odd {
            let mut ctx = RequestContext::new(user(A, "u"), a, r);
            ctx.set("k", vec![r.into(), a.into()]);
            ctx.set("aws:CurrentTime", vec![r.into()]);
            let refs: Vec<PolicyRef<'_>> = docs
                .iter()
                .map(|d| PolicyRef {
                    name: "p",
                    source: PolicySource::Identity,
                    document: d,
                })
                .collect();
            let _ = evaluate(&ctx, &refs);
        }
    }
}

#[test]
fn parser_never_panics_on_generated_documents() {
    // Grammar-guided generation of near-valid policies: every parse either
    // succeeds or returns an error, and every success evaluates.
    let fragments: &[&str] = &[
        r#""*""#,
        r#""ecr:*""#,
        r#""ecr:Get?""#,
        r#"["ecr:PutImage","s3:*"]"#,
        r#"[]"#,
        "1",
        "true",
        "null",
        r#""arn:aws:ecr:*:111122223333:repository/*""#,
        r#"{"AWS":"111122223333"}"#,
        r#"{"AWS":["*","arn:aws:iam::444455556666:user/x"]}"#,
        r#"{"Service":"ecr.amazonaws.com"}"#,
        r#"{"StringEquals":{"aws:username":"a"}}"#,
        r#"{"ForAllValues:StringLike":{"k":["*",1,true]}}"#,
        r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        r#"{"Null":{"k":"true"}}"#,
        r#""Allow""#,
        r#""Deny""#,
        r#""${aws:username}""#,
        r#""ሴ""#,
        r#"{}"#,
    ];
    let keys = [
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
        "Other",
    ];
    let mut x: u64 = 0x0123_4567_89AB_CDEF;
    let mut next = move |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut parsed = 0;
    for i in 0..3_000 {
        let kind = [
            PolicyKind::Identity,
            PolicyKind::Resource,
            PolicyKind::EcrRepository,
            PolicyKind::EcrRegistry,
        ][i % 4];
        let mut statements = Vec::new();
        for _ in 0..1 + next(3) {
            let mut members = vec![
                r#""Effect":"Allow""#.to_owned(),
                r#""Action":"ecr:*""#.to_owned(),
                r#""Resource":"*""#.to_owned(),
            ];
            if kind != PolicyKind::Identity {
                members.push(r#""Principal":"*""#.to_owned());
            }
            for _ in 0..next(3) {
                members.push(format!(
                    r#""{}":{}"#,
                    keys[next(keys.len())],
                    fragments[next(fragments.len())]
                ));
            }
            if next(6) == 0 {
                members.remove(next(members.len()));
            }
            statements.push(format!("{{{}}}", members.join(",")));
        }
        let text = format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            statements.join(",")
        );
        if let Ok(doc) = PolicyDocument::parse(&text, kind) {
            parsed += 1;
            let source = if kind == PolicyKind::Identity {
                PolicySource::Identity
            } else {
                PolicySource::Resource
            };
            for p in [user(A, "a"), root(B), Principal::anonymous()] {
                let ctx = RequestContext::new(p, "ecr:PutImage", repo(A, "x")).with_key("k", "v");
                let _ = evaluate(
                    &ctx,
                    &[PolicyRef {
                        name: "p",
                        source,
                        document: &doc,
                    }],
                );
            }
        }
        // Truncations of the text never panic either.
        let cut = next(text.len() + 1);
        if text.is_char_boundary(cut) {
            let _ = PolicyDocument::parse(&text[..cut], kind);
        }
    }
    assert!(
        parsed > 100,
        "generator should produce valid documents too ({parsed})"
    );
}

#[test]
fn deny_copy_of_an_allow_always_wins() {
    // For any statement that allows a request, adding the same statement as a
    // Deny makes the decision an explicit deny.
    let actions = ["ecr:*", "ecr:Put*", "ecr:BatchGetImage", "*", "s3:*"];
    let resources = [
        "*",
        "arn:aws:ecr:*:111122223333:repository/*",
        "arn:aws:ecr:us-east-1:*:repository/app",
    ];
    let requests = ["ecr:PutImage", "ecr:BatchGetImage", "sts:GetCallerIdentity"];
    for a in actions {
        for r in resources {
            let allow = format!(r#"{{"Effect":"Allow","Action":"{a}","Resource":"{r}"}}"#);
            let deny = allow.replace("Allow", "Deny");
            let only_allow = identity(&format!(r#"{{"Statement":[{allow}]}}"#));
            let both = identity(&format!(r#"{{"Statement":[{allow},{deny}]}}"#));
            for req in requests {
                let ctx = RequestContext::new(user(A, "u"), req, repo(A, "app"));
                let first = decide(&ctx, &[&only_allow], &[]);
                let second = decide(&ctx, &[&both], &[]);
                if first.is_allowed() {
                    assert_eq!(second.decision, Decision::ExplicitDeny, "{a} {r} {req}");
                } else {
                    assert_eq!(second.decision, Decision::ImplicitDeny, "{a} {r} {req}");
                }
            }
        }
    }
}

#[test]
fn attribute_keys_as_the_front_end_populates_them() {
    // Resource and principal tags, request tags and multi-valued aws:TagKeys, as
    // `crates/api/src/policy.rs` sets them.
    let mut c = ctx_u();
    c.set("aws:ResourceTag/team", vec!["a".into()]);
    c.set("ecr:ResourceTag/team", vec!["a".into()]);
    c.set("aws:PrincipalTag/team", vec!["a".into()]);
    // Tag keys are matched case-insensitively, values exactly.
    assert!(cond_allows(
        r#"{"StringEquals":{"aws:resourcetag/TEAM":"a"}}"#,
        c.clone()
    ));
    assert!(!cond_allows(
        r#"{"StringEquals":{"ecr:ResourceTag/team":"A"}}"#,
        c.clone()
    ));
    // A policy variable from a principal tag, and its default when absent.
    assert!(cond_allows(
        r#"{"StringEquals":{"aws:ResourceTag/team":"${aws:PrincipalTag/team}"}}"#,
        c.clone()
    ));
    assert!(!cond_allows(
        r#"{"StringEquals":{"aws:ResourceTag/team":"${aws:PrincipalTag/dept, 'b'}"}}"#,
        c.clone()
    ));
    assert!(cond_allows(
        r#"{"StringEquals":{"aws:ResourceTag/team":"${aws:PrincipalTag/dept, 'a'}"}}"#,
        c.clone()
    ));
    // IfExists with a set qualifier: an absent key passes, a present one is tested.
    assert!(cond_allows(
        r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":["x"]}}"#,
        c.clone()
    ));
    c.set("aws:TagKeys", vec!["team".into(), "owner".into()]);
    assert!(!cond_allows(
        r#"{"ForAnyValue:StringEqualsIfExists":{"aws:TagKeys":["x"]}}"#,
        c.clone()
    ));
    assert!(!cond_allows(
        r#"{"ForAllValues:StringEqualsIfExists":{"aws:TagKeys":["team"]}}"#,
        c.clone()
    ));
    // A negated operator with IfExists on a present key that matches: false.
    assert!(!cond_allows(
        r#"{"StringNotEqualsIfExists":{"aws:ResourceTag/team":"a"}}"#,
        c.clone()
    ));
    // A Deny conditioned on a tag the resource lacks does not apply: the
    // statement's condition is false, so only the Allow decides.
    let deny_prod = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"ecr:*","Resource":"*"},
        {"Effect":"Deny","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"ecr:ResourceTag/env":"prod"}}}]}"#;
    let doc = PolicyDocument::parse(deny_prod, PolicyKind::Identity).unwrap();
    let refs = [PolicyRef {
        name: "p",
        source: PolicySource::Identity,
        document: &doc,
    }];
    assert!(evaluate(&c, &refs).is_allowed());
    c.set("ecr:ResourceTag/env", vec!["prod".into()]);
    assert_eq!(evaluate(&c, &refs).decision, Decision::ExplicitDeny);
}

#[test]
fn cidr_blocks_for_trusted_proxies() {
    let b = CidrBlock::parse("10.0.0.0/8").unwrap();
    assert!(b.contains("10.9.8.7".parse().unwrap()));
    assert!(b.contains("::ffff:10.1.1.1".parse().unwrap()));
    assert!(!b.contains("11.0.0.1".parse().unwrap()));
    assert!(CidrBlock::parse("127.0.0.1")
        .unwrap()
        .contains("127.0.0.1".parse().unwrap()));
    assert!(CidrBlock::parse("10.0.0.0/33").is_none());
    assert!(CidrBlock::parse("nonsense").is_none());
}
