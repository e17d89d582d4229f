//! The user's workflow (seed `ecr-setup.md`) with the real AWS CLI, skopeo and
//! Terraform against a real `berth serve`, and the authorization matrix.

use std::path::Path;
use std::process::{Command, Output};

use berth_testsupport::ecr::Credentials;
use berth_testsupport::tools::{require, Terraform};
use berth_testsupport::{both_backends, Berth, Layout, TempDir};
use serde_json::{json, Value};

fn aws(berth: &Berth, creds: &Credentials, args: &[&str]) -> Output {
    berth.aws(creds, args)
}

fn aws_ok(berth: &Berth, creds: &Credentials, args: &[&str]) -> Value {
    berth.aws_ok(creds, args)
}

fn aws_err(berth: &Berth, creds: &Credentials, args: &[&str], code: &str) {
    berth.aws_err(creds, args, code)
}

fn skopeo_login(berth: &Berth, creds: &Credentials, authfile: &Path) {
    let token = aws(berth, creds, &["ecr", "get-login-password"]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let mut child = Command::new("skopeo")
        .args([
            "login",
            "--tls-verify=false",
            "--username",
            "AWS",
            "--password-stdin",
        ])
        .arg("--authfile")
        .arg(authfile)
        .arg(berth.host())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("skopeo login");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&token.stdout)
        .expect("write token");
    let out = child.wait_with_output().expect("skopeo login");
    assert!(
        out.status.success(),
        "skopeo login: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn skopeo(authfile: &Path, args: &[&str]) -> Output {
    require("skopeo", "apt-get install -y skopeo");
    Command::new("skopeo")
        .args(args)
        .arg("--authfile")
        .arg(authfile)
        .output()
        .expect("skopeo")
}

both_backends! {
    fn seed_cli_flow(backend) {
        let berth = Berth::start(backend);
        let root = berth.root_credentials();
        let v = aws_ok(&berth, &root, &[
            "ecr", "create-repository", "--repository-name", "my-web-app-repo",
            "--image-scanning-configuration", "scanOnPush=true", "--image-tag-mutability", "IMMUTABLE",
        ]);
        let repo = &v["repository"];
        assert_eq!(repo["imageTagMutability"], "IMMUTABLE");
        assert_eq!(repo["imageScanningConfiguration"]["scanOnPush"], true);
        assert_eq!(repo["encryptionConfiguration"]["encryptionType"], "AES256");
        assert_eq!(repo["repositoryUri"], format!("{}/my-web-app-repo", berth.host()));
        assert!(repo["createdAt"].is_number(), "timestamps are JSON numbers");
        aws_err(&berth, &root, &["ecr", "create-repository", "--repository-name", "my-web-app-repo"], "RepositoryAlreadyExistsException");

        let tmp = TempDir::new("seed");
        let auth = tmp.join("auth.json");
        skopeo_login(&berth, &root, &auth);
        let layout = Layout::build(&tmp.join("layout"));
        let dst = format!("docker://{}/my-web-app-repo:latest", berth.host());
        let out = skopeo(&auth, &["copy", "--dest-tls-verify=false", &layout.oci_ref("single"), &dst]);
        assert!(out.status.success(), "push: {}", String::from_utf8_lossy(&out.stderr));
        let pulled = tmp.join("pulled");
        let out = skopeo(&auth, &["copy", "--src-tls-verify=false", &dst, &format!("oci:{}:latest", pulled.display())]);
        assert!(out.status.success(), "pull: {}", String::from_utf8_lossy(&out.stderr));

        let v = aws_ok(&berth, &root, &["ecr", "describe-images", "--repository-name", "my-web-app-repo"]);
        let d = &v["imageDetails"][0];
        assert_eq!(d["imageDigest"], layout.image.digest());
        assert_eq!(d["imageTags"], json!(["latest"]));
        assert!(d["imagePushedAt"].is_number());
        assert!(d["imageSizeInBytes"].as_i64().unwrap_or(0) > 0);

        // The tag is immutable: another image under it is refused on the data plane…
        let out = skopeo(&auth, &["copy", "--dest-tls-verify=false", &layout.oci_ref("multi"), &dst]);
        assert!(!out.status.success(), "moving an immutable tag must fail");
        assert!(String::from_utf8_lossy(&out.stderr).contains("tag invalid"), "{}", String::from_utf8_lossy(&out.stderr));
        // …and on the control plane; re-putting the same image is ImageAlreadyExists.
        let manifest = String::from_utf8(layout.image.manifest.bytes.clone()).expect("utf8 manifest");
        aws_err(&berth, &root, &["ecr", "put-image", "--repository-name", "my-web-app-repo", "--image-tag", "latest", "--image-manifest", &manifest], "ImageAlreadyExistsException");
        let ids = aws_ok(&berth, &root, &["ecr", "list-images", "--repository-name", "my-web-app-repo"]);
        assert_eq!(ids["imageIds"].as_array().map(Vec::len), Some(1));

        aws_err(&berth, &root, &["ecr", "delete-repository", "--repository-name", "my-web-app-repo"], "RepositoryNotEmptyException");
        aws_ok(&berth, &root, &["ecr", "delete-repository", "--repository-name", "my-web-app-repo", "--force"]);
        aws_err(&berth, &root, &["ecr", "describe-repositories", "--repository-names", "my-web-app-repo"], "RepositoryNotFoundException");
    }
}

both_backends! {
    fn authorization_matrix(backend) {
        let berth = Berth::start(backend);
        let root = berth.root_credentials();
        aws_ok(&berth, &root, &["ecr", "create-repository", "--repository-name", "team/app"]);
        berth.admin(&["user", "create", "reader"]);
        berth.admin(&["policy", "attach", "--user", "reader", "ReadOnly"]);
        let reader = berth.access_key(&["--user", "reader"]);
        berth.admin(&["user", "create", "pusher"]);
        berth.admin(&["policy", "attach", "--user", "pusher", "PowerUser"]);
        let pusher = berth.access_key(&["--user", "pusher"]);
        berth.admin(&["account", "create", "210987654321"]);
        let other = berth.access_key(&["--account", "210987654321"]);

        let tmp = TempDir::new("authz");
        let layout = Layout::build(&tmp.join("layout"));
        let repo = format!("docker://{}/team/app", berth.host());
        let login = |c: &Credentials, n: &str| {
            let f = tmp.join(format!("{n}.json"));
            skopeo_login(&berth, c, &f);
            f
        };
        let push = |auth: &Path, tag: &str| skopeo(auth, &["copy", "--dest-tls-verify=false", &layout.oci_ref("single"), &format!("{repo}:{tag}")]);
        let pull = |auth: &Path| skopeo(auth, &["inspect", "--tls-verify=false", &format!("{repo}:v1")]);

        // PowerUser pushes and pulls.
        let pa = login(&pusher, "pusher");
        assert!(push(&pa, "v1").status.success(), "PowerUser push");
        assert!(pull(&pa).status.success(), "PowerUser pull");
        // ReadOnly pulls but cannot push.
        let ra = login(&reader, "reader");
        assert!(pull(&ra).status.success(), "ReadOnly pull");
        let out = push(&ra, "v2");
        assert!(!out.status.success(), "ReadOnly must not push");
        assert!(String::from_utf8_lossy(&out.stderr).contains("denied"), "{}", String::from_utf8_lossy(&out.stderr));
        aws_err(&berth, &reader, &["ecr", "create-repository", "--repository-name", "nope"], "AccessDeniedException");

        // Another account is denied until the repository policy grants it pull…
        let oa = login(&other, "other");
        assert!(!pull(&oa).status.success(), "cross-account pull without a grant");
        aws_err(&berth, &other, &["ecr", "describe-images", "--registry-id", "123456789012", "--repository-name", "team/app"], "AccessDeniedException");
        let policy = json!({"Version": "2012-10-17", "Statement": [{"Sid": "AllowPull", "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]}]});
        aws_ok(&berth, &root, &["ecr", "set-repository-policy", "--repository-name", "team/app", "--policy-text", &policy.to_string()]);
        assert!(pull(&oa).status.success(), "cross-account pull with a grant");
        let out = tmp.join("other-pulled");
        let o = skopeo(&oa, &["copy", "--src-tls-verify=false", &format!("{repo}:v1"), &format!("oci:{}:v1", out.display())]);
        assert!(o.status.success(), "cross-account copy: {}", String::from_utf8_lossy(&o.stderr));
        // …and still cannot push.
        assert!(!push(&oa, "v3").status.success(), "cross-account push");

        // An explicit Deny beats the PowerUser allow.
        let deny = tmp.join("deny.json");
        std::fs::write(&deny, json!({"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "ecr:BatchGetImage", "Resource": "*"}]}).to_string()).expect("write policy");
        berth.admin(&["policy", "attach", "--user", "pusher", "--name", "no-pull", "--file", deny.to_str().expect("path")]);
        assert!(!pull(&pa).status.success(), "explicit deny must win");

        // Forged and expired tokens are refused.
        let forged = berth.http().anonymous().basic_auth("AWS", "AAAAforgedtoken").get("/v2/");
        forged.expect_status(401);
        assert!(forged.header("www-authenticate").is_some_and(|h| h.starts_with("Basic ")));
        let (_, token) = berth.registry_creds();
        let mut tampered = token.clone().into_bytes();
        let mid = tampered.len() / 2;
        tampered[mid] = if tampered[mid] == b'A' { b'B' } else { b'A' };
        berth.http().anonymous().basic_auth("AWS", &String::from_utf8(tampered).expect("ascii")).get("/v2/").expect_status(401);
        berth.http().anonymous().get("/v2/").expect_status(401);
    }
}

#[test]
fn expired_tokens_are_refused() {
    // Two servers share a master key (so tokens of one are authentic at the other);
    // the second one's clock runs 13 hours ahead, so today's tokens have expired there.
    let key = "11".repeat(32);
    let berth = Berth::start_with(
        berth_testsupport::Backend::Sqlite,
        &[("BERTH_MASTER_KEY", &key)],
    );
    let (_, token) = berth.registry_creds();
    berth.http().get("/v2/").expect_status(200);
    let later = Berth::start_with(
        berth_testsupport::Backend::Sqlite,
        &[
            ("BERTH_MASTER_KEY", &key),
            ("BERTH_CLOCK_OFFSET_SECS", "46800"),
        ],
    );
    // (A raw client: SigV4 calls to this server would be refused as skewed too.)
    let r = berth_testsupport::Http::new(later.addr())
        .basic_auth("AWS", &token)
        .get("/v2/");
    r.expect_status(401);
    assert!(r.text().contains("expired"), "{}", r.text());
    // A token minted 13 hours "earlier" is refused, but the same key still verifies
    // fresh tokens: one from the first server's clock, 12 h minus a minute old, works.
    let young = Berth::start_with(
        berth_testsupport::Backend::Sqlite,
        &[
            ("BERTH_MASTER_KEY", &key),
            ("BERTH_CLOCK_OFFSET_SECS", "43140"),
        ],
    );
    berth_testsupport::Http::new(young.addr())
        .basic_auth("AWS", &token)
        .get("/v2/")
        .expect_status(200);
}

both_backends! {
    fn terraform_seed(backend) {
        let berth = Berth::start(backend);
        let root = berth.root_credentials();
        let tmp = TempDir::new("tf");
        let dir = tmp.join("seed");
        std::fs::create_dir_all(&dir).expect("mkdir");
        // The seed's files, unchanged, plus a provider block pointing at berth.
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/terraform");
        for f in ["main.tf", "variables.tf", "outputs.tf"] {
            std::fs::copy(fixtures.join(f), dir.join(f)).expect("copy seed");
        }
        std::fs::write(dir.join("provider.tf"), r#"
variable "endpoint" {
  type = string
}

provider "aws" {
  region                      = var.aws_region
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_region_validation      = true
  endpoints {
    ecr = var.endpoint
    sts = var.endpoint
    iam = var.endpoint
  }
}
"#).expect("provider.tf");
        let tf = Terraform::new(&dir, &berth, &root);
        tf.init_apply(&berth);
        tf.assert_converged();
        let (rc, uri) = tf.run(&["output", "-raw", "ecr_repository_uri"]);
        assert_eq!(rc, Some(0));
        let uri = uri.lines().next().unwrap_or("").trim().to_string();
        assert_eq!(uri, format!("{}/my-private-app-repo", berth.host()));
        let (_, login) = tf.run(&["output", "-raw", "ecr_login_info"]);
        assert!(login.starts_with("123456789012.dkr.ecr.us-east-1.amazonaws.com"), "{login}");

        // The repository Terraform made takes a real push at the output URI.
        let layout = Layout::build(&tmp.join("layout"));
        let auth = tmp.join("auth.json");
        skopeo_login(&berth, &root, &auth);
        let out = skopeo(&auth, &["copy", "--dest-tls-verify=false", &layout.oci_ref("single"), &format!("docker://{uri}:prod-1")]);
        assert!(out.status.success(), "push to the Terraform repository: {}", String::from_utf8_lossy(&out.stderr));
        let r = berth.ecr("GetLifecyclePolicy", &json!({"repositoryName": "my-private-app-repo"}));
        r.expect_status(200);
        let policy: Value = serde_json::from_str(r.json()["lifecyclePolicyText"].as_str().unwrap_or("")).expect("policy json");
        assert_eq!(policy["rules"][0]["selection"]["countNumber"], 10);
        let r = berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["my-private-app-repo"]}));
        assert_eq!(r.json()["repositories"][0]["imageTagMutability"], "IMMUTABLE");

        // destroy refuses a non-empty repository unless forced (force_delete unset), so
        // empty it first as a user would.
        let r = berth.ecr("BatchDeleteImage", &json!({"repositoryName": "my-private-app-repo", "imageIds": [{"imageTag": "prod-1"}]}));
        r.expect_status(200);
        tf.destroy();
        berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["my-private-app-repo"]})).expect_status(400);
    }
}

both_backends! {
    fn terraform_kms_key_alias_and_encrypted_repository(backend) {
        let berth = Berth::start(backend);
        let root = berth.root_credentials();
        let tmp = TempDir::new("tfkms");
        let dir = tmp.join("kms");
        std::fs::create_dir_all(&dir).expect("mkdir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/terraform-kms");
        std::fs::copy(fixtures.join("main.tf"), dir.join("main.tf")).expect("copy");
        let tf = Terraform::new(&dir, &berth, &root);
        tf.init_apply(&berth);
        tf.assert_converged();

        // Control-plane calls are audited under their own service.
        let audit = berth.admin(&["audit", "--limit", "500"]);
        assert!(audit.contains("kms:CreateKey") && audit.contains("ecr:CreateRepository"), "{audit}");
        let r = berth.ecr("DescribeRepositories", &json!({"repositoryNames": ["team-a/app"]}));
        let enc = &r.json()["repositories"][0]["encryptionConfiguration"];
        assert_eq!(enc["encryptionType"], "KMS");
        let key_arn = enc["kmsKey"].as_str().unwrap_or("").to_string();
        assert!(key_arn.starts_with("arn:aws:kms:us-east-1:123456789012:key/"), "{key_arn}");

        // Push into the encrypted repository; the key gates it through the KMS API.
        let layout = Layout::build(&tmp.join("layout"));
        let auth = tmp.join("auth.json");
        skopeo_login(&berth, &root, &auth);
        let dst = format!("docker://{}/team-a/app:v1", berth.host());
        let out = skopeo(&auth, &["copy", "--dest-tls-verify=false", &layout.oci_ref("single"), &dst]);
        assert!(out.status.success(), "push: {}", String::from_utf8_lossy(&out.stderr));
        aws_ok(&berth, &root, &["kms", "disable-key", "--key-id", "alias/team-a-ecr"]);
        let out = skopeo(&auth, &["inspect", "--tls-verify=false", &dst]);
        assert!(!out.status.success(), "a disabled key must block pulls");
        aws_err(&berth, &root, &["ecr", "batch-get-image", "--repository-name", "team-a/app", "--image-ids", "imageTag=v1"], "KmsException");
        aws_ok(&berth, &root, &["kms", "enable-key", "--key-id", "alias/team-a-ecr"]);
        let pulled = tmp.join("pulled");
        let out = skopeo(&auth, &["copy", "--src-tls-verify=false", &dst, &format!("oci:{}:v1", pulled.display())]);
        assert!(out.status.success(), "pull after enable: {}", String::from_utf8_lossy(&out.stderr));
        let v = aws_ok(&berth, &root, &["kms", "get-key-rotation-status", "--key-id", &key_arn]);
        assert_eq!(v["KeyRotationEnabled"], true);

        berth.ecr("BatchDeleteImage", &json!({"repositoryName": "team-a/app", "imageIds": [{"imageTag": "v1"}]})).expect_status(200);
        tf.destroy();
        let v = aws_ok(&berth, &root, &["kms", "describe-key", "--key-id", &key_arn]);
        assert_eq!(v["KeyMetadata"]["KeyState"], "PendingDeletion");
    }
}

both_backends! {
    fn immutable_tags_under_concurrent_pushes(backend) {
        let berth = Berth::start(backend);
        berth.ecr("CreateRepository", &json!({"repositoryName": "imm", "imageTagMutability": "IMMUTABLE"})).expect_status(200);
        // Eight different manifests race for one immutable tag: exactly one wins.
        let images: Vec<_> = (0..8)
            .map(|i| {
                let l = berth_testsupport::layout::tar_gz_layer(
                    berth_testsupport::layout::OCI_LAYER_GZIP,
                    &[("f", 0o644, format!("racer {i}").into_bytes())],
                );
                berth_testsupport::layout::image(vec![l], "amd64", false)
            })
            .collect();
        let http = berth.http();
        for img in &images {
            for b in img.blobs() {
                berth_testsupport::layout::push_blob(&http, "imm", b);
            }
        }
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = images
                .iter()
                .map(|img| {
                    let http = berth.http();
                    s.spawn(move || {
                        http.send("PUT", "/v2/imm/manifests/release", &[("Content-Type", img.manifest.media_type.as_str())], img.manifest.bytes.clone()).status
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 7, "{statuses:?}");
        let winner = http.get("/v2/imm/manifests/release");
        winner.expect_status(200);
        assert!(images.iter().any(|i| i.manifest.bytes == winner.body));
        // The control plane refuses too.
        let loser = images.iter().find(|i| i.manifest.bytes != winner.body).expect("a loser");
        let r = berth.ecr("PutImage", &json!({"repositoryName": "imm", "imageTag": "release", "imageManifest": String::from_utf8_lossy(&loser.manifest.bytes)}));
        assert_eq!(r.json()["__type"], "ImageTagAlreadyExistsException");

        // IMMUTABLE_WITH_EXCLUSION: `latest` moves, everything else is fixed.
        berth.ecr("PutImageTagMutability", &json!({"repositoryName": "imm", "imageTagMutability": "IMMUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "latest"}]})).expect_status(200);
        for img in &images[..2] {
            berth_testsupport::layout::put_manifest(&http, "imm", "latest", &img.manifest);
        }
        berth_testsupport::layout::put_manifest(&http, "imm", "v1", &images[0].manifest);
        http.send("PUT", "/v2/imm/manifests/v1", &[("Content-Type", images[1].manifest.media_type.as_str())], images[1].manifest.bytes.clone())
            .expect_oci_error(400, "TAG_INVALID");
        // MUTABLE_WITH_EXCLUSION: only `prod-*` is fixed.
        berth.ecr("PutImageTagMutability", &json!({"repositoryName": "imm", "imageTagMutability": "MUTABLE_WITH_EXCLUSION",
            "imageTagMutabilityExclusionFilters": [{"filterType": "WILDCARD", "filter": "prod-*"}]})).expect_status(200);
        berth_testsupport::layout::put_manifest(&http, "imm", "v1", &images[1].manifest);
        berth_testsupport::layout::put_manifest(&http, "imm", "prod-1", &images[0].manifest);
        http.send("PUT", "/v2/imm/manifests/prod-1", &[("Content-Type", images[1].manifest.media_type.as_str())], images[1].manifest.bytes.clone())
            .expect_oci_error(400, "TAG_INVALID");
    }
}

#[test]
fn refuses_to_start_without_the_master_key_once_data_is_sealed() {
    let mut berth = Berth::start(berth_testsupport::Backend::Sqlite);
    berth
        .ecr("CreateRepository", &json!({"repositoryName": "keep"}))
        .expect_status(200);
    berth.kill9();
    std::fs::remove_file(berth.data_dir().join("master.key")).expect("remove key");
    let out = Command::new(berth_testsupport::server::berth_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(berth.data_dir())
        .env(
            "BERTH_ROOT_ACCESS_KEY_ID",
            berth_testsupport::ecr::TEST_ACCESS_KEY_ID,
        )
        .env(
            "BERTH_ROOT_SECRET_ACCESS_KEY",
            berth_testsupport::ecr::TEST_SECRET_ACCESS_KEY,
        )
        .output()
        .expect("run berth");
    assert!(
        !out.status.success(),
        "berth started without its master key"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("master key") && err.contains("missing"),
        "{err}"
    );
    assert!(
        !berth.data_dir().join("master.key").exists(),
        "no new key may be generated"
    );
}

both_backends! {
    fn accounts_have_their_own_registry_by_host(backend) {
        let berth = Berth::start(backend);
        berth.admin(&["account", "create", "210987654321"]);
        let other = berth.access_key(&["--account", "210987654321"]);
        let root = berth.root_credentials();
        // The same name in two accounts does not collide.
        aws_ok(&berth, &root, &["ecr", "create-repository", "--repository-name", "shared-name"]);
        let v = aws_ok(&berth, &other, &["ecr", "create-repository", "--repository-name", "shared-name"]);
        assert_eq!(v["repository"]["registryId"], "210987654321");
        assert_eq!(v["repository"]["repositoryUri"], format!("210987654321.{}/shared-name", berth.host()));
        let tok = aws(&berth, &other, &["ecr", "get-login-password"]);
        let token = String::from_utf8_lossy(&tok.stdout).trim().to_string();
        // <account>.<public host> addresses that account's registry.
        let catalog = |host: &str| {
            let r = berth_testsupport::Http::new(berth.addr()).basic_auth("AWS", &token).host(host).get("/v2/_catalog");
            (r.status, r.text())
        };
        let (st, body) = catalog(&format!("210987654321.{}", berth.host()));
        assert_eq!(st, 200, "{body}");
        assert!(body.contains("shared-name"), "{body}");
        let (st, _) = catalog(&berth.host());
        assert_eq!(st, 403, "the other account may not list the default account's registry");
    }
}
