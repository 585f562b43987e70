//! The file as written: serde's view of the TOML, with the spans problems are reported at.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) admission: Option<Spanned<RawAdmission>>,
    pub(super) dni: Option<RawDni>,
    #[serde(default)]
    pub(super) carrier_accounts: Vec<Spanned<RawCarrier>>,
    #[serde(default)]
    pub(super) accounts: Vec<Spanned<RawAccount>>,
    #[serde(default)]
    pub(super) companies: Vec<Spanned<RawCompany>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmission {
    pub(super) degrade: Option<bool>,
    pub(super) budget_s: Option<f64>,
    pub(super) tiers: Option<Vec<String>>,
    pub(super) alert_webhook: Option<Spanned<String>>,
    pub(super) monitoring: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDni {
    pub(super) sessions_per_minute_per_address: Option<Spanned<u32>>,
    pub(super) sessions_per_minute_per_visitor: Option<Spanned<u32>>,
    pub(super) burst: Option<Spanned<u32>>,
    pub(super) attribution_grace_s: Option<u32>,
    pub(super) trust_forwarded_for: Option<bool>,
    pub(super) trusted_proxies: Option<Spanned<u32>>,
    pub(super) trusted_proxy_cidrs: Option<Vec<Spanned<String>>>,
    pub(super) leases_per_address: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWebsite {
    #[serde(default)]
    pub(super) origins: Vec<Spanned<String>>,
    pub(super) cookie_domain: Option<Spanned<String>>,
    pub(super) lease_idle_min: Option<Spanned<u32>>,
}

/// One swap rule: exactly one of its fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSwapRule {
    pub(super) landing: Option<BTreeMap<String, String>>,
    pub(super) referrer: Option<String>,
    pub(super) referrer_group: Option<String>,
    pub(super) direct: Option<bool>,
    pub(super) all: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimit {
    pub(super) count: u32,
    pub(super) period_s: Option<f64>,
    pub(super) burst: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCarrier {
    pub(super) name: Spanned<String>,
    pub(super) account_sid: Spanned<String>,
    pub(super) dial_limit: Option<Spanned<RawLimit>>,
    pub(super) concurrent_calls: Option<Spanned<u32>>,
    pub(super) auth_token: Option<String>,
    /// Name of an environment variable holding the token, so secrets stay out of the file.
    pub(super) auth_token_env: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccount {
    pub(super) slug: Spanned<String>,
    pub(super) name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompany {
    pub(super) slug: Spanned<String>,
    pub(super) name: String,
    pub(super) account: Spanned<String>,
    pub(super) carrier_account: Spanned<String>,
    pub(super) time_zone: Spanned<String>,
    pub(super) website_number: Option<Spanned<String>>,
    pub(super) website: Option<RawWebsite>,
    pub(super) primary_number: Spanned<String>,
    pub(super) tier: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) destinations: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub(super) holidays: Vec<Spanned<String>>,
    #[serde(default)]
    pub(super) recording: RawRecording,
    #[serde(default)]
    pub(super) trackers: Vec<Spanned<RawTracker>>,
    #[serde(default)]
    pub(super) flows: BTreeMap<String, Spanned<RawFlow>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecording {
    pub(super) notice: Option<String>,
    pub(super) without_notice_reason: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTracker {
    pub(super) name: String,
    #[serde(rename = "type")]
    pub(super) kind: Spanned<String>,
    pub(super) number: Option<Spanned<String>>,
    pub(super) pool: Option<Vec<Spanned<String>>>,
    pub(super) flow: Spanned<String>,
    #[serde(default)]
    pub(super) swap: Vec<Spanned<RawSwapRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFlow {
    pub(super) start: Spanned<String>,
    pub(super) steps: BTreeMap<String, Spanned<RawStep>>,
}

/// One struct for every step type (serde's tagged enums lose spans); which fields apply to which
/// type is checked in `convert_step`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    #[serde(rename = "type")]
    pub(super) kind: Option<Spanned<String>>,
    pub(super) next: Option<Spanned<String>>,
    pub(super) say: Option<String>,
    pub(super) play: Option<String>,
    pub(super) text: Option<String>,
    pub(super) options: Option<BTreeMap<String, Spanned<String>>>,
    pub(super) default: Option<Spanned<String>>,
    pub(super) retries: Option<u32>,
    pub(super) timeout_s: Option<u32>,
    pub(super) invalid_say: Option<String>,
    pub(super) hours: Option<Vec<Spanned<String>>>,
    pub(super) holidays: Option<Vec<Spanned<String>>>,
    pub(super) open: Option<Spanned<String>>,
    pub(super) closed: Option<Spanned<String>>,
    pub(super) strategy: Option<Spanned<String>>,
    pub(super) to: Option<Vec<Spanned<String>>>,
    pub(super) ring_timeout_s: Option<u32>,
    pub(super) whisper: Option<String>,
    pub(super) caller_id: Option<Spanned<String>>,
    pub(super) max_length_s: Option<u32>,
}

impl RawStep {
    /// Names of the fields that are set, to refuse the ones a step type does not use.
    pub(super) fn present_fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        macro_rules! check {
            ($($name:ident),*) => { $( if self.$name.is_some() { f.push(stringify!($name)); } )* };
        }
        check!(
            next,
            say,
            play,
            text,
            options,
            default,
            retries,
            timeout_s,
            invalid_say,
            hours,
            holidays,
            open,
            closed,
            strategy,
            to,
            ring_timeout_s,
            whisper,
            caller_id,
            max_length_s
        );
        f
    }
}
