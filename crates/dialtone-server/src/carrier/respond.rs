//! The second half of every webhook: make the decision durable, apply what answering it does,
//! answer.
//!
//! A [`Decision`] is what a webhook decided (pure: nothing has happened yet): the TwiML, the
//! events that say so, and the in-memory effects of answering it. [`respond`] appends the events
//! in one batch and waits until they are durable; only then are the effects applied — so the
//! admission mirror, the round-robin turns and the metrics follow the answer that was actually
//! given. If the call log cannot confirm in time, the caller gets backup routing, the log is
//! corrected to say so (the batch's [`Fallback`]), and the effects are backup's.

use std::sync::Arc;
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use dialtone_core::backup::Change;
use dialtone_core::config::{CarrierAccount, Company};
use dialtone_core::engine;
use dialtone_core::event::{self, Answer, Event, EventBody, Routing};
use dialtone_core::links::Links;
use dialtone_store::{Batch, Fallback, Refusal, Replace, StoreError};
use dialtone_twiml as twiml;

use super::{Rejection, lock, observe, xml};
use crate::AppState;
use crate::cluster::Message;
use crate::telemetry::{CALLS_RECEIVED, WEBHOOK_REFUSED};

/// Why calls skip their flows while the automatic backup policy is open.
pub(super) const BREAKER_REASON: &str =
    "backup policy: the call log is failing; calls go to backup routing at once until it recovers";

/// What a webhook decided to answer, and what answering it means.
pub(super) struct Decision<'c> {
    pub endpoint: &'static str,
    pub call_sid: String,
    /// The company whose primary number backup routing rings (none: an untracked number).
    pub company: Option<&'c Company>,
    pub carrier: Option<&'c CarrierAccount>,
    pub doc: twiml::Response,
    pub events: Vec<Event>,
    pub turns: Vec<(String, u64)>,
    pub effects: Effects,
    /// Answer without waiting for the call log (the backup policy is open: it is failing).
    pub without_waiting: bool,
}

/// The in-memory effects of answering a decision.
#[derive(Debug, Clone, Default)]
pub(super) struct Effects {
    /// Legs asked of the carrier, for the admission mirror.
    pub dial: Option<Dial>,
    /// A dial ended, as the carrier reported to its action URL (answered or not).
    pub dial_ended: Option<bool>,
    /// A new inbound call, counted by how it was routed.
    pub received: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Dial {
    /// Seconds of speech before the `<Dial>`.
    pub before_s: f64,
    pub legs: usize,
    /// Shaped by admission for the first time in this call.
    pub newly_degraded: bool,
}

impl Decision<'_> {
    /// Backup routing instead: the primary number rung (or, with no company, an apology; or,
    /// when the caller has already talked to someone, the call ended), the same events with
    /// backup's answer, backup's effects.
    fn backup(&self, links: &Links, now: DateTime<Utc>, reason: &str) -> Self {
        let reached = self.effects.dial_ended == Some(true);
        let (answer, doc) = backup_at(links, self.company, reached, now, reason);
        let events = self
            .events
            .iter()
            .cloned()
            .map(|mut e| {
                match &mut e.body {
                    EventBody::CallReceived(c) => c.answer = answer.clone(),
                    EventBody::FlowAnswered(f) => f.answer = answer.clone(),
                    _ => {}
                }
                e
            })
            .collect();
        let legs = usize::from(self.company.is_some() && !reached);
        Self {
            endpoint: self.endpoint,
            call_sid: self.call_sid.clone(),
            company: self.company,
            carrier: self.carrier,
            doc,
            events,
            turns: self.turns.clone(),
            effects: Effects {
                dial: (legs > 0).then_some(Dial {
                    before_s: 0.0,
                    legs,
                    newly_degraded: false,
                }),
                received: self.effects.received.map(|_| "backup_failure"),
                ..self.effects.clone()
            },
            without_waiting: false,
        }
    }

    /// The correction appended after a batch that may commit as it was: one answer saying
    /// backup (the projection then takes back what the flow's answer claimed).
    fn correction(&self, links: &Links, now: DateTime<Utc>, reason: &str) -> Vec<Event> {
        vec![Event {
            call_sid: self.call_sid.clone(),
            at: now,
            body: EventBody::FlowAnswered(event::FlowAnswered {
                trigger: self.endpoint.to_owned(),
                digits: None,
                answer: backup_at(
                    links,
                    self.company,
                    self.effects.dial_ended == Some(true),
                    now,
                    reason,
                )
                .0,
            }),
        }]
    }
}

pub(super) fn backup_answer(company: Option<&Company>, now: DateTime<Utc>, reason: &str) -> Answer {
    Answer {
        answered_at: Some(now),
        dialed: company
            .map(|c| vec![c.primary_number.to_string()])
            .unwrap_or_default(),
        routing: Some(Routing::Backup),
        reason: Some(reason.to_owned()),
        ..Default::default()
    }
}

pub(super) fn backup_doc(links: &Links, company: Option<&Company>) -> twiml::Response {
    match company {
        Some(c) => engine::backup_observed(&c.primary_number, links, &c.slug),
        None => engine::not_in_service(),
    }
}

/// Backup routing at a point of a call: the primary number rung — unless the caller has
/// already reached a person (`reached`: the dial that just ended was answered), when the call
/// ends, as every flow ends it after an answered dial, rather than ringing the primary again
/// once the conversation is over.
pub(super) fn backup_at(
    links: &Links,
    company: Option<&Company>,
    reached: bool,
    now: DateTime<Utc>,
    reason: &str,
) -> (Answer, twiml::Response) {
    if reached {
        let ended = twiml::Response {
            verbs: vec![twiml::Verb::Hangup],
        };
        (backup_answer(None, now, reason), ended)
    } else {
        (
            backup_answer(company, now, reason),
            backup_doc(links, company),
        )
    }
}

/// Appends the decision's events in one batch, waits until they are durable, applies its
/// effects and answers its TwiML; backup routing if the call log cannot confirm in time.
pub(super) async fn respond(
    state: &Arc<AppState>,
    signed_by: &str,
    since: Instant,
    d: Decision<'_>,
) -> Response {
    let fallback = Arc::new(Fallback::default());
    let batch = Batch {
        events: d.events.clone(),
        turns: d.turns.clone(),
        signed_by: Some(signed_by.to_owned()),
        fallback: Some(fallback.clone()),
        ..Default::default()
    };
    if d.without_waiting {
        append_in_background(state, batch);
        apply(state, &d);
        observe(d.endpoint, "backup", since);
        return xml(&d.doc);
    }
    let result = tokio::time::timeout(state.durability_budget, state.store.append(batch)).await;
    let now = state.clock.now();
    let failure = match result {
        Ok(Ok(())) => {
            record(state, now, true);
            apply(state, &d);
            observe(d.endpoint, "ok", since);
            return xml(&d.doc);
        }
        Ok(Err(StoreError::Refused(refusal))) => {
            // The call log works; the request is what is wrong. Nothing of it happened.
            record(state, now, true);
            for (key, turns) in &d.turns {
                state.turns.give_back(key, *turns);
            }
            return refused(d.endpoint, &d.call_sid, refusal, &d.doc);
        }
        Ok(Err(e)) => format!("call log write failed: {e}"),
        Err(_) => format!(
            "call log write took over {} s",
            state.durability_budget.as_secs_f64()
        ),
    };
    record(state, now, false);
    let backup = d.backup(&state.links, now, &failure);
    match fallback.replace(backup.events.clone()) {
        Replace::Replaced => {}
        // The commit landed as the wait ran out: the flow's answer is durable after all.
        Replace::AlreadyWritten => {
            apply(state, &d);
            observe(d.endpoint, "ok", since);
            return xml(&d.doc);
        }
        Replace::Writing => {
            append_in_background(
                state,
                signed(d.correction(&state.links, now, &failure), signed_by),
            );
        }
        Replace::Dropped => append_in_background(state, signed(backup.events.clone(), signed_by)),
    }
    tracing::error!(call_sid = %d.call_sid, endpoint = d.endpoint, reason = %failure, "answered with backup routing");
    apply(state, &backup);
    observe(backup.endpoint, "backup", since);
    xml(&backup.doc)
}

fn signed(events: Vec<Event>, signed_by: &str) -> Batch {
    Batch {
        events,
        signed_by: Some(signed_by.to_owned()),
        ..Default::default()
    }
}

/// Queued for the writer without waiting (it spools what it cannot commit). A commit closes
/// the backup policy at once: the call log is back.
fn append_in_background(state: &Arc<AppState>, batch: Batch) {
    let state = state.clone();
    tokio::spawn(async move {
        if state.store.append(batch).await.is_ok() {
            record(&state, state.clock.now(), true);
        }
    });
}

/// Tells the backup policy whether the call log confirmed; raises its alert when it opens.
fn record(state: &AppState, now: DateTime<Utc>, ok: bool) {
    let (change, failures, cool_down_s) = {
        let mut breaker = lock(&state.call_log_breaker);
        let change = breaker.record(now, ok);
        (change, breaker.after_failures, breaker.cool_down_s)
    };
    match change {
        Some(Change::Opened) => state.admission.alerts.notify(
            "backup_policy",
            format!(
                "the call log failed {failures} times in a row: calls go straight to backup routing (their primary numbers) for {cool_down_s} s at a time until it recovers"
            ),
            now,
        ),
        Some(Change::Closed) => {
            tracing::warn!("the call log recovered: calls take their flows again");
        }
        None => {}
    }
}

/// What answering a decision does in memory, once its events are durable (or spooled).
fn apply(state: &AppState, d: &Decision<'_>) {
    let now = state.clock.now();
    if let Some(routing) = d.effects.received {
        metrics::counter!(CALLS_RECEIVED, "routing" => routing).increment(1);
    }
    for (key, turns) in &d.turns {
        state.cluster.send(&Message::Turn {
            k: key.clone(),
            n: *turns,
        });
    }
    let Some(carrier) = d.carrier else { return };
    if let Some(answered) = d.effects.dial_ended {
        state.admission.dial_ended(carrier, &d.call_sid, answered);
    }
    if let (Some(dial), Some(company)) = (d.effects.dial, d.company) {
        state.admission.dialed(
            carrier,
            &company.slug,
            &d.call_sid,
            now,
            dial.before_s,
            dial.legs,
            dial.newly_degraded,
        );
    }
}

/// The store refused the request's events. Another account's call: 403 (nothing was changed).
/// A call already received: its routing is answered again, and nothing else happens — no second
/// call, no round-robin turn, no dial budget.
pub(super) fn refused(
    endpoint: &'static str,
    call_sid: &str,
    refusal: Refusal,
    doc: &twiml::Response,
) -> Response {
    metrics::counter!(WEBHOOK_REFUSED, "endpoint" => endpoint, "reason" => refusal.as_str())
        .increment(1);
    match refusal {
        Refusal::OtherAccount => {
            tracing::warn!(
                call_sid,
                endpoint,
                "refused: the call belongs to another carrier account"
            );
            Rejection::Forbidden("the call belongs to another carrier account").into_response()
        }
        Refusal::AlreadyReceived => {
            tracing::info!(
                call_sid,
                endpoint,
                "a call already received: answered again without effects"
            );
            xml(doc)
        }
    }
}
