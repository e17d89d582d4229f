//! Pull-through cache rules: the four stored operations with ECR's validation and
//! errors, and Terraform's `aws_ecr_pull_through_cache_rule`. (The pull flow through
//! a rule is not served yet; see the README's "Pull-through cache rules".)

use std::path::Path;
use std::process::{Command, Output};

use berth_testsupport::ecr::{self, Credentials};
use berth_testsupport::tools::require;
use berth_testsupport::{both_backends, Berth, Http, Response, TempDir};
use serde_json::{json, Value};

#[track_caller]
fn aws_error(r: &Response, ty: &str) {
    r.expect_status(400);
    assert_eq!(r.json()["__type"], ty, "{}", r.describe());
}

#[track_caller]
fn ok(r: Response) -> Value {
    r.expect_status(200);
    r.json()
}

/// A Secrets Manager call (`secretsmanager.<op>`) as the account root.
fn secrets(berth: &Berth, op: &str, body: &Value) -> Response {
    ecr::call(
        &Http::new(berth.addr()),
        &berth.host(),
        &berth.root_credentials(),
        ecr::TEST_REGION,
        "secretsmanager",
        &format!("secretsmanager.{op}"),
        body,
    )
}

const HUB_SECRET: &str =
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-AbCdEf";

both_backends! {
    fn pull_through_rules_crud_and_validation(backend) {
        let berth = Berth::start(backend);
        let create = |body: Value| berth.ecr("CreatePullThroughCacheRule", &body);
        let v = ok(create(json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": "registry-1.docker.io", "credentialArn": HUB_SECRET})));
        assert_eq!(v["ecrRepositoryPrefix"], "hub");
        assert_eq!(v["upstreamRegistryUrl"], "registry-1.docker.io");
        assert_eq!(v["upstreamRegistry"], "docker-hub");
        // Left out when not given (Terraform's attribute is not computed).
        assert!(v.get("upstreamRepositoryPrefix").is_none(), "{v}");
        assert_eq!(v["credentialArn"], HUB_SECRET);
        assert_eq!(v["registryId"], "123456789012");
        assert!(v["createdAt"].is_number(), "{v}");
        let v = ok(create(json!({"ecrRepositoryPrefix": "local", "upstreamRegistryUrl": "http://127.0.0.1:5000", "upstreamRepositoryPrefix": "mirror"})));
        assert!(v.get("upstreamRegistry").is_none(), "{v}");
        assert_eq!(v["upstreamRepositoryPrefix"], "mirror");

        aws_error(&create(json!({"ecrRepositoryPrefix": "hub", "upstreamRegistryUrl": "quay.io"})), "PullThroughCacheRuleAlreadyExistsException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "a", "upstreamRegistryUrl": "quay.io"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "Quay", "upstreamRegistryUrl": "quay.io"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io/path"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "http://quay.io"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io", "upstreamRegistry": "dockerhub"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "quay", "upstreamRegistryUrl": "quay.io", "credentialArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:other/quay-abc"})), "InvalidParameterException");
        aws_error(&create(json!({"ecrRepositoryPrefix": "ROOT", "upstreamRegistryUrl": "quay.io", "upstreamRepositoryPrefix": "x1"})), "InvalidParameterException");
        ok(create(json!({"ecrRepositoryPrefix": "ROOT", "upstreamRegistryUrl": "quay.io"})));

        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({})));
        let prefixes: Vec<&str> = v["pullThroughCacheRules"].as_array().expect("rules").iter().filter_map(|r| r["ecrRepositoryPrefix"].as_str()).collect();
        assert_eq!(prefixes, ["ROOT", "hub", "local"]);
        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({"ecrRepositoryPrefixes": ["hub"]})));
        assert_eq!(v["pullThroughCacheRules"][0]["upstreamRegistry"], "docker-hub");
        // Terraform reads a rule by its prefix and takes NotFound as "gone".
        aws_error(&berth.ecr("DescribePullThroughCacheRules", &json!({"ecrRepositoryPrefixes": ["nope"]})), "PullThroughCacheRuleNotFoundException");
        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({"maxResults": 2})));
        assert_eq!(v["pullThroughCacheRules"].as_array().map(Vec::len), Some(2));
        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({"maxResults": 2, "nextToken": v["nextToken"]})));
        assert_eq!(v["pullThroughCacheRules"][0]["ecrRepositoryPrefix"], "local");

        // Only the credential and the role change.
        let v = ok(berth.ecr("UpdatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "hub", "customRoleArn": "arn:aws:iam::123456789012:role/ptc"})));
        assert_eq!(v["customRoleArn"], "arn:aws:iam::123456789012:role/ptc");
        assert_eq!(v["credentialArn"], HUB_SECRET);
        assert!(v["updatedAt"].is_number(), "{v}");
        aws_error(&berth.ecr("UpdatePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "nope", "customRoleArn": "r"})), "PullThroughCacheRuleNotFoundException");

        let v = ok(berth.ecr("DeletePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "hub"})));
        assert_eq!(v["upstreamRegistryUrl"], "registry-1.docker.io");
        assert_eq!(v["customRoleArn"], "arn:aws:iam::123456789012:role/ptc");
        aws_error(&berth.ecr("DeletePullThroughCacheRule", &json!({"ecrRepositoryPrefix": "hub"})), "PullThroughCacheRuleNotFoundException");
    }
}

/// Terraform with the hashicorp/aws provider from the machine's offline mirror (as
/// in `ecr_workflow.rs`).
fn terraform(dir: &Path, args: &[&str], endpoint: &str, creds: &Credentials) -> Output {
    require(
        "terraform",
        "install Terraform 1.11 and the hashicorp/aws provider mirror (BERTH_TF_PLUGIN_DIR, default /opt/tf-plugins)",
    );
    let mirror = std::env::var("BERTH_TF_PLUGIN_DIR").unwrap_or_else(|_| "/opt/tf-plugins".into());
    let rc = dir.join("terraformrc");
    std::fs::write(
        &rc,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path = \"{mirror}\"\n    include = [\"registry.terraform.io/*/*\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/*/*\"]\n  }}\n}}\ndisable_checkpoint = true\n"
        ),
    )
    .expect("terraformrc");
    Command::new("terraform")
        .args(args)
        .current_dir(dir)
        .env("TF_CLI_CONFIG_FILE", &rc)
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_VAR_endpoint", endpoint)
        .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run terraform")
}

both_backends! {
    fn terraform_pull_through_cache_rules(backend) {
        let berth = Berth::start(backend);
        let root = berth.root_credentials();
        let tmp = TempDir::new("tfptc");
        let dir = tmp.join("ptc");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/terraform-ptc");
        std::fs::copy(fixtures.join("main.tf"), dir.join("main.tf")).expect("copy");
        let url = berth.url();
        let run = |args: &[&str]| {
            let o = terraform(&dir, args, &url, &root);
            (o.status.code(), format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        };
        let (rc, log) = run(&["init", "-input=false", "-no-color"]);
        assert_eq!(rc, Some(0), "init:\n{log}");
        let (rc, log) = run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert_eq!(rc, Some(0), "apply:\n{log}\n{}", berth.stderr_tail(30));
        let (rc, log) = run(&["plan", "-detailed-exitcode", "-input=false", "-no-color"]);
        assert_eq!(rc, Some(0), "the second plan must report no changes:\n{log}");
        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({"ecrRepositoryPrefixes": ["hub"]})));
        let r = &v["pullThroughCacheRules"][0];
        assert_eq!(r["upstreamRegistry"], "docker-hub");
        assert_eq!(r["upstreamRepositoryPrefix"], "library");
        // The credential is the secret Terraform created through berth's Secrets
        // Manager, holding the value Terraform put.
        let arn = r["credentialArn"].as_str().expect("credentialArn").to_string();
        assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/hub-"), "{arn}");
        let v = ok(secrets(&berth, "GetSecretValue", &json!({"SecretId": arn})));
        assert_eq!(v["SecretString"], r#"{"accessToken":"tf-token-1","username":"puller"}"#);
        let v = ok(secrets(&berth, "DescribeSecret", &json!({"SecretId": "ecr-pullthroughcache/hub"})));
        assert_eq!(v["Tags"], json!([{"Key": "team", "Value": "platform"}]));
        let (rc, log) = run(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
        assert_eq!(rc, Some(0), "destroy:\n{log}");
        let v = ok(berth.ecr("DescribePullThroughCacheRules", &json!({})));
        assert_eq!(v["pullThroughCacheRules"], json!([]));
        // Destroyed with Terraform's default recovery window: marked for deletion.
        let v = ok(secrets(&berth, "DescribeSecret", &json!({"SecretId": "ecr-pullthroughcache/hub"})));
        assert!(v["DeletedDate"].is_number(), "{v}");
    }
}
