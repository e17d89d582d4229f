//! Attribute-based access control with AWS semantics (`docs/architecture.md`,
//! "Attribute-based access control"): a matrix of identity policies × requests on
//! the ECR API (SigV4, boto3, the AWS CLI) and on `/v2/` (hand-written HTTP with a
//! registry token), each policy conditioned on one family of condition keys.

use std::process::Command;

use berth_testsupport::ecr::Credentials;
use berth_testsupport::http::Http;
use berth_testsupport::layout::{image, tar_gz_layer, OCI_LAYER_GZIP};
use berth_testsupport::tools::{require_python_module, run};
use berth_testsupport::{both_backends, Backend, Berth};
use serde_json::{json, Value};

const ACCOUNT: &str = "123456789012";

/// Creates user `name` with an access key.
fn user(berth: &Berth, name: &str) -> Credentials {
    berth.admin(&["user", "create", name]);
    berth.access_key(&["--user", name])
}

fn allow(actions: &[&str], condition: Value) -> Value {
    json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {"Effect": "Allow", "Action": actions, "Resource": "*", "Condition": condition}
    ]})
}

/// A registry client for `creds`: its own token from GetAuthorizationToken.
fn registry_as(berth: &Berth, creds: &Credentials) -> Http {
    let r = berth.ecr_as(creds, "GetAuthorizationToken", &json!({}));
    r.expect_status(200);
    let t = r.json()["authorizationData"][0]["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD.decode(t).unwrap();
    let (u, p) = std::str::from_utf8(&raw).unwrap().split_once(':').unwrap();
    Http::new(berth.addr()).basic_auth(u, p)
}

fn ecr_status(berth: &Berth, creds: &Credentials, op: &str, body: Value) -> (u16, Value) {
    let r = berth.ecr_as(creds, op, &body);
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        r.json()
    };
    (r.status, v)
}

/// An ECR call that must be refused with AccessDeniedException.
#[track_caller]
fn denied(berth: &Berth, creds: &Credentials, op: &str, body: Value) {
    let (s, v) = ecr_status(berth, creds, op, body);
    assert_eq!(
        (s, v["__type"].as_str()),
        (400, Some("AccessDeniedException")),
        "{op}: {v}"
    );
}

#[track_caller]
fn allowed(berth: &Berth, creds: &Credentials, op: &str, body: Value) -> Value {
    let (s, v) = ecr_status(berth, creds, op, body);
    assert_eq!(s, 200, "{op}: {v}");
    v
}

fn describe(repo: &str) -> Value {
    json!({"repositoryNames": [repo]})
}

/// Runs a boto3 snippet as `creds`; returns its stdout.
fn boto3(berth: &Berth, creds: &Credentials, code: &str) -> String {
    require_python_module("boto3", "pip install boto3");
    let script = format!(
        "import boto3, json, sys\n\
         ecr = boto3.client('ecr', endpoint_url='{}', region_name='us-east-1',\n\
             aws_access_key_id='{}', aws_secret_access_key='{}')\n{code}",
        berth.url(),
        creds.access_key_id,
        creds.secret_access_key
    );
    let out = run(Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE"));
    assert!(
        out.status.success(),
        "boto3 failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn setup_repos(berth: &Berth) {
    let img = image(
        vec![tar_gz_layer(
            OCI_LAYER_GZIP,
            &[("hello.txt", 0o644, b"hi".to_vec())],
        )],
        "amd64",
        false,
    );
    for (name, tags) in [
        ("team-a/app", json!([{"Key": "team", "Value": "a"}])),
        ("team-b/app", json!([{"Key": "team", "Value": "b"}])),
        ("untagged/app", json!([])),
    ] {
        let mut body = json!({"repositoryName": name});
        if !tags.as_array().unwrap().is_empty() {
            body["tags"] = tags;
        }
        berth.ecr("CreateRepository", &body).expect_status(200);
        img.push(&berth.http(), name, "v1").expect_status(201);
    }
}

both_backends! {
    /// The issue's example, on both APIs: an identity policy allowing
    /// DescribeRepositories (and pulls) only where `aws:ResourceTag/team` is `a`.
    fn resource_tags_decide_on_both_apis(backend) {
        let berth = Berth::start(backend);
        setup_repos(&berth);
        let dev = user(&berth, "dev");
        berth.attach_policy_doc("dev", "p", &allow(
            &["ecr:DescribeRepositories", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            json!({"StringEquals": {"aws:ResourceTag/team": "a"}}),
        ));
        allowed(&berth, &dev, "DescribeRepositories", describe("team-a/app"));
        denied(&berth, &dev, "DescribeRepositories", describe("team-b/app"));
        denied(&berth, &dev, "DescribeRepositories", describe("untagged/app"));
        // Without names: exactly what the caller may see, with boto3 and the CLI.
        let names = boto3(&berth, &dev, "print(json.dumps([r['repositoryName'] for r in ecr.describe_repositories()['repositories']]))");
        assert_eq!(names.trim(), r#"["team-a/app"]"#);
        let cli = berth.aws_ok(&dev, &["ecr", "describe-repositories"]);
        let listed: Vec<&str> = cli["repositories"].as_array().unwrap().iter().map(|r| r["repositoryName"].as_str().unwrap()).collect();
        assert_eq!(listed, ["team-a/app"]);
        // boto3 sees the refusal as AccessDeniedException.
        let err = boto3(&berth, &dev, "try:\n    ecr.describe_repositories(repositoryNames=['team-b/app'])\n    print('allowed')\nexcept ecr.exceptions.ClientError as e:\n    print(e.response['Error']['Code'])");
        assert_eq!(err.trim(), "AccessDeniedException");
        // /v2/: the same rule for pulls.
        let reg = registry_as(&berth, &dev);
        reg.get("/v2/team-a/app/manifests/v1").expect_status(200);
        reg.get("/v2/team-b/app/manifests/v1").expect_oci_error(403, "DENIED");
        reg.get("/v2/untagged/app/manifests/v1").expect_oci_error(403, "DENIED");
        // ecr:ResourceTag in a Deny, read at each request: tagging team-a env=prod
        // takes it away at once, untagging gives it back.
        let mut doc = allow(
            &["ecr:DescribeRepositories", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            json!({"StringEquals": {"aws:ResourceTag/team": "a"}}),
        );
        doc["Statement"].as_array_mut().unwrap().push(json!(
            {"Effect": "Deny", "Action": "ecr:*", "Resource": "*",
             "Condition": {"StringEquals": {"ecr:ResourceTag/env": "prod"}}}));
        berth.attach_policy_doc("dev", "p", &doc);
        let arn = format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/team-a/app");
        allowed(&berth, &berth.root_credentials(), "TagResource", json!({"resourceArn": arn, "tags": [{"Key": "env", "Value": "prod"}]}));
        denied(&berth, &dev, "DescribeRepositories", describe("team-a/app"));
        reg.get("/v2/team-a/app/manifests/v1").expect_oci_error(403, "DENIED");
        let (s, v) = ecr_status(&berth, &dev, "DescribeRepositories", json!({}));
        assert_eq!(s, 400, "no visible repository and no grant on repository/*: {v}");
        allowed(&berth, &berth.root_credentials(), "UntagResource", json!({"resourceArn": arn, "tagKeys": ["env"]}));
        reg.get("/v2/team-a/app/manifests/v1").expect_status(200);
    }
}

both_backends! {
    /// `aws:RequestTag/<k>` and `aws:TagKeys` on CreateRepository, TagResource and
    /// UntagResource, with the set operators.
    fn request_tags_and_tag_keys(backend) {
        let berth = Berth::start(backend);
        let t = user(&berth, "tagger");
        berth.attach_policy_doc("tagger", "p", &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ecr:CreateRepository", "ecr:TagResource"], "Resource": "*",
             "Condition": {"StringEquals": {"aws:RequestTag/team": "a"},
                           "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "env"]}}},
            {"Effect": "Allow", "Action": "ecr:UntagResource", "Resource": "*",
             "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["env"]}}},
            {"Effect": "Deny", "Action": "ecr:TagResource", "Resource": "*",
             "Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": ["owner*"]}}}
        ]}));
        let tags = |pairs: &[(&str, &str)]| json!(pairs.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>());
        allowed(&berth, &t, "CreateRepository", json!({"repositoryName": "a1", "tags": tags(&[("team", "a")])}));
        allowed(&berth, &t, "CreateRepository", json!({"repositoryName": "a2", "tags": tags(&[("team", "a"), ("env", "dev")])}));
        denied(&berth, &t, "CreateRepository", json!({"repositoryName": "b1", "tags": tags(&[("team", "b")])}));
        // No tags: aws:RequestTag/team is absent, so StringEquals is false.
        denied(&berth, &t, "CreateRepository", json!({"repositoryName": "none"}));
        // A key outside the allowed set fails ForAllValues.
        denied(&berth, &t, "CreateRepository", json!({"repositoryName": "c1", "tags": tags(&[("team", "a"), ("cost", "x")])}));
        let arn = |n: &str| format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{n}");
        allowed(&berth, &t, "TagResource", json!({"resourceArn": arn("a1"), "tags": tags(&[("team", "a"), ("env", "prod")])}));
        denied(&berth, &t, "TagResource", json!({"resourceArn": arn("a1"), "tags": tags(&[("env", "prod")])}));
        // ForAnyValue:StringLike in a Deny: one matching key is enough.
        berth.attach_policy_doc("tagger", "p", &json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["ecr:TagResource", "ecr:UntagResource"], "Resource": "*"},
            {"Effect": "Deny", "Action": ["ecr:TagResource", "ecr:UntagResource"], "Resource": "*",
             "Condition": {"ForAnyValue:StringLike": {"aws:TagKeys": ["owner*"]}}}
        ]}));
        allowed(&berth, &t, "TagResource", json!({"resourceArn": arn("a1"), "tags": tags(&[("cost", "x")])}));
        denied(&berth, &t, "TagResource", json!({"resourceArn": arn("a1"), "tags": tags(&[("cost", "y"), ("owner-id", "z")])}));
        denied(&berth, &t, "UntagResource", json!({"resourceArn": arn("a1"), "tagKeys": ["owner"]}));
        allowed(&berth, &t, "UntagResource", json!({"resourceArn": arn("a1"), "tagKeys": ["cost"]}));
        // The changes happened (and the refused ones did not).
        let listed = allowed(&berth, &berth.root_credentials(), "ListTagsForResource", json!({"resourceArn": arn("a1")}));
        let keys: Vec<&str> = listed["tags"].as_array().unwrap().iter().map(|t| t["Key"].as_str().unwrap()).collect();
        assert_eq!(keys, ["env", "team"]);
        let (s, _) = ecr_status(&berth, &berth.root_credentials(), "DescribeRepositories", describe("b1"));
        assert_eq!(s, 400, "a refused CreateRepository must not create");
    }
}

/// One row of the request-attribute matrix: a condition on an Allow statement for
/// pulls, and whether the ECR call (boto3-like SigV4 client) and the `/v2/` pull
/// are then allowed.
struct Row {
    condition: Value,
    ecr: bool,
    v2: bool,
}

both_backends! {
    /// Principal and request attributes: `aws:PrincipalTag/<k>` (also as a policy
    /// variable), `aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:username`,
    /// `aws:userid`, `aws:SourceIp`, `aws:SecureTransport`, `aws:CurrentTime`,
    /// `aws:EpochTime`, `aws:UserAgent`, `aws:RequestedRegion`, and the `IfExists`
    /// and `Null` operators on absent keys.
    fn principal_and_request_attributes(backend) {
        let berth = Berth::start(backend);
        setup_repos(&berth);
        let dev = user(&berth, "dev");
        berth.admin(&["user", "tag", "dev", "team=a", "level=3"]);
        assert_eq!(berth.admin(&["user", "tags", "dev"]).trim(), "level\t3\nteam\ta");
        let uid = berth
            .admin(&["user", "list"])
            .lines()
            .find_map(|l| l.strip_prefix("dev\t").map(str::to_string))
            .unwrap();
        let arn = format!("arn:aws:iam::{ACCOUNT}:user/dev");
        let rows = vec![
            Row { condition: json!({"StringEquals": {"aws:ResourceTag/team": "${aws:PrincipalTag/team}"}}), ecr: true, v2: true },
            Row { condition: json!({"StringEquals": {"aws:PrincipalTag/team": "b"}}), ecr: false, v2: false },
            Row { condition: json!({"NumericGreaterThanEquals": {"aws:PrincipalTag/level": "3"}}), ecr: true, v2: true },
            Row { condition: json!({"StringEquals": {"aws:PrincipalTag/missing": "x"}}), ecr: false, v2: false },
            Row { condition: json!({"StringEqualsIfExists": {"aws:PrincipalTag/missing": "x"}}), ecr: true, v2: true },
            Row { condition: json!({"Null": {"aws:PrincipalTag/missing": "true"}}), ecr: true, v2: true },
            Row { condition: json!({"Null": {"aws:PrincipalTag/team": "true"}}), ecr: false, v2: false },
            Row { condition: json!({"ArnEquals": {"aws:PrincipalArn": arn}}), ecr: true, v2: true },
            Row { condition: json!({"StringEquals": {"aws:PrincipalAccount": ACCOUNT}}), ecr: true, v2: true },
            Row { condition: json!({"StringEquals": {"aws:PrincipalAccount": "210987654321"}}), ecr: false, v2: false },
            Row { condition: json!({"StringEquals": {"aws:username": "dev"}}), ecr: true, v2: true },
            Row { condition: json!({"StringEquals": {"aws:userid": uid}}), ecr: true, v2: true },
            Row { condition: json!({"StringEquals": {"aws:userid": "AIDAOTHER"}}), ecr: false, v2: false },
            Row { condition: json!({"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}), ecr: true, v2: true },
            Row { condition: json!({"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}), ecr: false, v2: false },
            Row { condition: json!({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}), ecr: true, v2: true },
            Row { condition: json!({"Bool": {"aws:SecureTransport": "false"}}), ecr: true, v2: true },
            Row { condition: json!({"Bool": {"aws:SecureTransport": "true"}}), ecr: false, v2: false },
            Row { condition: json!({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}), ecr: true, v2: true },
            Row { condition: json!({"DateLessThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}), ecr: false, v2: false },
            Row { condition: json!({"NumericGreaterThan": {"aws:EpochTime": "1577836800"}}), ecr: true, v2: true },
            Row { condition: json!({"StringEquals": {"aws:RequestedRegion": "us-east-1"}}), ecr: true, v2: true },
            Row { condition: json!({"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}), ecr: false, v2: false },
            // The hand-written clients send `User-Agent: berth-e2e`.
            Row { condition: json!({"StringLike": {"aws:UserAgent": "berth-e2e*"}}), ecr: true, v2: true },
            Row { condition: json!({"StringLike": {"aws:UserAgent": "*Boto3*"}}), ecr: false, v2: false },
        ];
        berth.attach_policy_doc("dev", "p", &allow(&["ecr:BatchGetImage"], rows[0].condition.clone()));
        let reg = registry_as(&berth, &dev);
        for (i, row) in rows.iter().enumerate() {
            berth.attach_policy_doc("dev", "p", &allow(&["ecr:DescribeRepositories", "ecr:BatchGetImage"], row.condition.clone()));
            let (s, v) = ecr_status(&berth, &dev, "DescribeRepositories", describe("team-a/app"));
            assert_eq!(s == 200, row.ecr, "row {i} {}: ECR answered {s} {v}", row.condition);
            let r = reg.get("/v2/team-a/app/manifests/v1");
            assert_eq!(r.status == 200, row.v2, "row {i} {}: /v2/ answered {}", row.condition, r.describe());
            if !row.v2 {
                r.expect_oci_error(403, "DENIED");
            }
        }
        // A user-agent condition seen by boto3 (it always sends one).
        berth.attach_policy_doc("dev", "p", &allow(&["ecr:DescribeRepositories"], json!({"StringLike": {"aws:UserAgent": "*Boto3*"}})));
        let names = boto3(&berth, &dev, "print(len(ecr.describe_repositories(repositoryNames=['team-a/app'])['repositories']))");
        assert_eq!(names.trim(), "1");
        // Tags of a principal can be removed; the policy sees it at once.
        berth.attach_policy_doc("dev", "p", &allow(&["ecr:DescribeRepositories"], json!({"StringEquals": {"aws:PrincipalTag/team": "a"}})));
        allowed(&berth, &dev, "DescribeRepositories", describe("team-a/app"));
        berth.admin(&["user", "untag", "dev", "team"]);
        denied(&berth, &dev, "DescribeRepositories", describe("team-a/app"));
    }
}

/// `aws:SourceIp` and `aws:SecureTransport` from `X-Forwarded-*`, believed only
/// from a configured trusted proxy.
#[test]
fn forwarded_source_ip_only_from_trusted_proxies() {
    for (trusted, expect_forwarded) in [(Some("127.0.0.1/32"), true), (None, false)] {
        let mut opts = Berth::options(Backend::Sqlite);
        if let Some(t) = trusted {
            opts = opts.env("BERTH_TRUSTED_PROXIES", t);
        }
        let berth = opts.start();
        setup_repos(&berth);
        let dev = user(&berth, "dev");
        berth.attach_policy_doc(
            "dev",
            "p",
            &allow(
                &["ecr:BatchGetImage"],
                json!({"IpAddress": {"aws:SourceIp": "203.0.113.0/24"}, "Bool": {"aws:SecureTransport": "true"}}),
            ),
        );
        let reg = registry_as(&berth, &dev);
        let via_proxy = reg.send(
            "GET",
            "/v2/team-a/app/manifests/v1",
            &[
                ("X-Forwarded-For", "203.0.113.7"),
                ("X-Forwarded-Proto", "https"),
            ],
            Vec::new(),
        );
        assert_eq!(
            via_proxy.status == 200,
            expect_forwarded,
            "{}",
            via_proxy.describe()
        );
        // Direct (no forwarded headers): 127.0.0.1 over plain HTTP.
        reg.get("/v2/team-a/app/manifests/v1")
            .expect_oci_error(403, "DENIED");
    }
}

both_backends! {
    /// `kms:ViaService`: a customer KMS key used through ECR (CreateRepository with
    /// the key) needs kms:DescribeKey and kms:CreateGrant on it, evaluated with
    /// `kms:ViaService = ecr.<region>.amazonaws.com`; the same grant does not let
    /// the caller use the key through KMS directly.
    fn kms_keys_used_through_ecr_carry_via_service(backend) {
        let berth = Berth::start(backend);
        let key_arn = berth.admin(&["kms", "create", "--alias", "team"]).trim().to_string();
        let dev = user(&berth, "dev");
        let create = |name: &str| json!({"repositoryName": name, "encryptionConfiguration": {"encryptionType": "KMS", "kmsKey": "alias/team"}});
        let ecr_only = json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]});
        berth.attach_policy_doc("dev", "p", &ecr_only);
        let (s, v) = ecr_status(&berth, &dev, "CreateRepository", create("k1"));
        assert_eq!((s, v["__type"].as_str()), (400, Some("AccessDeniedException")), "{v}");
        assert!(v["message"].as_str().unwrap().contains("kms:DescribeKey"), "{v}");
        let mut via = ecr_only.clone();
        via["Statement"].as_array_mut().unwrap().push(json!(
            {"Effect": "Allow", "Action": ["kms:DescribeKey", "kms:CreateGrant"], "Resource": key_arn,
             "Condition": {"StringEquals": {"kms:ViaService": "ecr.us-east-1.amazonaws.com"}}}));
        berth.attach_policy_doc("dev", "p", &via);
        let v = allowed(&berth, &dev, "CreateRepository", create("k1"));
        assert_eq!(v["repository"]["encryptionConfiguration"]["kmsKey"], key_arn.as_str());
        // Directly through KMS there is no kms:ViaService: refused.
        let r = berth_testsupport::ecr::call(
            &Http::new(berth.addr()),
            &berth.host(),
            &dev,
            "us-east-1",
            "kms",
            "TrentService.DescribeKey",
            &json!({"KeyId": key_arn}),
        );
        assert_eq!(r.status, 400, "{}", r.describe());
        assert_eq!(r.json()["__type"], "AccessDeniedException");
        // A ViaService naming another service does not match.
        via["Statement"][1]["Condition"]["StringEquals"]["kms:ViaService"] = json!("s3.us-east-1.amazonaws.com");
        berth.attach_policy_doc("dev", "p", &via);
        denied(&berth, &dev, "CreateRepository", create("k2"));
        // The account's default aws/ecr key needs no KMS permission (AWS managed).
        berth.attach_policy_doc("dev", "p", &ecr_only);
        allowed(&berth, &dev, "CreateRepository", json!({"repositoryName": "k3", "encryptionConfiguration": {"encryptionType": "KMS"}}));
    }
}
