//! Reloading the configuration without dropping what takes calls.
//!
//! A reload replaces the running configuration whole. A new file that lost a carrier account or
//! a tracking number (a bad merge, a truncated copy, the wrong file) would silently stop routing
//! its calls: every webhook for it refused or answered "not in service". So a reload that would
//! drop a carrier account or a tracking number that took calls in the last 24 hours is refused
//! unless asked for explicitly, with the list of what it would drop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use dialtone_core::config::{Config, ConfigErrors};
use dialtone_store::StoreError;
use serde::Serialize;

use crate::AppState;

/// How far back a carrier account or tracking number counts as in use.
pub const IN_USE_HOURS: i64 = 24;

#[derive(Debug, Serialize)]
pub struct ReloadSummary {
    pub companies: usize,
    pub tracking_numbers: usize,
    /// What was dropped (only with `allow_removals`).
    pub removed: Vec<Removal>,
}

/// Something in use that a new configuration no longer has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// `carrier_account` or `tracking_number`.
    pub kind: &'static str,
    /// The carrier account's name, or the number.
    pub name: String,
    /// Calls it took in the last 24 hours.
    pub calls_24h: u64,
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = self.kind.replace('_', " ");
        write!(
            f,
            "{what} {} ({} calls in the last 24 hours)",
            self.name, self.calls_24h
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(ConfigErrors),
    #[error("the new configuration drops what took calls in the last 24 hours: {}", list(.0))]
    Removals(Vec<Removal>),
    #[error("cannot tell what takes calls: {0}")]
    Store(StoreError),
}

fn list(removals: &[Removal]) -> String {
    removals
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What `new` drops of `old` that took calls (`traffic`: calls per carrier account sid and
/// tracking number). Pure.
pub fn removals(old: &Config, new: &Config, traffic: &[dialtone_store::Traffic]) -> Vec<Removal> {
    let mut by_account: BTreeMap<&str, u64> = BTreeMap::new();
    let mut by_number: BTreeMap<&str, u64> = BTreeMap::new();
    for t in traffic {
        *by_account.entry(&t.carrier_account_sid).or_default() += t.calls;
        *by_number.entry(&t.tracking_number).or_default() += t.calls;
    }
    let mut out = Vec::new();
    for c in &old.carrier_accounts {
        let calls = by_account.get(c.account_sid.as_str()).copied().unwrap_or(0);
        if calls > 0 && new.carrier_by_sid(&c.account_sid).is_none() {
            out.push(Removal {
                kind: "carrier_account",
                name: c.name.clone(),
                calls_24h: calls,
            });
        }
    }
    for (number, calls) in by_number {
        if old.tracker_for(number).is_some() && new.tracker_for(number).is_none() {
            out.push(Removal {
                kind: "tracking_number",
                name: number.to_owned(),
                calls_24h: calls,
            });
        }
    }
    out
}

impl AppState {
    /// Reads the configuration again. A configuration with errors is refused and the running one
    /// stays; so is one dropping what took calls in the last day, unless `allow_removals`.
    pub async fn reload(&self, allow_removals: bool) -> Result<ReloadSummary, ReloadError> {
        let new = self.config_source.load().map_err(ReloadError::Invalid)?;
        let old = self.config.load_full();
        let accounts: Vec<String> = old
            .companies
            .iter()
            .map(|c| c.account.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let since = self.clock.now() - chrono::Duration::hours(IN_USE_HOURS);
        let traffic = self
            .store
            .traffic(&accounts, since)
            .await
            .map_err(ReloadError::Store)?;
        let removed = removals(&old, &new, &traffic);
        if !removed.is_empty() && !allow_removals {
            return Err(ReloadError::Removals(removed));
        }
        let summary = ReloadSummary {
            companies: new.companies.len(),
            tracking_numbers: new.tracking_numbers(),
            removed,
        };
        self.admission.configure(&new.admission);
        self.config.store(Arc::new(new));
        tracing::info!(
            companies = summary.companies,
            tracking_numbers = summary.tracking_numbers,
            removed = %list(&summary.removed),
            "configuration reloaded"
        );
        Ok(summary)
    }
}
