//! An S3-compatible object backend (AWS S3, Garage, MinIO, …) through the
//! maintained `object_store` client: SigV4 signing, retries with backoff and
//! timeouts are the client's; this module maps its calls onto the dumb object
//! operations berth's blob layer needs (see `docs/architecture.md`, "Storage").
//!
//! Nothing here relies on conditional writes: some S3-compatible stores (Garage
//! among them) ignore `If-None-Match`, so every compare-and-set lives in the
//! metadata store. Objects are content-addressed or private to one upload, so two
//! writers of one key write the same bytes or never race.

use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};

use crate::blob::{BoxFut, ByteStream};
use crate::object::{check_key, Multipart, ObjectBackend};
use crate::StoreError;

/// Where and how to reach the bucket. Built from `s3://<bucket>[/<prefix>]` and the
/// `BERTH_S3_*` settings; keys left empty fall back to the standard AWS credential
/// chain (environment, web identity, instance metadata).
#[derive(Clone, Default)]
pub struct S3Config {
    pub bucket: String,
    /// Key prefix inside the bucket (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// e.g. `http://127.0.0.1:3900`; None = AWS's regional endpoint.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Path-style addressing (`<endpoint>/<bucket>/<key>`); the default when an
    /// endpoint is given, since most self-hosted stores need it.
    pub path_style: Option<bool>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("path_style", &self.path_style)
            .finish()
    }
}

impl S3Config {
    /// Parses `s3://<bucket>[/<prefix>]`.
    pub fn from_url(url: &str) -> Result<S3Config, StoreError> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| StoreError::Config(format!("not an s3:// URL: {url}")))?;
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) => (b, p.trim_matches('/')),
            None => (rest, ""),
        };
        if bucket.is_empty()
            || !bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        {
            return Err(StoreError::Config(format!(
                "invalid bucket name in {url}: lowercase letters, digits, '-' and '.' only"
            )));
        }
        if prefix.split('/').any(|s| s == "." || s == "..") {
            return Err(StoreError::Config(format!("invalid key prefix in {url}")));
        }
        Ok(S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            ..S3Config::default()
        })
    }
}

pub use crate::object::ObjectInfo;

/// The S3 backend. Cheap to clone; one HTTP connection pool inside.
#[derive(Clone)]
pub struct S3Backend {
    store: Arc<AmazonS3>,
    prefix: String,
}

/// The smallest part S3 accepts in a multipart upload, except the last one.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Maps an object store error. A `Generic` error is what remains of a timeout, a
/// connection error or a 5xx after the client's retries (`RetryConfig` below):
/// unavailable for now (503 and `Retry-After` at the front ends). Refused
/// credentials and the like stay plain errors (a misconfiguration, 500).
fn os_err(e: object_store::Error) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound,
        e @ object_store::Error::Generic { .. } => StoreError::Unavailable(e.to_string()),
        other => StoreError::Io(io::Error::other(format!("object store: {other}"))),
    }
}

impl S3Backend {
    pub fn new(cfg: &S3Config) -> Result<S3Backend, StoreError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            // Never trust the store to enforce a conditional write (see above).
            .with_conditional_put(S3ConditionalPut::Disabled)
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: 5,
                retry_timeout: Duration::from_secs(60),
            })
            .with_client_options(
                ClientOptions::new()
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(300))
                    .with_allow_http(true),
            );
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &cfg.region {
            b = b.with_region(r);
        }
        if let (Some(k), Some(s)) = (&cfg.access_key_id, &cfg.secret_access_key) {
            b = b.with_access_key_id(k).with_secret_access_key(s);
        }
        // SigV4 with a signed payload SHA-256s every body before sending it: a
        // second pass over each part, beside the blob's own digest. Over TLS
        // (AWS, or an `https://` endpoint) the body's integrity is TLS's, so the
        // payload goes unsigned (`UNSIGNED-PAYLOAD`, as the AWS SDKs do over
        // HTTPS); over plain HTTP it stays signed unless `AWS_UNSIGNED_PAYLOAD`
        // says otherwise (`docs/benchmarks.md`, "Large pulls from S3: windows
        // that stream").
        if cfg
            .endpoint
            .as_deref()
            .is_none_or(|e| e.to_ascii_lowercase().starts_with("https://"))
        {
            b = b.with_unsigned_payload(true);
        }
        let path_style = cfg.path_style.unwrap_or(cfg.endpoint.is_some());
        b = b.with_virtual_hosted_style_request(!path_style);
        let store = b
            .build()
            .map_err(|e| StoreError::Config(format!("S3 blob store: {e}")))?;
        Ok(S3Backend {
            store: Arc::new(store),
            prefix: cfg.prefix.clone(),
        })
    }

    fn path(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn relative(&self, p: &ObjectPath) -> String {
        let s = p.as_ref();
        if self.prefix.is_empty() {
            s.to_string()
        } else {
            s.strip_prefix(&self.prefix)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(s)
                .to_string()
        }
    }

    fn list_under(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        // S3 lists by string prefix; `object_store` lists by path segment, so list
        // the deepest whole segment and filter the rest.
        let base = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let p = if base.is_empty() && self.prefix.is_empty() {
            None
        } else {
            Some(self.path(base))
        };
        let me = self.clone();
        let want = prefix.to_string();
        self.store
            .list(p.as_ref())
            .map(move |r| {
                r.map(|m| ObjectInfo {
                    key: me.relative(&m.location),
                    size: m.size,
                    modified_ms: m.last_modified.timestamp_millis(),
                })
                .map_err(os_err)
            })
            .try_filter(move |o| futures_util::future::ready(o.key.starts_with(&want)))
            .boxed()
    }
}

/// Whole objects from a stream: one PUT when the body is smaller than a part,
/// else a multipart upload in parts of [`MIN_PART_SIZE`] (memory stays bounded by
/// one part).
async fn put_stream(b: &S3Backend, key: &str, mut body: ByteStream) -> Result<u64, StoreError> {
    let mut pending: Vec<Bytes> = Vec::new();
    let mut pending_len = 0usize;
    let mut total = 0u64;
    let mut mp: Option<Multipart> = None;
    let result: Result<(), StoreError> = async {
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(StoreError::Io)?;
            total += chunk.len() as u64;
            pending_len += chunk.len();
            pending.push(chunk);
            if pending_len >= MIN_PART_SIZE {
                if mp.is_none() {
                    mp = Some(b.create_multipart(key).await?);
                }
                let m = mp.as_mut().unwrap_or_else(|| unreachable!());
                let payload: PutPayload = std::mem::take(&mut pending).into_iter().collect();
                pending_len = 0;
                let token = b.put_part_payload(m, m.parts.len(), payload).await?;
                m.parts.push(token);
            }
        }
        Ok(())
    }
    .await;
    match (result, mp) {
        (Ok(()), None) => {
            let payload: PutPayload = pending.into_iter().collect();
            b.store.put(&b.path(key), payload).await.map_err(os_err)?;
            Ok(total)
        }
        (Ok(()), Some(mut m)) => {
            let done = async {
                if pending_len > 0 {
                    let payload: PutPayload = pending.into_iter().collect();
                    let token = b.put_part_payload(&m, m.parts.len(), payload).await?;
                    m.parts.push(token);
                }
                b.complete_multipart(&m).await
            }
            .await;
            if let Err(e) = done {
                let _ = b.abort_multipart(&m).await;
                return Err(e);
            }
            Ok(total)
        }
        (Err(e), mp) => {
            if let Some(m) = mp {
                let _ = b.abort_multipart(&m).await;
            }
            Err(e)
        }
    }
}

impl S3Backend {
    async fn put_part_payload(
        &self,
        mp: &Multipart,
        index: usize,
        payload: PutPayload,
    ) -> Result<String, StoreError> {
        let part = self
            .store
            .put_part(&self.path(&mp.key), &mp.upload_id, index, payload)
            .await
            .map_err(os_err)?;
        Ok(part.content_id)
    }
}

impl ObjectBackend for S3Backend {
    fn min_part_size(&self) -> usize {
        MIN_PART_SIZE
    }

    fn put<'a>(&'a self, key: &'a str, body: ByteStream) -> BoxFut<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            check_key(key)?;
            put_stream(self, key, body).await
        })
    }

    fn create_multipart<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Multipart, StoreError>> {
        Box::pin(async move {
            check_key(key)?;
            let upload_id = self
                .store
                .create_multipart(&self.path(key))
                .await
                .map_err(os_err)?;
            Ok(Multipart {
                key: key.to_string(),
                upload_id,
                parts: Vec::new(),
            })
        })
    }

    fn put_part<'a>(
        &'a self,
        mp: &'a Multipart,
        index: usize,
        data: Bytes,
    ) -> BoxFut<'a, Result<String, StoreError>> {
        Box::pin(self.put_part_payload(mp, index, PutPayload::from_bytes(data)))
    }

    fn complete_multipart<'a>(&'a self, mp: &'a Multipart) -> BoxFut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let parts = mp
                .parts
                .iter()
                .map(|content_id| PartId {
                    content_id: content_id.clone(),
                })
                .collect();
            self.store
                .complete_multipart(&self.path(&mp.key), &mp.upload_id, parts)
                .await
                .map_err(os_err)?;
            Ok(())
        })
    }

    fn abort_multipart<'a>(&'a self, mp: &'a Multipart) -> BoxFut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match self
                .store
                .abort_multipart(&self.path(&mp.key), &mp.upload_id)
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(os_err(e)),
            }
        })
    }

    fn get<'a>(
        &'a self,
        key: &'a str,
        range: Range<u64>,
    ) -> BoxFut<'a, Result<ByteStream, StoreError>> {
        Box::pin(async move {
            if range.start >= range.end {
                // No bytes wanted: only whether the object exists.
                return match self.stat(key).await? {
                    Some(_) => Ok(Box::pin(futures_util::stream::empty()) as ByteStream),
                    None => Err(StoreError::NotFound),
                };
            }
            let start = range.start;
            let opts = GetOptions {
                // `0..u64::MAX`, the whole object: a plain GET, no `Range`.
                range: match (range.start, range.end) {
                    (0, u64::MAX) => None,
                    (s, u64::MAX) => Some(GetRange::Offset(s)),
                    _ => Some(GetRange::Bounded(range)),
                },
                ..GetOptions::default()
            };
            let r = match self.store.get_opts(&self.path(key), opts).await {
                Ok(r) => r,
                Err(object_store::Error::NotFound { .. }) => return Err(StoreError::NotFound),
                Err(e) => {
                    // S3 refuses a range that starts at or past the end (416), an
                    // empty object's included: the contract cuts it to nothing.
                    return match self.stat(key).await? {
                        Some(info) if start >= info.size => {
                            Ok(Box::pin(futures_util::stream::empty()) as ByteStream)
                        }
                        Some(_) => Err(os_err(e)),
                        None => Err(StoreError::NotFound),
                    };
                }
            };
            Ok(Box::pin(
                r.into_stream()
                    .map_err(|e| io::Error::other(format!("object store read: {e}"))),
            ) as ByteStream)
        })
    }

    fn stat<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<Option<ObjectInfo>, StoreError>> {
        Box::pin(async move {
            match self.store.head(&self.path(key)).await {
                Ok(m) => Ok(Some(ObjectInfo {
                    key: key.to_string(),
                    size: m.size,
                    modified_ms: m.last_modified.timestamp_millis(),
                })),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(os_err(e)),
            }
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            match self.store.delete(&self.path(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(os_err(e)),
            }
        })
    }

    fn list(&self, prefix: &str) -> BoxStream<'static, Result<ObjectInfo, StoreError>> {
        self.list_under(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_an_optional_prefix() {
        let c = S3Config::from_url("s3://berth-blobs").unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("berth-blobs", ""));
        let c = S3Config::from_url("s3://b/team/registry/").unwrap();
        assert_eq!(
            (c.bucket.as_str(), c.prefix.as_str()),
            ("b", "team/registry")
        );
        for bad in ["file:///x", "s3://", "s3:///p", "s3://Upper", "s3://b/../x"] {
            assert!(S3Config::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let c = S3Config {
            secret_access_key: Some("very-secret".into()),
            ..S3Config::default()
        };
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
