//! `berth admin …`: accounts, users, access keys, policies and the audit log. Takes
//! the same configuration as `berth serve` and works while the server runs (it talks
//! to the same stores, through the registry core).

use berth_registry::Registry;
use clap::{Args, Subcommand};

use crate::Common;

#[derive(Args)]
pub struct AdminArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Manage accounts (registries).
    #[command(subcommand)]
    Account(AccountCmd),
    /// Manage IAM-style users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage access keys.
    #[command(subcommand, name = "access-key")]
    AccessKey(KeyCmd),
    /// Attach, detach and list user policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Run lifecycle policies now.
    #[command(subcommand)]
    Lifecycle(LifecycleCmd),
    /// Manage berth-managed KMS keys.
    #[command(subcommand)]
    Kms(KmsCmd),
    /// Collect garbage now: unreferenced blob links and blobs.
    Gc {
        /// Print what would be reclaimed without deleting anything.
        #[arg(long)]
        dry_run: bool,
        /// Grace period in seconds (default: the configured gc_grace_secs).
        #[arg(long)]
        grace_secs: Option<u64>,
        /// Also walk every blob file for ones a crash left without metadata
        /// (proportional to the store's size).
        #[arg(long)]
        full: bool,
    },
    /// Background jobs: scans, periodic garbage collection and lifecycle runs.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// Webhooks: add, list, remove, test; dead letters and redelivery.
    #[command(subcommand)]
    Webhook(crate::webhooks::WebhookCmd),
    /// Rotate the master key (no downtime) and show the keyring.
    #[command(subcommand, name = "master-key")]
    MasterKey(crate::master_key::MasterKeyCmd),
    /// Fill the registry with synthetic images through the core, in batched
    /// transactions (for the scale benchmark, `berth-bench --scale`).
    #[command(name = "bench-fill")]
    BenchFill(crate::bench_fill::FillArgs),
    /// Print the newest audit-log records (or `audit verify`: check its hash chain).
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(subcommand)]
        cmd: Option<AuditCmd>,
    },
}

#[derive(Subcommand)]
enum AuditCmd {
    /// Verify the audit log's hash chain: OK, or the first broken record.
    Verify,
}

#[derive(Subcommand)]
enum JobsCmd {
    /// List jobs, oldest first: id, kind, state, attempts, due, claimed by, last error.
    List {
        /// queued, running or parked.
        #[arg(long)]
        state: Option<String>,
        /// scan, gc or lifecycle.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Queue a parked job again with fresh attempts.
    Retry { id: i64 },
}

#[derive(Subcommand)]
enum KmsCmd {
    /// Create a key (prints its ARN).
    Create {
        #[arg(long)]
        account: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Also create this alias (e.g. alias/team-a).
        #[arg(long)]
        alias: Option<String>,
    },
    /// List keys with their state.
    List {
        #[arg(long)]
        account: Option<String>,
    },
    /// Disable a key: its repositories' pushes and pulls fail until enabled.
    Disable {
        key: String,
        #[arg(long)]
        account: Option<String>,
    },
    Enable {
        key: String,
        #[arg(long)]
        account: Option<String>,
    },
    /// Rotate: new key material; data keys are re-wrapped, blobs are not rewritten.
    Rotate {
        key: String,
        #[arg(long)]
        account: Option<String>,
    },
    /// Schedule deletion (the key becomes unusable at once, as in AWS KMS).
    ScheduleDeletion {
        key: String,
        #[arg(long)]
        account: Option<String>,
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    CancelDeletion {
        key: String,
        #[arg(long)]
        account: Option<String>,
    },
}

#[derive(Subcommand)]
enum LifecycleCmd {
    /// Apply lifecycle policies (all repositories, or one) and print what expired.
    Run {
        #[arg(long)]
        repository: Option<String>,
        #[arg(long)]
        account: Option<String>,
        /// Print what would expire without deleting anything.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand)]
enum AccountCmd {
    /// Create an account with a 12-digit id.
    Create { account_id: String },
    /// List accounts.
    List,
}

#[derive(Subcommand)]
enum UserCmd {
    Create {
        name: String,
        #[arg(long)]
        account: Option<String>,
    },
    List {
        #[arg(long)]
        account: Option<String>,
    },
    Delete {
        name: String,
        #[arg(long)]
        account: Option<String>,
    },
    /// Set principal tags (`KEY=VALUE`, as `aws:PrincipalTag/KEY` in policy conditions).
    Tag {
        name: String,
        #[arg(required = true)]
        tags: Vec<String>,
        #[arg(long)]
        account: Option<String>,
    },
    /// Remove principal tags by key.
    Untag {
        name: String,
        #[arg(required = true)]
        keys: Vec<String>,
        #[arg(long)]
        account: Option<String>,
    },
    /// List a user's principal tags (`KEY<TAB>VALUE`).
    Tags {
        name: String,
        #[arg(long)]
        account: Option<String>,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Create a key for a user (or the account root without --user); prints the secret once.
    Create {
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
    List {
        #[arg(long)]
        account: Option<String>,
    },
    Disable {
        access_key_id: String,
    },
    Enable {
        access_key_id: String,
    },
    Delete {
        access_key_id: String,
    },
}

#[derive(Subcommand)]
enum PolicyCmd {
    /// Attach a managed policy (ReadOnly, PowerUser, FullAccess or its ARN), or an
    /// inline policy from a JSON file with --file and --name.
    Attach {
        #[arg(long)]
        user: String,
        #[arg(long)]
        account: Option<String>,
        /// Managed policy name or ARN.
        policy: Option<String>,
        #[arg(long, requires = "name")]
        file: Option<std::path::PathBuf>,
        #[arg(long)]
        name: Option<String>,
    },
    Detach {
        #[arg(long)]
        user: String,
        #[arg(long)]
        account: Option<String>,
        policy: String,
    },
    List {
        #[arg(long)]
        user: String,
        #[arg(long)]
        account: Option<String>,
    },
}

fn managed_name(p: &str) -> Result<String, String> {
    let short = match p {
        "ReadOnly" => "AmazonEC2ContainerRegistryReadOnly",
        "PowerUser" => "AmazonEC2ContainerRegistryPowerUser",
        "FullAccess" => "AmazonEC2ContainerRegistryFullAccess",
        other => other,
    };
    berth_iam::policy::managed_policy(short)
        .map(|m| m.name.to_string())
        .ok_or_else(|| format!("unknown managed policy {p:?} (ReadOnly, PowerUser, FullAccess)"))
}

pub async fn run(args: AdminArgs) -> Result<(), String> {
    let cfg = args.common.load()?;
    let registry = crate::serve::open_registry(&cfg).await?;
    let identity = registry.identity();
    // Wall-clock time, as records made by hand are stamped.
    let now = berth_registry::Clock::with_offset(0).now_millis();
    let acct = |a: Option<String>| -> Result<String, String> {
        let a = a.unwrap_or_else(|| cfg.account_id.clone());
        if berth_iam::arn::is_account_id(&a) {
            Ok(a)
        } else {
            Err(format!("{a:?} is not a 12-digit account id"))
        }
    };
    let e = |e: berth_registry::identity::IdentityError| e.to_string();
    match args.command {
        AdminCommand::Account(AccountCmd::Create { account_id }) => {
            let a = acct(Some(account_id))?;
            identity.ensure_account(&a, now).await.map_err(e)?;
            println!("account {a} ready; create its root key with: berth admin access-key create --account {a}");
        }
        AdminCommand::Account(AccountCmd::List) => {
            for a in identity.list_accounts().await.map_err(e)? {
                println!("{a}");
            }
        }
        AdminCommand::User(UserCmd::Create { name, account }) => {
            let a = acct(account)?;
            berth_iam::arn::validate_user_name(&name).map_err(|e| e.to_string())?;
            if !identity.account_exists(&a).await.map_err(e)? {
                return Err(format!("account {a} does not exist"));
            }
            let Some(p) = identity.create_user(&a, &name, now).await.map_err(e)? else {
                return Err(format!("user {name} already exists in account {a}"));
            };
            println!("{}", p.arn());
        }
        AdminCommand::User(UserCmd::List { account }) => {
            for u in identity.list_users(&acct(account)?).await.map_err(e)? {
                println!("{}\t{}", u.user_name, u.user_id);
            }
        }
        AdminCommand::User(UserCmd::Delete { name, account }) => {
            if !identity
                .delete_user(&acct(account)?, &name)
                .await
                .map_err(e)?
            {
                return Err(format!("no user {name}"));
            }
        }
        AdminCommand::User(UserCmd::Tag {
            name,
            tags,
            account,
        }) => {
            let a = acct(account)?;
            if identity.user(&a, &name).await.map_err(e)?.is_none() {
                return Err(format!("no user {name} in account {a}"));
            }
            for t in tags {
                let Some((k, v)) = t.split_once('=') else {
                    return Err(format!("{t:?} is not KEY=VALUE"));
                };
                registry
                    .tag_user(&a, &name, k, v)
                    .await
                    .map_err(|e| e.to_string())??;
            }
        }
        AdminCommand::User(UserCmd::Untag {
            name,
            keys,
            account,
        }) => {
            let a = acct(account)?;
            for k in keys {
                if !registry
                    .untag_user(&a, &name, &k)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    return Err(format!("user {name} has no tag {k}"));
                }
            }
        }
        AdminCommand::User(UserCmd::Tags { name, account }) => {
            let a = acct(account)?;
            for (k, v) in registry
                .user_tags(&a, &name)
                .await
                .map_err(|e| e.to_string())?
            {
                println!("{k}\t{v}");
            }
        }
        AdminCommand::AccessKey(KeyCmd::Create { account, user }) => {
            let a = acct(account)?;
            if !identity.account_exists(&a).await.map_err(e)? {
                return Err(format!("account {a} does not exist"));
            }
            if let Some(u) = &user {
                if identity.user(&a, u).await.map_err(e)?.is_none() {
                    return Err(format!("no user {u} in account {a}"));
                }
            }
            let k = identity
                .create_access_key(&a, user.as_deref(), now)
                .await
                .map_err(|e| e.to_string())?;
            println!("aws_access_key_id = {}", k.access_key_id);
            println!("aws_secret_access_key = {}", k.secret_access_key);
        }
        AdminCommand::AccessKey(KeyCmd::List { account }) => {
            for k in identity
                .list_access_keys(&acct(account)?)
                .await
                .map_err(e)?
            {
                println!(
                    "{}\t{}\t{}",
                    k.access_key_id,
                    k.user_name.as_deref().unwrap_or("(root)"),
                    k.status
                );
            }
        }
        AdminCommand::AccessKey(KeyCmd::Disable { access_key_id }) => {
            if !identity
                .set_access_key_active(&access_key_id, false)
                .await
                .map_err(e)?
            {
                return Err(format!("no access key {access_key_id}"));
            }
        }
        AdminCommand::AccessKey(KeyCmd::Enable { access_key_id }) => {
            if !identity
                .set_access_key_active(&access_key_id, true)
                .await
                .map_err(e)?
            {
                return Err(format!("no access key {access_key_id}"));
            }
        }
        AdminCommand::AccessKey(KeyCmd::Delete { access_key_id }) => {
            if !identity
                .delete_access_key(&access_key_id)
                .await
                .map_err(e)?
            {
                return Err(format!("no access key {access_key_id}"));
            }
        }
        AdminCommand::Policy(PolicyCmd::Attach {
            user,
            account,
            policy,
            file,
            name,
        }) => {
            let a = acct(account)?;
            if identity.user(&a, &user).await.map_err(e)?.is_none() {
                return Err(format!("no user {user} in account {a}"));
            }
            match (policy, file, name) {
                (Some(p), None, _) => {
                    let n = managed_name(&p)?;
                    identity
                        .put_user_policy(&a, &user, &n, None)
                        .await
                        .map_err(e)?;
                    println!("attached arn:aws:iam::aws:policy/{n}");
                }
                (None, Some(f), Some(n)) => {
                    let text = std::fs::read_to_string(&f)
                        .map_err(|err| format!("cannot read {}: {err}", f.display()))?;
                    berth_iam::policy::PolicyDocument::parse(
                        &text,
                        berth_iam::policy::PolicyKind::Identity,
                    )
                    .map_err(|err| format!("invalid policy: {err}"))?;
                    identity
                        .put_user_policy(&a, &user, &n, Some(&text))
                        .await
                        .map_err(e)?;
                    println!("attached inline policy {n}");
                }
                _ => {
                    return Err(
                        "give a managed policy name, or --file and --name for an inline policy"
                            .into(),
                    )
                }
            }
        }
        AdminCommand::Policy(PolicyCmd::Detach {
            user,
            account,
            policy,
        }) => {
            let a = acct(account)?;
            let name = managed_name(&policy).unwrap_or(policy);
            if !identity
                .delete_user_policy(&a, &user, &name)
                .await
                .map_err(e)?
            {
                return Err(format!("user {user} has no policy {name}"));
            }
        }
        AdminCommand::Policy(PolicyCmd::List { user, account }) => {
            for p in identity
                .user_policies(&acct(account)?, &user)
                .await
                .map_err(e)?
            {
                println!(
                    "{}\t{}",
                    p.name,
                    if p.document.is_some() {
                        "inline"
                    } else {
                        "managed"
                    }
                );
            }
        }
        AdminCommand::Lifecycle(LifecycleCmd::Run {
            repository,
            account,
            dry_run,
        }) => {
            let repos = match repository {
                Some(r) => {
                    let a = acct(account)?;
                    let name = berth_oci::RepositoryName::parse(&r)
                        .map_err(|_| format!("invalid repository name {r:?}"))?;
                    vec![registry
                        .repository(&a, &name)
                        .await
                        .map_err(|e| e.to_string())?]
                }
                None => registry
                    .repositories_with_lifecycle()
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let mut total = 0;
            for repo in repos {
                let expired = registry
                    .run_lifecycle(&repo, dry_run)
                    .await
                    .map_err(|e| e.to_string())?;
                for x in &expired {
                    println!(
                        "{}\t{}\t{}\trule {}\t{}",
                        if dry_run { "would expire" } else { "expired" },
                        repo.name,
                        x.digest,
                        x.rule_priority,
                        if x.tags.is_empty() {
                            "-".to_string()
                        } else {
                            x.tags.join(",")
                        }
                    );
                }
                total += expired.len();
            }
            println!(
                "{total} image(s) {}",
                if dry_run { "would expire" } else { "expired" }
            );
        }
        AdminCommand::Kms(cmd) => kms(&cfg, &registry, cmd).await?,
        AdminCommand::Jobs(cmd) => jobs(&registry, cmd).await?,
        AdminCommand::Webhook(cmd) => crate::webhooks::admin(&cfg, &registry, cmd).await?,
        AdminCommand::BenchFill(a) => {
            let account = acct(None)?;
            identity.ensure_account(&account, now).await.map_err(e)?;
            crate::bench_fill::run(&registry, &account, a).await?;
        }
        AdminCommand::Gc {
            dry_run,
            grace_secs,
            full,
        } => {
            let grace = grace_secs.unwrap_or(cfg.gc_grace_secs) as i64 * 1000;
            // SAFETY: isatty only reads the descriptor's state.
            let tty = unsafe { libc::isatty(2) } == 1;
            let rep = registry
                .collect_garbage(grace, dry_run, |done, total| {
                    if tty {
                        let total = total.max(done).max(1);
                        let w = 30 * done / total;
                        eprint!(
                            "\r[{}{}] {done}/{total} candidates",
                            "#".repeat(w as usize),
                            " ".repeat(30 - w as usize)
                        );
                    }
                })
                .await
                .map_err(|e| e.to_string())?;
            if tty {
                eprintln!();
            }
            println!(
                "{}{} blob(s), {} byte(s); {} unreferenced link(s); {} candidate(s) examined",
                if dry_run {
                    "would reclaim "
                } else {
                    "reclaimed "
                },
                rep.blobs_deleted,
                rep.bytes_reclaimed,
                rep.links_removed,
                rep.candidates_seen
            );
            if rep.trash_swept > 0 {
                println!("removed {} leftover trashed file(s)", rep.trash_swept);
            }
            if full {
                let (orphans, seen) = registry
                    .sweep_orphan_blobs(grace, dry_run)
                    .await
                    .map_err(|e| e.to_string())?;
                println!(
                    "{} {orphans} orphan blob file(s) of {seen} examined",
                    if dry_run { "would remove" } else { "removed" }
                );
            }
        }
        AdminCommand::MasterKey(cmd) => crate::master_key::admin(&registry, cmd).await?,
        AdminCommand::Audit {
            cmd: Some(AuditCmd::Verify),
            ..
        } => {
            let v = registry
                .verify_audit_chain()
                .await
                .map_err(|e| e.to_string())?;
            match v.broken {
                None => println!(
                    "OK: {} chained audit record(s) verified; {} record(s) written before the chain started are not covered",
                    v.verified, v.before_chain
                ),
                Some((id, why)) => {
                    let at = id.map_or_else(|| "the end of the log".to_string(), |i| format!("audit record {i}"));
                    println!("BROKEN at {at}: {why} ({} record(s) before it verified)", v.verified);
                    return Err(format!("the audit log's hash chain is broken at {at}"));
                }
            }
        }
        AdminCommand::Audit { limit, cmd: None } => {
            for r in registry
                .recent_audit(limit)
                .await
                .map_err(|e| e.to_string())?
            {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    berth_iam::time::format_iso8601(r.ts / 1000),
                    r.account_id.unwrap_or_default(),
                    r.principal.unwrap_or_default(),
                    r.action,
                    r.resource.unwrap_or_default(),
                    r.source.unwrap_or_default(),
                    r.outcome
                );
            }
        }
    }
    Ok(())
}

async fn jobs(registry: &Registry, cmd: JobsCmd) -> Result<(), String> {
    match cmd {
        JobsCmd::List { state, kind, limit } => {
            if let Some(s) = &state {
                if !["queued", "running", "parked"].contains(&s.as_str()) {
                    return Err(format!("unknown state {s:?} (queued, running or parked)"));
                }
            }
            let rows = registry
                .list_jobs(state.as_deref(), kind.as_deref(), limit)
                .await
                .map_err(|e| e.to_string())?;
            println!("ID\tKIND\tSTATE\tATTEMPTS\tDUE\tCLAIMED_BY\tPAYLOAD\tLAST_ERROR");
            for j in rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    j.job_id,
                    j.kind,
                    j.state,
                    j.attempts,
                    berth_iam::time::format_iso8601(j.run_after / 1000),
                    j.claimed_by.as_deref().unwrap_or("-"),
                    j.payload,
                    j.last_error
                        .as_deref()
                        .map(|e| e.replace(['\t', '\n'], " "))
                        .unwrap_or_else(|| "-".to_string())
                );
            }
        }
        JobsCmd::Retry { id } => {
            if !registry
                .retry_parked_job(id)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no parked job {id}"));
            }
            println!("job {id} queued again");
        }
    }
    Ok(())
}

async fn kms(cfg: &crate::config::Config, registry: &Registry, cmd: KmsCmd) -> Result<(), String> {
    let region = cfg.region.clone();
    let account = |a: Option<String>| a.unwrap_or_else(|| cfg.account_id.clone());
    let find = |a: String, k: String| async move {
        registry
            .resolve_kms_key(&a, &k)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no KMS key {k} in account {a}"))
    };
    let e = |e: berth_registry::RegistryError| e.to_string();
    match cmd {
        KmsCmd::Create {
            account: a,
            description,
            alias,
        } => {
            let a = account(a);
            let k = registry
                .create_kms_key(&a, &description, None, "[]")
                .await
                .map_err(|e| e.to_string())?;
            if let Some(al) = alias {
                let al = if al.starts_with("alias/") {
                    al
                } else {
                    format!("alias/{al}")
                };
                if !registry.create_kms_alias(&a, &al, &k).await.map_err(e)? {
                    return Err(format!("alias {al} already exists"));
                }
            }
            println!("{}", berth_registry::kms::key_arn(&region, &k));
        }
        KmsCmd::List { account: a } => {
            let a = account(a);
            let aliases = registry.list_kms_aliases(&a).await.map_err(e)?;
            for k in registry.list_kms_keys(&a).await.map_err(e)? {
                let names: Vec<&str> = aliases
                    .iter()
                    .filter(|(_, id, _)| *id == k.key_id)
                    .map(|(n, _, _)| n.as_str())
                    .collect();
                println!(
                    "{}\t{}\tversion {}\t{}",
                    berth_registry::kms::key_arn(&region, &k),
                    k.key_state,
                    k.current_version,
                    names.join(",")
                );
            }
        }
        KmsCmd::Disable { key, account: a } => {
            let k = find(account(a), key).await?;
            registry
                .set_kms_key_state(&k, "Disabled", None)
                .await
                .map_err(e)?;
        }
        KmsCmd::Enable { key, account: a } => {
            let k = find(account(a), key).await?;
            registry
                .set_kms_key_state(&k, "Enabled", None)
                .await
                .map_err(e)?;
        }
        KmsCmd::Rotate { key, account: a } => {
            let k = find(account(a), key).await?;
            let n = registry
                .rotate_kms_key(&k, &region)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "rotated to version {}; re-wrapped {n} data key(s) and manifest(s)",
                k.current_version + 1
            );
        }
        KmsCmd::ScheduleDeletion {
            key,
            account: a,
            days,
        } => {
            if !(7..=30).contains(&days) {
                return Err("--days must be between 7 and 30".into());
            }
            let k = find(account(a), key).await?;
            let when = registry.now() + days * 86_400_000;
            registry
                .set_kms_key_state(&k, "PendingDeletion", Some(when))
                .await
                .map_err(e)?;
            println!(
                "deletion scheduled for {}",
                berth_iam::time::format_iso8601(when / 1000)
            );
        }
        KmsCmd::CancelDeletion { key, account: a } => {
            let k = find(account(a), key).await?;
            registry
                .set_kms_key_state(&k, "Disabled", None)
                .await
                .map_err(e)?;
        }
    }
    Ok(())
}
