//! `dialtone`: call tracking and call routing in front of any TwiML carrier.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use dialtone_core::demo;
use dialtone_core::links::Links;
use dialtone_server::{AppState, Clock, ConfigSource, OffsetClock, SystemClock};

mod backup;
mod call;
mod carrier;
mod compare;
mod reconcile;
mod replay;
mod scenario;
mod world;

// The webhook path allocates many small strings (form fields, TwiML, events); mimalloc handles
// that pattern with a fraction of glibc malloc's cost under concurrency.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "dialtone",
    version,
    about = "Self-hostable call tracking and call routing in front of any TwiML carrier."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server: carrier webhooks, the API, /metrics and /healthz.
    Serve(ServeArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Play the carrier for one call against a running server, printing the conversation.
    Call(call::CallArgs),
    /// Be the carrier in real time: place calls against any Voice URL over HTTP, with the
    /// emulator's callers, agents and dial queue, and serve its call records API.
    Carrier(carrier::CarrierArgs),
    /// Replay calls through dialtone's router in virtual time, with the carrier's dial queue
    /// under a limit, and report queue waits, post-dial delay and outcomes.
    Replay(replay::ReplayArgs),
    /// Backup routing: operator rules on a running server, and documents for the carrier's
    /// Fallback URL.
    #[command(subcommand)]
    Backup(backup::BackupCommand),
    /// Draw replays of one scenario side by side (their `--json` reports) as an SVG.
    Plot(compare::PlotArgs),
    /// Import the carrier's call records of calls dialtone never saw (idempotent by call sid).
    Reconcile(reconcile::ReconcileArgs),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create or migrate the database, then exit; or copy an SQLite installation into
    /// PostgreSQL (--from, --to).
    Migrate(MigrateArgs),
}

#[derive(Args, Debug)]
struct DatabaseArg {
    /// Database URL: sqlite://PATH (embedded, one node) or
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE (several nodes). Also read from
    /// DATABASE_URL; sqlite://dialtone.db when neither is set.
    #[arg(long, env = "DIALTONE_DATABASE")]
    database: Option<String>,
}

#[derive(Args, Debug)]
struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArg,
    /// Copy this SQLite database (sqlite://PATH; it may keep serving meanwhile) into --to.
    /// Resumable: run again after an interruption, or to bring the copy up to date.
    #[arg(long, requires = "to", conflicts_with = "database")]
    from: Option<String>,
    /// The PostgreSQL database to copy into (postgres://USER:PASSWORD@HOST:PORT/DATABASE),
    /// empty or holding an earlier copy of --from.
    #[arg(long, requires = "from")]
    to: Option<String>,
}

impl DatabaseArg {
    fn url(&self) -> String {
        self.database
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "sqlite://dialtone.db".to_owned())
    }

    /// The URL as logs and messages show it: without its password.
    fn shown(&self) -> String {
        dialtone_store::redact(&self.url())
    }
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "DIALTONE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArg,
    /// Companies, trackers, flows and carrier accounts (TOML). Without it, --demo's built-in one.
    #[arg(long, env = "DIALTONE_CONFIG")]
    config: Option<PathBuf>,
    /// On PostgreSQL: the directory where this node keeps, on its own disk, the events the
    /// database cannot take while it is unreachable, until they are written back (nodes may
    /// share it). SQLite keeps its spool beside its database file.
    #[arg(long, env = "DIALTONE_SPOOL_DIR", default_value = "dialtone-spool")]
    spool_dir: PathBuf,
    /// The base URL the carrier reaches this server at, and signs (default http://<listen>).
    #[arg(long, env = "DIALTONE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Load the demo data when the database has no account yet, and print its credentials.
    #[arg(long, env = "DIALTONE_DEMO")]
    demo: bool,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "DIALTONE_LOG_JSON")]
    log_json: bool,
    /// Threads serving HTTP (default: one per core but one, which the call log writer takes
    /// under load; measured in scripts/bench-webhook.sh).
    #[arg(long, env = "DIALTONE_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
    /// Run the clock as if the server had started at this RFC 3339 instant (for tests and
    /// demos of business-hours routing).
    #[arg(long, env = "DIALTONE_CLOCK_START", hide = true)]
    clock_start: Option<chrono::DateTime<chrono::FixedOffset>>,
    /// Make `/metrics` take `Authorization: Bearer TOKEN` (or an operator API key).
    #[arg(long, env = "DIALTONE_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Label metrics with company and tracker names (by default, pseudonyms: see
    /// ARCHITECTURE.md).
    #[arg(long, env = "DIALTONE_METRICS_CUSTOMER_LABELS")]
    metrics_customer_labels: bool,
    #[command(flatten)]
    connections: ConnectionArgs,
}

/// How client connections are bounded (see `dialtone-server/src/listen.rs`).
#[derive(Args, Debug)]
struct ConnectionArgs {
    /// Client connections open at once (default: the open-file limit, raised to its maximum at
    /// start, less 512); the last tenth is kept for addresses holding few connections.
    #[arg(long, env = "DIALTONE_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Client connections one address may hold (default: a quarter of --max-connections).
    #[arg(long, env = "DIALTONE_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<usize>,
    /// Seconds a connection has to send its request headers.
    #[arg(long, env = "DIALTONE_HEADER_TIMEOUT_S", default_value_t = 10.0)]
    header_timeout_s: f64,
    /// Seconds a request has to send its body (408 after).
    #[arg(long, env = "DIALTONE_BODY_TIMEOUT_S", default_value_t = 10.0)]
    body_timeout_s: f64,
    /// Seconds a connection may stay idle between requests.
    #[arg(long, env = "DIALTONE_IDLE_TIMEOUT_S", default_value_t = 60.0)]
    idle_timeout_s: f64,
}

impl ConnectionArgs {
    fn limits(&self) -> anyhow::Result<dialtone_server::listen::Limits> {
        let seconds = |name: &str, s: f64| {
            if s.is_finite() && s > 0.0 && s <= 3600.0 {
                Ok(std::time::Duration::from_secs_f64(s))
            } else {
                Err(anyhow::anyhow!(
                    "--{name} must be more than 0 and at most 3600 seconds"
                ))
            }
        };
        let mut limits = dialtone_server::listen::Limits::for_this_process();
        if let Some(max) = self.max_connections {
            if max == 0 || max > limits.max_connections {
                bail!(
                    "--max-connections must be 1 to {} (the open-file limit less what the server needs)",
                    limits.max_connections
                );
            }
            limits.max_connections = max;
        }
        limits.max_per_address = match self.max_connections_per_address {
            Some(0) => bail!("--max-connections-per-address must be 1 or more"),
            Some(n) => n,
            None => (limits.max_connections / 4).max(1),
        };
        limits.header_timeout = seconds("header-timeout-s", self.header_timeout_s)?;
        limits.body_timeout = seconds("body-timeout-s", self.body_timeout_s)?;
        limits.idle_timeout = seconds("idle-timeout-s", self.idle_timeout_s)?;
        Ok(limits)
    }
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Check a configuration file without serving; prints every problem with its line.
    Check { file: PathBuf },
    /// Print the demo configuration, a starting point for your own.
    Demo,
    /// Ask a running server to read its configuration file again (an operator key).
    Reload {
        /// Also drop carrier accounts and tracking numbers that took calls in the last 24 hours.
        #[arg(long)]
        allow_removals: bool,
        /// The running server.
        #[arg(long, env = "DIALTONE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An operator API key.
        #[arg(long, env = "DIALTONE_API_KEY", hide_env_values = true)]
        api_key: String,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create an API key and print it (only its hash is stored): for one account of the
    /// configuration, or with --operator for the whole installation.
    Create {
        /// The account (as the configuration names it) whose companies and calls the key acts on.
        #[arg(
            long,
            required_unless_present = "operator",
            conflicts_with = "operator"
        )]
        account: Option<String>,
        /// May change the account's settings (backup routing for its companies), not just read.
        #[arg(long, conflicts_with = "operator")]
        admin: bool,
        /// Acts on the whole installation: configuration reloads, backup routing across
        /// accounts, carrier limits and alerts, /metrics.
        #[arg(long)]
        operator: bool,
        #[arg(long, default_value = "")]
        label: String,
        /// The configuration the account must be in.
        #[arg(long, env = "DIALTONE_CONFIG")]
        config: Option<PathBuf>,
        /// Check the account against the demo configuration.
        #[arg(long)]
        demo: bool,
        #[command(flatten)]
        database: DatabaseArg,
    },
}

fn init_logging(json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `dialtone migrate --from sqlite://… --to postgres://…`, with a progress bar.
async fn copy(from: &str, to: &str) -> anyhow::Result<()> {
    let Some(path) = from
        .strip_prefix("sqlite://")
        .or_else(|| from.strip_prefix("sqlite:"))
    else {
        bail!(
            "--from must be an SQLite database (sqlite://PATH), not `{}`",
            dialtone_store::redact(from)
        );
    };
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!(
            "--to must be a PostgreSQL database (postgres://…), not `{}`",
            dialtone_store::redact(to)
        );
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "events {bar:40} {pos}/{len} ({per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |p: dialtone_store::postgres::CopyProgress| {
        bar.set_length(p.events_total);
        bar.set_position(p.events_copied);
    };
    let report = dialtone_store::postgres::copy_from_sqlite(path, to, &progress)
        .await
        .with_context(|| format!("copying {from} into {}", dialtone_store::redact(to)))?;
    bar.finish_and_clear();
    if report.resumed_after > 0 {
        eprintln!(
            "resumed after {} events copied earlier",
            report.resumed_after
        );
    }
    eprintln!(
        "copied and verified: {} events (SHA-256 {}), {} calls, {} API keys, {} backup rules, {} DNI sessions, {} round-robin counters",
        report.events,
        report.events_sha256,
        report.calls,
        report.api_keys,
        report.backup_rules,
        report.dni_sessions,
        report.round_robin
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve(args) = &cli.command {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = args
            .worker_threads
            .map_or(cores.saturating_sub(1).max(1), usize::from);
        builder.worker_threads(workers);
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve(args).await,
            Command::Config(ConfigCommand::Check { file }) => config_check(file),
            Command::Config(ConfigCommand::Demo) => {
                print!("{}", demo::CONFIG);
                Ok(())
            }
            Command::Call(args) => call::run(args).await,
            Command::Carrier(args) => carrier::run(args).await,
            Command::Replay(args) => replay::run(args).await,
            Command::Reconcile(args) => reconcile::run(args).await,
            Command::Plot(args) => compare::run(args),
            Command::Backup(command) => backup::run(command).await,
            Command::Config(ConfigCommand::Reload {
                allow_removals,
                url,
                api_key,
            }) => config_reload(&url, &api_key, allow_removals).await,
            Command::Keys(KeysCommand::Create {
                account,
                admin,
                operator,
                label,
                config,
                demo,
                database,
            }) => {
                let scope = match account {
                    _ if operator => dialtone_store::ApiKey::operator(),
                    Some(account) => {
                        let config = config_source(config, demo)
                            .context("an account's key is checked against the configuration")?
                            .load()
                            .map_err(|e| anyhow::anyhow!("{e}"))?;
                        let known: std::collections::BTreeSet<&str> =
                            config.companies.iter().map(|c| c.account.as_str()).collect();
                        if !known.contains(account.as_str()) {
                            bail!(
                                "no account `{account}` in the configuration (its companies' accounts: {})",
                                known.into_iter().collect::<Vec<_>>().join(", ")
                            );
                        }
                        dialtone_store::ApiKey::account(&account, admin)
                    }
                    None => bail!("say --account NAME or --operator"),
                };
                let store = dialtone_store::open(&database.url()).await?;
                let key = new_api_key()?;
                store
                    .create_api_key(&key, &scope, &label, chrono::Utc::now())
                    .await?;
                println!("{key}");
                let what = if scope.operator {
                    "Operator API key".to_owned()
                } else {
                    format!(
                        "API key for account `{}`{}",
                        scope.account,
                        if scope.admin { " (admin)" } else { "" }
                    )
                };
                eprintln!("{what} created; it is shown only once.");
                Ok(())
            }
            Command::Migrate(MigrateArgs {
                from: Some(from),
                to: Some(to),
                ..
            }) => copy(&from, &to).await,
            Command::Migrate(MigrateArgs { database: db, .. }) => {
                dialtone_store::open(&db.url())
                    .await
                    .with_context(|| format!("opening {}", db.shown()))?;
                eprintln!("database {} is ready", db.shown());
                Ok(())
            }
        }
    })
}

fn config_check(file: PathBuf) -> anyhow::Result<()> {
    match ConfigSource::File(file.clone()).load() {
        Ok(config) => {
            println!(
                "{}: ok ({} companies, {} tracking numbers)",
                file.display(),
                config.companies.len(),
                config.tracking_numbers()
            );
            Ok(())
        }
        Err(errors) => {
            eprintln!("{errors}");
            bail!("{}: {} problem(s)", file.display(), errors.errors.len())
        }
    }
}

/// 24 random bytes from the OS, hex: long enough that an unsalted hash is safe to store. Fails
/// closed: no key at all rather than a guessable one.
fn new_api_key() -> anyhow::Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    let mut key = String::from("dtk_");
    for b in bytes {
        key.push_str(&format!("{b:02x}"));
    }
    Ok(key)
}

/// `dialtone config reload`: the API's reload, with the server's answer printed plainly.
async fn config_reload(url: &str, api_key: &str, allow_removals: bool) -> anyhow::Result<()> {
    let endpoint = format!(
        "{}/api/v1/config/reload?allow_removals={allow_removals}",
        url.trim_end_matches('/')
    );
    let res = reqwest::Client::new()
        .post(&endpoint)
        .bearer_auth(api_key)
        .send()
        .await
        .with_context(|| format!("reaching {url}"))?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    if status.is_success() {
        println!(
            "reloaded: {} companies, {} tracking numbers",
            body["companies"], body["tracking_numbers"]
        );
        for r in body["removed"].as_array().into_iter().flatten() {
            println!(
                "  removed {} {}",
                r["kind"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            );
        }
        return Ok(());
    }
    eprintln!("{}", body["error"].as_str().unwrap_or("refused"));
    for e in body["errors"].as_array().into_iter().flatten() {
        eprintln!("  {}", e.as_str().unwrap_or_default());
    }
    for r in body["removals"].as_array().into_iter().flatten() {
        eprintln!(
            "  would drop {} {} ({} calls in the last 24 hours)",
            r["kind"].as_str().unwrap_or_default().replace('_', " "),
            r["name"].as_str().unwrap_or_default(),
            r["calls_24h"]
        );
    }
    bail!("reload refused ({status}); the running configuration stays")
}

/// The configuration file, or the demo one.
fn config_source(config: Option<PathBuf>, demo: bool) -> anyhow::Result<ConfigSource> {
    Ok(match (config, demo) {
        (Some(path), _) => ConfigSource::File(path),
        (None, true) => ConfigSource::Builtin {
            name: demo::CONFIG_NAME,
            text: demo::CONFIG,
        },
        (None, false) => {
            bail!("no configuration: pass --config FILE (see `dialtone config demo`), or --demo")
        }
    })
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    init_logging(args.log_json);
    let limits = args.connections.limits()?;
    tracing::info!(
        max_connections = limits.max_connections,
        per_address = limits.max_per_address,
        "connection limits"
    );
    let source = config_source(args.config.clone(), args.demo)?;
    let config = source
        .load()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("configuration refused")?;
    let store = dialtone_store::open_with(&args.database.url(), Some(&args.spool_dir))
        .await
        .with_context(|| format!("opening {}", args.database.shown()))?;
    if args.demo && !store.has_accounts().await? {
        let now = chrono::Utc::now();
        let account = dialtone_store::ApiKey::account(demo::ACCOUNT, true);
        store
            .create_api_key(demo::API_KEY, &account, "demo", now)
            .await?;
        let operator = dialtone_store::ApiKey::operator();
        store
            .create_api_key(demo::OPERATOR_KEY, &operator, "demo operator", now)
            .await?;
        eprintln!("Demo data loaded. Credentials:");
        eprintln!("  carrier account SID  {}", demo::ACCOUNT_SID);
        eprintln!("  carrier auth token   {}", demo::AUTH_TOKEN);
        eprintln!(
            "  API key              {}  (account `{}`, admin)",
            demo::API_KEY,
            demo::ACCOUNT
        );
        eprintln!(
            "  operator API key     {}  (reloads, backup routing, carrier limits, alerts)",
            demo::OPERATOR_KEY
        );
    }
    dialtone_server::telemetry::set_customer_labels(args.metrics_customer_labels);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let local = listener.local_addr()?;
    // With port 0 the real port is only known now.
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"));
    let clock: Arc<dyn Clock> = match args.clock_start {
        Some(start) => Arc::new(OffsetClock::starting_at(start.with_timezone(&chrono::Utc))),
        None => Arc::new(SystemClock),
    };
    let turns = store.round_robin_turns().await?;
    // Nodes on one PostgreSQL database tell each other what they must agree on.
    let url = args.database.url();
    let shared = url.starts_with("postgres");
    let bus = dialtone_store::open_bus(&url)
        .await
        .with_context(|| format!("connecting the nodes through {}", args.database.shown()))?;
    let state = Arc::new(
        AppState::new(config, source, store, clock, Links::new(&public_url), turns)
            .with_metrics(dialtone_server::telemetry::install())
            .with_metrics_token(args.metrics_token.clone())
            .with_cluster(bus, shared),
    );
    dialtone_server::cluster::follow(state.clone());
    state
        .refresh_backup_rules()
        .await
        .context("reading the backup routing rules")?;
    state
        .restore_visitors()
        .await
        .context("reading DNI sessions")?;
    for rule in state.backup_rules.load().iter() {
        tracing::warn!(id = rule.id, scope = ?rule.scope, percent = rule.percent, until = %rule.expires_at, reason = %rule.reason, "backup routing rule in force");
    }
    tracing::info!(listen = %local, public_url = %public_url, database = %args.database.shown(), "dialtone is serving");
    // Tests and scripts read this line to learn the port when listening on :0.
    println!("listening on http://{local}");
    if args.demo {
        eprintln!("DNI demo landing page: {public_url}/dni/demo");
    }

    let reload_state = state.clone();
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            // A signal cannot say "and drop what takes calls": that takes the API's
            // allow_removals=true (`dialtone config reload --allow-removals`).
            match reload_state.reload(false).await {
                Ok(_) => reload_state
                    .cluster
                    .send(&dialtone_server::cluster::Message::Reload {
                        allow_removals: false,
                    }),
                Err(e) => {
                    tracing::warn!(error = %e, "configuration reload refused; the running configuration stays");
                }
            }
        }
    });
    // Bounded connections, each with header, body and idle deadlines; the peer address (what
    // DNI session creation is rate-limited by) in each request's ConnectInfo.
    let connections = state.connections.clone();
    let app = dialtone_server::router(state);
    dialtone_server::listen::serve(listener, app, limits, connections, shutdown()).await;
    Ok(())
}

async fn shutdown() {
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
