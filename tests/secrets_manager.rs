//! The Secrets Manager subset (`secretsmanager.<Op>`, SigV4 service
//! `secretsmanager`): secrets, their versions and staging labels, deletion with a
//! recovery window and restore, tags, errors in Secrets Manager's shape, IAM
//! authorization, and values sealed at rest. Terraform's `aws_secretsmanager_secret`
//! and `aws_secretsmanager_secret_version` run in `pull_through.rs` with the rule
//! that uses the secret.

use std::path::Path;

use berth_testsupport::ecr::{self, Credentials};
use berth_testsupport::{both_backends, Berth, Http, Response};
use serde_json::{json, Value};

fn call(berth: &Berth, creds: &Credentials, op: &str, body: &Value) -> Response {
    ecr::call(
        &Http::new(berth.addr()),
        &berth.host(),
        creds,
        ecr::TEST_REGION,
        "secretsmanager",
        &format!("secretsmanager.{op}"),
        body,
    )
}

#[track_caller]
fn ok(r: Response) -> Value {
    r.expect_status(200);
    r.json()
}

#[track_caller]
fn aws_error(r: &Response, ty: &str) {
    r.expect_status(400);
    assert_eq!(r.json()["__type"], ty, "{}", r.describe());
}

/// Whether any file under `dir` contains `needle`.
fn found_in_files(dir: &Path, needle: &[u8]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let p = e.path();
        if p.is_dir() {
            found_in_files(&p, needle)
        } else {
            std::fs::read(&p).is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle))
        }
    })
}

both_backends! {
    fn secrets_versions_stages_deletion_and_tags(backend) {
        let berth = Berth::start(backend);
        let root = berth.root_credentials();
        let sm = |op: &str, body: Value| call(&berth, &root, op, &body);

        let v = ok(sm("CreateSecret", json!({
            "Name": "ecr-pullthroughcache/hub",
            "Description": "hub credentials",
            "SecretString": "{\"username\":\"u\",\"accessToken\":\"first-7f3a9c\"}",
            "Tags": [{"Key": "team", "Value": "a"}],
        })));
        let arn = v["ARN"].as_str().expect("ARN").to_string();
        let prefix = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-";
        assert!(arn.starts_with(prefix) && arn.len() == prefix.len() + 6, "{arn}");
        assert_eq!(v["Name"], "ecr-pullthroughcache/hub");
        let first = v["VersionId"].as_str().expect("VersionId").to_string();

        aws_error(&sm("CreateSecret", json!({"Name": "ecr-pullthroughcache/hub", "SecretString": "x"})), "ResourceExistsException");
        aws_error(&sm("CreateSecret", json!({"Name": "bad name!"})), "InvalidParameterException");
        aws_error(&sm("CreateSecret", json!({"Name": "both", "SecretString": "a", "SecretBinary": "YQ=="})), "InvalidParameterException");
        aws_error(&sm("GetSecretValue", json!({"SecretId": "nope"})), "ResourceNotFoundException");
        aws_error(&sm("DescribeSecret", json!({"SecretId": format!("{prefix}XXXXXX")})), "ResourceNotFoundException");

        // By name, full ARN and partial ARN.
        for id in [arn.as_str(), "ecr-pullthroughcache/hub", "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub"] {
            let v = ok(sm("GetSecretValue", json!({"SecretId": id})));
            assert_eq!(v["SecretString"], "{\"username\":\"u\",\"accessToken\":\"first-7f3a9c\"}", "{id}");
            assert_eq!(v["VersionStages"], json!(["AWSCURRENT"]));
            assert_eq!(v["ARN"], arn.as_str());
        }

        // A new value takes AWSCURRENT; the old one becomes AWSPREVIOUS.
        let token = "0123456789abcdef0123456789abcdef";
        let v = ok(sm("PutSecretValue", json!({"SecretId": arn, "ClientRequestToken": token, "SecretString": "second-value"})));
        assert_eq!(v["VersionId"], token);
        assert_eq!(v["VersionStages"], json!(["AWSCURRENT"]));
        // The same token and value again is a no-op; another value is refused.
        ok(sm("PutSecretValue", json!({"SecretId": arn, "ClientRequestToken": token, "SecretString": "second-value"})));
        aws_error(&sm("PutSecretValue", json!({"SecretId": arn, "ClientRequestToken": token, "SecretString": "other"})), "ResourceExistsException");
        assert_eq!(ok(sm("GetSecretValue", json!({"SecretId": arn})))["SecretString"], "second-value");
        let v = ok(sm("GetSecretValue", json!({"SecretId": arn, "VersionStage": "AWSPREVIOUS"})));
        assert_eq!(v["VersionId"], first.as_str());
        let v = ok(sm("GetSecretValue", json!({"SecretId": arn, "VersionId": first})));
        assert_eq!(v["VersionStages"], json!(["AWSPREVIOUS"]));
        ok(sm("PutSecretValue", json!({"SecretId": arn, "SecretBinary": "AAEC/w=="})));
        assert_eq!(ok(sm("GetSecretValue", json!({"SecretId": arn})))["SecretBinary"], "AAEC/w==");
        let d = ok(sm("DescribeSecret", json!({"SecretId": arn})));
        let stages = d["VersionIdsToStages"].as_object().expect("stages");
        assert_eq!(stages.len(), 3, "{d}");
        assert_eq!(stages[&first], json!([]), "{d}");
        assert_eq!(stages[token], json!(["AWSPREVIOUS"]), "{d}");
        assert_eq!(d["Description"], "hub credentials");
        assert_eq!(d["Tags"], json!([{"Key": "team", "Value": "a"}]));

        // Tags.
        ok(sm("TagResource", json!({"SecretId": arn, "Tags": [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "b"}]})));
        ok(sm("UntagResource", json!({"SecretId": arn, "TagKeys": ["env"]})));
        assert_eq!(ok(sm("DescribeSecret", json!({"SecretId": arn})))["Tags"], json!([{"Key": "team", "Value": "b"}]));

        // Listing and filters.
        ok(sm("CreateSecret", json!({"Name": "db/password", "SecretString": "pw"})));
        let names = |v: &Value| -> Vec<String> {
            v["SecretList"].as_array().expect("list").iter().map(|s| s["Name"].as_str().unwrap_or("").to_string()).collect()
        };
        assert_eq!(names(&ok(sm("ListSecrets", json!({})))), ["db/password", "ecr-pullthroughcache/hub"]);
        assert_eq!(names(&ok(sm("ListSecrets", json!({"Filters": [{"Key": "name", "Values": ["ecr-pull"]}]})))), ["ecr-pullthroughcache/hub"]);
        assert_eq!(names(&ok(sm("ListSecrets", json!({"Filters": [{"Key": "tag-value", "Values": ["b"]}]})))), ["ecr-pullthroughcache/hub"]);
        let page = ok(sm("ListSecrets", json!({"MaxResults": 1})));
        assert_eq!(names(&page), ["db/password"]);
        assert_eq!(names(&ok(sm("ListSecrets", json!({"MaxResults": 1, "NextToken": page["NextToken"]})))), ["ecr-pullthroughcache/hub"]);

        // Deletion with a recovery window, and restore.
        aws_error(&sm("DeleteSecret", json!({"SecretId": arn, "RecoveryWindowInDays": 3})), "InvalidParameterException");
        aws_error(&sm("DeleteSecret", json!({"SecretId": arn, "RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": true})), "InvalidParameterException");
        let v = ok(sm("DeleteSecret", json!({"SecretId": arn, "RecoveryWindowInDays": 7})));
        assert!(v["DeletionDate"].is_number(), "{v}");
        let r = sm("GetSecretValue", json!({"SecretId": arn}));
        aws_error(&r, "InvalidRequestException");
        assert!(r.json()["message"].as_str().unwrap_or("").contains("marked for deletion"), "{}", r.describe());
        assert!(ok(sm("DescribeSecret", json!({"SecretId": arn})))["DeletedDate"].is_number());
        assert_eq!(names(&ok(sm("ListSecrets", json!({})))), ["db/password"]);
        assert_eq!(names(&ok(sm("ListSecrets", json!({"IncludePlannedDeletion": true})))).len(), 2);
        let r = sm("CreateSecret", json!({"Name": "ecr-pullthroughcache/hub"}));
        aws_error(&r, "InvalidRequestException");
        assert!(r.json()["message"].as_str().unwrap_or("").contains("scheduled for deletion"), "{}", r.describe());
        ok(sm("RestoreSecret", json!({"SecretId": arn})));
        assert_eq!(ok(sm("GetSecretValue", json!({"SecretId": arn})))["SecretBinary"], "AAEC/w==");
        ok(sm("DeleteSecret", json!({"SecretId": "db/password", "ForceDeleteWithoutRecovery": true})));
        aws_error(&sm("DescribeSecret", json!({"SecretId": "db/password"})), "ResourceNotFoundException");
        ok(sm("CreateSecret", json!({"Name": "db/password"})));

        // Values are sealed at rest: the plaintext is nowhere in the data directory
        // (the SQLite database and its journal), while the secret's name is.
        if berth.database_url().is_none() {
            assert!(found_in_files(&berth.data_dir(), b"ecr-pullthroughcache/hub"), "the store holds the secret");
            assert!(!found_in_files(&berth.data_dir(), b"first-7f3a9c"), "a secret value is stored in plaintext");
            assert!(!found_in_files(&berth.data_dir(), b"second-value"), "a secret value is stored in plaintext");
        }
    }
}

both_backends! {
    fn secrets_are_authorized_per_account_and_action(backend) {
        let berth = Berth::start(backend);
        let root = berth.root_credentials();
        let v = ok(call(&berth, &root, "CreateSecret", &json!({"Name": "ecr-pullthroughcache/q", "SecretString": "s3cr3t"})));
        let arn = v["ARN"].as_str().expect("ARN").to_string();

        // A user without a policy is denied every call, and learns nothing.
        berth.admin(&["user", "create", "nobody"]);
        let nobody = berth.access_key(&["--user", "nobody"]);
        for (op, body) in [
            ("GetSecretValue", json!({"SecretId": arn})),
            ("GetSecretValue", json!({"SecretId": "missing"})),
            ("DescribeSecret", json!({"SecretId": arn})),
            ("ListSecrets", json!({})),
            ("CreateSecret", json!({"Name": "x1"})),
            ("DeleteSecret", json!({"SecretId": arn})),
        ] {
            aws_error(&call(&berth, &nobody, op, &body), "AccessDeniedException");
        }
        // ECR permissions do not reach Secrets Manager.
        berth.admin(&["user", "create", "pusher"]);
        berth.admin(&["policy", "attach", "--user", "pusher", "PowerUser"]);
        let pusher = berth.access_key(&["--user", "pusher"]);
        aws_error(&call(&berth, &pusher, "GetSecretValue", &json!({"SecretId": arn})), "AccessDeniedException");

        // Another account sees its own secrets only; an ARN of this account is not
        // found there.
        berth.admin(&["account", "create", "210987654321"]);
        let other = berth.access_key(&["--account", "210987654321"]);
        aws_error(&call(&berth, &other, "GetSecretValue", &json!({"SecretId": arn})), "ResourceNotFoundException");
        aws_error(&call(&berth, &other, "GetSecretValue", &json!({"SecretId": "ecr-pullthroughcache/q"})), "ResourceNotFoundException");
        assert_eq!(ok(call(&berth, &other, "ListSecrets", &json!({})))["SecretList"], json!([]));

        // Signed for another service, the call is refused.
        let r = ecr::call(&Http::new(berth.addr()), &berth.host(), &root, ecr::TEST_REGION, "ecr", "secretsmanager.ListSecrets", &json!({}));
        assert!(r.status == 400 || r.status == 403, "{}", r.describe());
        // Unsupported operations are refused in Secrets Manager's shape.
        aws_error(&call(&berth, &root, "RotateSecret", &json!({"SecretId": arn})), "InvalidRequestException");
    }
}
