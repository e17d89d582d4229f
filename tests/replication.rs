//! Replication between berth deployments: the `[[peer]]` configuration and the
//! validation of `PutReplicationConfiguration` / `DescribeRegistry`, and the actions a
//! registry policy may grant (`docs/architecture.md`, "Replication").

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testsupport::ecr::Credentials;
use berth_testsupport::layout::put_manifest;
use berth_testsupport::server::berth_bin;
use berth_testsupport::tools::{require, Terraform};
use berth_testsupport::webhook::EventSink;
use berth_testsupport::{both_backends, Berth, Http, Image, Layout, Response, TempDir};
use serde_json::{json, Value};

/// A config file naming one peer region, `us-west-2`, whose secret is in a file.
fn peer_config(dir: &Path) -> std::path::PathBuf {
    let secret = dir.join("west.secret");
    std::fs::write(&secret, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n").unwrap();
    let cfg = dir.join("berth.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[peer]]\nregion = \"us-west-2\"\nendpoint = \"http://127.0.0.1:9\"\n\
             access_key_id = \"AKIAIOSFODNN7EXAMPLE\"\naccess_key_file = \"{}\"\n",
            secret.display()
        ),
    )
    .unwrap();
    cfg
}

fn expect_error(r: &Response, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", r.describe());
    assert_eq!(r.json()["__type"], kind, "{}", r.describe());
}

fn put(berth: &Berth, rules: Value) -> Response {
    berth.ecr(
        "PutReplicationConfiguration",
        &json!({ "replicationConfiguration": { "rules": rules } }),
    )
}

both_backends! {
    fn replication_configuration(backend) {
        let dir = TempDir::new("berth-repl-cfg");
        let cfg = peer_config(dir.path());
        let berth = Berth::options(backend)
            .env("BERTH_CONFIG", cfg.to_str().unwrap())
            .start();

        // Nothing configured yet: no rules.
        let r = berth.ecr("DescribeRegistry", &json!({}));
        r.expect_status(200);
        assert_eq!(r.json()["replicationConfiguration"], json!({ "rules": [] }));
        assert_eq!(r.json()["registryId"], "123456789012");

        // A region that is neither this deployment's nor a peer's.
        let r = put(&berth, json!([{ "destinations": [{ "region": "eu-north-1", "registryId": "123456789012" }] }]));
        expect_error(&r, 400, "ValidationException");
        // The source registry itself.
        let r = put(&berth, json!([{ "destinations": [{ "region": "us-east-1", "registryId": "123456789012" }] }]));
        expect_error(&r, 400, "InvalidParameterException");

        // Peer region, same-region other account, deleteReplication: echoed, and
        // DescribeRegistry returns the rules in the order given.
        let rules = json!([
            {
                "destinations": [{ "region": "us-west-2", "registryId": "123456789012" }],
                "repositoryFilters": [{ "filter": "prod", "filterType": "PREFIX_MATCH" }]
            },
            {
                "destinations": [
                    { "region": "us-east-1", "registryId": "210987654321" },
                    { "region": "us-west-2", "registryId": "210987654321" }
                ],
                "deleteReplication": { "enabled": true }
            },
            {
                "destinations": [{ "region": "us-west-2", "registryId": "111122223333" }],
                "repositoryFilters": [{ "filter": "team-a/", "filterType": "PREFIX_MATCH" }],
                "deleteReplication": { "enabled": false }
            }
        ]);
        let r = put(&berth, rules.clone());
        r.expect_status(200);
        assert_eq!(r.json()["replicationConfiguration"]["rules"], rules, "{}", r.describe());
        let r = berth.ecr("DescribeRegistry", &json!({}));
        r.expect_status(200);
        assert_eq!(r.json()["replicationConfiguration"]["rules"], rules, "{}", r.describe());

        // At most 25 unique destinations over all rules: the same destination named
        // in several rules counts once.
        let dests = |from: u64, n: u64| -> Value {
            (from..from + n)
                .map(|i| json!({ "region": "us-west-2", "registryId": format!("{:012}", 100_000_000_000u64 + i) }))
                .collect::<Vec<_>>()
                .into()
        };
        put(&berth, json!([{ "destinations": dests(0, 25) }, { "destinations": dests(10, 15) }]))
            .expect_status(200);
        let r = put(&berth, json!([{ "destinations": dests(0, 13) }, { "destinations": dests(13, 13) }]));
        expect_error(&r, 400, "ValidationException");
        // At most 10 rules.
        let one = json!({ "destinations": dests(0, 1) });
        let r = put(&berth, Value::Array(vec![one; 11]));
        expect_error(&r, 400, "InvalidParameterException");
        // deleteReplication must be {enabled: bool}.
        let r = put(&berth, json!([{ "destinations": dests(0, 1), "deleteReplication": { "enabled": "yes" } }]));
        expect_error(&r, 400, "SerializationException");
        // The rejected calls left the last accepted configuration in place.
        let r = berth.ecr("DescribeRegistry", &json!({}));
        assert_eq!(r.json()["replicationConfiguration"]["rules"][0]["destinations"].as_array().unwrap().len(), 25);

        // `rules: []` removes it (how Terraform destroys the resource).
        put(&berth, json!([])).expect_status(200);
        let r = berth.ecr("DescribeRegistry", &json!({}));
        assert_eq!(r.json()["replicationConfiguration"], json!({ "rules": [] }));
    }
}

both_backends! {
    fn registry_policy_actions(backend) {
        let berth = Berth::start(backend);
        let policy = |actions: Value, not: bool| -> String {
            let key = if not { "NotAction" } else { "Action" };
            json!({
                "Version": "2012-10-17",
                "Statement": [{
                    "Sid": "Replication",
                    "Effect": "Allow",
                    "Principal": { "AWS": "arn:aws:iam::210987654321:root" },
                    key: actions,
                    "Resource": "arn:aws:ecr:us-east-1:123456789012:repository/*"
                }]
            })
            .to_string()
        };
        for ok in [
            json!(["ecr:CreateRepository", "ecr:ReplicateImage"]),
            json!("ecr:BatchImportUpstreamImage"),
            json!("ecr:*"),
        ] {
            let text = policy(ok.clone(), false);
            let r = berth.ecr("PutRegistryPolicy", &json!({ "policyText": text }));
            r.expect_status(200);
            assert_eq!(r.json()["policyText"], text);
        }
        // Under REGISTRY_POLICY_SCOPE=V2 (the default) a registry policy may name
        // any ECR action; V1 limits it to the replication and import actions.
        let any_ecr = policy(json!(["ecr:ReplicateImage", "ecr:BatchGetImage"]), false);
        berth
            .ecr("PutRegistryPolicy", &json!({ "policyText": any_ecr }))
            .expect_status(200);
        let r = berth.ecr("PutRegistryPolicy", &json!({ "policyText": policy(json!("*"), false) }));
        expect_error(&r, 400, "InvalidParameterException");
        berth
            .ecr("PutAccountSetting", &json!({"name": "REGISTRY_POLICY_SCOPE", "value": "V1"}))
            .expect_status(200);
        berth
            .ecr("PutRegistryPolicy", &json!({ "policyText": policy(json!("ecr:*"), false) }))
            .expect_status(200);
        for bad in [json!(["ecr:ReplicateImage", "ecr:BatchGetImage"]), json!("*"), json!("ecr:Replicate*")] {
            let r = berth.ecr("PutRegistryPolicy", &json!({ "policyText": policy(bad.clone(), false) }));
            expect_error(&r, 400, "InvalidParameterException");
            assert!(r.text().contains("Invalid registry policy provided"), "{}", r.describe());
        }
        let r = berth.ecr("PutRegistryPolicy", &json!({ "policyText": policy(json!("ecr:BatchGetImage"), true) }));
        expect_error(&r, 400, "InvalidParameterException");
        // The last accepted policy is still the one in force.
        let r = berth.ecr("GetRegistryPolicy", &json!({}));
        r.expect_status(200);
        assert_eq!(r.json()["policyText"], policy(json!("ecr:*"), false));
    }
}

/// `berth serve` refuses a `[[peer]]` section it cannot use, before listening.
#[test]
fn bad_peer_config_is_refused() {
    let dir = TempDir::new("berth-repl-bad");
    let cases = [
        ("no secret", "region = \"us-west-2\"\nendpoint = \"http://127.0.0.1:9\"\naccess_key_id = \"AKIAX\"\n", "secret_access_key"),
        ("own region", "region = \"us-east-1\"\nendpoint = \"http://127.0.0.1:9\"\naccess_key_id = \"AKIAX\"\nsecret_access_key = \"s\"\n", "own region"),
        ("bad endpoint", "region = \"us-west-2\"\nendpoint = \"ftp://x\"\naccess_key_id = \"AKIAX\"\nsecret_access_key = \"s\"\n", "endpoint"),
        ("bad region", "region = \"US West\"\nendpoint = \"http://x\"\naccess_key_id = \"AKIAX\"\nsecret_access_key = \"s\"\n", "region"),
        ("unknown field", "region = \"us-west-2\"\nendpoint = \"http://x\"\naccess_key_id = \"AKIAX\"\nsecret_access_key = \"s\"\nsecret = \"s\"\n", "unknown field"),
        ("bad account", "region = \"us-west-2\"\nendpoint = \"http://x\"\naccess_key_id = \"AKIAX\"\nsecret_access_key = \"s\"\n[[peer.account]]\nregistry_id = \"12\"\naccess_key_id = \"AKIAY\"\nsecret_access_key = \"t\"\n", "registry_id"),
        ("account twice", "region = \"us-west-2\"\nendpoint = \"http://x\"\naccess_key_id = \"AKIAX\"\nsecret_access_key = \"s\"\n[[peer.account]]\nregistry_id = \"210987654321\"\naccess_key_id = \"AKIAY\"\nsecret_access_key = \"t\"\n[[peer.account]]\nregistry_id = \"210987654321\"\naccess_key_id = \"AKIAZ\"\nsecret_access_key = \"u\"\n", "named twice"),
        ("account without secret", "region = \"us-west-2\"\nendpoint = \"http://x\"\naccess_key_id = \"AKIAX\"\nsecret_access_key = \"s\"\n[[peer.account]]\nregistry_id = \"210987654321\"\naccess_key_id = \"AKIAY\"\n", "secret_access_key"),
    ];
    for (what, section, needle) in cases {
        let cfg = dir.join(format!("{}.toml", what.replace(' ', "-")));
        std::fs::write(&cfg, format!("[[peer]]\n{section}")).unwrap();
        let mut child = Command::new(berth_bin())
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env_remove("BERTH_CONFIG")
            .env_remove("BERTH_REGION")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn berth");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{what}: berth serve started with an invalid [[peer]]");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(!status.success(), "{what}: {err}");
        assert!(err.contains(needle), "{what}: expected {needle:?} in {err}");
    }
}

const TERRAFORM_REPLICATION: &str = r#"
variable "endpoint" {
  type = string
}

provider "aws" {
  region                      = "us-east-1"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
    ecr = var.endpoint
    sts = var.endpoint
    iam = var.endpoint
  }
}

data "aws_caller_identity" "current" {}

resource "aws_ecr_replication_configuration" "dr" {
  replication_configuration {
    rule {
      destination {
        region      = "us-west-2"
        registry_id = data.aws_caller_identity.current.account_id
      }
      repository_filter {
        filter      = "prod"
        filter_type = "PREFIX_MATCH"
      }
    }
    rule {
      destination {
        region      = "us-east-1"
        registry_id = "210987654321"
      }
      destination {
        region      = "us-west-2"
        registry_id = "210987654321"
      }
    }
  }
}

resource "aws_ecr_registry_policy" "partner" {
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "ReplicationFromPartner"
      Effect    = "Allow"
      Principal = { AWS = "arn:aws:iam::210987654321:root" }
      Action    = ["ecr:CreateRepository", "ecr:ReplicateImage"]
      Resource  = "arn:aws:ecr:us-east-1:${data.aws_caller_identity.current.account_id}:repository/*"
    }]
  })
}
"#;

both_backends! {
    fn terraform_replication_configuration(backend) {
        let tmp = TempDir::new("berth-repl-tf");
        let cfg = peer_config(tmp.path());
        let berth = Berth::options(backend)
            .env("BERTH_CONFIG", cfg.to_str().unwrap())
            .start();
        let root = berth.root_credentials();
        let dir = tmp.join("tf");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("main.tf"), TERRAFORM_REPLICATION).expect("main.tf");
        let tf = Terraform::new(&dir, &berth, &root);
        tf.init_apply(&berth);

        let r = berth.ecr("DescribeRegistry", &json!({}));
        r.expect_status(200);
        assert_eq!(
            r.json()["replicationConfiguration"]["rules"],
            json!([
                {
                    "destinations": [{ "region": "us-west-2", "registryId": "123456789012" }],
                    "repositoryFilters": [{ "filter": "prod", "filterType": "PREFIX_MATCH" }]
                },
                {
                    "destinations": [
                        { "region": "us-east-1", "registryId": "210987654321" },
                        { "region": "us-west-2", "registryId": "210987654321" }
                    ]
                }
            ]),
            "{}",
            r.describe()
        );
        berth.ecr("GetRegistryPolicy", &json!({})).expect_status(200);

        tf.assert_converged();

        tf.destroy();
        let r = berth.ecr("DescribeRegistry", &json!({}));
        assert_eq!(r.json()["replicationConfiguration"], json!({ "rules": [] }));
        berth.ecr("GetRegistryPolicy", &json!({})).expect_status(400);
    }
}

const PARTNER: &str = "210987654321";

/// Waits until the image's replication statuses are all final (not IN_PROGRESS) and
/// returns them.
fn settled_statuses(berth: &Berth, repo: &str, reference: &str) -> Value {
    let id = if reference.starts_with("sha256:") {
        json!({ "imageDigest": reference })
    } else {
        json!({ "imageTag": reference })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = berth.ecr(
            "DescribeImageReplicationStatus",
            &json!({ "repositoryName": repo, "imageId": id }),
        );
        r.expect_status(200);
        let v = r.json()["replicationStatuses"].clone();
        let pending = v
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["status"] == "IN_PROGRESS");
        if !pending {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "still in progress: {v}\n{}",
            berth.stderr_tail(20)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn push_index(layout: &Layout, http: &Http, repo: &str, tag: &str) {
    for img in &layout.index_images {
        img.push(http, repo, img.digest()).expect_status(201);
    }
    put_manifest(http, repo, tag, &layout.index).expect_status(201);
}

/// The partner account's `/v2/` client (its own registry host).
fn partner_http(berth: &Berth, creds: &Credentials) -> Http {
    let r = berth.ecr_as(creds, "GetAuthorizationToken", &json!({}));
    r.expect_status(200);
    let token = r.json()["authorizationData"][0]["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let decoded = String::from_utf8(base64_decode(&token)).unwrap();
    let password = decoded.strip_prefix("AWS:").unwrap().to_string();
    Http::new(berth.addr())
        .basic_auth("AWS", &password)
        .host(&format!("{PARTNER}.{}", berth.host()))
}

fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = A.iter().position(|&a| a == c).expect("base64") as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

fn assert_pulls_byte_exact(http: &Http, repo: &str, img: &Image, reference: &str) {
    let r = http.get(&format!("/v2/{repo}/manifests/{reference}"));
    r.expect_status(200);
    assert_eq!(r.body, img.manifest.bytes, "manifest {repo}:{reference}");
    for b in img.blobs() {
        let r = http.get(&format!("/v2/{repo}/blobs/{}", b.digest));
        r.expect_status(200);
        assert_eq!(r.body, b.bytes, "blob {}", b.digest);
    }
}

both_backends! {
    fn cross_account_in_one_deployment(backend) {
        let tmp = TempDir::new("berth-repl-xacct");
        // A webhook for the replication events.
        let hook = EventSink::start();
        let cfg = tmp.join("berth.toml");
        std::fs::write(&cfg, format!(
            "[[webhook]]\nurl = \"{}\"\nsecret = \"s\"\ndetail_types = [\"ECR Replication Action\"]\n",
            hook.url()
        )).unwrap();
        let berth = Berth::options(backend).env("BERTH_CONFIG", cfg.to_str().unwrap()).start();
        berth.admin(&["account", "create", PARTNER]);
        let partner = berth.access_key(&["--account", PARTNER]);
        let layout = Layout::build(&tmp.join("layout"));
        let http = berth.http();
        let b_http = partner_http(&berth, &partner);

        // Pushed before the configuration: never replicated.
        layout.docker.push(&http, "prod/app", "early").expect_status(201);
        put(&berth, json!([{
            "destinations": [{ "region": "us-east-1", "registryId": PARTNER }],
            "repositoryFilters": [{ "filter": "prod", "filterType": "PREFIX_MATCH" }]
        }])).expect_status(200);

        // Without the partner's registry policy: FAILED, access denied.
        layout.image.push(&http, "prod/app", "v1").expect_status(201);
        let st = settled_statuses(&berth, "prod/app", "v1");
        assert_eq!(st, json!([{ "region": "us-east-1", "registryId": PARTNER, "status": "FAILED", "failureCode": "ACCESS_DENIED" }]));
        b_http.get("/v2/prod/app/manifests/v1").expect_oci_error(404, "NAME_UNKNOWN");

        // With ReplicateImage but not CreateRepository, a missing repository fails.
        let policy = |actions: Value| json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "FromSource", "Effect": "Allow",
                "Principal": { "AWS": "arn:aws:iam::123456789012:root" },
                "Action": actions,
                "Resource": format!("arn:aws:ecr:us-east-1:{PARTNER}:repository/*")
            }]
        }).to_string();
        berth.ecr_as(&partner, "PutRegistryPolicy", &json!({ "policyText": policy(json!("ecr:ReplicateImage")) })).expect_status(200);
        layout.artifact.push(&http, "prod/app", "sbom").expect_status(201);
        let st = settled_statuses(&berth, "prod/app", "sbom");
        assert_eq!(st[0]["failureCode"], "REPOSITORY_NOT_FOUND", "{st}");
        // Neither refusal created the repository.
        let r = berth.ecr_as(&partner, "DescribeRepositories", &json!({ "repositoryNames": ["prod/app"] }));
        expect_error(&r, 400, "RepositoryNotFoundException");

        // With both actions: the image, the index and the referrer arrive byte-exact.
        berth.ecr_as(&partner, "PutRegistryPolicy", &json!({ "policyText": policy(json!(["ecr:ReplicateImage", "ecr:CreateRepository"])) })).expect_status(200);
        // A new tag on the stored image (refused before) replicates it with the tag.
        layout.image.push(&http, "prod/app", "v2").expect_status(201);
        let st = settled_statuses(&berth, "prod/app", "v2");
        assert_eq!(st, json!([{ "region": "us-east-1", "registryId": PARTNER, "status": "COMPLETE" }]));
        assert_pulls_byte_exact(&b_http, "prod/app", &layout.image, "v2");
        b_http.get("/v2/prod/app/manifests/v1").expect_oci_error(404, "MANIFEST_UNKNOWN");
        // Each finished replication is an "ECR Replication Action" event: the
        // refused one a FAILURE with its code, the copy a SUCCESS.
        let events = hook.wait_for(|ev| {
            ev.iter().any(|e| e["detail"]["image-tag"] == "v2" && e["detail"]["result"] == "SUCCESS")
        });
        let v1 = events.iter().find(|e| e["detail"]["image-tag"] == "v1").expect("v1 event");
        assert_eq!(v1["detail-type"], "ECR Replication Action");
        assert_eq!(v1["detail"]["result"], "FAILURE", "{v1}");
        assert_eq!(v1["detail"]["failure-code"], "ACCESS_DENIED", "{v1}");
        let v2 = events.iter().find(|e| e["detail"]["image-tag"] == "v2").expect("v2 event");
        assert_eq!(v2["detail"]["action-type"], "REPLICATE");
        assert_eq!(v2["detail"]["repository-name"], "prod/app");
        assert_eq!(v2["detail"]["image-digest"], layout.image.digest());
        assert_eq!(v2["detail"]["source-account"], "123456789012");
        assert_eq!(v2["detail"]["destination-account"], PARTNER);
        let fresh = &layout.index_images[0];
        fresh.push(&http, "prod/app", "amd64").expect_status(201);
        let st = settled_statuses(&berth, "prod/app", "amd64");
        assert_eq!(st, json!([{ "region": "us-east-1", "registryId": PARTNER, "status": "COMPLETE" }]));
        assert_pulls_byte_exact(&b_http, "prod/app", fresh, "amd64");
        let r = berth.ecr_as(&partner, "DescribeRepositories", &json!({ "repositoryNames": ["prod/app"] }));
        r.expect_status(200);
        assert_eq!(r.json()["repositories"][0]["imageTagMutability"], "MUTABLE");

        push_index(&layout, &http, "prod/multi", "multi");
        let st = settled_statuses(&berth, "prod/multi", "multi");
        assert_eq!(st[0]["status"], "COMPLETE", "{st}");
        let r = b_http.get("/v2/prod/multi/manifests/multi");
        r.expect_status(200);
        assert_eq!(r.body, layout.index.bytes);
        for img in &layout.index_images {
            assert_pulls_byte_exact(&b_http, "prod/multi", img, img.digest());
        }

        // A referrer pushed after its subject follows it.
        layout.image.push(&http, "prod/signed", "v1").expect_status(201);
        layout.artifact.push(&http, "prod/signed", layout.artifact.digest()).expect_status(201);
        assert_eq!(settled_statuses(&berth, "prod/signed", "v1")[0]["status"], "COMPLETE");
        assert_eq!(settled_statuses(&berth, "prod/signed", layout.artifact.digest())[0]["status"], "COMPLETE");
        assert_pulls_byte_exact(&b_http, "prod/signed", &layout.image, "v1");
        let r = b_http.get(&format!("/v2/prod/signed/referrers/{}", layout.image.digest()));
        r.expect_status(200);
        assert!(r.text().contains(layout.artifact.digest()), "{}", r.text());

        // A repository no rule matches, and the push from before the configuration.
        layout.image.push(&http, "dev/app", "v1").expect_status(201);
        assert_eq!(settled_statuses(&berth, "dev/app", "v1"), json!([]));
        assert_eq!(settled_statuses(&berth, "prod/app", "early"), json!([]));
        b_http.get("/v2/dev/app/tags/list").expect_oci_error(404, "NAME_UNKNOWN");

        // No transitive fan-out: the partner replicates prod/ back to the source, yet
        // what it received by replication goes nowhere.
        berth.ecr_as(&partner, "PutReplicationConfiguration", &json!({ "replicationConfiguration": { "rules": [{
            "destinations": [{ "region": "us-east-1", "registryId": "123456789012" }]
        }] } })).expect_status(200);
        layout.docker.push(&http, "prod/chain", "v1").expect_status(201);
        assert_eq!(settled_statuses(&berth, "prod/chain", "v1")[0]["status"], "COMPLETE");
        let r = berth.ecr_as(&partner, "DescribeImageReplicationStatus", &json!({ "repositoryName": "prod/chain", "imageId": { "imageTag": "v1" } }));
        r.expect_status(200);
        assert_eq!(r.json()["replicationStatuses"], json!([]));
        berth
            .ecr_as(&partner, "PutReplicationConfiguration", &json!({ "replicationConfiguration": { "rules": [] } }))
            .expect_status(200);

        // An immutable tag that exists at the destination with another digest: the
        // image arrives without the tag, and the status says so.
        berth.ecr_as(&partner, "CreateRepository", &json!({ "repositoryName": "prod/imm", "imageTagMutability": "IMMUTABLE" })).expect_status(200);
        layout.docker.push(&b_http, "prod/imm", "t1").expect_status(201);
        layout.image.push(&http, "prod/imm", "t1").expect_status(201);
        let st = settled_statuses(&berth, "prod/imm", "t1");
        assert_eq!(st, json!([{ "region": "us-east-1", "registryId": PARTNER, "status": "COMPLETE", "failureCode": "IMMUTABLE_TAG_CONFLICT" }]));
        let r = b_http.get("/v2/prod/imm/manifests/t1");
        assert_eq!(r.body, layout.docker.manifest.bytes, "the destination's tag is kept");
        assert_pulls_byte_exact(&b_http, "prod/imm", &layout.image, layout.image.digest());

        // deleteReplication on: a tag removal and an image delete are repeated in
        // the partner account.
        put(&berth, json!([{
            "destinations": [{ "region": "us-east-1", "registryId": PARTNER }],
            "repositoryFilters": [{ "filter": "prod", "filterType": "PREFIX_MATCH" }],
            "deleteReplication": { "enabled": true }
        }])).expect_status(200);
        http.delete("/v2/prod/app/manifests/amd64").expect_status(202);
        let r = berth.ecr("BatchDeleteImage", &json!({
            "repositoryName": "prod/multi",
            "imageIds": [{ "imageDigest": layout.index.digest }]
        }));
        r.expect_status(200);
        assert_eq!(r.json()["failures"], json!([]), "{}", r.describe());
        wait_until("the tag removal reaches the partner", || {
            b_http.get("/v2/prod/app/manifests/amd64").status == 404
        });
        wait_until("the image delete reaches the partner", || {
            b_http.get(&format!("/v2/prod/multi/manifests/{}", layout.index.digest)).status == 404
        });
        assert_pulls_byte_exact(&b_http, "prod/app", fresh, fresh.digest());
        assert_pulls_byte_exact(&b_http, "prod/app", &layout.image, "v2");
        // The referrer's refused copy (REPOSITORY_NOT_FOUND) is the one FAILED
        // status while its image exists.
        assert_eq!(images_by_status(&berth, "FAILED"), 1);
        // A lifecycle expiry (run by another process on the same store) too: only
        // the newest image of prod/app stays, at the source and at the partner.
        let keep_one = json!({ "rules": [{
            "rulePriority": 1,
            "selection": { "tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1 },
            "action": { "type": "expire" }
        }] }).to_string();
        berth.ecr("PutLifecyclePolicy", &json!({ "repositoryName": "prod/app", "lifecyclePolicyText": keep_one })).expect_status(200);
        let out = berth.admin(&["lifecycle", "run", "--repository", "prod/app"]);
        assert!(out.contains("image(s) expired"), "{out}");
        http.get(&format!("/v2/prod/app/manifests/{}", layout.image.digest())).expect_oci_error(404, "MANIFEST_UNKNOWN");
        wait_until("the lifecycle expiry reaches the partner", || {
            b_http.get(&format!("/v2/prod/app/manifests/{}", layout.image.digest())).status == 404
        });
        http.get(&format!("/v2/prod/app/manifests/{}", fresh.digest())).expect_status(200);
        assert_pulls_byte_exact(&b_http, "prod/app", fresh, fresh.digest());

        // Each replication is in the audit log of both accounts.
        let audit = berth.admin(&["audit", "--limit", "1000"]);
        let rows: Vec<Vec<&str>> = audit
            .lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|f| f.len() == 7 && f[3] == "ecr:ReplicateImage")
            .collect();
        let denied = |account: &str| {
            rows.iter()
                .filter(|f| f[1] == account && f[6].starts_with("FAILED ACCESS_DENIED"))
                .count()
        };
        assert_eq!((denied("123456789012"), denied(PARTNER)), (1, 1), "{audit}");
        let conflict = rows
            .iter()
            .filter(|f| f[6].starts_with("COMPLETE IMMUTABLE_TAG_CONFLICT"))
            .count();
        assert_eq!(conflict, 2, "{audit}");

        // /metrics: nothing left in progress, the statuses counted.
        let m = berth.http().get("/metrics");
        m.expect_status(200);
        let text = m.text();
        for line in [
            "berth_replication_jobs{state=\"queued\"} 0",
            "berth_replication_images{status=\"IN_PROGRESS\"} 0",
            "berth_replication_lag_seconds 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        // Statuses go with their images: the expired image and its referrer (the
        // FAILED one) and the deleted index no longer count.
        assert!(images_by_status(&berth, "COMPLETE") >= 7, "{text}");
        assert_eq!(images_by_status(&berth, "FAILED"), 0, "{text}");
    }
}

/// A config file naming one peer: `region` served at `url`, reached as the test
/// root principal (every test server has it).
fn write_peer_config(path: &Path, region: &str, url: &str) {
    std::fs::write(
        path,
        format!(
            "[[peer]]\nregion = \"{region}\"\nendpoint = \"{url}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            berth_testsupport::ecr::TEST_ACCESS_KEY_ID,
            berth_testsupport::ecr::TEST_SECRET_ACCESS_KEY
        ),
    )
    .unwrap();
}

const SOURCE: &str = "123456789012";

/// The audit rows (tab-separated, 7 fields) of `ecr:ReplicateImage`.
fn replication_audit(berth: &Berth) -> Vec<Vec<String>> {
    berth
        .admin(&["audit", "--limit", "1000"])
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>())
        .filter(|f| f.len() == 7 && f[3] == "ecr:ReplicateImage")
        .collect()
}

/// Polls `cond` for up to 30 s.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

both_backends! {
    fn cross_region_between_two_deployments(backend) {
        let tmp = TempDir::new("berth-repl-xregion");
        // B (us-west-2) first, without peers; A (us-east-1) names B as its peer.
        let b_cfg = tmp.join("b.toml");
        std::fs::write(&b_cfg, "").unwrap();
        let mut b = Berth::options(backend)
            .env("BERTH_REGION", "us-west-2")
            .env("BERTH_CONFIG", b_cfg.to_str().unwrap())
            .start();
        let a_cfg = tmp.join("a.toml");
        write_peer_config(&a_cfg, "us-west-2", &b.url());
        let a = Berth::options(backend)
            .env("BERTH_CONFIG", a_cfg.to_str().unwrap())
            .start();
        let layout = Layout::build(&tmp.join("layout"));
        let west = |status: &str| json!([{ "region": "us-west-2", "registryId": SOURCE, "status": status }]);

        // Pushed before the configuration: never replicated.
        let sk = a.skopeo();
        sk.copy(&layout.oci_ref("single"), &a.docker_ref("prod/app:early"), &[]);
        put(&a, json!([{
            "destinations": [{ "region": "us-west-2", "registryId": SOURCE }],
            "repositoryFilters": [{ "filter": "prod", "filterType": "PREFIX_MATCH" }]
        }])).expect_status(200);

        // skopeo pushes a multi-layer image and a multi-arch index to A; both pull
        // byte-exact from B within seconds.
        let started = Instant::now();
        sk.copy(&layout.oci_ref("single"), &a.docker_ref("prod/app:v1"), &[]);
        sk.copy(&layout.oci_ref("multi"), &a.docker_ref("prod/multi:v1"), &["--all"]);
        assert_eq!(settled_statuses(&a, "prod/app", "v1"), west("COMPLETE"));
        assert_eq!(settled_statuses(&a, "prod/multi", "v1"), west("COMPLETE"));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(15), "replication took {took:?}");
        let b_http = b.http();
        let b_sk = b.skopeo();
        assert_eq!(b_sk.inspect_raw("prod/app:v1"), layout.image.manifest.bytes);
        assert_pulls_byte_exact(&b_http, "prod/app", &layout.image, "v1");
        assert_eq!(b_sk.inspect_raw("prod/multi:v1"), layout.index.bytes);
        for img in &layout.index_images {
            assert_pulls_byte_exact(&b_http, "prod/multi", img, img.digest());
        }
        b_http.get("/v2/prod/app/manifests/early").expect_oci_error(404, "MANIFEST_UNKNOWN");
        // The destination repository was created with ECR's defaults.
        let r = b.ecr("DescribeRepositories", &json!({ "repositoryNames": ["prod/app"] }));
        r.expect_status(200);
        assert_eq!(r.json()["repositories"][0]["imageTagMutability"], "MUTABLE");
        // With a REPLICATION creation template at B, the repository B creates for a
        // copy takes the template's settings.
        b.ecr("CreateRepositoryCreationTemplate", &json!({
            "prefix": "prod/tmpl",
            "appliedFor": ["REPLICATION"],
            "imageTagMutability": "IMMUTABLE",
            "resourceTags": [{"Key": "team", "Value": "dr"}]
        })).expect_status(200);
        layout.image.push(&a.http(), "prod/tmpl/app", "v1").expect_status(201);
        assert_eq!(settled_statuses(&a, "prod/tmpl/app", "v1"), west("COMPLETE"));
        let r = b.ecr("DescribeRepositories", &json!({ "repositoryNames": ["prod/tmpl/app"] }));
        r.expect_status(200);
        let repo = &r.json()["repositories"][0];
        assert_eq!(repo["imageTagMutability"], "IMMUTABLE", "{}", r.text());
        let arn = repo["repositoryArn"].as_str().expect("arn").to_string();
        let r = b.ecr("ListTagsForResource", &json!({ "resourceArn": arn }));
        r.expect_status(200);
        assert_eq!(r.json()["tags"], json!([{"Key": "team", "Value": "dr"}]), "{}", r.text());
        assert_pulls_byte_exact(&b_http, "prod/tmpl/app", &layout.image, "v1");

        // ECR PutImage is a push too: a new tag through it replicates.
        let r = a.ecr("PutImage", &json!({
            "repositoryName": "prod/app",
            "imageManifest": String::from_utf8(layout.image.manifest.bytes.clone()).unwrap(),
            "imageManifestMediaType": layout.image.manifest.media_type,
            "imageTag": "put-image"
        }));
        r.expect_status(200);
        assert_eq!(settled_statuses(&a, "prod/app", "put-image"), west("COMPLETE"));
        assert_eq!(b_sk.inspect_raw("prod/app:put-image"), layout.image.manifest.bytes);

        // An artifact (a signature-like referrer) follows its subject.
        let a_http = a.http();
        layout.image.push(&a_http, "prod/signed", "v1").expect_status(201);
        layout.artifact.push(&a_http, "prod/signed", layout.artifact.digest()).expect_status(201);
        assert_eq!(settled_statuses(&a, "prod/signed", "v1"), west("COMPLETE"));
        assert_eq!(settled_statuses(&a, "prod/signed", layout.artifact.digest()), west("COMPLETE"));
        assert_pulls_byte_exact(&b_http, "prod/signed", &layout.artifact, layout.artifact.digest());
        let r = b_http.get(&format!("/v2/prod/signed/referrers/{}", layout.image.digest()));
        r.expect_status(200);
        assert!(r.text().contains(layout.artifact.digest()), "{}", r.text());

        // A tag moved right after its push: B ends with the tag on the newer image,
        // however the two copies interleave.
        layout.docker.push(&a_http, "prod/mv", "mv").expect_status(201);
        layout.image.push(&a_http, "prod/mv", "mv").expect_status(201);
        assert_eq!(settled_statuses(&a, "prod/mv", layout.docker.digest())[0]["status"], "COMPLETE");
        assert_eq!(settled_statuses(&a, "prod/mv", layout.image.digest())[0]["status"], "COMPLETE");
        assert_eq!(b_http.get("/v2/prod/mv/manifests/mv").body, layout.image.manifest.bytes);
        assert_pulls_byte_exact(&b_http, "prod/mv", &layout.docker, layout.docker.digest());

        // A repository no rule matches stays home.
        sk.copy(&layout.oci_ref("single"), &a.docker_ref("dev/app:v1"), &[]);
        assert_eq!(settled_statuses(&a, "dev/app", "v1"), json!([]));
        b_http.get("/v2/dev/app/tags/list").expect_oci_error(404, "NAME_UNKNOWN");

        // An immutable tag held by another digest at B: replicated without the tag.
        b.ecr("CreateRepository", &json!({ "repositoryName": "prod/imm", "imageTagMutability": "IMMUTABLE" })).expect_status(200);
        layout.docker.push(&b_http, "prod/imm", "t1").expect_status(201);
        layout.image.push(&a_http, "prod/imm", "t1").expect_status(201);
        assert_eq!(
            settled_statuses(&a, "prod/imm", "t1"),
            json!([{ "region": "us-west-2", "registryId": SOURCE, "status": "COMPLETE", "failureCode": "IMMUTABLE_TAG_CONFLICT" }])
        );
        assert_eq!(b_http.get("/v2/prod/imm/manifests/t1").body, layout.docker.manifest.bytes);
        assert_pulls_byte_exact(&b_http, "prod/imm", &layout.image, layout.image.digest());

        // B is down during a push: the job is retried with backoff, and the image
        // arrives once B is back.
        b.kill9();
        layout.index_images[1].push(&a_http, "prod/down", "v1").expect_status(201);
        std::thread::sleep(Duration::from_secs(2));
        let r = a.ecr("DescribeImageReplicationStatus", &json!({ "repositoryName": "prod/down", "imageId": { "imageTag": "v1" } }));
        assert_eq!(r.json()["replicationStatuses"], west("IN_PROGRESS"), "{}", r.describe());
        // B comes back, now also naming A as its peer.
        write_peer_config(&b_cfg, "us-east-1", &a.url());
        b.restart();
        assert_eq!(settled_statuses(&a, "prod/down", "v1"), west("COMPLETE"));
        assert_pulls_byte_exact(&b.http(), "prod/down", &layout.index_images[1], "v1");

        // No transitive fan-out: B replicates prod/ back to A, yet what B received
        // by replication goes nowhere, and what A receives from B is not sent back.
        put(&b, json!([{
            "destinations": [{ "region": "us-east-1", "registryId": SOURCE }],
            "repositoryFilters": [{ "filter": "prod", "filterType": "PREFIX_MATCH" }]
        }])).expect_status(200);
        layout.docker.push(&a_http, "prod/chain", "v1").expect_status(201);
        assert_eq!(settled_statuses(&a, "prod/chain", "v1"), west("COMPLETE"));
        assert_eq!(settled_statuses(&b, "prod/chain", "v1"), json!([]));
        layout.docker.push(&b.http(), "prod/from-b", "v1").expect_status(201);
        assert_eq!(
            settled_statuses(&b, "prod/from-b", "v1"),
            json!([{ "region": "us-east-1", "registryId": SOURCE, "status": "COMPLETE" }])
        );
        assert_pulls_byte_exact(&a_http, "prod/from-b", &layout.docker, "v1");
        assert_eq!(settled_statuses(&a, "prod/from-b", "v1"), json!([]));

        // A push that claims to be a replication must be allowed ecr:ReplicateImage.
        let bad = a_http.send(
            "PUT",
            "/v2/prod/app/manifests/claimed",
            &[("content-type", layout.docker.manifest.media_type.as_str()), ("x-berth-replicated-from", "not a source")],
            layout.docker.manifest.bytes.clone(),
        );
        assert_eq!(bad.status, 400, "{}", bad.describe());

        // deleteReplication off (so far): a tag removal stays at the source.
        let b_http = b.http();
        a_http.delete("/v2/prod/app/manifests/v1").expect_status(202);
        // On: tag removals and image deletes are repeated at B; a tag B holds on
        // another image (its immutable t1) is left alone.
        put(&a, json!([{
            "destinations": [{ "region": "us-west-2", "registryId": SOURCE }],
            "repositoryFilters": [{ "filter": "prod", "filterType": "PREFIX_MATCH" }],
            "deleteReplication": { "enabled": true }
        }])).expect_status(200);
        a_http.delete("/v2/prod/imm/manifests/t1").expect_status(202);
        a_http.delete("/v2/prod/multi/manifests/v1").expect_status(202);
        let r = a.ecr("BatchDeleteImage", &json!({
            "repositoryName": "prod/signed",
            "imageIds": [{ "imageDigest": layout.artifact.digest() }]
        }));
        r.expect_status(200);
        assert_eq!(r.json()["failures"], json!([]), "{}", r.describe());
        wait_until("the tag removal reaches B", || {
            b_http.get("/v2/prod/multi/manifests/v1").status == 404
        });
        wait_until("the image delete reaches B", || {
            b_http.get(&format!("/v2/prod/signed/manifests/{}", layout.artifact.digest())).status == 404
        });
        // Only the tag went: the index is still there by digest.
        b_http.get(&format!("/v2/prod/multi/manifests/{}", layout.index.digest)).expect_status(200);
        assert_pulls_byte_exact(&b_http, "prod/signed", &layout.image, "v1");
        assert_pulls_byte_exact(&b_http, "prod/app", &layout.image, "v1");
        assert_eq!(b_http.get("/v2/prod/imm/manifests/t1").body, layout.docker.manifest.bytes);

        // The audit logs of both sides record the replications.
        let a_rows = replication_audit(&a);
        assert!(
            a_rows.iter().any(|f| f[1] == SOURCE && f[6] == format!("COMPLETE to us-west-2/{SOURCE}")),
            "{a_rows:?}"
        );
        let b_rows = replication_audit(&b);
        assert!(
            b_rows.iter().any(|f| f[1] == SOURCE && f[6] == format!("COMPLETE from us-east-1/{SOURCE}")),
            "{b_rows:?}"
        );

        // /metrics on A: nothing left in progress.
        let text = a.http().get("/metrics").text();
        for line in [
            "berth_replication_jobs{state=\"queued\"} 0",
            "berth_replication_jobs{state=\"parked\"} 0",
            "berth_replication_images{status=\"IN_PROGRESS\"} 0",
            "berth_replication_images{status=\"FAILED\"} 0",
            "berth_replication_lag_seconds 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
    }
}

both_backends! {
    fn cross_region_into_another_account(backend) {
        let tmp = TempDir::new("berth-repl-xregion-xacct");
        let b = Berth::options(backend).env("BERTH_REGION", "us-west-2").start();
        b.admin(&["account", "create", PARTNER]);
        let partner = b.access_key(&["--account", PARTNER]);
        // A reaches B as a principal of the destination account.
        let a_cfg = tmp.join("a.toml");
        std::fs::write(
            &a_cfg,
            format!(
                "[[peer]]\nregion = \"us-west-2\"\nendpoint = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                b.url(), partner.access_key_id, partner.secret_access_key
            ),
        )
        .unwrap();
        let a = Berth::options(backend).env("BERTH_CONFIG", a_cfg.to_str().unwrap()).start();
        let layout = Layout::build(&tmp.join("layout"));
        let a_http = a.http();
        let b_partner = partner_http(&b, &partner);
        put(&a, json!([{ "destinations": [{ "region": "us-west-2", "registryId": PARTNER }] }])).expect_status(200);

        // The partner's registry policy does not allow the source account: FAILED.
        layout.image.push(&a_http, "app", "v1").expect_status(201);
        assert_eq!(
            settled_statuses(&a, "app", "v1"),
            json!([{ "region": "us-west-2", "registryId": PARTNER, "status": "FAILED", "failureCode": "ACCESS_DENIED" }])
        );
        // The refused copy left no (empty) repository behind: B checked the
        // registry policy before creating anything.
        let no_repository = |name: &str| {
            let r = b.ecr_as(&partner, "DescribeRepositories", &json!({ "repositoryNames": [name] }));
            expect_error(&r, 400, "RepositoryNotFoundException");
        };
        no_repository("app");
        b_partner.get("/v2/app/tags/list").expect_oci_error(404, "NAME_UNKNOWN");

        let policy = |actions: Value| json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "FromSource", "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{SOURCE}:root") },
                "Action": actions,
                "Resource": format!("arn:aws:ecr:us-west-2:{PARTNER}:repository/*")
            }]
        }).to_string();
        // ecr:ReplicateImage without ecr:CreateRepository: a missing repository is
        // REPOSITORY_NOT_FOUND, and still not created.
        b.ecr_as(&partner, "PutRegistryPolicy", &json!({ "policyText": policy(json!("ecr:ReplicateImage")) })).expect_status(200);
        layout.image.push(&a_http, "app", "v1b").expect_status(201);
        assert_eq!(
            settled_statuses(&a, "app", "v1b"),
            json!([{ "region": "us-west-2", "registryId": PARTNER, "status": "FAILED", "failureCode": "REPOSITORY_NOT_FOUND" }])
        );
        no_repository("app");

        // Allowed both: the next push arrives in the partner account.
        b.ecr_as(&partner, "PutRegistryPolicy", &json!({ "policyText": policy(json!(["ecr:ReplicateImage", "ecr:CreateRepository"])) })).expect_status(200);
        layout.image.push(&a_http, "app", "v2").expect_status(201);
        assert_eq!(
            settled_statuses(&a, "app", "v2"),
            json!([{ "region": "us-west-2", "registryId": PARTNER, "status": "COMPLETE" }])
        );
        assert_pulls_byte_exact(&b_partner, "app", &layout.image, "v2");
        // Nothing landed in B's own account.
        b.http().get("/v2/app/tags/list").expect_oci_error(404, "NAME_UNKNOWN");
    }
}

both_backends! {
    fn cross_region_to_a_peer_over_https(backend) {
        let tmp = TempDir::new("berth-repl-tls");
        let (ca, cert, key) = private_ca_and_leaf(&tmp.join("certs"));
        // skopeo's trust directory: the CA.
        let ca_dir = tmp.join("ca");
        std::fs::create_dir_all(&ca_dir).unwrap();
        std::fs::copy(&ca, ca_dir.join("ca.crt")).unwrap();
        let b = Berth::options(backend)
            .env("BERTH_REGION", "us-west-2")
            .tls(&cert, &key)
            .start();
        assert!(b.url().starts_with("https://"));
        // The peer's certificate, issued by a private CA, is trusted through ca_file.
        let a_cfg = tmp.join("a.toml");
        std::fs::write(
            &a_cfg,
            format!(
                "[[peer]]\nregion = \"us-west-2\"\nendpoint = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nca_file = \"{}\"\n",
                b.url(),
                berth_testsupport::ecr::TEST_ACCESS_KEY_ID,
                berth_testsupport::ecr::TEST_SECRET_ACCESS_KEY,
                ca.display()
            ),
        )
        .unwrap();
        let a = Berth::options(backend).env("BERTH_CONFIG", a_cfg.to_str().unwrap()).start();
        let layout = Layout::build(&tmp.join("layout"));
        put(&a, json!([{ "destinations": [{ "region": "us-west-2", "registryId": SOURCE }] }])).expect_status(200);
        layout.image.push(&a.http(), "tls/app", "v1").expect_status(201);
        assert_eq!(
            settled_statuses(&a, "tls/app", "v1"),
            json!([{ "region": "us-west-2", "registryId": SOURCE, "status": "COMPLETE" }])
        );
        let sk = b.skopeo().cert_dir(&ca_dir);
        assert_eq!(sk.inspect_raw("tls/app:v1"), layout.image.manifest.bytes);
    }
}

/// A private CA and a server certificate it issued for 127.0.0.1 / localhost
/// (openssl): (CA certificate, server certificate, server key), PEM. rustls, unlike
/// Go's TLS, refuses a self-signed CA certificate used as the server's own.
fn private_ca_and_leaf(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    require("openssl", "apt-get install -y openssl");
    std::fs::create_dir_all(dir).unwrap();
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=berth test CA"];
    ca.extend(ec);
    let (ca_key, ca_pem) = (p("ca.key"), p("ca.pem"));
    ca.extend(["-keyout", &ca_key, "-out", &ca_pem]);
    run(&ca);
    let (key, csr, cert, ext) = (p("key.pem"), p("leaf.csr"), p("cert.pem"), p("leaf.ext"));
    let mut req = vec!["req", "-subj", "/CN=127.0.0.1"];
    req.extend(ec);
    req.extend(["-keyout", &key, "-out", &csr]);
    run(&req);
    std::fs::write(
        &ext,
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        &ext,
        "-out",
        &cert,
    ]);
    (ca_pem.into(), cert.into(), key.into())
}

/// `/v2/` as `creds` (their own registry token), addressing `account`'s registry.
fn http_as(berth: &Berth, creds: &Credentials, account: Option<&str>) -> Http {
    let r = berth.ecr_as(creds, "GetAuthorizationToken", &json!({}));
    r.expect_status(200);
    let token = r.json()["authorizationData"][0]["authorizationToken"]
        .as_str()
        .unwrap()
        .to_string();
    let decoded = String::from_utf8(base64_decode(&token)).unwrap();
    let password = decoded.strip_prefix("AWS:").unwrap().to_string();
    let http = Http::new(berth.addr()).basic_auth("AWS", &password);
    match account {
        Some(a) => http.host(&format!("{a}.{}", berth.host())),
        None => http,
    }
}

/// An ECR call as `creds` that declares itself part of a replication from `origin`.
fn ecr_claimed(
    berth: &Berth,
    creds: &Credentials,
    op: &str,
    body: &Value,
    origin: &str,
) -> Response {
    berth_testsupport::ecr::call_with_headers(
        &Http::new(berth.addr()),
        &berth.host(),
        creds,
        berth_testsupport::ecr::TEST_REGION,
        "ecr",
        &format!("AmazonEC2ContainerRegistry_V20150921.{op}"),
        body,
        &[("X-Berth-Replicated-From", origin)],
    )
}

/// `berth_replication_images{status=…}` in `/metrics`.
fn images_by_status(berth: &Berth, status: &str) -> i64 {
    let text = berth.http().get("/metrics").text();
    let prefix = format!("berth_replication_images{{status=\"{status}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
}

/// Attaches an inline policy allowing `actions` on everything to `user`.
fn allow(berth: &Berth, user: &str, name: &str, actions: &[&str]) {
    berth.attach_policy_doc(
        user,
        name,
        &json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": actions, "Resource": "*" }] }),
    );
}

both_backends! {
    fn a_claimed_replication_needs_replicate_image(backend) {
        let tmp = TempDir::new("berth-repl-claim");
        let berth = Berth::start(backend);
        let layout = Layout::build(&tmp.join("layout"));
        // A principal that may create repositories and push, but not replicate.
        berth.admin(&["user", "create", "pusher"]);
        berth.admin(&["policy", "attach", "--user", "pusher", "PowerUser"]);
        allow(&berth, "pusher", "create", &["ecr:CreateRepository"]);
        let pusher = berth.access_key(&["--user", "pusher"]);
        let origin = format!("us-west-2/{SOURCE}");
        let missing = |name: &str| {
            let r = berth.ecr("DescribeRepositories", &json!({ "repositoryNames": [name] }));
            expect_error(&r, 400, "RepositoryNotFoundException");
        };

        // CreateRepository claiming to be a replication: AccessDenied, nothing created.
        let r = ecr_claimed(&berth, &pusher, "CreateRepository", &json!({ "repositoryName": "claimed/new" }), &origin);
        expect_error(&r, 400, "AccessDeniedException");
        missing("claimed/new");
        // The same call without the claim is the pusher's to make.
        berth.ecr_as(&pusher, "CreateRepository", &json!({ "repositoryName": "claimed/app" })).expect_status(200);

        // A /v2/ manifest PUT claiming to be a replication: 403 DENIED, nothing stored.
        let http = http_as(&berth, &pusher, None);
        for b in layout.image.blobs() {
            berth_testsupport::layout::push_blob(&http, "claimed/app", b);
        }
        let claimed_put = |reference: &str| {
            http.send(
                "PUT",
                &format!("/v2/claimed/app/manifests/{reference}"),
                &[("content-type", layout.image.manifest.media_type.as_str()), ("x-berth-replicated-from", origin.as_str())],
                layout.image.manifest.bytes.clone(),
            )
        };
        claimed_put("v1").expect_oci_error(403, "DENIED");
        claimed_put(layout.image.digest()).expect_oci_error(403, "DENIED");
        http.get("/v2/claimed/app/manifests/v1").expect_oci_error(404, "MANIFEST_UNKNOWN");
        http.get(&format!("/v2/claimed/app/manifests/{}", layout.image.digest())).expect_oci_error(404, "MANIFEST_UNKNOWN");
        let r = berth.ecr("ListImages", &json!({ "repositoryName": "claimed/app" }));
        r.expect_status(200);
        assert_eq!(r.json()["imageIds"], json!([]), "{}", r.describe());
        assert!(
            !replication_audit(&berth).iter().any(|f| f[6].starts_with("COMPLETE")),
            "{:?}",
            replication_audit(&berth)
        );

        // Allowed ecr:ReplicateImage, the same claims are accepted: the refusals
        // above were the missing permission's.
        allow(&berth, "pusher", "replicate", &["ecr:ReplicateImage"]);
        let r = ecr_claimed(&berth, &pusher, "CreateRepository", &json!({ "repositoryName": "claimed/new" }), &origin);
        r.expect_status(200);
        claimed_put("v1").expect_status(201);
        assert_pulls_byte_exact(&berth.http(), "claimed/app", &layout.image, "v1");

        // A deletion claiming to be a replication, by a principal that may delete
        // images but not replicate: 403 DENIED, the tag stays.
        berth.admin(&["user", "create", "deleter"]);
        berth.admin(&["policy", "attach", "--user", "deleter", "PowerUser"]);
        allow(&berth, "deleter", "delete", &["ecr:BatchDeleteImage"]);
        let deleter = berth.access_key(&["--user", "deleter"]);
        let del = http_as(&berth, &deleter, None);
        let claimed_delete = del.send(
            "DELETE",
            "/v2/claimed/app/manifests/v1",
            &[("x-berth-replicated-from", origin.as_str())],
            Vec::new(),
        );
        claimed_delete.expect_oci_error(403, "DENIED");
        assert_pulls_byte_exact(&berth.http(), "claimed/app", &layout.image, "v1");
        del.delete("/v2/claimed/app/manifests/v1").expect_status(202);
        berth.http().get("/v2/claimed/app/manifests/v1").expect_oci_error(404, "MANIFEST_UNKNOWN");
    }
}

/// How many `ecr:GetAuthorizationToken` calls `berth`'s audit log holds.
fn token_calls(berth: &Berth) -> usize {
    berth
        .admin(&["audit", "--limit", "100000"])
        .lines()
        .filter(|l| l.split('\t').nth(3) == Some("ecr:GetAuthorizationToken"))
        .count()
}

both_backends! {
    fn wrong_peer_credentials_fail_at_once(backend) {
        let tmp = TempDir::new("berth-repl-badkey");
        let b = Berth::options(backend).env("BERTH_REGION", "us-west-2").start();
        // A names B with the right access key but a wrong secret, and another
        // region with an access key B does not know.
        let a_cfg = tmp.join("a.toml");
        std::fs::write(
            &a_cfg,
            format!(
                "[[peer]]\nregion = \"us-west-2\"\nendpoint = \"{url}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"not-the-secret\"\n\
                 [[peer]]\nregion = \"eu-west-1\"\nendpoint = \"{url}\"\naccess_key_id = \"AKIAUNKNOWNKEY000000\"\nsecret_access_key = \"x\"\n",
                berth_testsupport::ecr::TEST_ACCESS_KEY_ID,
                url = b.url()
            ),
        )
        .unwrap();
        let a = Berth::options(backend).env("BERTH_CONFIG", a_cfg.to_str().unwrap()).start();
        let layout = Layout::build(&tmp.join("layout"));
        put(&a, json!([{ "destinations": [
            { "region": "us-west-2", "registryId": SOURCE },
            { "region": "eu-west-1", "registryId": SOURCE }
        ] }])).expect_status(200);
        let started = Instant::now();
        layout.image.push(&a.http(), "app", "v1").expect_status(201);
        // FAILED at the first refusal, with a code that says why — not after the
        // quarter of an hour of retries a peer that is down gets.
        assert_eq!(
            settled_statuses(&a, "app", "v1"),
            json!([
                { "region": "eu-west-1", "registryId": SOURCE, "status": "FAILED", "failureCode": "PEER_AUTHENTICATION_FAILED" },
                { "region": "us-west-2", "registryId": SOURCE, "status": "FAILED", "failureCode": "PEER_AUTHENTICATION_FAILED" }
            ])
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(10), "took {took:?}");
        // Each job ran once: none is waiting for another attempt or parked.
        let text = a.http().get("/metrics").text();
        for line in ["berth_replication_jobs{state=\"queued\"} 0", "berth_replication_jobs{state=\"parked\"} 0"] {
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        assert!(
            replication_audit(&a).iter().any(|f| f[6] == format!("FAILED PEER_AUTHENTICATION_FAILED to us-west-2/{SOURCE}")),
            "{:?}",
            replication_audit(&a)
        );
        b.http().get("/v2/app/tags/list").expect_oci_error(404, "NAME_UNKNOWN");
    }
}

both_backends! {
    fn peer_tokens_are_shared_and_accounts_have_their_own_principal(backend) {
        let tmp = TempDir::new("berth-repl-tokens");
        let b = Berth::options(backend).env("BERTH_REGION", "us-west-2").start();
        b.admin(&["account", "create", PARTNER]);
        let partner = b.access_key(&["--account", PARTNER]);
        // The partner lets the source account replicate into it.
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "FromSource", "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{SOURCE}:root") },
                "Action": ["ecr:ReplicateImage", "ecr:CreateRepository"],
                "Resource": format!("arn:aws:ecr:us-west-2:{PARTNER}:repository/*")
            }]
        }).to_string();
        b.ecr_as(&partner, "PutRegistryPolicy", &json!({ "policyText": policy })).expect_status(200);
        // A reaches B as B's root by default, and as the partner's principal for
        // the partner account.
        let a_cfg = tmp.join("a.toml");
        std::fs::write(
            &a_cfg,
            format!(
                "[[peer]]\nregion = \"us-west-2\"\nendpoint = \"{}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n\
                 [[peer.account]]\nregistry_id = \"{PARTNER}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                b.url(),
                berth_testsupport::ecr::TEST_ACCESS_KEY_ID,
                berth_testsupport::ecr::TEST_SECRET_ACCESS_KEY,
                partner.access_key_id,
                partner.secret_access_key
            ),
        )
        .unwrap();
        let a = Berth::options(backend).env("BERTH_CONFIG", a_cfg.to_str().unwrap()).start();
        let layout = Layout::build(&tmp.join("layout"));
        let a_http = a.http();
        put(&a, json!([{ "destinations": [
            { "region": "us-west-2", "registryId": SOURCE },
            { "region": "us-west-2", "registryId": PARTNER }
        ] }])).expect_status(200);

        // 12 pushes, two destinations each: 24 copies. (The test's own clients
        // take their tokens first.)
        let b_partner = partner_http(&b, &partner);
        let b_http = b.http();
        let before = token_calls(&b);
        const N: usize = 12;
        for i in 0..N {
            layout.image.push(&a_http, "app", &format!("t{i}")).expect_status(201);
        }
        for i in 0..N {
            assert_eq!(
                settled_statuses(&a, "app", &format!("t{i}")),
                json!([
                    { "region": "us-west-2", "registryId": SOURCE, "status": "COMPLETE" },
                    { "region": "us-west-2", "registryId": PARTNER, "status": "COMPLETE" }
                ])
            );
        }
        // The status is the image's: it settles only once every tag's copy is
        // done, so every tag is there.
        for http in [&b_partner, &b_http] {
            let r = http.get("/v2/app/tags/list");
            r.expect_status(200);
            assert_eq!(r.json()["tags"].as_array().map(Vec::len), Some(N), "{}", r.text());
        }
        // One token per principal served every copy.
        let calls = token_calls(&b) - before;
        assert!(calls <= 2, "{calls} GetAuthorizationToken calls for {} copies", 2 * N);
        assert!(calls >= 1, "the peer never issued a token");

        // The partner's copy arrived through the partner's own principal.
        assert_pulls_byte_exact(&b_partner, "app", &layout.image, &format!("t{}", N - 1));
        assert_pulls_byte_exact(&b_http, "app", &layout.image, "t0");
        let rows = replication_audit(&b);
        let by = |account: &str| {
            rows.iter()
                .filter(|f| f[1] == account && f[6] == format!("COMPLETE from us-east-1/{SOURCE}"))
                .map(|f| f[2].clone())
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(
            by(PARTNER).into_iter().collect::<Vec<_>>(),
            vec![format!("arn:aws:iam::{PARTNER}:root")],
            "{rows:?}"
        );
        assert_eq!(
            by(SOURCE).into_iter().collect::<Vec<_>>(),
            vec![format!("arn:aws:iam::{SOURCE}:root")],
            "{rows:?}"
        );
    }
}

/// `/metrics`' images by replication status: `[IN_PROGRESS, COMPLETE, FAILED]`.
fn image_counts(berth: &Berth) -> [i64; 3] {
    let text = berth.http().get("/metrics").text();
    ["IN_PROGRESS", "COMPLETE", "FAILED"].map(|s| {
        let prefix = format!("berth_replication_images{{status=\"{s}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"))
    })
}

/// The image's `DescribeImageReplicationStatus`, counted as `/metrics` counts.
fn described_counts(berth: &Berth, repo: &str, digest: &str) -> [i64; 3] {
    let r = berth.ecr(
        "DescribeImageReplicationStatus",
        &json!({ "repositoryName": repo, "imageId": { "imageDigest": digest } }),
    );
    r.expect_status(200);
    let mut n = [0; 3];
    for s in r.json()["replicationStatuses"].as_array().unwrap() {
        let i = ["IN_PROGRESS", "COMPLETE", "FAILED"]
            .iter()
            .position(|x| s["status"] == *x)
            .unwrap_or_else(|| panic!("unknown status {s}"));
        n[i] += 1;
    }
    n
}

/// The counts `/metrics` and `DescribeImageReplicationStatus` agree on, for a
/// registry whose only replicated image is `digest`: a sample counts when
/// `/metrics` read the same before and after the describe (nothing moved in
/// between), and then the two must be equal.
fn agreed_counts(berth: &Berth, repo: &str, digest: &str) -> [i64; 3] {
    for _ in 0..50 {
        let before = image_counts(berth);
        let described = described_counts(berth, repo, digest);
        if image_counts(berth) == before {
            assert_eq!(before, described, "/metrics [IN_PROGRESS, COMPLETE, FAILED] disagrees with DescribeImageReplicationStatus");
            return before;
        }
    }
    panic!("/metrics never held still");
}

both_backends! {
    fn a_rebuilt_peer_gets_a_new_token_and_the_metrics_follow_the_status(backend) {
        let tmp = TempDir::new("berth-repl-rebuilt");
        let mut b = Berth::options(backend).env("BERTH_REGION", "us-west-2").start();
        let a_cfg = tmp.join("a.toml");
        write_peer_config(&a_cfg, "us-west-2", &b.url());
        let a = Berth::options(backend).env("BERTH_CONFIG", a_cfg.to_str().unwrap()).start();
        let layout = Layout::build(&tmp.join("layout"));
        let digest = layout.image.digest();
        let a_http = a.http();
        put(&a, json!([{ "destinations": [{ "region": "us-west-2", "registryId": SOURCE }] }]))
            .expect_status(200);
        let west = json!([{ "region": "us-west-2", "registryId": SOURCE, "status": "COMPLETE" }]);

        // A copy to B: A takes a token from B and keeps it.
        layout.image.push(&a_http, "app", "v1").expect_status(201);
        assert_eq!(settled_statuses(&a, "app", "v1"), west);
        assert_eq!(agreed_counts(&a, "app", digest), [0, 1, 0]);
        assert!(token_calls(&b) >= 1, "A never took a token from B");
        // A token B issued (to this test): the rebuilt peer will not accept it.
        let r = b.ecr("GetAuthorizationToken", &json!({}));
        r.expect_status(200);
        let old = r.json()["authorizationData"][0]["authorizationToken"]
            .as_str()
            .unwrap()
            .to_string();

        // B goes away; two more copies of the image (new tags) wait at A, retried.
        b.kill9();
        let addr = b.addr();
        layout.image.push(&a_http, "app", "v2").expect_status(201);
        layout.image.push(&a_http, "app", "v3").expect_status(201);
        // While they are to run, the image is IN_PROGRESS to both.
        assert_eq!(agreed_counts(&a, "app", digest), [1, 0, 0]);
        std::thread::sleep(Duration::from_millis(800));
        assert_eq!(agreed_counts(&a, "app", digest), [1, 0, 0]);

        // B is rebuilt: a new deployment (new data, new master key, so a new token
        // key) at the same endpoint, with the same root credentials.
        let b2 = Berth::options(backend)
            .env("BERTH_REGION", "us-west-2")
            .listen(addr)
            .start();
        Http::new(addr)
            .send("GET", "/v2/", &[("authorization", format!("Basic {old}").as_str())], Vec::new())
            .expect_status(401);

        // A's kept token is refused; it takes one new token and both copies
        // complete. /metrics agrees with the status at every steady sample.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let counts = agreed_counts(&a, "app", digest);
            if counts == [0, 1, 0] {
                break;
            }
            assert_eq!(counts, [1, 0, 0], "{}", a.stderr_tail(20));
            assert!(Instant::now() < deadline, "still in progress\n{}", a.stderr_tail(20));
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(settled_statuses(&a, "app", "v3"), west);
        let text = a.http().get("/metrics").text();
        for state in ["queued", "running", "parked"] {
            let line = format!("berth_replication_jobs{{state=\"{state}\"}} 0");
            assert!(text.lines().any(|l| l == line), "{line} missing from:\n{text}");
        }
        let tokens: Vec<Vec<String>> = b2
            .admin(&["audit", "--limit", "1000"])
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect::<Vec<_>>())
            .filter(|f| f.get(3).map(String::as_str) == Some("ecr:GetAuthorizationToken"))
            .collect();
        assert_eq!(tokens.len(), 1, "one new token for A's copies: {tokens:?}");
        assert_eq!(tokens[0][2], format!("arn:aws:iam::{SOURCE}:root"), "{tokens:?}");
        let b2_http = b2.http();
        let r = b2_http.get("/v2/app/tags/list");
        r.expect_status(200);
        let mut tags: Vec<String> = serde_json::from_value(r.json()["tags"].clone()).unwrap();
        tags.sort();
        assert_eq!(tags, ["v2", "v3"]);
        assert_pulls_byte_exact(&b2_http, "app", &layout.image, "v3");
    }
}
