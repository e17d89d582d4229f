//! ECR's account settings (`GetAccountSetting` / `PutAccountSetting`) and their
//! effects: `BLOB_MOUNTING` on cross-repository mounts, `REGISTRY_POLICY_SCOPE` on
//! which actions the registry policy governs.

use berth_testsupport::ecr::Credentials;
use berth_testsupport::layout::{pseudo_random, push_blob};
use berth_testsupport::{both_backends, Berth, Blob};
use serde_json::json;

#[track_caller]
fn aws_error(r: &berth_testsupport::Response, status: u16, ty: &str) {
    r.expect_status(status);
    assert_eq!(r.json()["__type"], ty, "{}", r.describe());
}

both_backends! {
    fn account_settings_read_defaults_validate_and_persist(backend) {
        let mut berth = Berth::start(backend);
        for (name, default) in [
            ("BASIC_SCAN_TYPE_VERSION", "AWS_NATIVE"),
            ("REGISTRY_POLICY_SCOPE", "V2"),
            ("BLOB_MOUNTING", "ENABLED"),
        ] {
            let r = berth.ecr("GetAccountSetting", &json!({"name": name}));
            r.expect_status(200);
            assert_eq!(r.json(), json!({"name": name, "value": default}));
        }
        aws_error(&berth.ecr("GetAccountSetting", &json!({"name": "NOPE"})), 400, "InvalidParameterException");
        aws_error(&berth.ecr("GetAccountSetting", &json!({})), 400, "InvalidParameterException");
        aws_error(
            &berth.ecr("PutAccountSetting", &json!({"name": "BLOB_MOUNTING", "value": "V2"})),
            400,
            "InvalidParameterException",
        );
        aws_error(
            &berth.ecr("PutAccountSetting", &json!({"name": "BASIC_SCAN_TYPE_VERSION"})),
            400,
            "InvalidParameterException",
        );
        for (name, value) in [("BASIC_SCAN_TYPE_VERSION", "CLAIR"), ("REGISTRY_POLICY_SCOPE", "V1")] {
            let r = berth.ecr("PutAccountSetting", &json!({"name": name, "value": value}));
            r.expect_status(200);
            assert_eq!(r.json(), json!({"name": name, "value": value}));
        }
        berth.stop_gracefully();
        berth.restart();
        let r = berth.ecr("GetAccountSetting", &json!({"name": "BASIC_SCAN_TYPE_VERSION"}));
        assert_eq!(r.json()["value"], "CLAIR", "{}", r.describe());
        let r = berth.ecr("GetAccountSetting", &json!({"name": "REGISTRY_POLICY_SCOPE"}));
        assert_eq!(r.json()["value"], "V1", "{}", r.describe());

        // Each account has its own settings, and reading them is authorized.
        berth.admin(&["account", "create", "210987654321"]);
        let other = key(berth.admin(&["access-key", "create", "--account", "210987654321"]));
        let r = berth.ecr_as(&other, "GetAccountSetting", &json!({"name": "REGISTRY_POLICY_SCOPE"}));
        assert_eq!(r.json()["value"], "V2", "{}", r.describe());
        berth.admin(&["user", "create", "nobody"]);
        let nobody = key(berth.admin(&["access-key", "create", "--user", "nobody"]));
        aws_error(
            &berth.ecr_as(&nobody, "PutAccountSetting", &json!({"name": "BLOB_MOUNTING", "value": "DISABLED"})),
            400,
            "AccessDeniedException",
        );
    }
}

fn key(out: String) -> Credentials {
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .expect("key line")
    };
    Credentials {
        access_key_id: get("aws_access_key_id = "),
        secret_access_key: get("aws_secret_access_key = "),
    }
}

both_backends! {
    fn blob_mounting_disabled_opens_an_upload(backend) {
        let berth = Berth::start(backend);
        let http = berth.http();
        let b = Blob::new("application/octet-stream", pseudo_random(31, 3000));
        push_blob(&http, "mnt/src", &b);
        let mount = |dst: &str| {
            http.send(
                "POST",
                &format!("/v2/{dst}/blobs/uploads/?mount={}&from=mnt/src", b.digest),
                &[],
                "",
            )
        };
        mount("mnt/a").expect_status(201);
        berth
            .ecr("PutAccountSetting", &json!({"name": "BLOB_MOUNTING", "value": "DISABLED"}))
            .expect_status(200);
        let r = mount("mnt/b");
        r.expect_status(202);
        assert!(r.location().starts_with("/v2/mnt/b/blobs/uploads/"), "{}", r.describe());
        http.head(&format!("/v2/mnt/b/blobs/{}", b.digest)).expect_status(404);
        berth
            .ecr("PutAccountSetting", &json!({"name": "BLOB_MOUNTING", "value": "ENABLED"}))
            .expect_status(200);
        mount("mnt/c").expect_status(201);
    }
}

both_backends! {
    fn registry_policy_scope_v1_limits_the_registry_policy(backend) {
        let berth = Berth::start(backend);
        berth.ecr("CreateRepository", &json!({"repositoryName": "scoped/app"})).expect_status(200);
        berth.admin(&["account", "create", "210987654321"]);
        let other = key(berth.admin(&["access-key", "create", "--account", "210987654321"]));
        let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "Other", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
            "Action": ["ecr:DescribeImages"],
            "Resource": "arn:aws:ecr:us-east-1:123456789012:repository/*"}]});
        berth
            .ecr("PutRegistryPolicy", &json!({"policyText": policy.to_string()}))
            .expect_status(200);
        let describe = || {
            berth.ecr_as(
                &other,
                "DescribeImages",
                &json!({"registryId": "123456789012", "repositoryName": "scoped/app"}),
            )
        };
        // V2 (the default): the registry policy grants every action.
        describe().expect_status(200);
        berth
            .ecr("PutAccountSetting", &json!({"name": "REGISTRY_POLICY_SCOPE", "value": "V1"}))
            .expect_status(200);
        aws_error(&describe(), 400, "AccessDeniedException");
        berth
            .ecr("PutAccountSetting", &json!({"name": "REGISTRY_POLICY_SCOPE", "value": "V2"}))
            .expect_status(200);
        describe().expect_status(200);
    }
}
