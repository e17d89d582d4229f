//! Starting, stopping, crashing and restarting a real `berth serve` process.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::ecr::{self, Credentials};
use crate::http::{Http, Response};

/// The metadata store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The embedded default: SQLite under the data directory.
    Sqlite,
    /// A fresh database on the PostgreSQL server named by `BERTH_TEST_POSTGRES_URL`.
    Postgres,
    /// PostgreSQL as [`Backend::Postgres`], with the blobs in the S3 test bucket
    /// (`BERTH_TEST_S3_*`, exported by `scripts/garage-start`) under a prefix of its
    /// own (`BERTH_BLOB_STORE=s3://<bucket>/<prefix>`): the configuration of a
    /// registry of several nodes. Peers share the prefix.
    PostgresS3,
}

const PG_HINT: &str = "start one with `scripts/pg-start` and export \
BERTH_TEST_POSTGRES_URL=$(scripts/pg-start)";

impl Backend {
    /// Whether PostgreSQL tests can run. Without `BERTH_TEST_POSTGRES_URL` this panics
    /// (tests must not pass silently), unless `BERTH_TEST_SKIP_POSTGRES=1` is set
    /// outside CI, in which case it returns false and the caller skips.
    pub fn postgres_available() -> bool {
        if std::env::var("BERTH_TEST_POSTGRES_URL").is_ok_and(|v| !v.is_empty()) {
            return true;
        }
        if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
            panic!("BERTH_TEST_POSTGRES_URL is not set on CI: {PG_HINT}");
        }
        if std::env::var("BERTH_TEST_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("skipping the PostgreSQL variant: BERTH_TEST_SKIP_POSTGRES=1");
            return false;
        }
        panic!(
            "BERTH_TEST_POSTGRES_URL is not set: {PG_HINT} \
             (or set BERTH_TEST_SKIP_POSTGRES=1 to skip PostgreSQL variants locally)"
        );
    }
}

const S3_HINT: &str = "start one with: eval \"$(scripts/garage-start)\"";

/// The server environment for the S3 test bucket under a fresh prefix
/// (`BERTH_BLOB_STORE`, `BERTH_S3_*` from `BERTH_TEST_S3_*`). Without
/// `BERTH_TEST_S3_ENDPOINT` this panics (tests must not pass silently), unless
/// `BERTH_TEST_SKIP_S3=1` is set outside CI: then None, and the caller skips.
pub fn s3_test_env() -> Option<Vec<(String, String)>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(endpoint) = var("BERTH_TEST_S3_ENDPOINT") else {
        if var("CI").is_some() {
            panic!("BERTH_TEST_S3_ENDPOINT is not set on CI: {S3_HINT}");
        }
        if var("BERTH_TEST_SKIP_S3").as_deref() == Some("1") {
            eprintln!("skipping the S3 variant: BERTH_TEST_SKIP_S3=1");
            return None;
        }
        panic!("BERTH_TEST_S3_ENDPOINT is not set: {S3_HINT} (or BERTH_TEST_SKIP_S3=1 to skip)");
    };
    let bucket = var("BERTH_TEST_S3_BUCKET").unwrap_or_else(|| "berth-test".into());
    let prefix = format!("e2e-{}", uuid::Uuid::new_v4().simple());
    let mut env = vec![
        (
            "BERTH_BLOB_STORE".to_string(),
            format!("s3://{bucket}/{prefix}"),
        ),
        ("BERTH_S3_ENDPOINT".to_string(), endpoint),
    ];
    for (from, to) in [
        ("BERTH_TEST_S3_REGION", "BERTH_S3_REGION"),
        ("BERTH_TEST_S3_ACCESS_KEY_ID", "BERTH_S3_ACCESS_KEY_ID"),
        (
            "BERTH_TEST_S3_SECRET_ACCESS_KEY",
            "BERTH_S3_SECRET_ACCESS_KEY",
        ),
    ] {
        if let Some(v) = var(from) {
            env.push((to.to_string(), v));
        }
    }
    Some(env)
}

impl Backend {
    /// Whether PostgreSQL + S3 tests can run: both [`Backend::postgres_available`]
    /// and the S3 test bucket (see [`s3_test_env`]).
    pub fn postgres_s3_available() -> bool {
        Self::postgres_available()
            && (std::env::var("BERTH_TEST_S3_ENDPOINT").is_ok_and(|v| !v.is_empty())
                || s3_test_env().is_some())
    }

    /// Whether blobs live in an object store rather than under the data directory.
    pub fn blobs_in_s3(self) -> bool {
        self == Backend::PostgresS3
    }
}

/// A directory removed on drop (kept, and its path printed, when the test panicked).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        TempDir(p)
    }

    /// A directory with a short path (podman limits `--runroot` to 50 characters).
    pub fn short(prefix: &str) -> TempDir {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let p = std::env::temp_dir().join(format!("{prefix}-{}", &id[..12]));
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.0.join(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("keeping {} for inspection", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// How to start a server: backend, extra environment, TLS.
pub struct BerthOptions {
    backend: Backend,
    env: Vec<(String, String)>,
    tls: Option<(PathBuf, PathBuf)>,
    /// Another server's database URL and master key file: this one is a second node
    /// on the same metadata store (see [`Berth::peer`]).
    peer_of: Option<(String, PathBuf)>,
    /// The address to listen on (default: a free loopback port).
    listen: Option<SocketAddr>,
}

impl BerthOptions {
    /// Listen on `addr` — e.g. a stopped server's, to stand a new deployment up
    /// at the same endpoint.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = Some(addr);
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Serve HTTPS with this PEM certificate and key (`--tls-cert/--tls-key`).
    pub fn tls(mut self, cert: &Path, key: &Path) -> Self {
        self.tls = Some((cert.into(), key.into()));
        self
    }

    pub fn start(self) -> Berth {
        Berth::launch(self)
    }
}

/// A running `berth serve` with its own data directory (and database), killed on drop.
pub struct Berth {
    child: Option<Child>,
    addr: SocketAddr,
    tls: bool,
    opts: BerthOptions,
    database_url: Option<String>,
    /// Whether dropping this server drops its PostgreSQL database (not a peer's).
    owns_database: bool,
    data: TempDir,
    stderr_path: PathBuf,
    /// How many times the process was started (restarts included).
    starts: u32,
    creds: std::sync::Mutex<Option<(String, String)>>,
}

/// The `berth` binary: `BERTH_BIN`, else `<target dir>/debug/berth`.
pub fn berth_bin() -> PathBuf {
    if let Ok(b) = std::env::var("BERTH_BIN") {
        return PathBuf::from(b);
    }
    let target = match std::env::var("CARGO_TARGET_DIR") {
        Ok(t) if !t.is_empty() => {
            let t = PathBuf::from(t);
            if t.is_absolute() {
                t
            } else {
                workspace_root().join(t)
            }
        }
        _ => workspace_root().join("target"),
    };
    let bin = target.join("debug").join("berth");
    if !bin.exists() {
        panic!(
            "the berth binary is missing at {}: run `cargo build -p berth` first \
             (or point BERTH_BIN at a built binary)",
            bin.display()
        );
    }
    bin
}

/// The workspace root (this crate lives in `<root>/crates/testsupport`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

impl Berth {
    pub fn start(backend: Backend) -> Berth {
        Self::options(backend).start()
    }

    /// Starts with extra server environment, e.g. `BERTH_ROOT_ACCESS_KEY_ID`.
    pub fn start_with(backend: Backend, env: &[(&str, &str)]) -> Berth {
        let mut o = Self::options(backend);
        for (k, v) in env {
            o = o.env(k, v);
        }
        o.start()
    }

    pub fn options(backend: Backend) -> BerthOptions {
        BerthOptions {
            backend,
            env: Vec::new(),
            tls: None,
            peer_of: None,
            listen: None,
        }
    }

    /// Options for another `berth serve` on this server's database (its SQLite file
    /// or PostgreSQL database) with the same master key and environment, but a data
    /// directory of its own: a second node. Add environment with
    /// [`BerthOptions::env`]; the database stays until this server is dropped.
    pub fn peer(&self) -> BerthOptions {
        let url = self.database_url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                self.data_dir().join("meta.db").display()
            )
        });
        BerthOptions {
            backend: self.opts.backend,
            env: self.opts.env.clone(),
            tls: self.opts.tls.clone(),
            peer_of: Some((url, self.data_dir().join("master.key"))),
            listen: None,
        }
    }

    fn launch(opts: BerthOptions) -> Berth {
        let data = TempDir::new("berth-e2e");
        let (database_url, owns_database) = match (&opts.peer_of, opts.backend) {
            (Some((url, key)), _) => {
                let dir = data.join("data");
                std::fs::create_dir_all(&dir).expect("create the data directory");
                std::fs::copy(key, dir.join("master.key")).unwrap_or_else(|e| {
                    panic!(
                        "cannot copy the first node's master key {}: {e}",
                        key.display()
                    )
                });
                (Some(url.clone()), false)
            }
            (None, Backend::Sqlite) => (None, false),
            (None, Backend::Postgres) => (Some(create_postgres_database()), true),
            (None, Backend::PostgresS3) => (Some(create_postgres_database()), true),
        };
        let mut opts = opts;
        if opts.peer_of.is_none() && opts.backend == Backend::PostgresS3 {
            // First, so a test's own BERTH_BLOB_STORE/BERTH_S3_* still win.
            let mut env = s3_test_env().expect("the S3 test bucket (BERTH_TEST_S3_*)");
            env.append(&mut opts.env);
            opts.env = env;
        }
        let stderr_path = data.join("berth.stderr");
        let mut b = Berth {
            child: None,
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: opts.tls.is_some(),
            opts,
            database_url,
            owns_database,
            stderr_path,
            data,
            starts: 0,
            creds: std::sync::Mutex::new(None),
        };
        let listen = b
            .opts
            .listen
            .map_or_else(|| "127.0.0.1:0".to_string(), |a| a.to_string());
        b.spawn(&listen);
        b
    }

    fn spawn(&mut self, listen: &str) {
        self.starts += 1;
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.stderr_path)
            .expect("stderr log file");
        let mut cmd = Command::new(berth_bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(self.data.join("data"));
        // The test's environment must not leak into the server's configuration.
        for (k, _) in std::env::vars() {
            if k.starts_with("BERTH_") && k != "BERTH_LOG" {
                cmd.env_remove(k);
            }
        }
        if let Some(u) = &self.database_url {
            cmd.arg("--database-url").arg(u);
        }
        if let Some((c, k)) = &self.opts.tls {
            cmd.arg("--tls-cert").arg(c).arg("--tls-key").arg(k);
        }
        cmd.env("BERTH_ROOT_ACCESS_KEY_ID", ecr::TEST_ACCESS_KEY_ID)
            .env("BERTH_ROOT_SECRET_ACCESS_KEY", ecr::TEST_SECRET_ACCESS_KEY);
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        let mut child = cmd.spawn().expect("spawn berth serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the server never blocks on a full pipe.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        self.child = Some(child);
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => self.fail("berth did not print its address within 60 s"),
        };
        let addr = line
            .trim()
            .strip_prefix("berth listening on ")
            .and_then(|u| u.split_once("://").map(|(_, a)| a.to_string()))
            .and_then(|a| a.parse::<SocketAddr>().ok());
        match addr {
            Some(a) => self.addr = a,
            None => self.fail(&format!("unexpected first stdout line {line:?}")),
        }
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.fail(&format!("berth exited during start-up with {st}"));
            }
            let ok = if self.tls {
                TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok()
            } else {
                // /readyz needs no credentials (and minting them needs a ready server).
                Http::new(self.addr)
                    .try_send("GET", "/readyz", &[], crate::http::Body::Empty)
                    .is_ok_and(|r| r.status == 200)
            };
            if ok {
                return;
            }
            if Instant::now() > deadline {
                self.fail("/readyz did not answer 200 within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn fail(&mut self, why: &str) -> ! {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        panic!("{why}\n{}", self.stderr_tail(60));
    }

    /// `127.0.0.1:PORT`, the registry host clients use.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub fn url(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.addr
        )
    }

    pub fn is_tls(&self) -> bool {
        self.tls
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("berth is not running").id()
    }

    /// The last value of `k` in the environment this server was given (its own or,
    /// for a peer, the first node's), if any.
    pub fn env_value(&self, k: &str) -> Option<&str> {
        self.opts
            .env
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// The metadata (and blob) store this server runs on.
    pub fn backend(&self) -> Backend {
        self.opts.backend
    }

    /// The PostgreSQL database URL (`None` on the embedded SQLite store).
    pub fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.join("data")
    }

    /// A scratch directory that lives as long as this server.
    pub fn scratch(&self) -> &TempDir {
        &self.data
    }

    /// The root access key of the default account (the test key, or the one given
    /// with `BERTH_ROOT_ACCESS_KEY_ID`/`BERTH_ROOT_SECRET_ACCESS_KEY` in the options).
    pub fn root_credentials(&self) -> Credentials {
        let get = |k: &str, default: &str| {
            self.opts
                .env
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| default.to_string())
        };
        Credentials {
            access_key_id: get("BERTH_ROOT_ACCESS_KEY_ID", ecr::TEST_ACCESS_KEY_ID),
            secret_access_key: get("BERTH_ROOT_SECRET_ACCESS_KEY", ecr::TEST_SECRET_ACCESS_KEY),
        }
    }

    /// Runs `berth admin ARGS` against this server's data directory and database
    /// (as an operator would, while the server runs) and returns its stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        self.admin_with(&[], args)
    }

    /// A new access key from `berth admin access-key create ARGS` (e.g.
    /// `["--user", "dev"]` or `["--account", "210987654321"]`).
    pub fn access_key(&self, args: &[&str]) -> Credentials {
        let mut all = vec!["access-key", "create"];
        all.extend_from_slice(args);
        Credentials::from_admin_output(&self.admin(&all))
    }

    /// Attaches the inline policy `doc` as `name` to `user` (replacing one of the
    /// same name), through `berth admin policy attach --file`.
    pub fn attach_policy_doc(&self, user: &str, name: &str, doc: &serde_json::Value) {
        let file = self.scratch().join(format!("policy-{user}-{name}.json"));
        std::fs::write(&file, doc.to_string()).unwrap();
        self.admin(&[
            "policy",
            "attach",
            "--user",
            user,
            "--name",
            name,
            "--file",
            file.to_str().unwrap(),
        ]);
    }

    /// [`Self::admin`] with extra environment (e.g. `BERTH_CLOCK_OFFSET_SECS` to run
    /// lifecycle policies "days later").
    pub fn admin_with(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let mut all = vec!["admin"];
        all.extend_from_slice(args);
        self.command(env, &all)
    }

    /// Runs `berth ARGS` (any command: `admin …`, `vulndb …`) with this server's
    /// data directory and database, and returns its stdout; panics on failure.
    pub fn command(&self, env: &[(&str, &str)], args: &[&str]) -> String {
        let out = self.command_output(env, args);
        assert!(
            out.status.success(),
            "berth {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`Self::command`] that returns the process's output, failed or not.
    pub fn command_output(&self, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
        let (first, args) = args.split_at(1.min(args.len()));
        let mut cmd = Command::new(berth_bin());
        cmd.args(first);
        cmd.arg("--data-dir").arg(self.data_dir());
        if let Some(u) = &self.database_url {
            cmd.arg("--database-url").arg(u);
        }
        for (k, _) in std::env::vars() {
            if k.starts_with("BERTH_") && k != "BERTH_LOG" {
                cmd.env_remove(k);
            }
        }
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args).output().expect("run berth")
    }

    /// Calls an ECR operation (`op` like `CreateRepository`) as `creds`, SigV4-signed.
    pub fn ecr_as(&self, creds: &Credentials, op: &str, body: &serde_json::Value) -> Response {
        let region = self
            .opts
            .env
            .iter()
            .rev()
            .find(|(n, _)| n == "BERTH_REGION")
            .map(|(_, v)| v.as_str())
            .unwrap_or(ecr::TEST_REGION);
        ecr::call(
            &Http::new(self.addr),
            &self.host(),
            creds,
            region,
            "ecr",
            &format!("AmazonEC2ContainerRegistry_V20150921.{op}"),
            body,
        )
    }

    /// Calls an ECR operation as the account root.
    pub fn ecr(&self, op: &str, body: &serde_json::Value) -> Response {
        self.ecr_as(&self.root_credentials(), op, body)
    }

    /// The registry credentials every client must present: `("AWS", <token>)` from
    /// `GetAuthorizationToken` as the account root (fetched once per server). The
    /// single place tests get them from: every client helper passes these.
    pub fn registry_creds(&self) -> (String, String) {
        let mut c = self.creds.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = c.as_ref() {
            return c.clone();
        }
        let got = self.fetch_registry_creds();
        *c = Some(got.clone());
        got
    }

    fn fetch_registry_creds(&self) -> (String, String) {
        let r = if self.tls {
            return self.fetch_registry_creds_awscli();
        } else {
            self.ecr("GetAuthorizationToken", &serde_json::json!({}))
        };
        // A server without the ECR API yet ignores data-plane auth.
        if r.status == 404 || r.status == 405 {
            return ("AWS".to_string(), "test-token".to_string());
        }
        r.expect_status(200);
        let token = r.json()["authorizationData"][0]["authorizationToken"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no authorizationToken:\n{}", r.describe()));
        decode_token(&token)
    }

    /// Over TLS, the AWS CLI (a real client) fetches the token, in the server's
    /// region (`BERTH_REGION`).
    fn fetch_registry_creds_awscli(&self) -> (String, String) {
        crate::tools::require("aws", "pip install awscli");
        let c = self.root_credentials();
        let region = self
            .opts
            .env
            .iter()
            .rev()
            .find(|(n, _)| n == "BERTH_REGION")
            .map_or(ecr::TEST_REGION, |(_, v)| v.as_str());
        let out = crate::tools::run_ok(
            Command::new("aws")
                .args(["ecr", "get-authorization-token", "--output", "json"])
                .args(["--region", region, "--no-verify-ssl"])
                .arg("--endpoint-url")
                .arg(self.url())
                .env("AWS_ACCESS_KEY_ID", &c.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &c.secret_access_key)
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .env("PYTHONWARNINGS", "ignore"),
        );
        let v: serde_json::Value = serde_json::from_slice(&out).expect("aws output");
        decode_token(
            v["authorizationData"][0]["authorizationToken"]
                .as_str()
                .expect("authorizationToken"),
        )
    }

    /// A hand-written HTTP client for this server, carrying [`Self::registry_creds`].
    pub fn http(&self) -> Http {
        assert!(!self.tls, "the raw HTTP helper speaks plain HTTP only");
        let (u, p) = self.registry_creds();
        Http::new(self.addr)
            .basic_auth(&u, &p)
            .check_api_version(true)
    }

    /// The last `lines` lines of the server's stderr (all incarnations).
    pub fn stderr_tail(&self, lines: usize) -> String {
        let mut raw = Vec::new();
        if let Ok(mut f) = std::fs::File::open(&self.stderr_path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
            let _ = f.read_to_end(&mut raw);
        }
        // Lossy: the seek may land inside a multi-byte character.
        let s = String::from_utf8_lossy(&raw);
        let all: Vec<&str> = s.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "---- berth stderr (last {lines} lines, {} start(s), {}) ----\n{tail}\n----",
            self.starts,
            self.stderr_path.display()
        )
    }

    /// A field of `/proc/<pid>/status` in KiB, e.g. `VmHWM` or `VmRSS`.
    pub fn proc_status_kib(&self, field: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        s.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let r = unsafe { libc::kill(self.pid() as libc::pid_t, sig) };
        assert_eq!(r, 0, "kill({sig}) failed");
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGTERM, then waits (up to 60 s) for the exit status.
    pub fn stop_gracefully(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(60))
    }

    /// Waits for the process to exit on its own (after a signal).
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.child.as_mut().expect("berth is not running");
            if let Some(st) = c.try_wait().expect("wait") {
                self.child = None;
                return st;
            }
            if Instant::now() > deadline {
                self.fail(&format!("berth did not exit within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Crashes the server (SIGKILL) and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data directory, database and port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill9 the server first");
        let listen = self.addr.to_string();
        self.spawn(&listen);
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.stderr_tail(80));
        } else {
            // Peers share the first node's prefix and database: it removes both.
            if self.opts.peer_of.is_none() {
                self.s3_remove_prefix();
            }
            if let Some(u) = self.database_url.as_ref().filter(|_| self.owns_database) {
                drop_postgres_database(u);
            }
        }
    }
}

fn decode_token(b64: &str) -> (String, String) {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("authorizationToken is base64");
    let s = String::from_utf8(raw).expect("authorizationToken is UTF-8");
    let (u, p) = s
        .split_once(':')
        .expect("authorizationToken is user:password");
    (u.to_string(), p.to_string())
}

fn admin_url() -> String {
    std::env::var("BERTH_TEST_POSTGRES_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| {
            Backend::postgres_available();
            unreachable!("PostgreSQL tests are skipped; do not start a Postgres berth")
        })
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    crate::tools::require("psql", "apt-get install -y postgresql-client");
    let out = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn create_postgres_database() -> String {
    let admin = admin_url();
    let db = format!("berth_e2e_{}", uuid::Uuid::new_v4().simple());
    if let Err(e) = psql(&admin, &format!("CREATE DATABASE {db}")) {
        panic!("cannot create a database on BERTH_TEST_POSTGRES_URL={admin}: {e}\n{PG_HINT}");
    }
    let (base, _) = admin
        .rsplit_once('/')
        .expect("postgres URL with a database");
    let base = base.to_string();
    let query = admin
        .rsplit_once('/')
        .and_then(|(_, d)| d.split_once('?'))
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    format!("{base}/{db}{query}")
}

fn drop_postgres_database(url: &str) {
    let Some(db) = url
        .rsplit_once('/')
        .map(|(_, d)| d.split('?').next().unwrap_or(d).to_string())
    else {
        return;
    };
    let _ = psql(
        &admin_url(),
        &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
    );
}
