//! Advisory feeds end to end: a local HTTP server laid out like osv.dev's bucket
//! (`<ecosystem>/all.zip`) serves the fixture advisories; `berth vulndb sync` and
//! the server's periodic sync fetch them with conditional GETs, and a broken zip,
//! a 500 or a truncated download changes nothing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_testsupport::{both_backends, Berth};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vuln/advisories")
}

/// A zip archive of stored (uncompressed) entries.
fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data) in entries {
        let off = out.len() as u32;
        out.extend_from_slice(b"PK\x03\x04");
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // stored
        out.extend_from_slice(&[0; 8]); // time, date, crc
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        cd.extend_from_slice(b"PK\x01\x02");
        cd.extend_from_slice(&[20, 0, 20, 0, 0, 0]);
        cd.extend_from_slice(&0u16.to_le_bytes());
        cd.extend_from_slice(&[0; 8]);
        cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(data.len() as u32).to_le_bytes());
        cd.extend_from_slice(&(name.len() as u16).to_le_bytes());
        cd.extend_from_slice(&[0; 12]);
        cd.extend_from_slice(&off.to_le_bytes());
        cd.extend_from_slice(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_off.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// The fixture advisories of one directory as an osv.dev-style `all.zip`.
fn fixture_zip(dir: &str) -> Vec<u8> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join(dir))
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let entries: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(p).expect("read fixture"),
            )
        })
        .collect();
    zip(&entries)
}

#[derive(Clone)]
enum Route {
    Zip {
        etag: String,
        body: Vec<u8>,
    },
    Status(u16),
    /// Claims `Content-Length` of the whole body, sends only half, and closes.
    Truncated(Vec<u8>),
}

/// One request the mirror answered: path, `If-None-Match`, status, body bytes sent.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    if_none_match: Option<String>,
    status: u16,
    bytes: usize,
}

/// A minimal HTTP/1.1 server (one thread per connection, `Connection: close`).
struct Mirror {
    url: String,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Mirror {
    fn start() -> Mirror {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let (r, h) = (routes.clone(), hits.clone());
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                let (r, h) = (r.clone(), h.clone());
                std::thread::spawn(move || serve(s, &r, &h));
            }
        });
        Mirror { url, routes, hits }
    }

    fn set(&self, path: &str, route: Route) {
        self.routes.lock().unwrap().insert(path.into(), route);
    }

    fn take_hits(&self) -> Vec<Hit> {
        std::mem::take(&mut *self.hits.lock().unwrap())
    }
}

fn serve(s: TcpStream, routes: &Mutex<HashMap<String, Route>>, hits: &Mutex<Vec<Hit>>) {
    let mut rd = BufReader::new(s.try_clone().expect("clone"));
    let mut line = String::new();
    if rd.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut inm = None;
    loop {
        let mut h = String::new();
        if rd.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("if-none-match") {
                inm = Some(v.trim().to_string());
            }
        }
    }
    let route = routes.lock().unwrap().get(&path).cloned();
    let mut w = s;
    let (status, bytes) = match route {
        None => {
            let _ = w.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            (404, 0)
        }
        Some(Route::Status(code)) => {
            let _ = write!(
                w,
                "HTTP/1.1 {code} Oops\r\nContent-Length: 5\r\nConnection: close\r\n\r\noops!"
            );
            (code, 5)
        }
        Some(Route::Zip { etag, body }) => {
            if inm.as_deref() == Some(etag.as_str()) {
                let _ = write!(
                    w,
                    "HTTP/1.1 304 Not Modified\r\nETag: {etag}\r\nConnection: close\r\n\r\n"
                );
                (304, 0)
            } else {
                let _ = write!(
                    w,
                    "HTTP/1.1 200 OK\r\nETag: {etag}\r\nLast-Modified: Mon, 07 Dec 2026 06:00:00 GMT\r\nContent-Type: application/zip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = w.write_all(&body);
                (200, body.len())
            }
        }
        Some(Route::Truncated(body)) => {
            let _ = write!(
                w,
                "HTTP/1.1 200 OK\r\nETag: \"trunc\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let half = body.len() / 2;
            let _ = w.write_all(&body[..half]);
            (200, half)
        }
    };
    let _ = w.flush();
    let _ = w.shutdown(std::net::Shutdown::Both);
    // Drain whatever the client still sends so the close is clean.
    let _ = rd.read_to_end(&mut Vec::new());
    hits.lock().unwrap().push(Hit {
        path,
        if_none_match: inm,
        status,
        bytes,
    });
}

fn full_mirror() -> Mirror {
    let m = Mirror::start();
    m.set(
        "/Debian/all.zip",
        Route::Zip {
            etag: "\"deb-1\"".into(),
            body: fixture_zip("debian"),
        },
    );
    m.set(
        "/PyPI/all.zip",
        Route::Zip {
            etag: "\"pypi-1\"".into(),
            body: fixture_zip("pypi"),
        },
    );
    m.set(
        "/npm/all.zip",
        Route::Zip {
            etag: "\"npm-1\"".into(),
            body: fixture_zip("npm"),
        },
    );
    m
}

fn status(berth: &Berth) -> String {
    berth.command(&[], &["vulndb", "status"])
}

/// `Debian: N records …` from `vulndb status`.
fn feed_line(status: &str, eco: &str) -> String {
    status
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{eco}:")))
        .unwrap_or_else(|| panic!("no {eco} line in:\n{status}"))
        .trim()
        .to_string()
}

both_backends! {
    fn sync_is_conditional_and_a_bad_download_changes_nothing(backend) {
        let berth = Berth::start(backend);
        let m = full_mirror();
        let before = status(&berth);
        assert!(before.contains(": 0 advisories"), "{before}");
        assert_eq!(feed_line(&before, "Debian"), "Debian: never synced");

        let out = berth.command(&[], &["vulndb", "sync", "--source", &m.url]);
        assert!(out.contains("3 ecosystem(s) updated (62 records"), "{out}");
        assert!(out.contains("0 failed"), "{out}");
        let hits = m.take_hits();
        // Only the ecosystems berth scans are asked for, each once, unconditionally.
        assert_eq!(hits.len(), 16, "{hits:?}");
        assert!(hits.iter().all(|h| h.if_none_match.is_none()), "{hits:?}");
        assert!(hits.iter().any(|h| h.path == "/Red%20Hat/all.zip"), "{hits:?}");
        let st = status(&berth);
        assert!(st.contains(": 62 advisories"), "{st}");
        let deb = feed_line(&st, "Debian");
        assert!(deb.starts_with(&format!("Debian: 17 records from {}, synced ", m.url)), "{deb}");
        assert!(feed_line(&st, "PyPI").starts_with("PyPI: 40 records"), "{st}");
        assert!(feed_line(&st, "Go").contains("never synced"), "{st}");

        // The ETag is honoured: nothing is transferred the second time.
        let out = berth.command(&[], &["vulndb", "sync", "--source", &m.url]);
        assert!(out.contains("0 ecosystem(s) updated"), "{out}");
        assert!(out.contains("3 unchanged"), "{out}");
        let hits = m.take_hits();
        let deb_hit = hits.iter().find(|h| h.path == "/Debian/all.zip").expect("Debian asked");
        assert_eq!(deb_hit.if_none_match.as_deref(), Some("\"deb-1\""));
        assert_eq!(deb_hit.status, 304);
        assert_eq!(hits.iter().map(|h| h.bytes).sum::<usize>(), 0, "{hits:?}");

        // A broken zip, a 500 and a truncated download each fail and change nothing.
        let good = fixture_zip("debian");
        let mut broken = good.clone();
        let n = broken.len();
        broken[n - 22..].copy_from_slice(&[0u8; 22]); // no end-of-central-directory
        for (what, route) in [
            ("broken zip", Route::Zip { etag: "\"deb-broken\"".into(), body: broken }),
            ("HTTP 500", Route::Status(500)),
            ("truncated", Route::Truncated(good.clone())),
            ("invalid record", Route::Zip {
                etag: "\"deb-bad-record\"".into(),
                body: zip(&[("X.json".into(), b"{\"id\": 5}".to_vec())]),
            }),
        ] {
            m.set("/Debian/all.zip", route);
            let o = berth.command_output(&[], &["vulndb", "sync", "--source", &m.url]);
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(!o.status.success(), "{what}: {text}");
            assert!(text.contains("Debian:"), "{what}: {text}");
            let st2 = status(&berth);
            assert!(st2.contains(": 62 advisories"), "{what}: {st2}");
            assert_eq!(feed_line(&st2, "Debian").split(", synced").next(), deb.split(", synced").next(), "{what}");
            m.take_hits();
        }

        // Fixed: a new archive (one record fewer) is taken; the old ETag is sent.
        let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("debian")).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let entries: Vec<(String, Vec<u8>)> = files[1..].iter().map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(p).unwrap())).collect();
        m.set("/Debian/all.zip", Route::Zip { etag: "\"deb-2\"".into(), body: zip(&entries) });
        let out = berth.command(&[], &["vulndb", "sync", "--source", &m.url]);
        assert!(out.contains("1 ecosystem(s) updated"), "{out}");
        let hits = m.take_hits();
        let deb_hit = hits.iter().find(|h| h.path == "/Debian/all.zip").expect("Debian asked");
        assert_eq!(deb_hit.if_none_match.as_deref(), Some("\"deb-1\""));
        let st3 = status(&berth);
        assert!(feed_line(&st3, "Debian").starts_with(&format!("Debian: {} records", entries.len())), "{st3}");
    }
}

both_backends! {
    fn the_server_syncs_by_itself(backend) {
        let m = full_mirror();
        let berth = Berth::start_with(backend, &[
            ("BERTH_VULNDB_URL", &m.url),
            ("BERTH_VULNDB_SYNC_INTERVAL", "1s"),
        ]);
        // Advisories appear without any manual import.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = status(&berth);
            if st.contains(": 62 advisories") {
                break;
            }
            assert!(Instant::now() < deadline, "no sync after 60 s:\n{st}\n{}", berth.stderr_tail(30));
            std::thread::sleep(Duration::from_millis(300));
        }
        // Later passes are conditional and transfer nothing.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let hits = m.hits.lock().unwrap().clone();
            if hits.iter().any(|h| h.path == "/Debian/all.zip" && h.status == 304) {
                let later: usize = hits.iter().filter(|h| h.if_none_match.is_some()).map(|h| h.bytes).sum();
                assert_eq!(later, 0, "{hits:?}");
                break;
            }
            assert!(Instant::now() < deadline, "no conditional sync after 60 s: {hits:?}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn off_refuses_sync_without_a_source() {
    let berth = Berth::start(berth_testsupport::Backend::Sqlite);
    let o = berth.command_output(&[("BERTH_VULNDB_URL", "off")], &["vulndb", "sync"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("off"), "{o:?}");
}

/// Polls DescribeImageScanFindings until the scan leaves IN_PROGRESS.
fn wait_scan(berth: &Berth, repo: &str, tag: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = berth.ecr(
            "DescribeImageScanFindings",
            &serde_json::json!({"repositoryName": repo, "imageId": {"imageTag": tag}}),
        );
        r.expect_status(200);
        let v = r.json();
        if v["imageScanStatus"]["status"] != "IN_PROGRESS" {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "scan still IN_PROGRESS:\n{}",
            berth.stderr_tail(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn metric(berth: &Berth, name: &str) -> f64 {
    let m = berth.http().get("/metrics");
    m.expect_status(200);
    let text = String::from_utf8_lossy(&m.body).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .trim()
        .parse()
        .expect("number")
}

both_backends! {
    fn an_empty_or_stale_database_is_never_a_clean_bill_of_health(backend) {
        use berth_testsupport::layout::{image, tar_gz_layer, OCI_LAYER_GZIP};
        let m = full_mirror();
        let berth = Berth::start_with(backend, &[("BERTH_VULNDB_URL", "off")]);
        // The server warns at start, status and /metrics say so.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !berth.stderr_tail(50).contains("vulnerability database is empty") {
            assert!(Instant::now() < deadline, "no start warning:\n{}", berth.stderr_tail(50));
            std::thread::sleep(Duration::from_millis(100));
        }
        let st = status(&berth);
        assert!(st.contains("WARNING: the vulnerability database is empty"), "{st}");
        assert_eq!(metric(&berth, "berth_vulndb_advisories"), 0.0);
        assert_eq!(metric(&berth, "berth_vulndb_age_seconds"), -1.0);

        // A scan against the empty database says so in its description.
        berth.ecr("CreateRepository", &serde_json::json!({
            "repositoryName": "feeds/app",
            "imageScanningConfiguration": {"scanOnPush": true},
        })).expect_status(200);
        let status_file = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vuln/debian-bookworm/var/lib/dpkg/status")).expect("dpkg status");
        let os_release = b"ID=debian\nVERSION_ID=\"12\"\n".to_vec();
        let img = image(vec![tar_gz_layer(OCI_LAYER_GZIP, &[
            ("etc/os-release", 0o644, os_release),
            ("var/lib/dpkg/status", 0o644, status_file),
        ])], "amd64", false);
        img.push(&berth.http(), "feeds/app", "v1").expect_status(201);
        let v = wait_scan(&berth, "feeds/app", "v1");
        assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
        let d = v["imageScanStatus"]["description"].as_str().unwrap_or("");
        assert!(d.contains("vulnerability database is empty"), "{v}");

        // After a sync: no warning, an age, findings carry the source date.
        berth.command(&[], &["vulndb", "sync", "--source", &m.url]);
        let st = status(&berth);
        assert!(!st.contains("WARNING"), "{st}");
        assert_eq!(metric(&berth, "berth_vulndb_advisories"), 62.0);
        assert!(metric(&berth, "berth_vulndb_age_seconds") >= 0.0);
        // Days later the same database is out of date.
        let st = berth.command(&[("BERTH_CLOCK_OFFSET_SECS", "400000")], &["vulndb", "status"]);
        assert!(st.contains("WARNING: the vulnerability database is out of date"), "{st}");
        let st = berth.command(&[("BERTH_CLOCK_OFFSET_SECS", "400000"), ("BERTH_VULNDB_MAX_AGE", "7d")], &["vulndb", "status"]);
        assert!(!st.contains("WARNING"), "{st}");
    }
}

/// Every file under `root` as tar entries below `prefix`.
fn tree(root: &Path, dir: &Path, prefix: &str, out: &mut Vec<(String, u32, Vec<u8>)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            tree(root, &p, prefix, out);
        } else {
            let rel = p.strip_prefix(root).expect("below root").display();
            out.push((
                format!("{prefix}{rel}"),
                0o644,
                std::fs::read(&p).expect("read"),
            ));
        }
    }
}

both_backends! {
    fn a_sync_rescans_continuous_scan_images_and_their_sbom_stays_one(backend) {
        use berth_testsupport::layout::{image, tar_gz_layer, OCI_LAYER_GZIP};
        let m = Mirror::start();
        m.set("/PyPI/all.zip", Route::Zip { etag: "\"pypi-1\"".into(), body: fixture_zip("pypi") });
        let berth = Berth::start_with(backend, &[
            ("BERTH_VULNDB_URL", "off"),
            ("BERTH_SBOM_REFERRERS", "true"),
        ]);
        berth.ecr("PutRegistryScanningConfiguration", &serde_json::json!({
            "scanType": "ENHANCED",
            "rules": [{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "cont", "filterType": "WILDCARD"}]}],
        })).expect_status(200);
        berth.ecr("CreateRepository", &serde_json::json!({"repositoryName": "cont/app"})).expect_status(200);
        // Only the PyPI advisories at first. Not on a terminal, progress is one
        // plain line per ecosystem on stderr.
        let o = berth.command_output(&[], &["vulndb", "sync", "--source", &m.url]);
        assert!(o.status.success(), "{o:?}");
        assert!(String::from_utf8_lossy(&o.stdout).contains("1 ecosystem(s) updated"), "{o:?}");
        let progress = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = progress.lines().filter(|l| !l.contains(" INFO ") && !l.contains(" WARN ")).collect();
        assert!(lines.contains(&"PyPI: 40 records"), "{progress}");
        assert!(lines.contains(&"Debian: not on the mirror"), "{progress}");
        assert!(!progress.contains('\r') && !progress.contains("\x1b["), "{progress}");
        let vuln = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vuln");
        let layers = [("python-site-packages", ""), ("npm-app", "app/")].map(|(d, prefix)| {
            let mut files = Vec::new();
            tree(&vuln.join(d), &vuln.join(d), prefix, &mut files);
            let files: Vec<(&str, u32, Vec<u8>)> = files.iter().map(|(p, m, b)| (p.as_str(), *m, b.clone())).collect();
            tar_gz_layer(OCI_LAYER_GZIP, &files)
        });
        let img = image(layers.to_vec(), "amd64", false);
        img.push(&berth.http(), "cont/app", "v1").expect_status(201);
        let v = wait_scan(&berth, "cont/app", "v1");
        assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
        let before = v["imageScanFindings"]["findings"].as_array().cloned().unwrap_or_default();
        assert_eq!(before.len(), 9, "{v}");
        assert!(!before.iter().any(|f| f["name"] == "GHSA-xvch-5gv4-984h"));
        let referrers = || {
            let r = berth.http().get(&format!("/v2/cont/app/referrers/{}", img.digest()));
            r.expect_status(200);
            r.json()["manifests"].as_array().cloned().unwrap_or_default()
        };
        let sboms = referrers();
        assert_eq!(sboms.len(), 1, "{sboms:?}");
        assert_eq!(sboms[0]["artifactType"], "application/vnd.cyclonedx+json");

        // The mirror publishes npm advisories: the sync rescans the image (and not
        // its SBOM), and the new findings appear without anyone asking.
        m.set("/npm/all.zip", Route::Zip { etag: "\"npm-1\"".into(), body: fixture_zip("npm") });
        let out = berth.command(&[], &["vulndb", "sync", "--source", &m.url]);
        assert!(out.contains("1 ecosystem(s) updated"), "{out}");
        assert!(out.contains("1 image(s) queued for rescanning"), "{out}");
        let v = wait_scan(&berth, "cont/app", "v1");
        assert_eq!(v["imageScanStatus"]["status"], "COMPLETE", "{v}");
        let after = v["imageScanFindings"]["findings"].as_array().cloned().unwrap_or_default();
        assert_eq!(after.len(), 14, "{v}");
        assert!(after.iter().any(|f| f["name"] == "GHSA-xvch-5gv4-984h"), "{v}");
        // The rescan found the same packages: still one SBOM, the same one.
        assert_eq!(referrers(), sboms);
        let r = berth.ecr("DescribeImageScanFindings", &serde_json::json!({
            "repositoryName": "cont/app", "imageId": {"imageDigest": sboms[0]["digest"]},
        }));
        assert_eq!(r.json()["__type"], "ScanNotFoundException", "{}", r.describe());
    }
}
