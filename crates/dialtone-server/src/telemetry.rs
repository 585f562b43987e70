//! Prometheus metrics. Labels never carry phone numbers: they would leak personal data into
//! monitoring and explode cardinality. Nor, unless the operator asks for them
//! (`serve --metrics-customer-labels`), customers' names: a company or tracker label is then a
//! pseudonym, `c` and the first 10 hex digits of the SHA-256 of its slug (or of
//! `company/tracker`), stable across restarts, which the operator can recompute.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const WEBHOOK_SECONDS: &str = "dialtone_webhook_duration_seconds";
pub const WEBHOOK_REQUESTS: &str = "dialtone_webhook_requests_total";
pub const LEGS: &str = "dialtone_legs_total";
pub const CALLS_RECEIVED: &str = "dialtone_calls_received_total";
pub const WEBHOOK_REFUSED: &str = "dialtone_webhook_refused_total";
pub const HTTP_CONNECTIONS: &str = "dialtone_http_connections";
pub const HTTP_CONNECTIONS_REFUSED: &str = "dialtone_http_connections_refused_total";
/// Emitted by the store when a call ends.
pub const CALLS: &str = "dialtone_calls_total";
pub const LOG_EVENTS: &str = "dialtone_call_log_events_total";
pub const LOG_COMMITS: &str = "dialtone_call_log_commits_total";
pub const LOG_FAILED_COMMITS: &str = "dialtone_call_log_failed_commits_total";
pub const LOG_SPOOLED: &str = "dialtone_call_log_spooled_events";
pub const LOG_UNMERGED_SIDS: &str = "dialtone_call_log_unmerged_sids";
pub const LOG_WAL_RESETS: &str = "dialtone_call_log_wal_resets_total";
pub const LOG_WAL_RESTARTS: &str = "dialtone_call_log_wal_restarts_total";
pub const TRACKING_NUMBERS: &str = "dialtone_tracking_numbers";
pub const DEGRADED_CALLS: &str = "dialtone_degraded_calls_total";
/// Whether this node is connected to the others (1) or routing on its own (0).
pub const CLUSTER_CONNECTED: &str = "dialtone_cluster_connected";
/// Messages between nodes, by `direction` (sent, received).
pub const CLUSTER_MESSAGES: &str = "dialtone_cluster_messages_total";
/// Messages between nodes dropped (the database unreachable, or a queue full).
pub const CLUSTER_DROPPED: &str = "dialtone_cluster_messages_dropped_total";
pub const ALERTS: &str = "dialtone_alerts_total";
pub const DIAL_OFFERED: &str = "dialtone_dial_offered_legs_per_second";
pub const DIAL_LIMIT: &str = "dialtone_dial_limit_per_second";
pub const DIAL_UTILISATION: &str = "dialtone_dial_utilisation_ratio";
pub const DIAL_PREDICTED_QUEUE: &str = "dialtone_dial_predicted_queue_seconds";
pub const DIAL_OBSERVED_QUEUE: &str = "dialtone_dial_observed_queue_seconds";
pub const DIAL_ACTIVE_LEGS: &str = "dialtone_dial_active_legs";
pub const DIAL_CONCURRENT_LIMIT: &str = "dialtone_dial_concurrent_limit";
pub const DIAL_LEGS: &str = "dialtone_dial_legs_total";
pub const DIAL_SETUP_WAIT: &str = "dialtone_dial_setup_wait_seconds";
pub const POST_DIAL_DELAY: &str = "dialtone_post_dial_delay_seconds";
pub const DIALED_CALLS: &str = "dialtone_dialed_calls_total";
pub const CONNECT_RATIO: &str = "dialtone_connect_ratio";
pub const ABANDONED_RATIO: &str = "dialtone_abandoned_ratio";
pub const DNI_SESSIONS: &str = "dialtone_dni_sessions_total";
/// Free pool numbers another node had just given to its visitor (allocated again).
pub const DNI_CLAIMS_LOST: &str = "dialtone_dni_claims_lost_total";
pub const DNI_POOL_SIZE: &str = "dialtone_dni_pool_numbers";
pub const DNI_POOL_LIVE: &str = "dialtone_dni_pool_live_sessions";
pub const DNI_POOL_UTILISATION: &str = "dialtone_dni_pool_utilisation_ratio";
pub const DNI_POOL_PEAK: &str = "dialtone_dni_pool_peak_sessions";
pub const DNI_POOL_RECOMMENDED: &str = "dialtone_dni_pool_recommended_numbers";
pub const DNI_SHARED_ALLOCATIONS: &str = "dialtone_dni_shared_allocations_total";
pub const DNI_ATTRIBUTED_CALLS: &str = "dialtone_dni_attributed_calls_total";
pub const DNI_SHARED_ATTRIBUTIONS: &str = "dialtone_dni_shared_attributions_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static CUSTOMER_LABELS: AtomicBool = AtomicBool::new(false);

/// Whether company and tracker labels carry their names (off by default).
pub fn set_customer_labels(on: bool) {
    CUSTOMER_LABELS.store(on, Ordering::Relaxed);
}

/// The label value for a company (`slug`) or a tracker (`company/tracker`).
pub fn customer_label(name: &str) -> String {
    if CUSTOMER_LABELS.load(Ordering::Relaxed) {
        name.to_owned()
    } else {
        let hash = dialtone_store::hash_key(name);
        format!("c{}", &hash[..10])
    }
}

/// How often histogram samples are folded into their buckets when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Installs the process-wide recorder once and returns its handle (`None` if another recorder
/// was installed first, e.g. by an embedding program).
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            // Histogram samples wait in the recorder until they are folded into their buckets,
            // which only a scrape or an upkeep does: with nobody scraping `/metrics`, a soak at
            // 200 calls/s grew by 1.3 MB a minute (146 MiB after half an hour; one scrape took it
            // back to 61). The exporter runs no upkeep for a recorder installed this way.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("dialtone-metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            metrics::describe_histogram!(
                WEBHOOK_SECONDS,
                metrics::Unit::Seconds,
                "Time to answer a carrier webhook, durable logging included."
            );
            metrics::describe_counter!(
                WEBHOOK_REQUESTS,
                "Carrier webhook requests by endpoint and result."
            );
            metrics::describe_counter!(
                LEGS,
                "Outbound legs that ended, by the carrier's final status."
            );
            metrics::describe_counter!(CALLS_RECEIVED, "Inbound calls received, by routing.");
            metrics::describe_gauge!(HTTP_CONNECTIONS, "Client connections open.");
            metrics::describe_counter!(
                HTTP_CONNECTIONS_REFUSED,
                "Client connections refused: over the cap, or over one address's share of it."
            );
            metrics::describe_counter!(
                WEBHOOK_REFUSED,
                "Signed carrier requests refused: for a call of another carrier account, or a call already received."
            );
            metrics::describe_counter!(CALLS, "Calls that ended, by outcome.");
            metrics::describe_counter!(LOG_EVENTS, "Call log events committed.");
            metrics::describe_counter!(
                LOG_COMMITS,
                "Call log transactions committed (each holds many appends)."
            );
            metrics::describe_counter!(
                LOG_FAILED_COMMITS,
                "Call log commits that failed and were spooled for retry."
            );
            metrics::describe_gauge!(
                LOG_SPOOLED,
                "Call log events waiting in memory for a retry after a failed commit."
            );
            metrics::describe_gauge!(
                LOG_UNMERGED_SIDS,
                "Recent calls found by sid in memory until the next merge into the sid index."
            );
            metrics::describe_counter!(
                LOG_WAL_RESETS,
                "Times the call log writer started its WAL over between commits."
            );
            metrics::describe_counter!(
                LOG_WAL_RESTARTS,
                "Times a RESTART checkpoint held the call log writer back to start the WAL over (a reader kept an old snapshot)."
            );
            metrics::describe_gauge!(
                TRACKING_NUMBERS,
                "Tracking numbers in the running configuration."
            );
            metrics::describe_counter!(ALERTS, "Alerts raised, by kind.");
            metrics::describe_counter!(
                DNI_CLAIMS_LOST,
                "Free pool numbers another node had just given to its visitor: allocated again."
            );
            metrics::describe_gauge!(
                CLUSTER_CONNECTED,
                "Whether this node is connected to the other nodes on its database (1) or routing on its own (0)."
            );
            metrics::describe_counter!(
                CLUSTER_MESSAGES,
                "Messages between the nodes on one database (shared dial queue, legs, leases, turns), by direction."
            );
            metrics::describe_counter!(
                CLUSTER_DROPPED,
                "Messages between nodes dropped: the database unreachable or a queue full."
            );
            metrics::describe_counter!(
                DEGRADED_CALLS,
                "Calls whose dial asked for fewer legs because of the carrier's dial limit."
            );
            metrics::describe_gauge!(
                DIAL_OFFERED,
                "Outbound legs per second dialtone asks of the carrier account (10 s window)."
            );
            metrics::describe_gauge!(
                DIAL_LIMIT,
                "The carrier account's setup limit: configured, or estimated from leg start times."
            );
            metrics::describe_gauge!(DIAL_UTILISATION, "Offered legs per second over the limit.");
            metrics::describe_gauge!(
                DIAL_PREDICTED_QUEUE,
                "The carrier's dial queue as dialtone's GCRA mirror computes it."
            );
            metrics::describe_gauge!(
                DIAL_OBSERVED_QUEUE,
                "Mean time from asking for a leg to its initiated callback, last minute."
            );
            metrics::describe_gauge!(
                DIAL_ACTIVE_LEGS,
                "Outbound legs up now (initiated, not yet ended), by carrier account."
            );
            metrics::describe_gauge!(
                DIAL_CONCURRENT_LIMIT,
                "The carrier account's configured cap on concurrent calls."
            );
            metrics::describe_counter!(
                DIAL_LEGS,
                "Outbound legs asked of the carrier, by carrier account and company (rate() is legs per second)."
            );
            metrics::describe_histogram!(
                DIAL_SETUP_WAIT,
                metrics::Unit::Seconds,
                "From asking for a leg to the carrier setting it up (its initiated callback): the carrier's queue."
            );
            metrics::describe_histogram!(
                POST_DIAL_DELAY,
                metrics::Unit::Seconds,
                "From a dial to its first ringing leg, by carrier account and company."
            );
            metrics::describe_counter!(
                DIALED_CALLS,
                "Calls that dialed, when they ended: result answered, unanswered (the dial ran its course) or abandoned (the caller hung up first); rang says whether a phone rang. Connect rate is rang=true over all."
            );
            metrics::describe_gauge!(
                CONNECT_RATIO,
                "Share of dialed calls that reached a ringing phone, last minute, by carrier account."
            );
            metrics::describe_gauge!(
                ABANDONED_RATIO,
                "Share of dialed calls abandoned before an answer, last minute, by carrier account."
            );
            metrics::describe_counter!(
                DNI_SESSIONS,
                "DNI session requests by result: created, shared, resumed, kept (no swap), rate_limited, failed."
            );
            metrics::describe_gauge!(DNI_POOL_SIZE, "Numbers in a DNI pool.");
            metrics::describe_gauge!(DNI_POOL_LIVE, "Visitor sessions holding a pool number now.");
            metrics::describe_gauge!(DNI_POOL_UTILISATION, "Pool numbers in use over pool size.");
            metrics::describe_gauge!(
                DNI_POOL_PEAK,
                "Most sessions live at once over the last 7 days."
            );
            metrics::describe_gauge!(
                DNI_POOL_RECOMMENDED,
                "Numbers the pool needs to keep its 7-day peak under 75 % use."
            );
            metrics::describe_counter!(
                DNI_SHARED_ALLOCATIONS,
                "Sessions given a number another session held (pool exhausted)."
            );
            metrics::describe_counter!(
                DNI_ATTRIBUTED_CALLS,
                "Calls to pool numbers attributed to a visitor session."
            );
            metrics::describe_counter!(
                DNI_SHARED_ATTRIBUTIONS,
                "Attributed calls whose number several sessions held."
            );
            Some(handle)
        })
        .clone()
}
