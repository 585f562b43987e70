//! Alerts: what the monitors and the backup policy tell an operator. Counted
//! (`dialtone_alerts_total`), kept for the API (the last 1,000), and posted to the configured
//! alert webhook (`[admission] alert_webhook`) as JSON with a Slack-compatible `text`.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use chrono::{DateTime, Utc};

use crate::cluster::{Cluster, Message};
use crate::telemetry::ALERTS;

/// Something an operator should know, raised by the monitors below.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Alert {
    /// limit_forecast, degrading, setup_slo_burn, connect_slo_burn, dial_delay_drift,
    /// post_dial_delay_drift, connect_rate_drift, abandonment_drift, effective_limit.
    pub kind: Cow<'static, str>,
    pub carrier_account_sid: String,
    pub at: DateTime<Utc>,
    pub message: String,
    /// The number the alert is about (minutes to the limit, seconds of delay, a ratio, a rate).
    pub value: f64,
}

/// Alerts kept for the API.
const KEPT: usize = 1000;

/// How long an alert raised by one node keeps the others from raising it again: a little less
/// than the monitors' own 15 minutes, so the next one a monitor raises is not lost.
const CLAIMED_S: i64 = 14 * 60;

#[derive(Default)]
pub struct Alerts {
    kept: Mutex<VecDeque<Alert>>,
    /// Where alerts are posted, if anywhere.
    webhook: Mutex<Option<String>>,
    /// The other nodes, when there are: an alert is raised by the one that claims it first.
    cluster: OnceLock<Arc<Cluster>>,
}

impl Alerts {
    /// Raises alerts once across `cluster`'s nodes from now on.
    pub fn set_cluster(&self, cluster: Arc<Cluster>) {
        let _ = self.cluster.set(cluster);
    }

    /// Counts, posts and keeps an alert; `source` names what it is about in the posted text.
    ///
    /// With other nodes, the first to claim the alert (its kind and carrier account, for
    /// [`CLAIMED_S`]) raises it and tells the others, who keep it without posting it; if the
    /// claim cannot be decided (the database unreachable), each node raises its own: an alert
    /// twice rather than never.
    pub fn publish(self: &Arc<Self>, alert: Alert, source: &str) {
        if !self.cluster.get().is_some_and(|c| c.shared()) {
            self.raise(alert, source);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.raise(alert, source);
            return;
        };
        let (alerts, source) = (self.clone(), source.to_owned());
        runtime.spawn(async move {
            alerts.raise_once(alert, &source).await;
        });
    }

    /// Raises `alert` unless another node claimed it first; whether this node raised it.
    pub async fn raise_once(&self, alert: Alert, source: &str) -> bool {
        let Some(cluster) = self.cluster.get().filter(|c| c.shared()) else {
            self.raise(alert, source);
            return true;
        };
        let key = format!("alert:{}:{}", alert.kind, alert.carrier_account_sid);
        let until = alert.at + chrono::Duration::seconds(CLAIMED_S);
        let node = cluster.bus().node();
        match cluster.bus().claim(&key, node, alert.at, until).await {
            Ok(false) => false,
            Ok(true) => {
                cluster.send(&Message::Alert(alert.clone()));
                self.raise(alert, source);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "whether another node raised this alert is unknown: raised here");
                self.raise(alert, source);
                true
            }
        }
    }

    fn raise(&self, alert: Alert, source: &str) {
        tracing::warn!(kind = %alert.kind, source, "alert: {}", alert.message);
        metrics::counter!(ALERTS, "kind" => alert.kind.clone()).increment(1);
        self.post(&alert, source);
        self.keep(alert);
    }

    /// Keeps an alert for the API (another node raised it).
    pub fn keep(&self, alert: Alert) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= KEPT {
            kept.pop_front();
        }
        kept.push_back(alert);
    }

    /// Raises an alert about dialtone itself rather than a carrier account.
    pub fn notify(self: &Arc<Self>, kind: &'static str, message: String, at: DateTime<Utc>) {
        let alert = Alert {
            kind: Cow::Borrowed(kind),
            carrier_account_sid: String::new(),
            at,
            message,
            value: 0.0,
        };
        self.publish(alert, "dialtone");
    }

    /// Where alerts are posted from now on (`None` stops posting).
    pub fn set_webhook(&self, url: Option<String>) {
        *self.webhook.lock().unwrap_or_else(|p| p.into_inner()) = url;
    }

    /// Alerts raised so far, oldest first.
    pub fn list(&self) -> Vec<Alert> {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Sends `alert` to the configured webhook, without waiting for it.
    fn post(&self, alert: &Alert, source: &str) {
        let Some(url) = self
            .webhook
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let body = serde_json::json!({
            "text": format!("dialtone: {} ({source})", alert.message),
            "alert": alert,
        });
        runtime.spawn(async move {
            let sent = reqwest::Client::new()
                .post(&url)
                .json(&body)
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await;
            if let Err(e) = sent.and_then(reqwest::Response::error_for_status) {
                tracing::warn!(%url, "alert webhook failed: {e}");
            }
        });
    }
}
