//! The first half of the flow webhooks: what to answer, decided from the configuration, the call
//! and the state read (backup rules, the backup policy, admission, DNI). Nothing here writes or
//! changes anything but a round-robin turn taken (given back if the store refuses the request).

use chrono::{DateTime, Utc};
use dialtone_core::admission::DialShape;
use dialtone_core::config::{CarrierAccount, Company, Config, TrackerKind, TrackerRef};
use dialtone_core::engine::{self, Call, Input, Outcome};
use dialtone_core::event::{self, Answer, Event, EventBody, Routing};
use dialtone_core::flow::Flow;
use dialtone_core::links::Resume;
use dialtone_twiml::webhook::CallParams;

use super::respond::{
    BREAKER_REASON, Decision, Dial, Effects, backup_answer, backup_at, backup_doc,
};
use crate::AppState;

/// The inbound-call webhook's decision: the tracker's flow, or backup routing when an operator
/// rule or the backup policy says so, or "not in service" for a number dialtone does not track.
pub(super) fn voice<'c>(
    state: &AppState,
    config: &'c Config,
    call: &CallParams,
    now: DateTime<Utc>,
    policy_open: bool,
) -> Decision<'c> {
    let tracker = config
        .tracker_for(&call.to)
        .filter(|t| t.carrier.account_sid == call.account_sid);
    let Some(t) = tracker else {
        return untracked(call, now, policy_open);
    };
    let rules = state.backup_rules.load();
    let rule = dialtone_core::backup::rule_for(
        &rules,
        config,
        t.company,
        &t.tracker.name,
        &call.call_sid,
        now,
    );
    let backup = |reason: &str, received: &'static str| {
        let effects = Effects {
            dial: Some(Dial {
                before_s: 0.0,
                legs: 1,
                newly_degraded: false,
            }),
            received: Some(received),
            ..Default::default()
        };
        let answer = backup_answer(Some(t.company), now, reason);
        (
            answer,
            backup_doc(&state.links, Some(t.company)),
            vec![],
            effects,
        )
    };
    let (answer, doc, turns, effects) = match rule {
        // An operator sent these calls to backup: still tracked and logged, not routed.
        Some(rule) => backup(
            &format!("backup rule {}: {}", rule.id, rule.reason),
            "backup_rule",
        ),
        None if policy_open => backup(BREAKER_REASON, "backup_policy"),
        None => {
            let shaper = state.admission.for_call(
                t.carrier,
                config.degrade(t.company),
                config.admission.degrade,
                now,
            );
            let engine_call = Call {
                company: t.company,
                flow: t.flow,
                tracking_number: &call.to,
                now,
                admission: &shaper,
            };
            let outcome = engine::start(&engine_call, &state.links, &state.turns);
            let effects = Effects {
                dial: Some(dial_of(&outcome, outcome.degraded.is_some())),
                received: Some("normal"),
                ..Default::default()
            };
            let answer = answer_of(&outcome, now);
            let turns = outcome.turn.into_iter().collect();
            (answer, outcome.response, turns, effects)
        }
    };
    let event = Event {
        call_sid: call.call_sid.clone(),
        at: now,
        body: EventBody::CallReceived(received(state, config, &t, call, now, answer)),
    };
    Decision {
        endpoint: "voice",
        call_sid: call.call_sid.clone(),
        company: Some(t.company),
        carrier: Some(t.carrier),
        doc,
        events: vec![event],
        turns,
        effects,
        without_waiting: policy_open,
    }
}

/// A call to a number dialtone does not track: still logged (under no account, so no API key
/// sees it) for the operator.
fn untracked<'c>(call: &CallParams, now: DateTime<Utc>, policy_open: bool) -> Decision<'c> {
    tracing::warn!(call_sid = %call.call_sid, "call to a number dialtone does not track");
    let event = Event {
        call_sid: call.call_sid.clone(),
        at: now,
        body: EventBody::CallReceived(event::CallReceived {
            account: String::new(),
            company: String::new(),
            tracker: String::new(),
            tracker_kind: String::new(),
            carrier_account_sid: call.account_sid.clone(),
            tracking_number: call.to.clone(),
            caller: call.from.clone(),
            forwarded_from: call.forwarded_from.clone(),
            caller_name: call.caller_name.clone(),
            flow: String::new(),
            answer: Answer {
                answered_at: Some(now),
                reason: Some("number not tracked".into()),
                ..Default::default()
            },
            attribution: None,
            first_call: None,
        }),
    };
    Decision {
        endpoint: "voice",
        call_sid: call.call_sid.clone(),
        company: None,
        carrier: None,
        doc: engine::not_in_service(),
        events: vec![event],
        turns: vec![],
        effects: Effects {
            received: Some("unknown_number"),
            ..Default::default()
        },
        without_waiting: policy_open,
    }
}

/// The inbound call to `t`'s number, logged with `answer`, attributed to the website visitor
/// holding the number when it is a DNI pool's (also when the call goes to backup routing: the
/// visit was tracked all along). Whether it is the caller's first call to the company the call
/// log decides as it writes the call (`first_call` is left unset here): the log holds every
/// caller, on every node, and no node keeps them in memory.
fn received(
    state: &AppState,
    config: &Config,
    t: &TrackerRef<'_>,
    call: &CallParams,
    now: DateTime<Utc>,
    answer: Answer,
) -> event::CallReceived {
    let mut received = event::CallReceived::to_tracker(
        t,
        &call.account_sid,
        &call.to,
        &call.from,
        call.forwarded_from.clone(),
        call.caller_name.clone(),
        answer,
    );
    if t.tracker.kind == TrackerKind::Session {
        received.attribution = state.dni.attribute(config, t, &call.to, now).map(Box::new);
    }
    received
}

fn answer_of(outcome: &Outcome, now: DateTime<Utc>) -> Answer {
    Answer {
        answered_at: Some(now),
        path: outcome.path.clone(),
        dialed: outcome.dialed.iter().map(|n| n.to_string()).collect(),
        strategy: outcome.strategy.map(|s| s.as_str().to_owned()),
        recording: outcome.recording,
        notice_played: outcome.notice_played,
        voicemail_offered: outcome.voicemail_offered,
        routing: Some(Routing::Normal),
        reason: None,
        degraded: outcome.degraded.map(|d| d.as_str().to_owned()),
    }
}

fn dial_of(outcome: &Outcome, newly_degraded: bool) -> Dial {
    Dial {
        before_s: engine::seconds_before_dial(&outcome.response).unwrap_or(0.0),
        legs: outcome.dialed.len(),
        newly_degraded,
    }
}

/// The company and flow a callback URL names, from the current configuration.
pub(super) fn flow_of<'c>(
    config: &'c Config,
    at: &Resume,
) -> Option<(&'c Company, &'c Flow, &'c CarrierAccount)> {
    let company = config.company(&at.company)?;
    let flow = company.flows.get(&at.flow)?;
    Some((company, flow, &config.carrier_accounts[company.carrier]))
}

/// Why a flow callback cannot continue its flow.
pub(super) enum NotResumed {
    /// The URL is not one dialtone wrote.
    BadUrl(String),
    /// Signed by another carrier account than the company's.
    OtherAccount,
}

/// A flow callback as received: where its URL says the flow is, and what happened.
pub(super) struct Callback<'r> {
    pub query: &'r str,
    pub endpoint: &'static str,
    pub call: &'r CallParams,
    pub input: Input,
    /// The callback's own events (a dial that ended, a voicemail recorded).
    pub events: Vec<Event>,
}

/// A flow callback's decision: the flow continued from the position its URL carries, after the
/// callback's own events.
pub(super) fn resume<'c>(
    state: &AppState,
    config: &'c Config,
    cb: Callback<'_>,
    policy_open: bool,
) -> Result<Decision<'c>, NotResumed> {
    let Callback {
        query,
        endpoint,
        call,
        input,
        mut events,
    } = cb;
    let at = Resume::parse(query).map_err(|e| NotResumed::BadUrl(e.to_string()))?;
    let now = state.clock.now();
    let dial_ended = match &input {
        Input::DialEnded { answered } => Some(*answered),
        _ => None,
    };
    let mut decision = Decision {
        endpoint,
        call_sid: call.call_sid.clone(),
        company: None,
        carrier: config.carrier_by_sid(&call.account_sid),
        doc: engine::not_in_service(),
        events: vec![],
        turns: vec![],
        effects: Effects {
            dial_ended,
            ..Default::default()
        },
        without_waiting: policy_open,
    };
    let Some((company, flow, carrier)) = flow_of(config, &at) else {
        let reason = format!(
            "company `{}` or its flow `{}` is no longer configured",
            at.company, at.flow
        );
        events.push(answered(
            call,
            now,
            endpoint,
            None,
            backup_answer(None, now, &reason),
        ));
        decision.events = events;
        return Ok(decision);
    };
    if carrier.account_sid != call.account_sid {
        return Err(NotResumed::OtherAccount);
    }
    decision.company = Some(company);
    decision.carrier = Some(carrier);
    let backup = |reason: &str| {
        (
            backup_answer(Some(company), now, reason),
            backup_doc(&state.links, Some(company)),
        )
    };
    let primary_only = Dial {
        before_s: 0.0,
        legs: 1,
        newly_degraded: false,
    };
    if policy_open {
        let reached = dial_ended == Some(true);
        let (answer, doc) = backup_at(&state.links, Some(company), reached, now, BREAKER_REASON);
        events.push(answered(call, now, endpoint, None, answer));
        decision.effects.dial = (!reached).then_some(primary_only);
        decision.doc = doc;
        decision.events = events;
        return Ok(decision);
    }
    let shaper = state.admission.for_call(
        carrier,
        config.degrade(company),
        config.admission.degrade,
        now,
    );
    let engine_call = Call {
        company,
        flow,
        tracking_number: &call.to,
        now,
        admission: &shaper,
    };
    let digits = match &input {
        Input::Menu { digits } => digits.clone(),
        _ => None,
    };
    match engine::resume(&engine_call, &state.links, &state.turns, &at, input) {
        Ok(outcome) => {
            // A dial continued in the shape it started with is not counted twice.
            let newly_degraded = outcome.degraded.is_some() && at.shape == DialShape::Full;
            decision.effects.dial = Some(dial_of(&outcome, newly_degraded));
            events.push(answered(
                call,
                now,
                endpoint,
                digits,
                answer_of(&outcome, now),
            ));
            decision.turns = outcome.turn.into_iter().collect();
            decision.doc = outcome.response;
        }
        Err(e) => {
            let (answer, doc) = backup(&e.to_string());
            decision.effects.dial = Some(primary_only);
            events.push(answered(call, now, endpoint, digits, answer));
            decision.doc = doc;
        }
    }
    decision.events = events;
    Ok(decision)
}

fn answered(
    call: &CallParams,
    now: DateTime<Utc>,
    trigger: &'static str,
    digits: Option<String>,
    answer: Answer,
) -> Event {
    Event {
        call_sid: call.call_sid.clone(),
        at: now,
        body: EventBody::FlowAnswered(event::FlowAnswered {
            trigger: trigger.to_owned(),
            digits,
            answer,
        }),
    }
}
