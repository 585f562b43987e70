//! The carrier-facing webhooks (Twilio dialect).
//!
//! Every request is signature-checked before anything else. A carrier-facing endpoint never
//! answers 5xx: when something inside fails, the caller still gets the safest routing dialtone
//! can give (backup TwiML ringing the company's primary number) and the reason is logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Utc};
use dialtone_core::admission::DialShape;
use dialtone_core::backup::{Admit, Change};
use dialtone_core::config::{CarrierAccount, Company, Config, TrackerKind, TrackerRef};
use dialtone_core::engine::{self, Call, Input, Outcome};
use dialtone_core::event::{self, Answer, Event, EventBody, Routing};
use dialtone_core::flow::Flow;
use dialtone_core::links::Resume;
use dialtone_store::Batch;
use dialtone_twiml as twiml;
use dialtone_twiml::CallEvent;
use dialtone_twiml::Form;
use dialtone_twiml::webhook::{
    CallParams, DialCallStatus, DialResult, GatherResult, RecordResult, RecordingStatus,
    StatusCallback,
};

use crate::AppState;
use crate::telemetry::{CALLS_RECEIVED, LEGS, WEBHOOK_REQUESTS, WEBHOOK_SECONDS};

/// Carrier webhooks are small; anything bigger is not from the carrier.
const MAX_BODY: usize = 64 * 1024;
/// How long a webhook waits for its events to be durable before it answers with backup routing
/// instead (the carrier gives up on us after 15 s; the caller should hear a ring long before).
const DURABILITY_BUDGET: Duration = Duration::from_secs(3);

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/twilio/voice", post(voice))
        .route("/twilio/status", post(status))
        .route("/twilio/gather", post(gather))
        .route("/twilio/dial", post(dial))
        .route("/twilio/voicemail", post(voicemail))
        .route("/twilio/whisper", post(whisper))
        .route("/twilio/leg", post(leg))
        .route("/twilio/recording", post(recording))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// A carrier request whose `X-Twilio-Signature` checked out.
pub struct Signed {
    form: Form,
    query: String,
    config: Arc<Config>,
    received: Instant,
}

pub enum Rejection {
    Forbidden(&'static str),
    BadRequest(String),
    TooLarge,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, reason) = match self {
            Rejection::Forbidden(r) => (StatusCode::FORBIDDEN, r.to_owned()),
            Rejection::BadRequest(r) => (StatusCode::BAD_REQUEST, r),
            Rejection::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_BODY} bytes"),
            ),
        };
        metrics::counter!(WEBHOOK_REQUESTS, "endpoint" => "any", "result" => status.as_str().to_owned()).increment(1);
        tracing::warn!(status = status.as_u16(), reason = %reason, "carrier request refused");
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{reason}\n"),
        )
            .into_response()
    }
}

impl FromRequest<Arc<AppState>> for Signed {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let received = Instant::now();
        let signature = req
            .headers()
            .get("x-twilio-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or(Rejection::Forbidden("missing X-Twilio-Signature"))?;
        let path_and_query = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let query = req.uri().query().unwrap_or_default().to_owned();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|_| Rejection::TooLarge)?;
        let form = Form::parse(&body);
        let config = state.config.load_full();
        // The token to check with is the claimed account's; an unknown account cannot be signed.
        let carrier = form
            .get("AccountSid")
            .and_then(|sid| config.carrier_by_sid(sid))
            .ok_or(Rejection::Forbidden("invalid X-Twilio-Signature"))?;
        let url = format!("{}{}", state.links.base(), path_and_query);
        if !twiml::validate_signature(&carrier.auth_token, &url, form.pairs(), &signature) {
            return Err(Rejection::Forbidden("invalid X-Twilio-Signature"));
        }
        Ok(Signed {
            form,
            query,
            config,
            received,
        })
    }
}

fn xml(doc: &twiml::Response) -> Response {
    let mut body = Vec::with_capacity(512);
    doc.write_to(&mut body);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        )],
        Body::from(body),
    )
        .into_response()
}

fn empty() -> Response {
    xml(&twiml::Response::default())
}

fn bad_request(e: impl std::fmt::Display) -> Response {
    Rejection::BadRequest(e.to_string()).into_response()
}

fn observe(endpoint: &'static str, result: &'static str, since: Instant) {
    metrics::histogram!(WEBHOOK_SECONDS, "endpoint" => endpoint)
        .record(since.elapsed().as_secs_f64());
    metrics::counter!(WEBHOOK_REQUESTS, "endpoint" => endpoint, "result" => result).increment(1);
}

/// The inbound call to `t`'s number, logged with `answer`, attributed to the website visitor
/// holding the number when it is a DNI pool's (also when the call goes to backup routing: the
/// visit was tracked all along).
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
    received.first_call = Some(state.callers.first_call(&t.company.slug, &call.from));
    received
}

fn answer_of(outcome: &Outcome, state: &AppState) -> Answer {
    Answer {
        answered_at: Some(state.clock.now()),
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

/// Makes the batch durable, then answers `doc`; if the store cannot confirm in time, answers
/// backup routing instead and logs why. The events stay queued (or spooled) either way.
async fn durable_then(
    state: &AppState,
    endpoint: &'static str,
    since: Instant,
    call_sid: &str,
    batch: Batch,
    doc: &twiml::Response,
    company: Option<&Company>,
) -> Response {
    let now = state.clock.now();
    let admit = lock(&state.call_log_breaker).admit(now);
    if admit == Admit::Backup {
        // The call log has been failing: the caller is not made to wait for it again. The
        // events are still queued (the writer spools what it cannot commit).
        let store = state.store.clone();
        tokio::spawn(async move {
            let _ = store.append(batch).await;
        });
        let reason = "backup policy: the call log is failing; calls go to backup routing at once until it recovers";
        return backup(state, endpoint, since, call_sid, company, reason.into());
    }
    let result = tokio::time::timeout(DURABILITY_BUDGET, state.store.append(batch)).await;
    let (change, failures, cool_down_s) = {
        let mut breaker = lock(&state.call_log_breaker);
        let change = breaker.record(now, matches!(result, Ok(Ok(()))));
        (change, breaker.after_failures, breaker.cool_down_s)
    };
    match change {
        Some(Change::Opened) => state.admission.notify(
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
    let failure = match result {
        Ok(Ok(())) => {
            observe(endpoint, "ok", since);
            return xml(doc);
        }
        Ok(Err(e)) => format!("call log write failed: {e}"),
        Err(_) => format!("call log write took over {} s", DURABILITY_BUDGET.as_secs()),
    };
    backup(state, endpoint, since, call_sid, company, failure)
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Backup routing: ring the company's primary number (or, with no company, apologise).
fn backup(
    state: &AppState,
    endpoint: &'static str,
    since: Instant,
    call_sid: &str,
    company: Option<&Company>,
    reason: String,
) -> Response {
    tracing::error!(call_sid, endpoint, reason = %reason, "answering with backup routing");
    observe(endpoint, "backup", since);
    let doc = match company {
        Some(c) => engine::backup(&c.primary_number),
        None => engine::not_in_service(),
    };
    // Best effort: the store may be what failed; the writer spools what it cannot commit.
    let event = Event {
        call_sid: call_sid.to_owned(),
        at: state.clock.now(),
        body: EventBody::FlowAnswered(event::FlowAnswered {
            trigger: endpoint.to_owned(),
            digits: None,
            answer: Answer {
                answered_at: Some(state.clock.now()),
                path: vec![],
                dialed: company
                    .map(|c| vec![c.primary_number.to_string()])
                    .unwrap_or_default(),
                routing: Some(Routing::Backup),
                reason: Some(reason),
                ..Default::default()
            },
        }),
    };
    let store = state.store.clone();
    tokio::spawn(async move {
        let _ = store
            .append(Batch {
                events: vec![event],
                turns: vec![],
                ..Default::default()
            })
            .await;
    });
    xml(&doc)
}

async fn voice(State(state): State<Arc<AppState>>, req: Signed) -> Response {
    let call = match CallParams::from_form(&req.form) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    let now = state.clock.now();
    let tracker = req
        .config
        .tracker_for(&call.to)
        .filter(|t| t.carrier.account_sid == call.account_sid);
    let Some(t) = tracker else {
        // Still a call: logged (under no account, so no API key sees it) for the operator.
        tracing::warn!(call_sid = %call.call_sid, "call to a number dialtone does not track");
        metrics::counter!(CALLS_RECEIVED, "routing" => "unknown_number").increment(1);
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
                    answered_at: Some(state.clock.now()),
                    reason: Some("number not tracked".into()),
                    ..Default::default()
                },
                attribution: None,
                first_call: None,
            }),
        };
        let batch = Batch {
            events: vec![event],
            turns: vec![],
            ..Default::default()
        };
        let doc = engine::not_in_service();
        return durable_then(
            &state,
            "voice",
            req.received,
            &call.call_sid,
            batch,
            &doc,
            None,
        )
        .await;
    };
    let rules = state.backup_rules.load();
    let rule = dialtone_core::backup::rule_for(
        &rules,
        &req.config,
        t.company,
        &t.tracker.name,
        &call.call_sid,
        now,
    );
    let (answer, doc, turns) = match rule {
        // An operator sent these calls to backup: still tracked and logged, not routed.
        Some(rule) => {
            metrics::counter!(CALLS_RECEIVED, "routing" => "backup_rule").increment(1);
            let primary = &t.company.primary_number;
            let answer = Answer {
                answered_at: Some(now),
                dialed: vec![primary.to_string()],
                routing: Some(Routing::Backup),
                reason: Some(format!("backup rule {}: {}", rule.id, rule.reason)),
                ..Default::default()
            };
            (answer, engine::backup(primary), vec![])
        }
        None => {
            let shaper = state.admission.for_call(
                t.carrier,
                req.config.degrade(t.company),
                req.config.admission.degrade,
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
            state.admission.dialed(
                t.carrier,
                &t.company.slug,
                &call.call_sid,
                now,
                engine::seconds_before_dial(&outcome.response).unwrap_or(0.0),
                outcome.dialed.len(),
                outcome.degraded.is_some(),
            );
            metrics::counter!(CALLS_RECEIVED, "routing" => "normal").increment(1);
            let answer = answer_of(&outcome, &state);
            (answer, outcome.response, outcome.turn.into_iter().collect())
        }
    };
    let event = Event {
        call_sid: call.call_sid.clone(),
        at: now,
        body: EventBody::CallReceived(received(&state, &req.config, &t, &call, now, answer)),
    };
    let batch = Batch {
        events: vec![event],
        turns,
        ..Default::default()
    };
    durable_then(
        &state,
        "voice",
        req.received,
        &call.call_sid,
        batch,
        &doc,
        Some(t.company),
    )
    .await
}

/// The company and flow a callback URL names, from the current configuration.
fn flow_of<'c>(
    config: &'c Config,
    at: &Resume,
) -> Option<(&'c Company, &'c Flow, &'c CarrierAccount)> {
    let company = config.company(&at.company)?;
    let flow = company.flows.get(&at.flow)?;
    Some((company, flow, &config.carrier_accounts[company.carrier]))
}

/// Shared by the flow callbacks: resume the engine, log, answer.
async fn continue_flow(
    state: &AppState,
    req: &Signed,
    endpoint: &'static str,
    call: &CallParams,
    input: Input,
    mut events: Vec<Event>,
) -> Response {
    let at = match Resume::parse(&req.query) {
        Ok(at) => at,
        Err(e) => return bad_request(e),
    };
    let Some((company, flow, carrier)) = flow_of(&req.config, &at) else {
        let reason = format!(
            "company `{}` or its flow `{}` is no longer configured",
            at.company, at.flow
        );
        return backup(state, endpoint, req.received, &call.call_sid, None, reason);
    };
    if carrier.account_sid != call.account_sid {
        return Rejection::Forbidden("callback for a company of another carrier account")
            .into_response();
    }
    let now = state.clock.now();
    let shaper = state.admission.for_call(
        carrier,
        req.config.degrade(company),
        req.config.admission.degrade,
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
    let outcome = match engine::resume(&engine_call, &state.links, &state.turns, &at, input) {
        Ok(o) => {
            // A dial continued in the shape it started with is not counted twice.
            let newly_degraded = o.degraded.is_some() && at.shape == DialShape::Full;
            state.admission.dialed(
                carrier,
                &company.slug,
                &call.call_sid,
                now,
                engine::seconds_before_dial(&o.response).unwrap_or(0.0),
                o.dialed.len(),
                newly_degraded,
            );
            o
        }
        Err(e) => {
            return backup(
                state,
                endpoint,
                req.received,
                &call.call_sid,
                Some(company),
                e.to_string(),
            );
        }
    };
    events.push(Event {
        call_sid: call.call_sid.clone(),
        at: now,
        body: EventBody::FlowAnswered(event::FlowAnswered {
            trigger: endpoint.to_owned(),
            digits,
            answer: answer_of(&outcome, state),
        }),
    });
    let batch = Batch {
        events,
        turns: outcome.turn.clone().into_iter().collect(),
        ..Default::default()
    };
    durable_then(
        state,
        endpoint,
        req.received,
        &call.call_sid,
        batch,
        &outcome.response,
        Some(company),
    )
    .await
}

async fn gather(State(state): State<Arc<AppState>>, req: Signed) -> Response {
    let result = match GatherResult::from_form(&req.form) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let input = Input::Menu {
        digits: result.digits.clone(),
    };
    continue_flow(&state, &req, "gather", &result.call, input, vec![]).await
}

async fn dial(State(state): State<Arc<AppState>>, req: Signed) -> Response {
    let result = match DialResult::from_form(&req.form) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let answered = matches!(
        result.dial_call_status,
        DialCallStatus::Completed | DialCallStatus::Answered
    );
    if let Some(carrier) = req.config.carrier_by_sid(&result.call.account_sid) {
        state
            .admission
            .dial_ended(carrier, &result.call.call_sid, answered);
    }
    let ended = Event {
        call_sid: result.call.call_sid.clone(),
        at: state.clock.now(),
        body: EventBody::DialEnded(event::DialEnded {
            status: result.dial_call_status.as_str().to_owned(),
            dial_call_sid: result.dial_call_sid.clone(),
            duration_s: result.dial_call_duration,
        }),
    };
    continue_flow(
        &state,
        &req,
        "dial",
        &result.call,
        Input::DialEnded { answered },
        vec![ended],
    )
    .await
}

async fn voicemail(State(state): State<Arc<AppState>>, req: Signed) -> Response {
    let result = match RecordResult::from_form(&req.form) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let mut events = vec![];
    if result.recording_duration.is_none_or(|d| d > 0) {
        events.push(Event {
            call_sid: result.call.call_sid.clone(),
            at: state.clock.now(),
            body: EventBody::Recording(event::RecordingUpdate {
                recording_sid: recording_sid_of(&result.recording_url),
                url: result.recording_url.clone(),
                status: "completed".into(),
                duration_s: result.recording_duration,
                voicemail: true,
            }),
        });
    }
    continue_flow(
        &state,
        &req,
        "voicemail",
        &result.call,
        Input::VoicemailEnded,
        events,
    )
    .await
}

/// The carrier's recording URLs end in the recording's sid.
fn recording_sid_of(url: &str) -> String {
    let last = url.rsplit('/').next().unwrap_or_default();
    last.split('.').next().unwrap_or_default().to_owned()
}

async fn whisper(req: Signed) -> Response {
    let since = req.received;
    let at = match Resume::parse(&req.query) {
        Ok(at) => at,
        Err(e) => return bad_request(e),
    };
    let doc = flow_of(&req.config, &at)
        .ok_or_else(|| "flow no longer configured".to_owned())
        .and_then(|(_, flow, _)| engine::whisper(flow, &at.step).map_err(|e| e.to_string()));
    match doc {
        Ok(doc) => {
            observe("whisper", "ok", since);
            xml(&doc)
        }
        Err(reason) => {
            // No whisper is better than no call: connect the agent without one.
            tracing::warn!(reason = %reason, "whisper unavailable");
            observe("whisper", "degraded", since);
            empty()
        }
    }
}

async fn status(State(state): State<Arc<AppState>>, req: Signed) -> Response {
    let cb = match StatusCallback::from_form(&req.form) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    let now = state.clock.now();
    if cb.call.call_status.is_final()
        && let Some(carrier) = req.config.carrier_by_sid(&cb.call.account_sid)
    {
        state.admission.call_ended(carrier, &cb.call.call_sid, now);
    }
    let event = Event {
        call_sid: cb.call.call_sid.clone(),
        at: now,
        body: EventBody::CallStatus(event::CallStatusUpdate {
            status: cb.call.call_status.as_str().to_owned(),
            duration_s: cb.call_duration,
        }),
    };
    acknowledge(&state, "status", req.received, event).await
}

async fn leg(State(state): State<Arc<AppState>>, req: Signed) -> Response {
    let cb = match StatusCallback::from_form(&req.form) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    let Some(parent) = cb.call.parent_call_sid.clone() else {
        return bad_request("missing required parameter `ParentCallSid`");
    };
    let status = cb.call.call_status.as_str();
    let now = state.clock.now();
    let carrier = req.config.carrier_by_sid(&cb.call.account_sid);
    if let Some(carrier) = carrier {
        match cb.event {
            Some(CallEvent::Initiated) => {
                state
                    .admission
                    .leg_started(carrier, &parent, &cb.call.call_sid, now);
            }
            Some(CallEvent::Ringing) => state.admission.leg_rang(carrier, &parent, now),
            Some(CallEvent::Answered) => state.admission.leg_answered(carrier, &parent),
            _ => {}
        }
    }
    if cb.call.call_status.is_final() {
        metrics::counter!(LEGS, "status" => status.to_owned()).increment(1);
        if let Some(carrier) = carrier {
            state.admission.leg_ended(carrier, &cb.call.call_sid);
        }
    }
    let event = Event {
        call_sid: parent,
        at: now,
        body: EventBody::Leg(event::LegUpdate {
            leg_sid: cb.call.call_sid.clone(),
            to: cb.call.to.clone(),
            status: status.to_owned(),
            event: cb.event.map(|e| e.as_str().to_owned()),
            duration_s: cb.call_duration,
        }),
    };
    acknowledge(&state, "leg", req.received, event).await
}

async fn recording(State(state): State<Arc<AppState>>, req: Signed) -> Response {
    let rec = match RecordingStatus::from_form(&req.form) {
        Ok(r) => r,
        Err(e) => return bad_request(e),
    };
    let voicemail = req.query.split('&').any(|p| p == "voicemail=1");
    let event = Event {
        call_sid: rec.call_sid.clone(),
        at: state.clock.now(),
        body: EventBody::Recording(event::RecordingUpdate {
            recording_sid: rec.recording_sid.clone(),
            url: rec.recording_url.clone(),
            status: rec.recording_status.clone(),
            duration_s: rec.recording_duration,
            voicemail,
        }),
    };
    acknowledge(&state, "recording", req.received, event).await
}

/// Status-type callbacks: log durably, answer an empty document. If the log cannot confirm, the
/// carrier gets a 200 all the same (a retry would not help the caller) and the writer spools.
async fn acknowledge(
    state: &AppState,
    endpoint: &'static str,
    since: Instant,
    event: Event,
) -> Response {
    let batch = Batch {
        events: vec![event],
        turns: vec![],
        ..Default::default()
    };
    match tokio::time::timeout(DURABILITY_BUDGET, state.store.append(batch)).await {
        Ok(Ok(())) => observe(endpoint, "ok", since),
        Ok(Err(e)) => {
            tracing::error!(endpoint, error = %e, "call log write failed");
            observe(endpoint, "store_error", since);
        }
        Err(_) => {
            tracing::error!(endpoint, "call log write timed out");
            observe(endpoint, "store_error", since);
        }
    }
    empty()
}
