//! Starting and stopping the servers under test: berth (embedded defaults, auth on)
//! and the CNCF reference registry (`docker-registry`, filesystem, loopback, with
//! and without htpasswd auth), each in a fresh directory.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hyper::Method;

use crate::client::{bail, read_body, Conn, Error, Result, SliceBody};

/// Root credentials berth is started with (bench-only, never reused elsewhere).
pub const ACCESS_KEY_ID: &str = "AKIABERTHBENCH000001";
pub const SECRET_ACCESS_KEY: &str = "berth-bench-secret-key-0000000000000000";
const REGION: &str = "us-east-1";

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// berth with `plaintext: true` is the benchmark-only build mode with blob
    /// encryption off (`BERTH_BENCH_PLAINTEXT_BLOBS=1`), to measure its cost.
    Berth {
        plaintext: bool,
    },
    Reference {
        auth: bool,
    },
    /// `berth-null-server`: berth's HTTP stack answering manifests from memory
    /// (the request-rate limit of the manifest scenarios).
    Null,
    /// `berth-sendfile-server`: blob files copied to the socket by `sendfile(2)`
    /// (the read limit of the parallel-pull scenario).
    ReadLimit,
    /// berth or the reference on another store configuration (PostgreSQL, S3 on
    /// Garage): measured beside the others, compared with each other in
    /// docs/benchmarks.md "Several nodes: PostgreSQL + S3".
    Other,
}

/// Where the extra configurations keep their data: a PostgreSQL server (admin URL;
/// the harness creates a fresh database per server with `psql`) and an S3 bucket.
#[derive(Debug, Clone)]
pub struct ExtraStores {
    pub postgres_url: Option<String>,
    pub s3: Option<S3Target>,
}

/// An S3-compatible bucket (Garage on loopback in docs/benchmarks.md).
#[derive(Debug, Clone)]
pub struct S3Target {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// A prefix of this run's own inside the bucket.
    pub prefix: String,
}

impl S3Target {
    /// Deletes every object under this run's prefix (berth's and the reference's),
    /// so repeated runs do not fill the bucket. Best effort, with the AWS CLI when
    /// it is installed: a failure is reported, not fatal.
    pub fn remove_prefix(&self) {
        let out = Command::new("aws")
            .args(["s3", "rm", "--recursive", "--only-show-errors"])
            .arg(format!("s3://{}/{}/", self.bucket, self.prefix))
            .args(["--endpoint-url", &self.endpoint])
            .env("AWS_ACCESS_KEY_ID", &self.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_access_key)
            .env("AWS_DEFAULT_REGION", &self.region)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "warning: could not remove s3://{}/{}/: {}",
                self.bucket,
                self.prefix,
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => eprintln!(
                "warning: could not remove s3://{}/{}/ (aws: {e})",
                self.bucket, self.prefix
            ),
        }
    }
}

/// The databases a run created, dropped when the run ends, however it ends.
pub struct Databases {
    admin: String,
    names: Vec<String>,
}

impl Databases {
    pub fn new(admin: &str) -> Self {
        Databases {
            admin: admin.to_string(),
            names: Vec::new(),
        }
    }

    /// Creates database `name` (see [`create_database`]) and returns its URL.
    pub fn create(&mut self, name: &str) -> Result<String> {
        let url = create_database(&self.admin, name)?;
        self.names.push(name.to_string());
        Ok(url)
    }
}

impl Drop for Databases {
    fn drop(&mut self) {
        for n in &self.names {
            drop_database(&self.admin, n);
        }
    }
}

/// Drops a database [`create_database`] made (best effort: a failure is reported,
/// not fatal).
pub fn drop_database(admin: &str, name: &str) {
    let out = Command::new("psql")
        .args([admin, "-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => eprintln!(
            "warning: could not drop database {name}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => eprintln!("warning: could not drop database {name}: {e}"),
    }
}

/// Creates a fresh database on the PostgreSQL server at `admin` and returns its URL.
pub fn create_database(admin: &str, name: &str) -> Result<String> {
    if which("psql").is_none() {
        bail!("`psql` not found: `apt-get install postgresql-client`");
    }
    let out = Command::new("psql")
        .args([admin, "-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .output()?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = Command::new("psql")
        .args([admin, "-v", "ON_ERROR_STOP=1", "-q", "-c"])
        .arg(format!("CREATE DATABASE {name}"))
        .output()?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr));
    }
    let (base, rest) = admin
        .rsplit_once('/')
        .ok_or_else(|| Error(format!("{admin:?} is not a postgres://…/<db> URL")))?;
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Ok(format!("{base}/{name}{query}"))
}

/// The variable that starts berth with plaintext blobs (benchmark only), and the
/// marker berth writes in its data directory to record the mode.
const PLAINTEXT_ENV: &str = "BERTH_BENCH_PLAINTEXT_BLOBS";
const MODE_MARKER: &str = "blob-mode";

/// A running server under test.
pub struct Server {
    pub name: &'static str,
    pub kind: Kind,
    pub addr: SocketAddr,
    /// `Authorization` header value (`Basic …`), if auth is on.
    pub auth: Option<String>,
    pub dir: PathBuf,
    child: Option<Child>,
    berth_bin: PathBuf,
    /// Extra environment of a berth process (`BERTH_CONFIG`, `BERTH_REGION`, the
    /// database URL, blob store and S3 settings).
    env: Vec<(String, String)>,
}

/// Missing prerequisites, each with the step that installs it.
pub fn check_prerequisites(berth_bin: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !berth_bin.is_file() {
        missing.push(format!(
            "berth binary {} not found: run `cargo build --release -p berth` (or pass --berth-bin / BERTH_BIN)",
            berth_bin.display()
        ));
    }
    if which("docker-registry").is_none() {
        missing.push(
            "`docker-registry` (CNCF distribution, the reference registry) not found: `apt-get install docker-registry`".into(),
        );
    }
    if which("htpasswd").is_none() {
        missing.push("`htpasswd` not found: `apt-get install apache2-utils`".into());
    }
    if !Path::new("/proc/self/status").exists() {
        missing.push(
            "/proc is not mounted: the harness reads VmHWM and CPU time from it (Linux only)"
                .into(),
        );
    }
    missing
}

fn which(cmd: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts berth in `dir` (created fresh) and mints a registry token. With
    /// `plaintext`, blob encryption is off (benchmark-only mode) and the harness
    /// checks that berth recorded that mode, so a binary without the switch cannot
    /// pass as the unencrypted baseline.
    pub async fn start_berth(berth_bin: &Path, dir: PathBuf, plaintext: bool) -> Result<Server> {
        let name = if plaintext {
            crate::report::BERTH_PLAINTEXT
        } else {
            crate::report::BERTH
        };
        Self::start_berth_with(berth_bin, dir, plaintext, name, Vec::new()).await
    }

    /// [`Self::start_berth`] under another report name with extra environment
    /// (e.g. `BERTH_CONFIG` with webhooks).
    pub async fn start_berth_with(
        berth_bin: &Path,
        dir: PathBuf,
        plaintext: bool,
        name: &'static str,
        env: Vec<(String, String)>,
    ) -> Result<Server> {
        std::fs::create_dir_all(dir.join("data"))?;
        let mut s = Server {
            name,
            kind: Kind::Berth { plaintext },
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            auth: None,
            dir,
            child: None,
            berth_bin: berth_bin.to_path_buf(),
            env,
        };
        s.spawn().await?;
        let marker = s.dir.join("data").join(MODE_MARKER);
        let mode = std::fs::read_to_string(&marker).unwrap_or_default();
        let want = if plaintext {
            "plaintext-benchmark-only"
        } else {
            "encrypted"
        };
        // An encrypted berth from before the marker existed writes none (fine for
        // A/B runs against older binaries); a plaintext one must have recorded it.
        let ok = mode.trim() == want || (!plaintext && mode.is_empty());
        if !ok {
            bail!(
                "{} started, but {} says {:?}, not {want:?} (a berth binary without the {PLAINTEXT_ENV} switch? rebuild it)",
                s.name,
                marker.display(),
                mode.trim()
            );
        }
        s.auth = Some(s.mint_token().await?);
        Ok(s)
    }

    /// Starts berth (blobs encrypted) in `dir` on another store configuration:
    /// `env` names the database and blob store (`BERTH_DATABASE_URL`,
    /// `BERTH_BLOB_STORE`, `BERTH_S3_*`).
    pub async fn start_berth_on(
        berth_bin: &Path,
        dir: PathBuf,
        name: &'static str,
        env: Vec<(String, String)>,
    ) -> Result<Server> {
        std::fs::create_dir_all(dir.join("data"))?;
        let mut s = Server {
            name,
            kind: Kind::Other,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            auth: None,
            dir,
            child: None,
            berth_bin: berth_bin.to_path_buf(),
            env,
        };
        s.spawn().await?;
        s.auth = Some(s.mint_token().await?);
        Ok(s)
    }

    /// Starts the reference registry in `dir` with distribution's `s3` storage
    /// driver on `s3` (`regionendpoint`, path-style), under the run's prefix. It
    /// serves blob bytes itself (`redirect: disable`), as berth does, instead of
    /// redirecting clients to the bucket (which loopback-only clients could follow,
    /// but which measures the object store, not the registry).
    pub async fn start_reference_s3(
        dir: PathBuf,
        auth: &str,
        s3: &S3Target,
        name: &'static str,
    ) -> Result<Server> {
        let storage = format!(
            "storage:\n  cache:\n    blobdescriptor: inmemory\n  s3:\n    accesskey: {}\n    secretkey: {}\n    region: {}\n    regionendpoint: {}\n    bucket: {}\n    rootdirectory: /{}/reference\n    secure: {}\n    v4auth: true\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n",
            s3.access_key_id,
            s3.secret_access_key,
            s3.region,
            s3.endpoint,
            s3.bucket,
            s3.prefix,
            s3.endpoint.starts_with("https://"),
        );
        let mut s = Self::reference_with(dir, Some(auth), storage).await?;
        s.name = name;
        s.kind = Kind::Other;
        Ok(s)
    }

    /// Starts `berth-null-server` (`null_bin`) in `dir`, checking `auth` (the
    /// `Authorization` value berth's clients send) as berth does.
    pub async fn start_null(null_bin: &Path, dir: PathBuf, auth: &str) -> Result<Server> {
        std::fs::create_dir_all(&dir)?;
        let mut s = Server {
            name: crate::report::NULL_SERVER,
            kind: Kind::Null,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            auth: Some(auth.to_owned()),
            dir,
            child: None,
            berth_bin: null_bin.to_path_buf(),
            env: vec![("BERTH_NULL_AUTH".to_string(), auth.to_owned())],
        };
        s.spawn().await?;
        Ok(s)
    }

    /// Starts `berth-sendfile-server` (`bin`) serving `blobs` (written to
    /// `dir/blobs`, each file named by its SHA-256 in hex), checking `auth` as
    /// berth does.
    pub async fn start_sendfile(
        bin: &Path,
        dir: PathBuf,
        auth: &str,
        blobs: Vec<crate::load::Blob>,
    ) -> Result<Server> {
        let files = dir.join("blobs");
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&files)?;
            for b in blobs {
                let hex = b.digest.trim_start_matches("sha256:");
                std::fs::write(files.join(hex), &b.data)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error(format!("join: {e}")))??;
        let mut s = Server {
            name: crate::report::READ_LIMIT,
            kind: Kind::ReadLimit,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            auth: Some(auth.to_owned()),
            dir,
            child: None,
            berth_bin: bin.to_path_buf(),
            env: vec![("BERTH_NULL_AUTH".to_string(), auth.to_owned())],
        };
        s.spawn().await?;
        Ok(s)
    }

    /// Starts the reference registry in `dir` (created fresh).
    pub async fn start_reference(dir: PathBuf, auth: Option<&str>) -> Result<Server> {
        let storage = format!(
            "storage:\n  cache:\n    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n",
            dir.join("data").display()
        );
        Self::reference_with(dir, auth, storage).await
    }

    async fn reference_with(dir: PathBuf, auth: Option<&str>, storage: String) -> Result<Server> {
        std::fs::create_dir_all(dir.join("data"))?;
        let port = free_port()?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\n  fields:\n    service: registry\n\
{storage}\
http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Content-Type-Options: [nosniff]\n\
health:\n  storagedriver:\n    enabled: true\n    interval: 10s\n    threshold: 3\n"
        );
        let header = match auth {
            Some(basic) => {
                let token = decode_basic_password(basic)?;
                let out = Command::new("htpasswd")
                    .args(["-Bbn", "AWS", &token])
                    .output()
                    .map_err(|e| Error(format!("run htpasswd: {e}")))?;
                if !out.status.success() {
                    bail!("htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
                }
                let path = dir.join("htpasswd");
                std::fs::write(&path, &out.stdout)?;
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    path.display()
                ));
                Some(basic.to_owned())
            }
            None => None,
        };
        std::fs::write(dir.join("config.yml"), config)?;
        let mut s = Server {
            name: if auth.is_some() {
                crate::report::REFERENCE
            } else {
                crate::report::REFERENCE_NOAUTH
            },
            kind: Kind::Reference {
                auth: auth.is_some(),
            },
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            auth: header,
            dir,
            child: None,
            // No berth binary: `spawn` starts docker-registry (also for Kind::Other).
            berth_bin: PathBuf::new(),
            env: Vec::new(),
        };
        s.spawn().await?;
        Ok(s)
    }

    /// Spawns the process and waits for its first served, authenticated `GET /v2/`.
    /// Returns the time from spawn to that response.
    pub async fn spawn(&mut self) -> Result<Duration> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))?;
        let t0 = Instant::now();
        let berth = match self.kind {
            Kind::Berth { plaintext } => Some(plaintext),
            Kind::Null | Kind::ReadLimit => Some(false),
            Kind::Other if self.berth_bin.as_os_str().is_empty() => None,
            Kind::Other => Some(false),
            Kind::Reference { .. } => None,
        };
        match berth {
            Some(plaintext) => {
                let mut cmd = Command::new(&self.berth_bin);
                if plaintext {
                    cmd.env(PLAINTEXT_ENV, "1");
                } else {
                    cmd.env_remove(PLAINTEXT_ENV);
                }
                cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
                match self.kind {
                    Kind::Null => {}
                    Kind::ReadLimit => {
                        cmd.arg("--dir").arg(self.dir.join("blobs"));
                    }
                    _ => {
                        cmd.arg("serve")
                            .arg("--data-dir")
                            .arg(self.dir.join("data"));
                    }
                }
                let mut child = cmd
                    .args(["--listen", "127.0.0.1:0"])
                    .env("BERTH_ROOT_ACCESS_KEY_ID", ACCESS_KEY_ID)
                    .env("BERTH_ROOT_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(log)
                    .spawn()
                    .map_err(|e| Error(format!("start {}: {e}", self.berth_bin.display())))?;
                let stdout = child
                    .stdout
                    .take()
                    .ok_or_else(|| Error("berth stdout not captured".into()))?;
                self.child = Some(child);
                let line = tokio::task::spawn_blocking(move || {
                    let mut r = BufReader::new(stdout);
                    let mut line = String::new();
                    let n = r.read_line(&mut line);
                    // Keep draining so berth never blocks on a full pipe.
                    std::thread::spawn(move || {
                        let mut sink = Vec::new();
                        let _ = r.read_to_end(&mut sink);
                    });
                    n.map(|_| line)
                })
                .await
                .map_err(|e| Error(format!("join: {e}")))??;
                let url = line
                    .trim()
                    .strip_prefix("berth listening on http://")
                    .or_else(|| line.trim().strip_prefix("null server listening on http://"))
                    .or_else(|| {
                        line.trim()
                            .strip_prefix("sendfile server listening on http://")
                    })
                    .ok_or_else(|| {
                        Error(format!(
                            "berth did not announce its address (first stdout line {line:?}); see {}",
                            self.dir.join("server.log").display()
                        ))
                    })?;
                self.addr = url
                    .trim_end_matches('/')
                    .parse()
                    .map_err(|e| Error(format!("berth address {url:?}: {e}")))?;
            }
            None => {
                let mut cmd = Command::new("docker-registry");
                // The machine's AWS_* settings are not the reference's: AWS_CA_BUNDLE,
                // for one, makes distribution's s3 driver fail at start.
                for (k, _) in std::env::vars() {
                    if k.starts_with("AWS_") {
                        cmd.env_remove(k);
                    }
                }
                let child = cmd
                    .arg("serve")
                    .arg(self.dir.join("config.yml"))
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .map_err(|e| Error(format!("start docker-registry: {e}")))?;
                self.child = Some(child);
            }
        }
        // First served request: berth before a token exists answers 401, which is
        // still a served request; with a token (restarts) it must be 200.
        let deadline = t0 + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!(
                        "{} exited during start ({status}); see {}",
                        self.name,
                        self.dir.join("server.log").display()
                    );
                }
            }
            let mut conn = Conn::new(self.addr, self.auth.clone());
            if let Ok(resp) = conn
                .send(Method::GET, "/v2/", &[], SliceBody::empty())
                .await
            {
                let status = resp.status().as_u16();
                let _ = read_body(resp).await;
                if status == 200 || (status == 401 && self.auth.is_none()) {
                    return Ok(t0.elapsed());
                }
                bail!("{}: GET /v2/ answered {status} during start", self.name);
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer within 30 s; see {}",
                    self.name,
                    self.dir.join("server.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if let Ok(pid) = i32::try_from(c.id()) {
                // SAFETY: signalling our own child by pid.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    _ => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Runs `berth admin ARGS` on this berth's data and configuration (while it
    /// serves); its standard output, or an error with its standard error.
    pub async fn admin(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new(&self.berth_bin);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("BERTH_ROOT_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("BERTH_ROOT_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .arg("admin")
            .args(args)
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .stdin(Stdio::null());
        let what = format!("berth admin {args:?}");
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .map_err(|e| Error(format!("{what}: {e}")))?
            .map_err(|e| Error(format!("{what}: {e}")))?;
        if !out.status.success() {
            bail!(
                "berth admin {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Restarts on the same data; returns the time to the first served request.
    pub async fn restart(&mut self) -> Result<Duration> {
        self.stop();
        self.spawn().await
    }

    /// The region berth serves (`BERTH_REGION`, default us-east-1).
    pub fn region(&self) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == "BERTH_REGION")
            .map_or(REGION, |(_, v)| v.as_str())
    }

    /// `GetAuthorizationToken` (SigV4) → `Basic <base64(AWS:token)>`.
    async fn mint_token(&self) -> Result<String> {
        let v = self
            .ecr("GetAuthorizationToken", &serde_json::json!({}))
            .await?;
        let token = v["authorizationData"][0]["authorizationToken"]
            .as_str()
            .ok_or_else(|| Error("GetAuthorizationToken: no authorizationToken".into()))?;
        Ok(format!("Basic {token}"))
    }

    /// One ECR JSON call as the root principal (SigV4); the parsed answer.
    pub async fn ecr(&self, op: &str, input: &serde_json::Value) -> Result<serde_json::Value> {
        let body = input.to_string().into_bytes();
        let len = body.len().to_string();
        let host = self.addr.to_string();
        let target = format!("AmazonEC2ContainerRegistry_V20150921.{op}");
        let target = target.as_str();
        let ct = "application/x-amz-json-1.1";
        let headers = [
            ("content-type", ct),
            ("host", host.as_str()),
            ("x-amz-target", target),
        ];
        let payload = hex::encode(ring::digest::digest(&ring::digest::SHA256, &body));
        let signed = berth_iam::sigv4::sign_request(
            &berth_iam::sigv4::Request {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
            },
            &payload,
            &berth_iam::sigv4::SigningParams {
                access_key_id: ACCESS_KEY_ID,
                secret_access_key: SECRET_ACCESS_KEY,
                region: self.region(),
                service: "ecr",
                time: unix_now(),
                flavor: berth_iam::sigv4::Flavor::Standard,
            },
        )
        .map_err(|e| Error(format!("sign {op}: {e}")))?;
        let mut conn = Conn::new(self.addr, None);
        let resp = conn
            .send(
                Method::POST,
                "/",
                &[
                    ("content-type", ct),
                    ("x-amz-target", target),
                    ("x-amz-date", &signed.amz_date),
                    ("authorization", &signed.authorization),
                    ("content-length", &len),
                ],
                SliceBody::sized(bytes::Bytes::from(body)),
            )
            .await?;
        let status = resp.status();
        let bytes = read_body(resp).await?;
        if !status.is_success() {
            bail!("{op}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| Error(format!("{op} response: {e}")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The password of a `Basic base64(user:password)` header value.
pub fn decode_basic_password(header: &str) -> Result<String> {
    let b64 = header
        .strip_prefix("Basic ")
        .ok_or_else(|| Error("not a Basic credential".into()))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| Error(format!("credential base64: {e}")))?;
    let text = String::from_utf8(raw).map_err(|_| Error("credential not UTF-8".into()))?;
    match text.split_once(':') {
        Some((_, p)) => Ok(p.to_owned()),
        None => bail!("credential has no ':'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_password() {
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("AWS:tok:en")
        );
        assert_eq!(decode_basic_password(&h).as_deref(), Ok("tok:en"));
        assert!(decode_basic_password("Bearer x").is_err());
    }
}
