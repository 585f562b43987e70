//! dialtone's HTTP edge: carrier webhooks, the REST API, `/metrics` and `/healthz`.
//!
//! The state every handler shares is [`AppState`]: an atomically swapped configuration snapshot
//! (so reloads never block a call), the store, a clock (so replay can drive time), and the
//! callback URL builder.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use axum::Router;
use chrono::{DateTime, Utc};
use dialtone_core::config::{self, Config, ConfigErrors};
use dialtone_core::engine::Turns;
use dialtone_core::links::Links;
use dialtone_store::Store;

pub mod admission;
pub mod alerts;
mod amp;
mod api;
mod carrier;
pub mod cluster;
mod cursor;
pub mod dni;
pub mod listen;
pub mod reload;
mod sessions;
mod snippet;
pub mod telemetry;
mod v3;

/// Where time comes from: the system clock when serving, a virtual one in replay.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system clock shifted so that it read `start` when the process began.
pub struct OffsetClock {
    offset: chrono::TimeDelta,
}

impl OffsetClock {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            offset: start - Utc::now(),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + self.offset
    }
}

/// Where the configuration is read from, again on every reload.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    File(PathBuf),
    /// Text compiled into the binary (the demo configuration).
    Builtin {
        name: &'static str,
        text: &'static str,
    },
}

impl ConfigSource {
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        let env = |name: &str| std::env::var(name).ok();
        match self {
            ConfigSource::File(path) => {
                let name = path.display().to_string();
                match std::fs::read_to_string(path) {
                    Ok(text) => config::load(&name, &text, &env),
                    Err(e) => Err(ConfigErrors {
                        file: name,
                        errors: vec![config::ConfigError {
                            line: None,
                            column: None,
                            message: format!("cannot read: {e}"),
                        }],
                    }),
                }
            }
            ConfigSource::Builtin { name, text } => config::load(name, text, &env),
        }
    }
}

/// Round-robin counters: in memory for the hot path, persisted through the call log's batches.
#[derive(Default)]
pub struct RoundRobin(Mutex<HashMap<String, u64>>);

impl RoundRobin {
    pub fn new(turns: HashMap<String, u64>) -> Self {
        Self(Mutex::new(turns))
    }
}

impl RoundRobin {
    /// Takes back a turn whose call was refused (a replay): `turns` is the count after it was
    /// taken. A turn another call has taken since stays taken.
    pub fn give_back(&self, key: &str, turns: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(counter) = map.get_mut(key).filter(|c| **c == turns) {
            *counter -= 1;
        }
    }
}

impl RoundRobin {
    /// Another node took turns of `key` up to `turns`: this node's next turn comes after them.
    pub fn seen(&self, key: &str, turns: u64) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match map.get_mut(key) {
            Some(counter) => *counter = (*counter).max(turns),
            None => {
                map.insert(key.to_owned(), turns);
            }
        }
    }
}

impl Turns for RoundRobin {
    fn take_turn(&self, key: &str) -> u64 {
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let counter = map.entry(key.to_owned()).or_default();
        let turn = *counter;
        *counter += 1;
        turn
    }
}

pub struct AppState {
    pub config: ArcSwap<Config>,
    pub config_source: ConfigSource,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub links: Links,
    pub turns: RoundRobin,
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    pub admission: admission::Admission,
    /// Live operator backup rules (the store has them; this copy is what calls read).
    pub backup_rules: ArcSwap<Vec<dialtone_core::backup::BackupRule>>,
    /// DNI pools, sessions and returning visitors.
    pub dni: dni::Dni,
    /// The automatic backup policy for a failing call log.
    pub call_log_breaker: Mutex<dialtone_core::backup::Breaker>,
    /// How long a webhook waits for its events to be durable before it answers backup routing
    /// instead (3 s; the carrier gives up at 15 s).
    pub durability_budget: std::time::Duration,
    /// When set, `/metrics` takes this bearer token (or an operator API key).
    pub metrics_token: Option<String>,
    /// Client connections open now (when served by [`listen::serve`]).
    pub connections: Arc<listen::Connections>,
    /// The other nodes on the same database, if any.
    pub cluster: Arc<cluster::Cluster>,
}

impl AppState {
    /// The state of a server on `store` with `config` (read again from `config_source` on
    /// reloads), its callback URLs under `links`. Round-robin counters start where `turns` says;
    /// backup rules and visitors are read from the store by [`AppState::refresh_backup_rules`]
    /// and [`AppState::restore_visitors`].
    pub fn new(
        config: Config,
        config_source: ConfigSource,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        links: Links,
        turns: HashMap<String, u64>,
    ) -> Self {
        Self {
            config: ArcSwap::from_pointee(config),
            config_source,
            store,
            clock,
            links,
            turns: RoundRobin::new(turns),
            metrics: None,
            admission: Default::default(),
            backup_rules: Default::default(),
            dni: Default::default(),
            call_log_breaker: Default::default(),
            durability_budget: std::time::Duration::from_secs(3),
            metrics_token: None,
            connections: Default::default(),
            cluster: Default::default(),
        }
    }

    /// Shares what all nodes must agree on with the others on `bus` (the store's), when
    /// `shared`; [`cluster::follow`] then applies theirs.
    pub fn with_cluster(mut self, bus: Arc<dyn dialtone_store::Bus>, shared: bool) -> Self {
        let cluster = Arc::new(cluster::Cluster::new(bus, shared));
        self.admission.alerts.set_cluster(cluster.clone());
        self.admission.set_cluster(cluster.clone());
        if shared {
            self.dni.share_ids();
        }
        self.cluster = cluster;
        self
    }

    /// Serves `/metrics` from `handle`.
    pub fn with_metrics(
        mut self,
        handle: Option<metrics_exporter_prometheus::PrometheusHandle>,
    ) -> Self {
        self.metrics = handle;
        self
    }

    /// Makes `/metrics` take `token` (or an operator key).
    pub fn with_metrics_token(mut self, token: Option<String>) -> Self {
        self.metrics_token = token.filter(|t| !t.is_empty());
        self
    }

    /// Reads the live backup rules from the store into the copy calls read.
    pub async fn refresh_backup_rules(&self) -> Result<(), dialtone_store::StoreError> {
        let rules = self.store.backup_rules(self.clock.now()).await?;
        self.backup_rules.store(Arc::new(rules));
        Ok(())
    }

    /// Loads what the store remembers of DNI sessions (at startup).
    pub async fn restore_visitors(&self) -> Result<(), dialtone_store::StoreError> {
        let now = self.clock.now();
        let since = now - chrono::Duration::days(dni::VISITOR_MEMORY_DAYS);
        let (sessions, next_id) = self.store.dni_sessions(since).await?;
        self.dni.restore(sessions, next_id, now);
        Ok(())
    }

    /// The breaker's (failures before it opens, cool-down seconds).
    pub fn call_log_breaker_settings(&self) -> (u32, i64) {
        let b = self
            .call_log_breaker
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        (b.after_failures, b.cool_down_s)
    }
}

/// The whole HTTP surface.
pub fn router(state: Arc<AppState>) -> Router {
    state.admission.configure(&state.config.load().admission);
    Router::new()
        .merge(carrier::routes())
        .merge(api::routes())
        .merge(v3::routes())
        .merge(snippet::routes())
        .merge(amp::routes())
        .with_state(state)
}
