//! What the store's tests share: calls and their events, and appending them.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use dialtone_core::event::{
    Answer, CallReceived, CallStatusUpdate, Event, EventBody, LegUpdate, Routing,
};
use dialtone_store::Batch;
pub use dialtone_store::prelude::*;

pub fn sid(n: u32) -> String {
    // Spread over the key space as real sids are, so merges interleave with existing keys.
    format!(
        "CA{:032x}",
        u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}

pub fn received(n: u32) -> Event {
    received_at(n, 1_700_000_000 + i64::from(n))
}

/// Call `n` received at `unix_s` (calls may share a second).
pub fn received_at(n: u32, unix_s: i64) -> Event {
    Event {
        call_sid: sid(n),
        at: Utc.timestamp_opt(unix_s, 0).unwrap(),
        body: EventBody::CallReceived(CallReceived {
            account: "demo".into(),
            company: "acme-plumbing".into(),
            tracker: "Billboard".into(),
            tracker_kind: "source".into(),
            carrier_account_sid: "AC1".into(),
            tracking_number: "+14045550150".into(),
            caller: "+17705550123".into(),
            forwarded_from: None,
            caller_name: None,
            flow: "main".into(),
            answer: Answer {
                routing: Some(Routing::Normal),
                ..Answer::default()
            },
            attribution: None,
            first_call: None,
        }),
    }
}

pub fn ended(n: u32, status: &str) -> Event {
    Event {
        call_sid: sid(n),
        at: Utc.timestamp_opt(1_700_000_100 + i64::from(n), 0).unwrap(),
        body: EventBody::CallStatus(CallStatusUpdate {
            status: status.into(),
            duration_s: Some(n % 60),
        }),
    }
}

pub fn leg(n: u32, leg: &str, status: &str) -> Event {
    Event {
        call_sid: sid(n),
        at: Utc.timestamp_opt(1_700_000_050 + i64::from(n), 0).unwrap(),
        body: EventBody::Leg(LegUpdate {
            leg_sid: leg.into(),
            to: "+14045550111".into(),
            status: status.into(),
            event: None,
            duration_s: None,
        }),
    }
}

pub async fn append(store: &Arc<dyn Store>, events: Vec<Event>) {
    store
        .append(Batch {
            events,
            turns: vec![],
            ..Default::default()
        })
        .await
        .expect("append");
}

pub fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("log.db").display())
}

/// The backends every conformance test runs against, each on a fresh database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database of one backend; a PostgreSQL one is dropped with it.
pub struct Db {
    pub url: String,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<(String, String)>,
}

impl Db {
    /// A store on the database: a node starting (again) on it.
    pub async fn open(&self) -> Arc<dyn Store> {
        dialtone_store::open(&self.url)
            .await
            .expect("open the store")
    }
}

impl Backend {
    pub async fn fresh(self) -> Db {
        match self {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                Db {
                    url: url(&dir),
                    backend: self,
                    _dir: Some(dir),
                    postgres: None,
                }
            }
            Backend::Postgres => {
                let server = postgres_server();
                static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let name = format!("t_{}_{n}", std::process::id());
                let admin = admin(server).await;
                // One statement each: neither may run in a transaction block.
                for sql in [
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    format!("CREATE DATABASE {name}"),
                ] {
                    admin
                        .batch_execute(&sql)
                        .await
                        .expect("create a test database");
                }
                let (base, _) = server.rsplit_once('/').expect("a database URL");
                Db {
                    url: format!("{base}/{name}"),
                    backend: self,
                    _dir: None,
                    postgres: Some((server.to_owned(), name)),
                }
            }
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Off the test's runtime, which may be the one dropping this.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let admin = admin(&server).await;
                let _ = admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            });
        });
        let _ = dropped.join();
    }
}

async fn admin(server: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(server, tokio_postgres::NoTls)
        .await
        .expect("connect to the test PostgreSQL server");
    tokio::spawn(connection);
    client
}

/// The test PostgreSQL server: `DIALTONE_TEST_POSTGRES`, or the project's own, started (once)
/// by `scripts/postgres.sh`.
pub fn postgres_server() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("DIALTONE_TEST_POSTGRES") {
            return url;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .arg("start")
            .output()
            .expect("run scripts/postgres.sh");
        assert!(
            out.status.success(),
            "scripts/postgres.sh start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("a URL")
            .trim()
            .to_owned()
    })
}

/// Runs each named `async fn(Backend)` as two tests, `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(Backend::Postgres).await
                }
            }
        )*
    };
}
