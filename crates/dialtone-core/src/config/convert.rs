//! The file's settings, carrier accounts and accounts made into the model; companies in
//! `company.rs`, flows in `flow.rs`.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use chrono::NaiveDate;
use toml::Spanned;

use super::company::convert_company;
use super::error::Reporter;
use super::load::slug_ok;
use super::raw::*;
use super::*;
use crate::admission::SetupLimit;
use crate::phone::PhoneNumber;

pub(super) fn convert(raw: RawConfig, r: &mut Reporter, env: &dyn Environment) -> Config {
    let admission = admission(raw.admission, r);
    let dni = dni(raw.dni, r);
    let carrier_accounts = carrier_accounts(raw.carrier_accounts, r, env);
    let accounts = accounts(raw.accounts, r);
    let (companies, numbers) = companies(
        raw.companies,
        r,
        &carrier_accounts,
        &accounts,
        &admission.tiers,
    );
    Config {
        admission,
        dni,
        carrier_accounts,
        accounts,
        companies,
        numbers,
    }
}

/// `[admission]`: the defaults, with what the file sets.
fn admission(raw: Option<Spanned<RawAdmission>>, r: &mut Reporter) -> Admission {
    let mut admission = Admission::default();
    if let Some(a) = raw {
        let span = a.span();
        let a = a.into_inner();
        admission.degrade = a.degrade.unwrap_or(admission.degrade);
        if let Some(b) = a.budget_s {
            if b.is_finite() && b >= 0.0 {
                admission.budget_s = b;
            } else {
                r.at(
                    Some(span.clone()),
                    "[admission] budget_s must be 0 or more seconds",
                );
            }
        }
        if let Some(url) = a.alert_webhook {
            let ok = url.get_ref().starts_with("http://") || url.get_ref().starts_with("https://");
            if ok {
                admission.alert_webhook = Some(url.into_inner());
            } else {
                r.at(
                    Some(url.span()),
                    "[admission] alert_webhook must be an http:// or https:// URL",
                );
            }
        }
        if let Some(m) = a.monitoring {
            match m.get_ref().as_str() {
                "drift" => admission.monitoring = crate::monitor::Monitoring::Drift,
                "sudden_shift" => admission.monitoring = crate::monitor::Monitoring::SuddenShift,
                other => r.at(
                    Some(m.span()),
                    format!("[admission] monitoring `{other}` is not `drift` or `sudden_shift`"),
                ),
            }
        }
        if let Some(tiers) = a.tiers {
            let distinct: BTreeSet<&String> = tiers.iter().collect();
            if tiers.is_empty() || tiers.len() > 16 || distinct.len() != tiers.len() {
                r.at(
                    Some(span),
                    "[admission] tiers: 1 to 16 distinct names, highest service first",
                );
            } else {
                admission.tiers = tiers;
            }
        }
    }
    admission
}

/// `[dni]`: the defaults, with what the file sets.
fn dni(raw: Option<RawDni>, r: &mut Reporter) -> Dni {
    let mut dni = Dni::default();
    if let Some(d) = raw {
        for (field, value, target) in [
            (
                "sessions_per_minute_per_address",
                d.sessions_per_minute_per_address,
                &mut dni.sessions_per_minute_per_address,
            ),
            (
                "sessions_per_minute_per_visitor",
                d.sessions_per_minute_per_visitor,
                &mut dni.sessions_per_minute_per_visitor,
            ),
            ("burst", d.burst, &mut dni.burst),
        ] {
            if let Some(v) = value {
                if *v.get_ref() == 0 {
                    r.at(Some(v.span()), format!("[dni] {field} must be 1 or more"));
                }
                *target = *v.get_ref();
            }
        }
        dni.attribution_grace_s = d.attribution_grace_s.unwrap_or(dni.attribution_grace_s);
        // `trust_forwarded_for = true`, as before: one proxy, which appends the client's address.
        dni.proxies.count = u8::from(d.trust_forwarded_for.unwrap_or(false));
        if let Some(n) = d.trusted_proxies {
            match u8::try_from(*n.get_ref()) {
                Ok(count) if count <= 16 => dni.proxies.count = count,
                _ => r.at(Some(n.span()), "[dni] trusted_proxies: 0 to 16"),
            }
        }
        for cidr in d.trusted_proxy_cidrs.unwrap_or_default() {
            match cidr.get_ref().parse::<ipnet::IpNet>() {
                Ok(net) => dni.proxies.cidrs.push(net),
                Err(_) => r.at(
                    Some(cidr.span()),
                    format!(
                        "[dni] trusted_proxy_cidrs: `{}` is not a network like 10.0.0.0/8 or fd00::/8",
                        cidr.get_ref()
                    ),
                ),
            }
        }
        if dni.proxies.count > 0 && !dni.proxies.cidrs.is_empty() {
            r.at(
                None,
                "[dni] say trusted_proxies (how many) or trusted_proxy_cidrs (which), not both",
            );
        }
        if let Some(n) = d.leases_per_address {
            if *n.get_ref() == 0 {
                r.at(Some(n.span()), "[dni] leases_per_address must be 1 or more");
            }
            dni.leases_per_address = *n.get_ref();
        }
    }
    dni
}

/// `[[carrier_accounts]]`, each named once, tokens from the file or the environment.
fn carrier_accounts(
    raw: Vec<Spanned<RawCarrier>>,
    r: &mut Reporter,
    env: &dyn Environment,
) -> Vec<CarrierAccount> {
    let mut carrier_accounts = Vec::new();
    for c in raw {
        let span = c.span();
        let c = c.into_inner();
        if carrier_accounts
            .iter()
            .any(|x: &CarrierAccount| x.name == *c.name.get_ref())
        {
            r.at(
                Some(c.name.span()),
                format!("carrier account `{}` is defined twice", c.name.get_ref()),
            );
        }
        let sid = c.account_sid.get_ref();
        if !(sid.len() == 34
            && sid.starts_with("AC")
            && sid[2..].bytes().all(|b| b.is_ascii_hexdigit()))
        {
            r.at(
                Some(c.account_sid.span()),
                format!("`{sid}` is not an account SID (AC followed by 32 hex digits)"),
            );
        }
        let token = match (c.auth_token, c.auth_token_env) {
            (Some(t), None) if !t.is_empty() => t,
            (None, Some(var)) => match env.var(var.get_ref()) {
                Some(t) if !t.is_empty() => t,
                _ => {
                    r.at(
                        Some(var.span()),
                        format!("environment variable `{}` is not set", var.get_ref()),
                    );
                    String::new()
                }
            },
            _ => {
                r.at(
                    Some(span),
                    "a carrier account needs exactly one of `auth_token` or `auth_token_env`",
                );
                String::new()
            }
        };
        let dial_limit = c.dial_limit.and_then(|l| {
            let span = l.span();
            let l = l.into_inner();
            let period_s = l.period_s.unwrap_or(1.0);
            let ok = l.count > 0 && period_s.is_finite() && period_s > 0.0;
            if !ok {
                r.at(
                    Some(span),
                    "dial_limit: `count` setups (1 or more) per `period_s` seconds (more than 0)",
                );
            }
            ok.then_some(SetupLimit {
                count: l.count,
                period_s,
                burst: l.burst.unwrap_or(1).max(1),
            })
        });
        let concurrent_calls = c.concurrent_calls.and_then(|n| {
            if *n.get_ref() == 0 {
                r.at(Some(n.span()), "concurrent_calls must be 1 or more");
                None
            } else {
                Some(*n.get_ref())
            }
        });
        carrier_accounts.push(CarrierAccount {
            name: c.name.into_inner(),
            account_sid: sid.clone(),
            auth_token: token,
            dial_limit,
            concurrent_calls,
        });
    }

    carrier_accounts
}
/// `[[accounts]]`, each slug once.
fn accounts(raw: Vec<Spanned<RawAccount>>, r: &mut Reporter) -> Vec<Account> {
    let mut accounts = Vec::new();
    for a in raw {
        let a = a.into_inner();
        if !slug_ok(a.slug.get_ref()) {
            r.at(
                Some(a.slug.span()),
                format!(
                    "account slug `{}` may only use letters, digits, - and _",
                    a.slug.get_ref()
                ),
            );
        }
        if accounts
            .iter()
            .any(|x: &Account| x.slug == *a.slug.get_ref())
        {
            r.at(
                Some(a.slug.span()),
                format!("account `{}` is defined twice", a.slug.get_ref()),
            );
        }
        accounts.push(Account {
            slug: a.slug.into_inner(),
            name: a.name,
        });
    }

    accounts
}
/// `[[companies]]`, and where each tracking number is (a number in two trackers reported at the
/// second place it is written).
fn companies(
    raw: Vec<Spanned<RawCompany>>,
    r: &mut Reporter,
    carrier_accounts: &[CarrierAccount],
    accounts: &[Account],
    tiers: &[String],
) -> (Vec<Company>, HashMap<String, (usize, usize)>) {
    // Where each tracking number is written, in file order, to point at a duplicate.
    let mut written: HashMap<String, Vec<Range<usize>>> = HashMap::new();
    for c in &raw {
        for t in &c.get_ref().trackers {
            let t = t.get_ref();
            for n in t.number.iter().chain(t.pool.iter().flatten()) {
                if let Ok(number) = PhoneNumber::parse(n.get_ref()) {
                    written
                        .entry(number.to_string())
                        .or_default()
                        .push(n.span());
                }
            }
        }
    }
    let mut companies = Vec::new();
    let mut numbers: HashMap<String, (usize, usize)> = HashMap::new();
    for (ci, c) in raw.into_iter().enumerate() {
        let company = convert_company(
            c.into_inner(),
            r,
            carrier_accounts,
            accounts,
            &companies,
            tiers,
        );
        for (ti, t) in company.trackers.iter().enumerate() {
            for n in &t.numbers {
                if let Some(&(oc, ot)) = numbers.get(n.as_str()) {
                    let other: &Company = if oc == ci { &company } else { &companies[oc] };
                    // The second place it is written.
                    let span = written.get(n.as_str()).and_then(|w| w.get(1)).cloned();
                    r.at(
                        span,
                        format!(
                            "tracking number {n} belongs to two trackers: `{}` of `{}` and `{}` of `{}`",
                            other.trackers[ot].name, other.slug, t.name, company.slug
                        ),
                    );
                } else {
                    numbers.insert(n.to_string(), (ci, ti));
                }
            }
        }
        companies.push(company);
    }
    (companies, numbers)
}

pub(super) fn phone(r: &mut Reporter, s: &Spanned<String>) -> Option<PhoneNumber> {
    PhoneNumber::parse(s.get_ref())
        .map_err(|e| r.at(Some(s.span()), e.to_string()))
        .ok()
}

pub(super) fn date(r: &mut Reporter, s: &Spanned<String>) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s.get_ref(), "%Y-%m-%d")
        .map_err(|_| {
            r.at(
                Some(s.span()),
                format!("`{}` is not a date (expected YYYY-MM-DD)", s.get_ref()),
            )
        })
        .ok()
}
