//! Alerts: what the monitors and the backup policy tell an operator. Counted
//! (`dialtone_alerts_total`), kept for the API (the last 1,000), and posted to the configured
//! alert webhook (`[admission] alert_webhook`) as JSON with a Slack-compatible `text`.

use std::collections::VecDeque;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::telemetry::ALERTS;

/// Something an operator should know, raised by the monitors below.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Alert {
    /// limit_forecast, degrading, setup_slo_burn, connect_slo_burn, dial_delay_drift,
    /// post_dial_delay_drift, connect_rate_drift, abandonment_drift, effective_limit.
    pub kind: &'static str,
    pub carrier_account_sid: String,
    pub at: DateTime<Utc>,
    pub message: String,
    /// The number the alert is about (minutes to the limit, seconds of delay, a ratio, a rate).
    pub value: f64,
}

/// Alerts kept for the API.
const KEPT: usize = 1000;

#[derive(Default)]
pub struct Alerts {
    kept: Mutex<VecDeque<Alert>>,
    /// Where alerts are posted, if anywhere.
    webhook: Mutex<Option<String>>,
}

impl Alerts {
    /// Counts, posts and keeps an alert; `source` names what it is about in the posted text.
    pub fn publish(&self, alert: Alert, source: &str) {
        metrics::counter!(ALERTS, "kind" => alert.kind).increment(1);
        self.post(&alert, source);
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() >= KEPT {
            kept.pop_front();
        }
        kept.push_back(alert);
    }

    /// Raises an alert about dialtone itself rather than a carrier account.
    pub fn notify(&self, kind: &'static str, message: String, at: DateTime<Utc>) {
        tracing::warn!(kind, "alert: {message}");
        let alert = Alert {
            kind,
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
