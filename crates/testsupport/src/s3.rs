//! What a server on an S3 blob store ([`crate::Backend::PostgresS3`]) keeps in its
//! bucket, looked at from outside with the AWS CLI (a real S3 client), so tests can
//! check that objects are written, deleted and that dead multipart uploads are
//! aborted.

use std::process::Command;

use crate::server::Berth;
use crate::tools::require;

impl Berth {
    /// `(bucket, prefix)` of this server's `s3://` blob store, None on a filesystem
    /// store.
    pub fn s3_location(&self) -> Option<(String, String)> {
        let url = self.env_value("BERTH_BLOB_STORE")?;
        let rest = url.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Some((bucket.to_string(), prefix.trim_end_matches('/').to_string()))
    }

    /// Copies every object of the store into `dir` (keys as paths), for tests that
    /// look at the bytes at rest.
    pub fn s3_download(&self, dir: &std::path::Path) {
        let (bucket, prefix) = self.s3_location().expect("an s3:// blob store");
        self.aws_s3(
            "s3",
            &[
                "cp",
                "--recursive",
                "--only-show-errors",
                &format!("s3://{bucket}/{prefix}/"),
                &dir.display().to_string(),
            ],
        );
    }

    /// Deletes every object under this server's prefix and aborts its open
    /// multipart uploads, so a long-lived test bucket does not grow with every run.
    /// Best effort: called from `Drop`, it reports a failure and never panics.
    pub(crate) fn s3_remove_prefix(&self) {
        let Some((bucket, prefix)) = self.s3_location() else {
            return;
        };
        let run = |command: &str, args: &[&str]| -> Option<String> {
            let v = |k: &str| self.env_value(k).unwrap_or_default().to_string();
            let out = Command::new("aws")
                .arg(command)
                .args(args)
                .args(["--endpoint-url", &v("BERTH_S3_ENDPOINT")])
                .args(["--output", "text"])
                .env("AWS_ACCESS_KEY_ID", v("BERTH_S3_ACCESS_KEY_ID"))
                .env("AWS_SECRET_ACCESS_KEY", v("BERTH_S3_SECRET_ACCESS_KEY"))
                .env("AWS_DEFAULT_REGION", v("BERTH_S3_REGION"))
                .env("AWS_CONFIG_FILE", "/dev/null")
                .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
                .env_remove("AWS_PROFILE")
                .output();
            match out {
                Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into()),
                Ok(o) => {
                    eprintln!(
                        "cleanup: aws {command} {args:?}: {}",
                        String::from_utf8_lossy(&o.stderr).trim()
                    );
                    None
                }
                Err(e) => {
                    eprintln!("cleanup: cannot run aws: {e}");
                    None
                }
            }
        };
        let url = format!("s3://{bucket}/{prefix}/");
        run("s3", &["rm", "--recursive", "--only-show-errors", &url]);
        let uploads = run(
            "s3api",
            &[
                "list-multipart-uploads",
                "--bucket",
                &bucket,
                "--prefix",
                &format!("{prefix}/"),
                "--query",
                "Uploads[].[Key,UploadId]",
            ],
        )
        .unwrap_or_default();
        for line in uploads.lines() {
            if let Some((key, id)) = line.split_once('\t') {
                run(
                    "s3api",
                    &[
                        "abort-multipart-upload",
                        "--bucket",
                        &bucket,
                        "--key",
                        key,
                        "--upload-id",
                        id.trim(),
                    ],
                );
            }
        }
    }

    fn s3api(&self, args: &[&str]) -> serde_json::Value {
        self.aws_s3("s3api", args)
    }

    fn aws_s3(&self, command: &str, args: &[&str]) -> serde_json::Value {
        require("aws", "pip install awscli");
        let v = |k: &str| self.env_value(k).unwrap_or_default().to_string();
        let out = Command::new("aws")
            .arg(command)
            .args(args)
            .args(["--endpoint-url", &v("BERTH_S3_ENDPOINT")])
            .args(["--output", "json"])
            .env("AWS_ACCESS_KEY_ID", v("BERTH_S3_ACCESS_KEY_ID"))
            .env("AWS_SECRET_ACCESS_KEY", v("BERTH_S3_SECRET_ACCESS_KEY"))
            .env("AWS_DEFAULT_REGION", v("BERTH_S3_REGION"))
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .output()
            .expect("run aws");
        assert!(
            out.status.success(),
            "aws {command} {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    /// The keys (relative to the store's prefix) of the objects under `under`
    /// (e.g. `blobs/`, `uploads/`), all pages.
    pub fn s3_keys(&self, under: &str) -> Vec<String> {
        let (bucket, prefix) = self.s3_location().expect("an s3:// blob store");
        let full = format!("{prefix}/{under}");
        let out = self.s3api(&["list-objects-v2", "--bucket", &bucket, "--prefix", &full]);
        keys_of(&out, "Contents", &prefix)
    }

    /// Writes an object at `key` (relative to the store's prefix) behind the
    /// server's back, as a crash between an upload and its commit leaves one.
    pub fn s3_put(&self, key: &str, bytes: &[u8]) {
        let (bucket, prefix) = self.s3_location().expect("an s3:// blob store");
        let file = crate::TempDir::new("berth-s3-put");
        let body = file.join("body");
        std::fs::write(&body, bytes).expect("write the object body");
        self.s3api(&[
            "put-object",
            "--bucket",
            &bucket,
            "--key",
            &format!("{prefix}/{key}"),
            "--body",
            &body.display().to_string(),
        ]);
    }

    /// The keys (relative to the store's prefix) of multipart uploads begun and
    /// neither completed nor aborted.
    pub fn s3_open_multipart_uploads(&self) -> Vec<String> {
        let (bucket, prefix) = self.s3_location().expect("an s3:// blob store");
        let out = self.s3api(&[
            "list-multipart-uploads",
            "--bucket",
            &bucket,
            "--prefix",
            &format!("{prefix}/"),
        ]);
        keys_of(&out, "Uploads", &prefix)
    }
}

fn keys_of(out: &serde_json::Value, field: &str, prefix: &str) -> Vec<String> {
    out.get(field)
        .and_then(|c| c.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("Key").and_then(|k| k.as_str()))
                .map(|k| {
                    k.strip_prefix(prefix)
                        .map(|k| k.trim_start_matches('/'))
                        .unwrap_or(k)
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default()
}
