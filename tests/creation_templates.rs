//! Repository creation templates: the four operations with ECR's validation and
//! errors, and their application to the repositories berth creates by itself —
//! here on push (a matching `CREATE_ON_PUSH` template creates the repository with
//! the template's settings; with such templates, a push matching none is refused).

use std::path::Path;

use berth_testsupport::layout::{pseudo_random, push_blob};
use berth_testsupport::tools::Terraform;
use berth_testsupport::{both_backends, Berth, Blob, Response, TempDir};
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

const LIFECYCLE: &str = r#"{"rules":[{"rulePriority":1,"description":"old untagged","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;

fn repo_policy() -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "pull", "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]}]})
    .to_string()
}

both_backends! {
    fn creation_templates_crud_and_validation(backend) {
        let berth = Berth::start(backend);
        let create = |body: Value| berth.ecr("CreateRepositoryCreationTemplate", &body);
        let v = ok(create(json!({
            "prefix": "prod",
            "description": "production",
            "appliedFor": ["PULL_THROUGH_CACHE", "CREATE_ON_PUSH"],
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "latest*"}],
            "resourceTags": [{"Key": "team", "Value": "core"}],
            "repositoryPolicy": repo_policy(),
            "lifecyclePolicy": LIFECYCLE,
        })));
        assert_eq!(v["registryId"], "123456789012");
        let t = &v["repositoryCreationTemplate"];
        assert_eq!(t["prefix"], "prod");
        assert_eq!(t["description"], "production");
        assert_eq!(t["appliedFor"], json!(["PULL_THROUGH_CACHE", "CREATE_ON_PUSH"]));
        assert_eq!(t["encryptionConfiguration"], json!({"encryptionType": "AES256"}));
        assert_eq!(t["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
        assert_eq!(t["imageTagMutabilityExclusionFilters"], json!([{"filterType": "WILDCARD", "filter": "latest*"}]));
        assert_eq!(t["resourceTags"], json!([{"Key": "team", "Value": "core"}]));
        assert_eq!(t["lifecyclePolicy"], LIFECYCLE);
        assert!(t["createdAt"].is_number() && t["updatedAt"].is_number(), "{t}");

        aws_error(&create(json!({"prefix": "prod", "appliedFor": ["REPLICATION"]})), "TemplateAlreadyExistsException");
        aws_error(&create(json!({"prefix": "Bad/Prefix", "appliedFor": ["REPLICATION"]})), "InvalidParameterException");
        aws_error(&create(json!({"prefix": "x"})), "InvalidParameterException");
        aws_error(&create(json!({"prefix": "x", "appliedFor": []})), "InvalidParameterException");
        aws_error(&create(json!({"prefix": "x", "appliedFor": ["EVERYTHING"]})), "InvalidParameterException");
        aws_error(&create(json!({"prefix": "x", "appliedFor": ["REPLICATION"], "repositoryPolicy": "{"})), "InvalidParameterException");
        aws_error(&create(json!({"prefix": "x", "appliedFor": ["REPLICATION"], "lifecyclePolicy": "{\"rules\": 1}"})), "InvalidParameterException");
        aws_error(&create(json!({"prefix": "x", "appliedFor": ["REPLICATION"], "encryptionConfiguration": {"encryptionType": "AES256", "kmsKey": "k"}})), "InvalidParameterException");
        aws_error(&create(json!({"prefix": "x", "appliedFor": ["REPLICATION"], "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION"})), "InvalidParameterException");
        // KMS without a key: the account's aws/ecr key, reported by its ARN.
        let v = ok(create(json!({"prefix": "ROOT", "appliedFor": ["REPLICATION"], "encryptionConfiguration": {"encryptionType": "KMS"}})));
        let key = v["repositoryCreationTemplate"]["encryptionConfiguration"]["kmsKey"].as_str().unwrap_or("").to_string();
        assert!(key.starts_with("arn:aws:kms:us-east-1:123456789012:key/"), "{v}");

        let v = ok(berth.ecr("DescribeRepositoryCreationTemplates", &json!({})));
        let prefixes: Vec<&str> = v["repositoryCreationTemplates"].as_array().expect("list").iter().filter_map(|t| t["prefix"].as_str()).collect();
        assert_eq!(prefixes, ["ROOT", "prod"]);
        let v = ok(berth.ecr("DescribeRepositoryCreationTemplates", &json!({"prefixes": ["prod"]})));
        assert_eq!(v["repositoryCreationTemplates"].as_array().map(Vec::len), Some(1));
        let v = ok(berth.ecr("DescribeRepositoryCreationTemplates", &json!({"maxResults": 1})));
        assert_eq!(v["repositoryCreationTemplates"][0]["prefix"], "ROOT");
        let next = v["nextToken"].as_str().expect("nextToken").to_string();
        let v = ok(berth.ecr("DescribeRepositoryCreationTemplates", &json!({"maxResults": 1, "nextToken": next})));
        assert_eq!(v["repositoryCreationTemplates"][0]["prefix"], "prod");
        assert!(v.get("nextToken").is_none(), "{v}");

        // Update changes only what it names.
        let v = ok(berth.ecr("UpdateRepositoryCreationTemplate", &json!({"prefix": "prod", "description": "prod images", "appliedFor": ["CREATE_ON_PUSH"]})));
        let t = &v["repositoryCreationTemplate"];
        assert_eq!(t["description"], "prod images");
        assert_eq!(t["appliedFor"], json!(["CREATE_ON_PUSH"]));
        assert_eq!(t["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION");
        assert_eq!(t["lifecyclePolicy"], LIFECYCLE);
        aws_error(&berth.ecr("UpdateRepositoryCreationTemplate", &json!({"prefix": "nope", "description": "x"})), "TemplateNotFoundException");

        let v = ok(berth.ecr("DeleteRepositoryCreationTemplate", &json!({"prefix": "ROOT"})));
        assert_eq!(v["repositoryCreationTemplate"]["prefix"], "ROOT");
        aws_error(&berth.ecr("DeleteRepositoryCreationTemplate", &json!({"prefix": "ROOT"})), "TemplateNotFoundException");
    }
}

both_backends! {
    fn create_on_push_applies_the_matching_template(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let b = Blob::new("application/octet-stream", pseudo_random(41, 2000));
        // Without templates, BERTH_CREATE_ON_PUSH (on by default) creates with defaults.
        push_blob(&http, "plain/app", &b);
        ok(berth.ecr("CreateRepositoryCreationTemplate", &json!({
            "prefix": "prod",
            "appliedFor": ["CREATE_ON_PUSH"],
            "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "latest"}],
            "resourceTags": [{"Key": "team", "Value": "core"}],
            "repositoryPolicy": repo_policy(),
            "lifecyclePolicy": LIFECYCLE,
        })));
        // A template for another purpose does not create on push.
        ok(berth.ecr("CreateRepositoryCreationTemplate", &json!({"prefix": "ROOT", "appliedFor": ["REPLICATION"]})));

        push_blob(&http, "prod/team/app", &b);
        let v = ok(berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["prod/team/app"]})));
        let r = &v["repositories"][0];
        assert_eq!(r["imageTagMutability"], "IMMUTABLE_WITH_EXCLUSION", "{v}");
        assert_eq!(r["imageTagMutabilityExclusionFilters"], json!([{"filterType": "WILDCARD", "filter": "latest"}]));
        assert_eq!(r["encryptionConfiguration"]["encryptionType"], "AES256");
        let arn = r["repositoryArn"].as_str().expect("arn").to_string();
        let v = ok(berth.ecr("ListTagsForResource", &json!({"resourceArn": arn})));
        assert_eq!(v["tags"], json!([{"Key": "team", "Value": "core"}]));
        let v = ok(berth.ecr("GetRepositoryPolicy", &json!({"repositoryName": "prod/team/app"})));
        let got: Value = serde_json::from_str(v["policyText"].as_str().unwrap_or("")).expect("policy json");
        let want: Value = serde_json::from_str(&repo_policy()).expect("json");
        assert_eq!(got, want);
        let v = ok(berth.ecr("GetLifecyclePolicy", &json!({"repositoryName": "prod/team/app"})));
        assert_eq!(v["lifecyclePolicyText"], LIFECYCLE);

        // With a CREATE_ON_PUSH template in the account, a push that matches none is
        // refused as on ECR, whatever BERTH_CREATE_ON_PUSH says…
        http.send("POST", "/v2/dev/app/blobs/uploads/", &[], "").expect_oci_error(404, "NAME_UNKNOWN");
        // …and existing repositories are untouched by templates.
        push_blob(&http, "plain/app", &b);
        let v = ok(berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["plain/app"]})));
        assert_eq!(v["repositories"][0]["imageTagMutability"], "MUTABLE");
        // A ROOT template for CREATE_ON_PUSH covers the rest, with its own settings.
        ok(berth.ecr("UpdateRepositoryCreationTemplate", &json!({"prefix": "ROOT", "appliedFor": ["REPLICATION", "CREATE_ON_PUSH"], "imageTagMutability": "IMMUTABLE"})));
        push_blob(&http, "dev/app", &b);
        let v = ok(berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["dev/app"]})));
        assert_eq!(v["repositories"][0]["imageTagMutability"], "IMMUTABLE");
    }
}

both_backends! {
    fn templates_need_create_on_push_when_the_deployment_turns_it_off(backend) {
        let berth = Berth::start_with(backend, &[("BERTH_CREATE_ON_PUSH", "false")]);
        let http = berth.http();
        let b = Blob::new("application/octet-stream", pseudo_random(42, 500));
        http.send("POST", "/v2/team/app/blobs/uploads/", &[], "").expect_oci_error(404, "NAME_UNKNOWN");
        ok(berth.ecr("CreateRepositoryCreationTemplate", &json!({"prefix": "team", "appliedFor": ["CREATE_ON_PUSH"]})));
        push_blob(&http, "team/app", &b);
        ok(berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["team/app"]})));
    }
}

both_backends! {
    fn terraform_account_settings_and_creation_template(backend) {
        let berth = Berth::start(backend);
        let root = berth.root_credentials();
        let tmp = TempDir::new("tfrct");
        let dir = tmp.join("rct");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/terraform-registry");
        std::fs::copy(fixtures.join("main.tf"), dir.join("main.tf")).expect("copy");
        let tf = Terraform::new(&dir, &berth, &root);
        tf.init_apply(&berth);
        tf.assert_converged();

        let v = ok(berth.ecr("GetAccountSetting", &json!({"name": "REGISTRY_POLICY_SCOPE"})));
        assert_eq!(v["value"], "V1");
        let v = ok(berth.ecr("DescribeRepositoryCreationTemplates", &json!({"prefixes": ["team"]})));
        let t = &v["repositoryCreationTemplates"][0];
        assert_eq!(t["appliedFor"], json!(["PULL_THROUGH_CACHE"]));
        assert_eq!(t["imageTagMutability"], "IMMUTABLE");
        assert_eq!(t["resourceTags"], json!([{"Key": "owner", "Value": "team"}]));
        // Terraform's provider (5.100) does not know CREATE_ON_PUSH yet; added here, the
        // template creates team/… on push, immutable and tagged.
        ok(berth.ecr("UpdateRepositoryCreationTemplate", &json!({"prefix": "team", "appliedFor": ["PULL_THROUGH_CACHE", "CREATE_ON_PUSH"]})));
        let b = Blob::new("application/octet-stream", pseudo_random(43, 700));
        push_blob(&berth.http(), "team/svc", &b);
        let v = ok(berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["team/svc"]})));
        assert_eq!(v["repositories"][0]["imageTagMutability"], "IMMUTABLE");
        let arn = v["repositories"][0]["repositoryArn"].as_str().expect("arn").to_string();
        let v = ok(berth.ecr("ListTagsForResource", &json!({"resourceArn": arn})));
        assert_eq!(v["tags"], json!([{"Key": "owner", "Value": "team"}]));

        tf.destroy();
        let v = ok(berth.ecr("DescribeRepositoryCreationTemplates", &json!({})));
        assert_eq!(v["repositoryCreationTemplates"], json!([]));
    }
}
