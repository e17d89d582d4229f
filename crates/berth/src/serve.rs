//! `berth serve`: opens the stores, starts background work and serves HTTP(S) until
//! SIGTERM/SIGINT, then drains in-flight requests and exits 0.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_api::{ApiConfig, App};
use berth_registry::jobs::{Handler, Pass, Periodic, Worker, WorkerConfig};
use berth_registry::{Clock, Registry, RegistryConfig, StoreSettings, Stores};
use clap::Args;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::Common;

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// Address to listen on (BERTH_LISTEN), default 127.0.0.1:5000.
    #[arg(long)]
    listen: Option<String>,
    /// PEM certificate chain; enables TLS (BERTH_TLS_CERT).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key (BERTH_TLS_KEY).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Allow an S3 blob store on SQLite metadata: one node only (BERTH_SINGLE_NODE).
    #[arg(long)]
    single_node: bool,
}

fn init_logging(
    format: &str,
    otlp: Option<crate::otlp::OtlpConfig>,
) -> Option<crate::otlp::Exporter> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if format == "json" {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    // Traces (crate::otlp) when an OTLP endpoint is configured.
    let (otlp, exporter) = match otlp {
        Some(cfg) => {
            let (layer, exporter) = crate::otlp::layer(cfg);
            berth_api::otel::enable();
            (Some(layer), Some(exporter))
        }
        None => (None, None),
    };
    // Statement latencies for /metrics (crate::db_metrics), whatever is logged.
    tracing_subscriber::registry()
        .with(fmt)
        .with(crate::db_metrics::layer())
        .with(otlp)
        .init();
    exporter
}

fn tls_acceptor(cert: &PathBuf, key: &PathBuf) -> Result<tokio_rustls::TlsAcceptor, String> {
    use tokio_rustls::rustls;
    let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(
        std::fs::File::open(cert).map_err(|e| format!("cannot open {}: {e}", cert.display()))?,
    ))
    .collect::<Result<Vec<_>, _>>()
    .map_err(|e| format!("invalid certificate {}: {e}", cert.display()))?;
    let key = rustls_pemfile::private_key(&mut std::io::BufReader::new(
        std::fs::File::open(key).map_err(|e| format!("cannot open {}: {e}", key.display()))?,
    ))
    .map_err(|e| format!("invalid key {}: {e}", key.display()))?
    .ok_or_else(|| format!("no private key in {}", key.display()))?;
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("TLS configuration: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// The TLS configuration in use, replaced on SIGHUP by one read again from the
/// certificate and key files (a renewed certificate takes effect for new
/// connections without a restart; a file that does not load keeps the old one).
struct TlsReloader {
    cert: PathBuf,
    key: PathBuf,
    current: std::sync::RwLock<tokio_rustls::TlsAcceptor>,
}

impl TlsReloader {
    fn open(cert: &PathBuf, key: &PathBuf) -> Result<Arc<TlsReloader>, String> {
        Ok(Arc::new(TlsReloader {
            current: std::sync::RwLock::new(tls_acceptor(cert, key)?),
            cert: cert.clone(),
            key: key.clone(),
        }))
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Reloads on every SIGHUP for as long as the process runs.
    fn spawn_reload_on_sighup(self: Arc<Self>) {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP: TLS certificates reload only on restart");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let (cert, key) = (self.cert.clone(), self.key.clone());
                let loaded = tokio::task::spawn_blocking(move || tls_acceptor(&cert, &key)).await;
                match loaded {
                    Ok(Ok(acc)) => {
                        *self.current.write().unwrap_or_else(|e| e.into_inner()) = acc;
                        tracing::info!(cert = %self.cert.display(), "SIGHUP: TLS certificate reloaded");
                    }
                    Ok(Err(e)) => tracing::error!(
                        error = %e,
                        "SIGHUP: the TLS certificate did not load; keeping the one in use"
                    ),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: TLS reload failed"),
                }
            }
        });
    }
}

/// Replication jobs run at once by each process.
const REPLICATION_WORKERS: usize = 4;
/// Pull-through completions wait for clients and talk to upstreams: a few run at once.
const PULL_THROUGH_WORKERS: usize = 2;

pub async fn run(args: ServeArgs) -> Result<(), String> {
    let mut cfg = args.common.load()?;
    if let Some(l) = args.listen {
        cfg.listen = l;
    }
    if args.tls_cert.is_some() {
        cfg.tls_cert = args.tls_cert;
    }
    if args.tls_key.is_some() {
        cfg.tls_key = args.tls_key;
    }
    if args.single_node {
        cfg.single_node = true;
    }
    cfg.validate().map_err(|e| e.to_string())?;
    cfg.validate_serve().map_err(|e| e.to_string())?;
    let otlp = init_logging(&cfg.log_format, cfg.otlp()?);

    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    let tls = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => Some(TlsReloader::open(c, k)?),
        _ => None,
    };
    let listener = TcpListener::bind(&cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr: SocketAddr = listener.local_addr().map_err(|e| e.to_string())?;

    let registry = Arc::new(open_registry(&cfg).await?);
    crate::bootstrap::root_key(&cfg, registry.identity(), registry.now()).await?;
    let public_host = cfg.public_host.clone().unwrap_or_else(|| addr.to_string());
    let app = Arc::new(
        App::new(
            registry.clone(),
            ApiConfig {
                default_account: cfg.account_id.clone(),
                region: cfg.region.clone(),
                public_host,
                scheme: if tls.is_some() { "https" } else { "http" },
                peer_regions: cfg.peers.iter().map(|p| p.region.clone()).collect(),
            },
        )
        .with_hardening(cfg.limits.build()?),
    );
    let node_id = format!(
        "{}-{}",
        worker_id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    // Several nodes need PostgreSQL; on SQLite a heartbeat would be one more
    // writer queuing for the one write lock every few seconds, for nothing.
    let shared_metadata = cfg.database_url().starts_with("postgres");
    if shared_metadata {
        spawn_node_heartbeat(registry.clone(), app.clone(), node_id.clone());
    }
    let router = berth_api::router(app);

    let (stop_jobs, jobs_stopping) = tokio::sync::watch::channel(false);
    spawn_background(registry.clone(), &cfg);
    spawn_keyring_refresh(registry.clone());
    let mut workers = spawn_periodic(registry.clone(), &cfg, &jobs_stopping).await?;
    workers.extend(crate::vulndb::spawn_feed_sync(registry.clone(), &cfg, &jobs_stopping).await?);
    // Replication: a few workers, so that a slow peer does not hold up the others.
    let peers: Option<Arc<dyn berth_registry::replication::PeerConnector>> = if cfg.peers.is_empty()
    {
        None
    } else {
        Some(Arc::new(crate::peer::Peers::new(&cfg)?))
    };
    let replication = Arc::new(berth_registry::replication::ReplicationHandler {
        peers: peers.clone(),
    });
    let deletes = Arc::new(berth_registry::replication::ReplicationDeleteHandler { peers });
    for i in 0..REPLICATION_WORKERS {
        workers.push(tokio::spawn(
            berth_registry::jobs::Worker::new(
                registry.clone(),
                format!("{}/replication-{i}", worker_id()),
                vec![replication.clone(), deletes.clone()],
                worker_config(&cfg),
            )
            .run(jobs_stopping.clone()),
        ));
    }
    // Pull-through cache: images served before they were stored are completed by
    // durable jobs (crates/registry/src/pull_through_jobs.rs).
    let pull_through = Arc::new(berth_registry::pull_through_jobs::PullThroughHandler);
    for i in 0..PULL_THROUGH_WORKERS {
        workers.push(tokio::spawn(
            berth_registry::jobs::Worker::new(
                registry.clone(),
                format!("{}/pull-through-{i}", worker_id()),
                vec![pull_through.clone()],
                worker_config(&cfg),
            )
            .run(jobs_stopping.clone()),
        ));
    }
    workers.extend(crate::vulndb::spawn_scanning(
        registry.clone(),
        2,
        worker_config(&cfg),
        Duration::from_secs(cfg.vulndb_max_age_secs),
        cfg.sbom_referrers,
        jobs_stopping.clone(),
    ));
    workers.extend(
        crate::webhooks::spawn(registry.clone(), &cfg, worker_config(&cfg), jobs_stopping).await?,
    );

    if let Some(t) = &tls {
        t.clone().spawn_reload_on_sighup();
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Tests and scripts read this line to learn the bound address.
    println!("berth listening on {scheme}://{addr}");
    tracing::info!(%addr, scheme, "berth listening");

    let header_timeout = Duration::from_secs(cfg.limits.header_timeout_secs);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let svc = TowerToHyperService::new(tower::ServiceExt::map_request(
                    router.clone(),
                    move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
                        req
                    },
                ));
                let watcher = graceful.watcher();
                let tls = tls.as_ref().map(|t| t.acceptor());
                tokio::spawn(async move {
                    let mut builder = hyper::server::conn::http1::Builder::new();
                    builder.keep_alive(true);
                    // A client gets this long to send each request's headers; a
                    // slower one (slowloris) is disconnected (`[limits]`).
                    builder
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(header_timeout);
                    let res = match tls {
                        // The handshake has the same bound as the headers.
                        Some(acc) => match tokio::time::timeout(header_timeout, acc.accept(stream)).await {
                            Ok(Ok(s)) => {
                                let conn = builder.serve_connection(TokioIo::new(s), svc);
                                watcher.watch(conn).await
                            }
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        None => {
                            let conn = builder.serve_connection(TokioIo::new(stream), svc);
                            watcher.watch(conn).await
                        }
                    };
                    if let Err(e) = res {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("shutting down: draining in-flight requests");
    drop(listener);
    // Workers claim nothing more; each finishes its job in hand within the bound or
    // releases it (crates/registry/src/jobs.rs).
    let _ = stop_jobs.send(true);
    let drain = async {
        if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish within 30 s");
        }
    };
    let workers_bound = Duration::from_secs(cfg.job_shutdown_secs + 15);
    let workers_done = async {
        let aborts: Vec<_> = workers.iter().map(|w| w.abort_handle()).collect();
        let all = async {
            for w in workers {
                if let Err(e) = w.await {
                    tracing::warn!(error = %e, "a job worker ended abnormally");
                }
            }
        };
        if tokio::time::timeout(workers_bound, all).await.is_err() {
            tracing::warn!(
                "job workers did not stop within {workers_bound:?}; their leases will expire"
            );
            // Dropped, with whatever they hold (a transaction, the write lock).
            for a in aborts {
                a.abort();
            }
        }
    };
    tokio::join!(drain, workers_done);
    // The other nodes stop counting this one at their next heartbeat.
    if shared_metadata {
        match tokio::time::timeout(Duration::from_secs(5), registry.node_leave(&node_id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not remove this node's row"),
            Err(_) => tracing::warn!("could not remove this node's row within 5 s"),
        }
    }
    // Bounded too: the process stops even if the store no longer takes writes.
    match tokio::time::timeout(Duration::from_secs(10), registry.flush_pulls()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not record pull times"),
        Err(_) => tracing::warn!("could not record pull times within 10 s"),
    }
    if let Some(e) = otlp {
        e.shutdown(Duration::from_secs(3)).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Opens the stores and the registry core as configured (shared by `serve` and `admin`).
pub async fn open_registry(cfg: &crate::config::Config) -> Result<Registry, String> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    // Benchmark only: berth-bench starts a second server with plaintext blobs to
    // measure what encryption costs (`docs/benchmarks.md`). The data directory
    // records the mode.
    let stores = Stores::open(&StoreSettings {
        database_url: cfg.database_url(),
        data_dir: cfg.data_dir.clone(),
        blob_store: cfg.blob_location().map_err(|e| e.to_string())?,
        plaintext_blobs: std::env::var(berth_registry::PLAINTEXT_BLOBS_ENV).as_deref() == Ok("1"),
        database_timeout: Some(Duration::from_secs(cfg.database_timeout_secs.max(1))),
    })
    .await
    .map_err(|e| e.to_string())?;
    let clock = Clock::with_offset(cfg.clock_offset_secs * 1000);
    stores
        .ensure_account(&cfg.account_id, clock.now_millis())
        .await
        .map_err(|e| e.to_string())?;
    let master = crate::bootstrap::master_key_bytes(cfg, &stores).await?;
    let registry = Registry::open(
        stores,
        clock,
        RegistryConfig {
            create_on_push: cfg.create_on_push,
            upload_ttl_ms: cfg.upload_ttl_secs as i64 * 1000,
            region: cfg.region.clone(),
            pull_through_refresh_ms: cfg.pull_through_refresh_secs as i64 * 1000,
            pull_through_store_buffer_kib: cfg.pull_through_store_buffer_mib * 1024,
        },
        master,
    );
    // The keyring's shared state: a key that is not this registry's (or was
    // retired by a rotation) refuses to start (crates/registry/src/rotation.rs).
    registry
        .apply_master_key_state()
        .await
        .map_err(|e| e.to_string())?;
    Ok(registry)
}

/// Applies the shared master-key state every few seconds, so a running node learns
/// a rotation's new key, switches to it and forgets the old one without a restart.
/// Renews this node's row every few seconds and hands the number of live nodes
/// to the throttle, which divides the account rates among them
/// (`crates/registry/src/nodes.rs`, `crates/api/src/throttle.rs`).
fn spawn_node_heartbeat(registry: Arc<Registry>, app: Arc<App>, node_id: String) {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(berth_registry::nodes::HEARTBEAT);
        let mut last = 1;
        loop {
            t.tick().await;
            match registry.node_heartbeat(&node_id).await {
                Ok(n) => {
                    if n != last {
                        tracing::info!(nodes = n, "live nodes of this registry changed");
                        last = n;
                    }
                    app.hardening().throttle.set_nodes(n);
                }
                // Keep the last count: the database is away, and so are writes.
                Err(e) => tracing::warn!(error = %e, "could not renew this node's heartbeat"),
            }
        }
    });
}

fn spawn_keyring_refresh(registry: Arc<Registry>) {
    tokio::spawn(async move {
        let mut t = tokio::time::interval(berth_registry::rotation::REFRESH);
        let mut last: Option<(String, String)> = None;
        loop {
            t.tick().await;
            match registry.apply_master_key_state().await {
                Ok(s) => {
                    let now = (s.phase.clone(), s.sealing_id.clone());
                    if last.as_ref().is_some_and(|l| *l != now) {
                        tracing::info!(phase = %s.phase, sealing_key = %s.sealing_id, "master keyring changed");
                    }
                    last = Some(now);
                }
                Err(e) => tracing::warn!(error = %e, "could not apply the master-key state"),
            }
        }
    });
}

/// This process's name as a job worker: host and pid.
pub fn worker_id() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into our buffer.
    let host = if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_string()
    };
    format!("{host}:{}", std::process::id())
}

pub fn worker_config(cfg: &crate::config::Config) -> WorkerConfig {
    WorkerConfig {
        shutdown_grace: Duration::from_secs(cfg.job_shutdown_secs),
        lease: Duration::from_secs(cfg.job_lease_secs),
        ..WorkerConfig::default()
    }
}

/// Periodic garbage collection and lifecycle runs are claimed jobs: this process
/// makes sure each enabled pass has its row and runs a worker that claims it when
/// due, so processes sharing a database run one pass per interval between them
/// (docs/architecture.md, "Deferred work: durable jobs"). An interval of 0 turns a
/// pass off on this process only.
async fn spawn_periodic(
    registry: Arc<Registry>,
    cfg: &crate::config::Config,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let mut workers = Vec::new();
    for (secs, pass) in [
        (
            cfg.gc_interval_secs,
            Pass::Gc {
                grace_ms: cfg.gc_grace_secs as i64 * 1000,
            },
        ),
        (cfg.lifecycle_interval_secs, Pass::Lifecycle),
    ] {
        if secs == 0 {
            continue;
        }
        let p = Periodic {
            pass,
            interval: Duration::from_secs(secs),
        };
        p.schedule(&registry)
            .await
            .map_err(|e| format!("cannot schedule the {} job: {e}", pass.kind()))?;
        // One worker per pass, so a long collection does not delay lifecycle runs.
        let handler: Arc<dyn Handler> = Arc::new(p);
        let w = Worker::new(
            registry.clone(),
            format!("{}/{}", worker_id(), pass.kind()),
            vec![handler],
            WorkerConfig {
                idle: Duration::from_secs(1),
                ..worker_config(cfg)
            },
        );
        workers.push(tokio::spawn(w.run(stop.clone())));
    }
    Ok(workers)
}

fn spawn_background(registry: Arc<Registry>, cfg: &crate::config::Config) {
    registry.enable_caches();
    let r = registry.clone();
    tokio::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_secs(2));
        loop {
            t.tick().await;
            if let Err(e) = r.flush_pulls().await {
                tracing::warn!(error = %e, "could not record pull times");
            }
        }
    });
    // Expiry runs at least every minute, and often enough that a short TTL is
    // honoured within about half its length.
    let expiry_every = Duration::from_secs((cfg.upload_ttl_secs / 2).clamp(1, 60));
    tokio::spawn(async move {
        let mut t = tokio::time::interval(expiry_every);
        loop {
            t.tick().await;
            match registry.expire_uploads().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(expired = n, "expired abandoned upload sessions"),
                Err(e) => tracing::warn!(error = %e, "upload expiry failed"),
            }
        }
    });
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
