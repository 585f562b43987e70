//! A company as written made into the model: its trackers, recording policy and website.

use std::collections::{BTreeMap, BTreeSet};

use chrono_tz::Tz;
use toml::Spanned;

use super::convert::{date, phone};
use super::error::Reporter;
use super::flow::convert_flow;
use super::load::slug_ok;
use super::raw::*;
use super::*;
use crate::dni::{OriginPattern, ReferrerGroup, SwapRule};
use crate::phone::PhoneNumber;

pub(super) fn convert_company(
    c: RawCompany,
    r: &mut Reporter,
    carriers: &[CarrierAccount],
    accounts: &[Account],
    earlier: &[Company],
    tiers: &[String],
) -> Company {
    let slug = c.slug.get_ref().clone();
    if !slug_ok(&slug) {
        r.at(
            Some(c.slug.span()),
            format!("company slug `{slug}` may only use letters, digits, - and _"),
        );
    }
    if earlier.iter().any(|x| x.slug == slug) {
        r.at(
            Some(c.slug.span()),
            format!("company `{slug}` is defined twice"),
        );
    }
    if !accounts.iter().any(|a| a.slug == *c.account.get_ref()) {
        r.at(
            Some(c.account.span()),
            format!(
                "company `{slug}`: unknown account `{}`",
                c.account.get_ref()
            ),
        );
    }
    let carrier = carriers
        .iter()
        .position(|a| a.name == *c.carrier_account.get_ref())
        .unwrap_or_else(|| {
            r.at(
                Some(c.carrier_account.span()),
                format!(
                    "company `{slug}`: unknown carrier account `{}`",
                    c.carrier_account.get_ref()
                ),
            );
            0
        });
    let time_zone: Tz = c.time_zone.get_ref().parse().unwrap_or_else(|_| {
        r.at(
            Some(c.time_zone.span()),
            format!(
                "`{}` is not an IANA time zone (like America/New_York)",
                c.time_zone.get_ref()
            ),
        );
        Tz::UTC
    });
    let mut destinations = BTreeMap::new();
    for (name, n) in &c.destinations {
        if let Some(p) = phone(r, n) {
            destinations.insert(name.clone(), p);
        }
    }
    // A destination is named in the company's table, or written out as a number.
    let resolve = |r: &mut Reporter, s: &Spanned<String>| -> Option<PhoneNumber> {
        if let Some(p) = destinations.get(s.get_ref()) {
            return Some(p.clone());
        }
        if s.get_ref().starts_with('+') {
            return phone(r, s);
        }
        r.at(
            Some(s.span()),
            format!(
                "unknown destination `{}` (not in [destinations] and not a +E.164 number)",
                s.get_ref()
            ),
        );
        None
    };
    let primary_number = resolve(r, &c.primary_number)
        .unwrap_or_else(|| PhoneNumber::parse("+10000000000").expect("valid"));
    let website_number = c.website_number.as_ref().and_then(|s| phone(r, s));
    let website = c.website.map(|w| convert_website(w, r)).unwrap_or_default();
    let tier = match &c.tier {
        None => 0,
        Some(t) => match tiers.iter().position(|x| x == t.get_ref()) {
            Some(i) => i as u8,
            None => {
                r.at(
                    Some(t.span()),
                    format!(
                        "company `{slug}`: tier `{}` is not one of [admission] tiers ({})",
                        t.get_ref(),
                        tiers.join(", ")
                    ),
                );
                0
            }
        },
    };
    let holidays = c.holidays.iter().filter_map(|d| date(r, d)).collect();

    let recording = recording_policy(c.recording, r);

    // Trackers may name a flow that failed its checks: that flow's own errors are enough.
    let flow_names: BTreeSet<String> = c.flows.keys().cloned().collect();
    let mut flows = BTreeMap::new();
    for (name, f) in c.flows {
        let span = f.span();
        if !slug_ok(&name) {
            r.at(
                Some(span.clone()),
                format!("flow name `{name}` may only use letters, digits, - and _"),
            );
        }
        if let Some(flow) = convert_flow(&slug, &name, f.into_inner(), r, &resolve, &recording) {
            flows.insert(name, flow);
        }
    }

    let trackers: Vec<Tracker> = c
        .trackers
        .into_iter()
        .map(|t| tracker(t, r, &flow_names))
        .collect();

    if trackers.iter().any(|t| t.kind == TrackerKind::Session) {
        if website_number.is_none() {
            r.at(
                Some(c.slug.span()),
                format!("company `{slug}` has session trackers but no `website_number` for the snippet to swap"),
            );
        }
        if website.origins.is_empty() {
            r.at(
                Some(c.slug.span()),
                format!("company `{slug}` has session trackers but no [companies.website] origins allowed to ask for numbers"),
            );
        }
    }
    Company {
        slug,
        name: c.name,
        account: c.account.into_inner(),
        carrier,
        time_zone,
        website_number,
        website,
        primary_number,
        destinations,
        holidays,
        recording,
        trackers,
        flows,
        tier,
    }
}

/// A tracker: its kind, its number or pool, the flow it starts and (for a pool) its swap rules.
fn tracker(t: Spanned<RawTracker>, r: &mut Reporter, flow_names: &BTreeSet<String>) -> Tracker {
    let span = t.span();
    let t = t.into_inner();
    let kind = match t.kind.get_ref().as_str() {
        "source" => TrackerKind::Source,
        "session" => TrackerKind::Session,
        other => {
            r.at(
                Some(t.kind.span()),
                format!("tracker type `{other}` is not `source` or `session`"),
            );
            TrackerKind::Source
        }
    };
    let numbers: Vec<PhoneNumber> = match (kind, &t.number, &t.pool) {
        (TrackerKind::Source, Some(n), None) => phone(r, n).into_iter().collect(),
        (TrackerKind::Session, None, Some(pool)) if !pool.is_empty() => {
            pool.iter().filter_map(|n| phone(r, n)).collect()
        }
        (TrackerKind::Source, _, _) => {
            r.at(
                Some(span.clone()),
                format!(
                    "source tracker `{}` needs one `number` (and no `pool`)",
                    t.name
                ),
            );
            vec![]
        }
        (TrackerKind::Session, _, _) => {
            r.at(
                Some(span.clone()),
                format!(
                    "session tracker `{}` needs a non-empty `pool` (and no `number`)",
                    t.name
                ),
            );
            vec![]
        }
    };
    if !flow_names.contains(t.flow.get_ref()) {
        r.at(
            Some(t.flow.span()),
            format!("tracker `{}`: unknown flow `{}`", t.name, t.flow.get_ref()),
        );
    }
    let swap: Vec<SwapRule> = t
        .swap
        .into_iter()
        .filter_map(|rule| swap_rule(rule, r))
        .collect();
    match kind {
        TrackerKind::Source if !swap.is_empty() => r.at(
            Some(span),
            format!(
                "source tracker `{}`: `swap` rules belong to session trackers (their pool is what the website shows)",
                t.name
            ),
        ),
        TrackerKind::Session if swap.is_empty() => r.at(
            Some(span),
            format!(
                "session tracker `{}` needs `swap` rules saying which visitors see its pool (like swap = [{{ landing = {{ gclid = \"*\" }} }}])",
                t.name
            ),
        ),
        _ => {}
    }
    Tracker {
        name: t.name,
        kind,
        numbers,
        flow: t.flow.into_inner(),
        swap,
    }
}

/// The company's recording notice, and why it may record without one.
fn recording_policy(raw: RawRecording, r: &mut Reporter) -> RecordingPolicy {
    let without_notice_reason = match raw.without_notice_reason {
        Some(reason) if reason.get_ref().trim().is_empty() => {
            r.at(
                Some(reason.span()),
                "`without_notice_reason` must say why calls are recorded without a notice",
            );
            None
        }
        other => other.map(Spanned::into_inner),
    };
    RecordingPolicy {
        notice: raw
            .notice
            .unwrap_or_else(|| DEFAULT_RECORDING_NOTICE.to_owned()),
        without_notice_reason,
    }
}

pub(super) fn convert_website(w: RawWebsite, r: &mut Reporter) -> Website {
    let mut website = Website::default();
    for o in &w.origins {
        match OriginPattern::parse(o.get_ref()) {
            Ok(p) => website.origins.push(p),
            Err(e) => r.at(Some(o.span()), e),
        }
    }
    if let Some(d) = w.cookie_domain {
        let ok = !d.get_ref().is_empty()
            && d.get_ref()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok {
            website.cookie_domain = Some(d.get_ref().trim_start_matches('.').to_owned());
        } else {
            r.at(
                Some(d.span()),
                format!("`{}` is not a domain (like acme.example)", d.get_ref()),
            );
        }
    }
    if let Some(m) = w.lease_idle_min {
        if (1..=24 * 60).contains(m.get_ref()) {
            website.lease_idle_s = m.get_ref() * 60;
        } else {
            r.at(Some(m.span()), "lease_idle_min: 1 to 1440 minutes");
        }
    }
    website
}

pub(super) fn swap_rule(rule: Spanned<RawSwapRule>, r: &mut Reporter) -> Option<SwapRule> {
    let span = rule.span();
    let rule = rule.into_inner();
    let mut found = Vec::new();
    if let Some(params) = rule.landing {
        if params.is_empty() {
            r.at(Some(span.clone()), "`landing` needs at least one parameter");
            return None;
        }
        found.push(SwapRule::Landing(
            params
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ));
    }
    if let Some(url) = rule.referrer {
        found.push(SwapRule::Referrer(url));
    }
    if let Some(g) = rule.referrer_group {
        match ReferrerGroup::parse(&g) {
            Some(g) => found.push(SwapRule::ReferrerGroup(g)),
            None => {
                r.at(
                    Some(span.clone()),
                    format!("referrer_group `{g}` is not `search` or `social`"),
                );
                return None;
            }
        }
    }
    if rule.direct == Some(true) {
        found.push(SwapRule::Direct);
    }
    if rule.all == Some(true) {
        found.push(SwapRule::All);
    }
    if found.len() != 1 {
        r.at(
            Some(span),
            "a swap rule is exactly one of `landing = { param = \"value\" }`, `referrer = \"URL\"`, `referrer_group = \"search\"|\"social\"`, `direct = true`, `all = true`",
        );
        return None;
    }
    found.pop()
}
