//! An upstream registry for pull-through cache tests and benchmarks: the
//! reference registry (`docker-registry`, Debian's package) started on a loopback
//! port, optionally behind htpasswd auth, whose access log counts the requests it
//! served.

use std::process::Command;

use crate::tools::require;
use crate::TempDir;

/// The reference registry (`docker-registry`, Debian's package) as an upstream, on
/// a loopback port, optionally behind htpasswd auth; its access log counts requests.
pub struct Upstream {
    dir: TempDir,
    port: u16,
    child: Option<std::process::Child>,
    creds: Option<(String, String)>,
}

impl Upstream {
    pub fn start(creds: Option<(&str, &str)>) -> Upstream {
        require("docker-registry", "apt-get install -y docker-registry");
        let dir = TempDir::new("upstream");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.join("data").display()
        );
        if let Some((u, p)) = creds {
            require("htpasswd", "apt-get install -y apache2-utils");
            let out = Command::new("htpasswd")
                .args(["-Bbn", u, p])
                .output()
                .expect("htpasswd");
            assert!(out.status.success());
            std::fs::write(dir.join("htpasswd"), &out.stdout).expect("htpasswd file");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: upstream\n    path: {}\n",
                dir.join("htpasswd").display()
            ));
        }
        std::fs::write(dir.join("config.yml"), config).expect("config");
        let mut up = Upstream {
            dir,
            port,
            child: None,
            creds: creds.map(|(u, p)| (u.to_string(), p.to_string())),
        };
        up.run();
        up
    }

    pub fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("access.log"))
            .expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.join("config.yml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "docker-registry did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn push(&self, src: &str, name_and_ref: &str) {
        let mut c = Command::new("skopeo");
        c.args(["copy", "--dest-tls-verify=false"]);
        if let Some((u, p)) = &self.creds {
            c.arg(format!("--dest-creds={u}:{p}"));
        }
        let out = c
            .args([
                "--all",
                src,
                &format!("docker://127.0.0.1:{}/{name_and_ref}", self.port),
            ])
            .output()
            .expect("skopeo");
        assert!(
            out.status.success(),
            "push to upstream: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Successful requests of `method path` in the access log (not counting the
    /// 401s that ask for credentials).
    pub fn requests(&self, method: &str, path: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        let want = format!("\"{method} {path} ");
        log.lines()
            .filter(|l| l.contains(&want) && l.contains("\" 200 "))
            .count()
    }

    /// Successful `GET`s of a blob of `repo` in the access log.
    pub fn blob_gets(&self, repo: &str, digest: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default();
        let want = format!("\"GET /v2/{repo}/blobs/{digest} ");
        log.lines()
            .filter(|l| l.contains(&want) && l.contains("\" 200 "))
            .count()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}
