//! The pull-through cache on `/v2/`: before a manifest is read, a repository name
//! covered by a pull-through cache rule is filled from the rule's upstream —
//! created on first pull (the caller needs `ecr:CreateRepository` and
//! `ecr:BatchImportUpstreamImage`, as on ECR) with the matching creation template,
//! then the image imported (`crates/registry/src/pull_through.rs`). A cached tag is
//! checked upstream again once the refresh interval has passed; when the upstream
//! cannot be reached, the cached image is served.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use berth_oci::digest::Hasher;
use berth_oci::{Digest, Reference, RepositoryName};
use berth_registry::identity::Principal;
use berth_registry::upstream::UpstreamError;
use berth_registry::{
    matching_rule, CreationPurpose, FetchedManifest, PullThroughError, RegistryError, RepositoryRow,
};
use bytes::Bytes;

use crate::oci_error::OciError;
use crate::App;

const IMPORT: &str = "ecr:BatchImportUpstreamImage";
/// How often a long blob transfer renews its lease.
const LEASE_RENEW: Duration =
    Duration::from_millis(berth_registry::PULL_THROUGH_LEASE_RENEW_MS as u64);

/// The budget, in KiB, of what the stores of blobs streamed from upstreams may
/// hold in memory while they are behind their clients: one for the process
/// (`RegistryConfig::pull_through_store_buffer_kib`).
fn store_buffer(app: &App) -> Arc<tokio::sync::Semaphore> {
    static S: std::sync::OnceLock<Arc<tokio::sync::Semaphore>> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        let kib = app.registry.config.pull_through_store_buffer_kib;
        Arc::new(tokio::sync::Semaphore::new(
            kib.min(tokio::sync::Semaphore::MAX_PERMITS),
        ))
    })
    .clone()
}

fn upstream_error(e: PullThroughError) -> OciError {
    match e {
        PullThroughError::Upstream(UpstreamError::NotFound(what)) => OciError::new(
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
            format!("the upstream registry has no {what}"),
        ),
        PullThroughError::Registry(e) => e.into(),
        e => OciError::new(StatusCode::BAD_GATEWAY, "UNKNOWN", e.to_string()),
    }
}

/// Fills `name`'s cache for a read of `reference`, when a rule covers `name`.
/// `Some` when the manifest was fetched but cannot be stored before its blobs are:
/// the caller serves these (verified) bytes.
pub async fn fill(
    app: &Arc<App>,
    caller: &Principal,
    account: &str,
    name: &RepositoryName,
    reference: &Reference,
) -> Result<Option<FetchedManifest>, OciError> {
    let rules = app.registry.pull_through_rules_for_read(account).await?;
    let Some(rule) = matching_rule(&rules, name.as_str()) else {
        return Ok(None);
    };
    let Some(upstream_name) = rule.upstream_name(name.as_str()) else {
        return Ok(None);
    };
    let (repo, created) = match app.registry.repository(account, name).await {
        Ok(r) => (r, false),
        Err(RegistryError::NameUnknown { .. }) => {
            for action in ["ecr:BatchGetImage", "ecr:CreateRepository", IMPORT] {
                app.authorize(caller, action, account, Some(name.as_str()), None)
                    .await?;
            }
            let r = app
                .registry
                .create_repository_on_behalf(account, name, CreationPurpose::PullThroughCache)
                .await?;
            (r, true)
        }
        Err(e) => return Err(e.into()),
    };
    let cached = app.registry.find_manifest(&repo, reference).await.is_ok();
    if !cached {
        // Fetched moments ago and waiting for its blobs (a HEAD before the GET, a
        // platform manifest after its index): served again without asking the
        // upstream, whose manifest reads are often rate-limited.
        if let Some(m) = app.registry.recently_fetched(repo.repo_id, reference) {
            app.authorize(
                caller,
                IMPORT,
                account,
                Some(name.as_str()),
                repo.policy.as_deref(),
            )
            .await?;
            return Ok(Some(m));
        }
    }
    let due = match reference {
        Reference::Digest(_) => !cached,
        Reference::Tag(t) => !cached || app.registry.pull_through_due(&repo, t.as_str()).await?,
    };
    if !due {
        return Ok(None);
    }
    // Only a caller who may read the image makes berth fetch it.
    app.authorize(
        caller,
        "ecr:BatchGetImage",
        account,
        Some(name.as_str()),
        repo.policy.as_deref(),
    )
    .await?;
    if let Err(e) = app
        .authorize(
            caller,
            IMPORT,
            account,
            Some(name.as_str()),
            repo.policy.as_deref(),
        )
        .await
    {
        // Without the import permission a caller still reads what is cached.
        return if cached { Ok(None) } else { Err(e.into()) };
    }
    match app
        .registry
        .import_upstream_image(account, rule, &repo, &upstream_name, reference)
        .await
    {
        Ok(None) => Ok(None),
        // The blobs are fetched by the client's own blob reads (streamed to it
        // while stored, `blob` below); what no client reads is fetched by the
        // image's completion job, queued by the core, which then stores the
        // manifests.
        Ok(Some(tree)) => Ok(tree.last().cloned()),
        Err(e) if cached => {
            tracing::warn!(repository = %name, reference = %reference, error = %e, "pull-through cache: the upstream check failed; serving the cached image");
            Ok(None)
        }
        Err(e) => {
            // A first pull of something the upstream does not give leaves no
            // empty repository behind (unless another pull filled it meanwhile).
            if created {
                if let Err(d) = app.registry.delete_repository(&repo, false).await {
                    tracing::debug!(repository = %name, error = %d, "kept the cache repository");
                }
            }
            Err(upstream_error(e))
        }
    }
}

/// A blob read that misses in a pull-through cache repository: the blob is
/// fetched from the upstream and streamed to the client while it is stored (and
/// verified); another pull of the same blob meanwhile, on any node, waits and then
/// reads the cache. `None` when the blob is not the cache's to fetch (or is cached
/// by now): the caller answers as usual.
pub async fn blob(
    app: &Arc<App>,
    caller: &Principal,
    account: &str,
    repo: &RepositoryRow,
    digest: &Digest,
    headers: &HeaderMap,
) -> Result<Option<Response>, OciError> {
    let rules = app.registry.pull_through_rules_for_read(account).await?;
    let Some(rule) = matching_rule(&rules, &repo.name) else {
        return Ok(None);
    };
    let Some(upstream_name) = rule.upstream_name(&repo.name) else {
        return Ok(None);
    };
    if app
        .authorize(
            caller,
            IMPORT,
            account,
            Some(&repo.name),
            repo.policy.as_deref(),
        )
        .await
        .is_err()
    {
        return Ok(None);
    }
    let Some(holder) = app.registry.take_upstream_blob(repo, digest).await? else {
        return Ok(None);
    };
    let fetched = async {
        let up = app.registry.upstream_of(account, rule).await?;
        Ok::<_, PullThroughError>(up.blob(&upstream_name, digest.as_str()).await?)
    }
    .await;
    let (len, mut upstream) = match fetched {
        Ok(f) => f,
        Err(e) => {
            app.registry
                .release_upstream_blob(repo, digest, &holder)
                .await;
            return Err(upstream_error(e));
        }
    };
    if headers.contains_key(header::RANGE) {
        // A range of a blob not cached yet: store it whole first, then serve the
        // range from the cache.
        let r = app
            .registry
            .store_upstream_blob(repo, digest, upstream)
            .await;
        app.registry
            .release_upstream_blob(repo, digest, &holder)
            .await;
        r.map_err(upstream_error)?;
        return Ok(None);
    }
    // The store side reads what the client side forwards, through a queue the
    // client side never waits on: what the store has not taken yet is held in
    // memory within one budget for the whole process ([`store_buffer`]). When a
    // chunk does not fit (the store fell that far behind), the store side is
    // given up for this blob — its upload is cancelled, the lease released — and
    // the image's completion job fetches the blob again; the client goes on at
    // the upstream's pace either way. The store opens its upload session itself,
    // so the client's bytes do not wait for that either.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
        std::result::Result<Bytes, String>,
        Option<tokio::sync::OwnedSemaphorePermit>,
    )>();
    // A permit is given back as the store takes its chunk.
    let store_stream = Box::pin(futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|o| o.map(|(chunk, _permit)| chunk))
    }));
    {
        let app = app.clone();
        let repo = repo.clone();
        let digest = digest.clone();
        let holder = holder.clone();
        tokio::spawn(async move {
            if let Err(e) = app
                .registry
                .store_verified_upstream_blob(&repo, &digest, store_stream)
                .await
            {
                tracing::warn!(repository = %repo.name, digest = %digest, error = %e, "pull-through cache: a blob read from the upstream was not stored");
            }
            app.registry
                .release_upstream_blob(&repo, &digest, &holder)
                .await;
        });
    }
    // One task reads the upstream and feeds both sides; a client that goes away
    // does not stop the blob from being stored.
    let (client_tx, mut client_rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let want = digest.clone();
    let (app2, repo2) = (app.clone(), repo.clone());
    let budget = store_buffer(app);
    tokio::spawn(async move {
        let mut renewed = Instant::now();
        let mut hasher = Hasher::new(want.algorithm());
        let mut client = Some(client_tx);
        let mut store = Some(tx);
        // The client gets each chunk when the next one arrives, and the last one
        // only once the digest is verified: a wrong blob never reaches it whole.
        let mut held: Option<Bytes> = None;
        while let Some(chunk) = futures_util::StreamExt::next(&mut upstream).await {
            match chunk {
                Ok(b) => {
                    hasher.update(&b);
                    // A long transfer renews its lease as it goes.
                    if renewed.elapsed() >= LEASE_RENEW {
                        renewed = Instant::now();
                        app2.registry
                            .renew_upstream_blob(&repo2, &want, &holder)
                            .await;
                    }
                    if let Some(s) = &store {
                        let kib = u32::try_from(b.len().div_ceil(1024)).unwrap_or(u32::MAX);
                        let fed = match budget.clone().try_acquire_many_owned(kib) {
                            Ok(permit) => s.send((Ok(b.clone()), Some(permit))).is_ok(),
                            Err(_) => {
                                tracing::info!(repository = %repo2.name, digest = %want, "pull-through cache: storing fell behind the client; the image's completion job fetches this blob again");
                                let _ = s.send((Err("the store fell behind".into()), None));
                                false
                            }
                        };
                        if !fed {
                            store = None;
                        }
                    }
                    if let (Some(c), Some(prev)) = (&client, held.replace(b)) {
                        if c.send(Ok(prev)).await.is_err() {
                            client = None;
                        }
                    }
                }
                Err(e) => {
                    if let Some(s) = &store {
                        let _ = s.send((Err(e.clone()), None));
                    }
                    if let Some(c) = &client {
                        let _ = c.send(Err(std::io::Error::other(e))).await;
                    }
                    return;
                }
            }
        }
        let got = hasher.finish();
        // The store takes the bytes as verified by this hash (it does not hash
        // them again): the stream ends cleanly only when they are the blob.
        if let Some(s) = store.take() {
            if got != want {
                let _ = s.send((Err(format!("the upstream sent {got} for {want}")), None));
            }
        }
        if let Some(c) = &client {
            let last = if got == want {
                held.map(Ok)
            } else {
                Some(Err(std::io::Error::other(format!(
                    "the upstream sent {got} for {want}"
                ))))
            };
            if let Some(last) = last {
                let _ = c.send(last).await;
            }
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| client_rx.poll_recv(cx));
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    if let Some(n) = len {
        if let Ok(v) = HeaderValue::from_str(&n.to_string()) {
            h.insert(header::CONTENT_LENGTH, v);
        }
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(digest.as_str()) {
        h.insert("docker-content-digest", v);
    }
    Ok(Some(resp))
}
