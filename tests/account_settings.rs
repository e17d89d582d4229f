//! ECR's account settings (`GetAccountSetting` / `PutAccountSetting`) and their
//! effects: `BLOB_MOUNTING` on cross-repository mounts, `REGISTRY_POLICY_SCOPE` on
//! which actions the registry policy governs.

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
        let other = berth.access_key(&["--account", "210987654321"]);
        let r = berth.ecr_as(&other, "GetAccountSetting", &json!({"name": "REGISTRY_POLICY_SCOPE"}));
        assert_eq!(r.json()["value"], "V2", "{}", r.describe());
        berth.admin(&["user", "create", "nobody"]);
        let nobody = berth.access_key(&["--user", "nobody"]);
        aws_error(
            &berth.ecr_as(&nobody, "PutAccountSetting", &json!({"name": "BLOB_MOUNTING", "value": "DISABLED"})),
            400,
            "AccessDeniedException",
        );
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
        let other = berth.access_key(&["--account", "210987654321"]);
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

both_backends! {
    fn pull_time_update_exclusions(backend) {
        use base64::Engine as _;
        let berth = Berth::start(backend);
        let tmp = berth_testsupport::TempDir::new("pulltime");
        let layout = berth_testsupport::Layout::build(&tmp.join("layout"));
        berth.skopeo().copy(&layout.oci_ref("single"), &berth.docker_ref("pt/app:v1"), &[]);
        berth.admin(&["user", "create", "scanner"]);
        berth.admin(&["policy", "attach", "--user", "scanner", "ReadOnly"]);
        let scanner = berth.access_key(&["--user", "scanner"]);
        let v = berth.ecr_as(&scanner, "GetAuthorizationToken", &json!({})).json();
        let token = v["authorizationData"][0]["authorizationToken"].as_str().expect("token").to_string();
        let raw = base64::engine::general_purpose::STANDARD.decode(token).expect("base64");
        let (u, p) = std::str::from_utf8(&raw).expect("utf8").split_once(':').expect("user:pass");
        let scanner_http = berth_testsupport::Http::new(berth.addr()).basic_auth(u, p);
        let arn = "arn:aws:iam::123456789012:user/scanner";

        let r = berth.ecr("RegisterPullTimeUpdateExclusion", &json!({"principalArn": arn}));
        r.expect_status(200);
        assert_eq!(r.json()["principalArn"], arn);
        assert!(r.json()["createdAt"].is_number(), "{}", r.describe());
        aws_error(&berth.ecr("RegisterPullTimeUpdateExclusion", &json!({"principalArn": arn})), 400, "ExclusionAlreadyExistsException");
        aws_error(&berth.ecr("RegisterPullTimeUpdateExclusion", &json!({"principalArn": "arn:aws:iam::123456789012:root"})), 400, "InvalidParameterException");
        aws_error(&berth.ecr("DeregisterPullTimeUpdateExclusion", &json!({"principalArn": "arn:aws:iam::123456789012:user/nobody"})), 400, "ExclusionNotFoundException");
        let r = berth.ecr("ListPullTimeUpdateExclusions", &json!({}));
        assert_eq!(r.json(), json!({"pullTimeUpdateExclusions": [arn]}));
        // Pages in ARN order.
        for n in ["a", "b"] {
            let other = format!("arn:aws:iam::123456789012:user/other-{n}");
            berth.ecr("RegisterPullTimeUpdateExclusion", &json!({"principalArn": other})).expect_status(200);
        }
        let r = berth.ecr("ListPullTimeUpdateExclusions", &json!({"maxResults": 2}));
        let first_page = r.json();
        assert_eq!(first_page["pullTimeUpdateExclusions"], json!(["arn:aws:iam::123456789012:user/other-a", "arn:aws:iam::123456789012:user/other-b"]), "{first_page}");
        let next = first_page["nextToken"].as_str().expect("nextToken").to_string();
        let r = berth.ecr("ListPullTimeUpdateExclusions", &json!({"maxResults": 2, "nextToken": next}));
        assert_eq!(r.json(), json!({"pullTimeUpdateExclusions": [arn]}));
        aws_error(&berth.ecr("ListPullTimeUpdateExclusions", &json!({"maxResults": 0})), 400, "InvalidParameterException");
        for n in ["a", "b"] {
            let other = format!("arn:aws:iam::123456789012:user/other-{n}");
            berth.ecr("DeregisterPullTimeUpdateExclusion", &json!({"principalArn": other})).expect_status(200);
        }
        aws_error(&berth.ecr_as(&scanner, "RegisterPullTimeUpdateExclusion", &json!({"principalArn": arn})), 400, "AccessDeniedException");

        let pull_time = || {
            let r = berth.ecr("DescribeImages", &json!({"repositoryName": "pt/app"}));
            r.expect_status(200);
            r.json()["imageDetails"][0].get("lastRecordedPullTime").cloned()
        };
        // Pull times are written in batches every 2 seconds.
        let settle = || std::thread::sleep(std::time::Duration::from_millis(2500));
        scanner_http.get("/v2/pt/app/manifests/v1").expect_status(200);
        settle();
        assert_eq!(pull_time(), None, "an excluded principal's pull is not recorded");
        berth.http().get("/v2/pt/app/manifests/v1").expect_status(200);
        settle();
        let first = pull_time().expect("the root's pull is recorded");
        berth.ecr("DeregisterPullTimeUpdateExclusion", &json!({"principalArn": arn})).expect_status(200);
        std::thread::sleep(std::time::Duration::from_millis(1100));
        scanner_http.get("/v2/pt/app/manifests/v1").expect_status(200);
        settle();
        let second = pull_time().expect("recorded");
        assert!(second.as_f64() > first.as_f64(), "{first} then {second}");
    }
}
