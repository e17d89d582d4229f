//! The `berth` binary: configuration, wiring and the command line
//! (`berth serve`, `berth admin …`).

mod admin;
mod bench_fill;
mod bootstrap;
mod config;
mod db_metrics;
mod master_key;
mod otlp;
mod peer;
mod sbom;
mod serve;
mod vulndb;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A self-hosted, ECR-compatible container registry"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Settings every command shares: the same as `berth serve` uses.
#[derive(Args, Clone, Default)]
pub struct Common {
    /// TOML configuration file (BERTH_CONFIG).
    #[arg(long, global = true, env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (BERTH_DATA_DIR).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Metadata database URL (BERTH_DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Blob store URL: file://<dir> or s3://<bucket>[/<prefix>] (BERTH_BLOB_STORE).
    #[arg(long, global = true)]
    blob_store: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the registry server.
    Serve(serve::ServeArgs),
    /// Manage accounts, users, access keys, policies; read the audit log.
    Admin(admin::AdminArgs),
    /// Manage the vulnerability advisory database the scanner uses.
    Vulndb(vulndb::VulndbArgs),
    /// Print the software bill of materials (CycloneDX or SPDX JSON) of an image.
    Sbom(sbom::SbomArgs),
}

impl Common {
    fn load(&self) -> Result<config::Config, String> {
        // BERTH_CONFIG names the file when --config does not.
        let file = self
            .config
            .clone()
            .or_else(|| std::env::var_os("BERTH_CONFIG").map(PathBuf::from));
        let mut c = config::Config::load(file.as_deref()).map_err(|e| e.to_string())?;
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        if let Some(u) = &self.database_url {
            c.database_url = Some(u.clone());
        }
        if let Some(b) = &self.blob_store {
            c.blob_store = Some(b.clone());
        }
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    limit_malloc_arenas();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let res = rt.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Admin(args) => admin::run(args).await,
            Command::Vulndb(args) => vulndb::run(args).await,
            Command::Sbom(args) => sbom::run(args).await,
        }
    });
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Caps glibc's malloc arenas at two. By default every thread that allocates may
/// get its own arena (up to 8 per core), and memory freed in one stays mapped
/// there: berth's blocking threads (uploads, reads, the SQLite workers) each grew
/// one, which showed as several MiB of peak RSS per push scenario. Two arenas are
/// enough for two runtime threads; contention is low (allocations are few and
/// large on the blob path).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
