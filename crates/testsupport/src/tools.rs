//! Real clients (skopeo, podman, oras-py, openssl, psql). Every invocation that talks
//! to berth goes through here and carries [`Berth::registry_creds`]; a missing tool
//! fails the test with the command that installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::server::{Berth, TempDir};

/// Panics with an install hint unless `tool` is on `PATH`.
pub fn require(tool: &str, install: &str) {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let p = d.join(tool);
            p.is_file()
                && std::fs::metadata(&p)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    });
    if !found {
        panic!("`{tool}` is not installed: {install}");
    }
}

/// Panics with an install hint unless `python3 -c "import <module>"` works.
pub fn require_python_module(module: &str, install: &str) {
    require("python3", "apt-get install -y python3");
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        panic!("the Python module `{module}` is not installed: {install}");
    }
}

/// Runs a command; returns its output (never panics on a non-zero exit).
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command and returns stdout; panics with stdout/stderr on failure.
#[track_caller]
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = run(cmd);
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.stdout
}

impl Berth {
    /// Runs the AWS CLI (v1) against this server as `creds` (JSON output; no config
    /// or credentials files of the machine are read).
    pub fn aws(&self, creds: &crate::ecr::Credentials, args: &[&str]) -> Output {
        require("aws", "pip install awscli");
        Command::new("aws")
            .args(args)
            .args([
                "--endpoint-url",
                &self.url(),
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run aws")
    }

    /// [`Self::aws`] that must succeed; returns its JSON output (a string for plain
    /// text, `Null` for none).
    #[track_caller]
    pub fn aws_ok(&self, creds: &crate::ecr::Credentials, args: &[&str]) -> serde_json::Value {
        let out = self.aws(creds, args);
        assert!(
            out.status.success(),
            "aws {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.stderr_tail(20)
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&out.stdout).trim().to_string())
            })
        }
    }

    /// [`Self::aws`] that must fail with the AWS error `code`.
    #[track_caller]
    pub fn aws_err(&self, creds: &crate::ecr::Credentials, args: &[&str], code: &str) {
        let out = self.aws(creds, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "aws {args:?} unexpectedly succeeded");
        assert!(
            err.contains(&format!("({code})")),
            "aws {args:?}: want {code}, got:\n{err}"
        );
    }

    /// `docker://<host>/<name_and_ref>`, a skopeo image reference into this registry.
    pub fn docker_ref(&self, name_and_ref: &str) -> String {
        format!("docker://{}/{name_and_ref}", self.host())
    }

    /// A skopeo driver for this registry.
    pub fn skopeo(&self) -> Skopeo<'_> {
        require(
            "skopeo",
            "apt-get install -y --no-install-recommends skopeo",
        );
        Skopeo {
            berth: self,
            cert_dir: None,
        }
    }

    /// A podman driver with its own storage root (vfs driver, as root).
    pub fn podman(&self) -> Podman<'_> {
        require("podman", "apt-get install -y podman");
        let root = TempDir::short("bp");
        // An own containers.conf keeps the host's configuration out of the test.
        std::fs::write(
            root.join("containers.conf"),
            "[engine]\nevents_logger = \"none\"\ncgroup_manager = \"cgroupfs\"\n",
        )
        .expect("containers.conf");
        std::fs::write(root.join("auth.json"), "{}").expect("auth.json");
        Podman { berth: self, root }
    }

    /// Runs a Python script with oras-py. The script sees `host`, `user`, `password`
    /// and `client` (an `oras.client.OrasClient` on this registry, with basic auth),
    /// plus `args` (extra arguments); it runs in `cwd`. Returns stdout.
    #[track_caller]
    pub fn oras_py(&self, cwd: &Path, script: &str, args: &[&str]) -> String {
        require_python_module("oras", "pip install oras");
        let (user, pass) = self.registry_creds();
        let prelude = "\
import sys, json, os
import oras.client, oras.oci
host, user, password = sys.argv[1:4]
args = sys.argv[4:]
client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend='basic')
client.auth.set_basic_auth(user, password)
";
        let out = run_ok(
            Command::new("python3")
                .arg("-c")
                .arg(format!("{prelude}\n{script}"))
                .arg(self.host())
                .arg(user)
                .arg(pass)
                .args(args)
                .current_dir(cwd),
        );
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// skopeo with this registry's credentials and TLS settings on whichever side(s) of
/// a command point at berth.
pub struct Skopeo<'a> {
    berth: &'a Berth,
    cert_dir: Option<PathBuf>,
}

impl Skopeo<'_> {
    /// Verify TLS against the CA certificate(s) in `dir` (`ca.crt`), instead of
    /// `--tls-verify=false`.
    pub fn cert_dir(mut self, dir: &Path) -> Self {
        self.cert_dir = Some(dir.into());
        self
    }

    fn is_ours(&self, r: &str) -> bool {
        r.starts_with(&format!("docker://{}/", self.berth.host()))
    }

    fn side_flags(&self, prefix: &str) -> Vec<String> {
        let (u, p) = self.berth.registry_creds();
        let mut v = vec![format!("--{prefix}creds={u}:{p}")];
        match &self.cert_dir {
            Some(d) if self.berth.is_tls() => {
                v.push(format!("--{prefix}cert-dir={}", d.display()));
                v.push(format!("--{prefix}tls-verify=true"));
            }
            _ => v.push(format!("--{prefix}tls-verify=false")),
        }
        v
    }

    /// `skopeo copy [extra] src dst`; returns the command output (check `status`).
    pub fn try_copy(&self, src: &str, dst: &str, extra: &[&str]) -> Output {
        let mut c = Command::new("skopeo");
        c.arg("copy");
        if self.is_ours(src) {
            c.args(self.side_flags("src-"));
        }
        if self.is_ours(dst) {
            c.args(self.side_flags("dest-"));
        }
        c.args(extra).arg(src).arg(dst);
        run(&mut c)
    }

    /// `skopeo copy`, asserting success.
    #[track_caller]
    pub fn copy(&self, src: &str, dst: &str, extra: &[&str]) {
        let out = self.try_copy(src, dst, extra);
        if !out.status.success() {
            panic!(
                "skopeo copy {extra:?} {src} {dst} failed with {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
            );
        }
    }

    /// `skopeo <sub> [--creds --tls-verify] [args]` for the single-image commands
    /// (`inspect`, `list-tags`, `delete`); returns the command output.
    pub fn try_run(&self, sub: &str, args: &[&str]) -> Output {
        let mut c = Command::new("skopeo");
        c.arg(sub).args(self.side_flags("")).args(args);
        run(&mut c)
    }

    /// Like [`Self::try_run`], asserting success and returning stdout.
    #[track_caller]
    pub fn run(&self, sub: &str, args: &[&str]) -> Vec<u8> {
        let out = self.try_run(sub, args);
        if !out.status.success() {
            panic!(
                "skopeo {sub} {args:?} failed with {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
            );
        }
        out.stdout
    }

    /// `skopeo inspect --raw docker://…`: the manifest bytes as served.
    #[track_caller]
    pub fn inspect_raw(&self, name_and_ref: &str) -> Vec<u8> {
        self.run("inspect", &["--raw", &self.berth.docker_ref(name_and_ref)])
    }
}

/// podman (`--storage-driver vfs`, private `--root`/`--runroot`) against berth.
pub struct Podman<'a> {
    berth: &'a Berth,
    root: TempDir,
}

impl Podman<'_> {
    /// `podman <global flags> <sub> [--creds --tls-verify=false for pull/push] args`.
    pub fn try_run(&self, sub: &str, args: &[&str]) -> Output {
        let mut c = Command::new("podman");
        c.arg("--storage-driver=vfs")
            .arg(format!("--root={}", self.root.join("root").display()))
            .arg(format!("--runroot={}", self.root.join("run").display()))
            .arg(format!("--tmpdir={}", self.root.join("tmp").display()))
            .arg("--events-backend=none")
            .arg("--cgroup-manager=cgroupfs")
            .arg(sub);
        if matches!(sub, "pull" | "push") {
            let (u, p) = self.berth.registry_creds();
            c.arg(format!("--creds={u}:{p}")).arg("--tls-verify=false");
        }
        c.args(args)
            .env("XDG_RUNTIME_DIR", self.root.join("xdg"))
            .env("CONTAINERS_CONF", self.root.join("containers.conf"))
            .env("REGISTRY_AUTH_FILE", self.root.join("auth.json"));
        run(&mut c)
    }

    /// Like [`Self::try_run`], asserting success; returns stdout.
    #[track_caller]
    pub fn run(&self, sub: &str, args: &[&str]) -> String {
        let out = self.try_run(sub, args);
        if !out.status.success() {
            panic!(
                "podman {sub} {args:?} failed with {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr),
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `<host>/<name_and_ref>`, a podman image reference into this registry.
    pub fn image_ref(&self, name_and_ref: &str) -> String {
        format!("{}/{name_and_ref}", self.berth.host())
    }
}

/// A self-signed certificate for `127.0.0.1` / `localhost` made with the openssl
/// CLI: returns `(cert.pem, key.pem, ca_dir)` where `ca_dir/ca.crt` is the cert (the
/// layout skopeo's `--cert-dir` expects).
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    require("openssl", "apt-get install -y openssl");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    run_ok(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]));
    let ca_dir = dir.join("certs.d");
    std::fs::create_dir_all(&ca_dir).unwrap();
    std::fs::copy(&cert, ca_dir.join("ca.crt")).unwrap();
    (cert, key, ca_dir)
}

/// Terraform in one working directory against one berth, as one principal.
pub struct Terraform {
    dir: PathBuf,
    endpoint: String,
    creds: crate::ecr::Credentials,
}

impl Terraform {
    pub fn new(dir: &Path, berth: &Berth, creds: &crate::ecr::Credentials) -> Terraform {
        Terraform {
            dir: dir.to_path_buf(),
            endpoint: berth.url(),
            creds: creds.clone(),
        }
    }

    /// `terraform ARGS`: its exit code and its stdout and stderr.
    pub fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let o = terraform(&self.dir, args, &self.endpoint, &self.creds);
        (
            o.status.code(),
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    }

    /// `init` and `apply`, each of which must succeed (a failed apply shows the
    /// end of `berth`'s log too).
    #[track_caller]
    pub fn init_apply(&self, berth: &Berth) {
        let (rc, log) = self.run(&["init", "-input=false", "-no-color"]);
        assert_eq!(rc, Some(0), "init:\n{log}");
        let (rc, log) = self.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
        assert_eq!(rc, Some(0), "apply:\n{log}\n{}", berth.stderr_tail(30));
    }

    /// A second `plan` must report no changes: what berth returns reads back as
    /// what was applied.
    #[track_caller]
    pub fn assert_converged(&self) {
        let (rc, log) = self.run(&["plan", "-detailed-exitcode", "-input=false", "-no-color"]);
        assert_eq!(
            rc,
            Some(0),
            "the second plan must report no changes:\n{log}"
        );
    }

    /// `destroy`, which must succeed.
    #[track_caller]
    pub fn destroy(&self) {
        let (rc, log) = self.run(&["destroy", "-auto-approve", "-input=false", "-no-color"]);
        assert_eq!(rc, Some(0), "destroy:\n{log}");
    }
}

/// Terraform with the hashicorp/aws provider from the machine's offline mirror
/// (`BERTH_TF_PLUGIN_DIR`, default `/opt/tf-plugins`), pointed at berth through
/// `TF_VAR_endpoint` and signing as `creds`; never the user's AWS configuration.
pub fn terraform(
    dir: &Path,
    args: &[&str],
    endpoint: &str,
    creds: &crate::ecr::Credentials,
) -> Output {
    require(
        "terraform",
        "install Terraform 1.11 and the hashicorp/aws provider mirror (BERTH_TF_PLUGIN_DIR, default /opt/tf-plugins)",
    );
    let mirror = std::env::var("BERTH_TF_PLUGIN_DIR").unwrap_or_else(|_| "/opt/tf-plugins".into());
    assert!(
        Path::new(&mirror)
            .join("registry.terraform.io/hashicorp/aws")
            .exists(),
        "no hashicorp/aws provider mirror at {mirror}: set BERTH_TF_PLUGIN_DIR"
    );
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
