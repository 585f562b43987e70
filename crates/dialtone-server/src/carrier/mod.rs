//! The carrier-facing webhooks (Twilio dialect).
//!
//! Every request is signature-checked before anything else. A carrier-facing endpoint never
//! answers 5xx: when something inside fails, the caller still gets the safest routing dialtone
//! can give (backup TwiML ringing the company's primary number) and the reason is logged.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use dialtone_core::backup::Admit;
use dialtone_core::config::Config;
use dialtone_core::engine::{self, Input};
use dialtone_core::event::{self, Event, EventBody};
use dialtone_core::links::Resume;
use dialtone_store::{Batch, StoreError};
use dialtone_twiml as twiml;
use dialtone_twiml::CallEvent;
use dialtone_twiml::Form;
use dialtone_twiml::webhook::{
    CallParams, DialCallStatus, DialResult, GatherResult, RecordResult, RecordingStatus,
    StatusCallback,
};

use crate::AppState;
use crate::telemetry::{LEGS, WEBHOOK_REQUESTS, WEBHOOK_SECONDS};
use decide::NotResumed;
use respond::respond;

mod decide;
mod respond;

/// Carrier webhooks are small; anything bigger is not from the carrier.
const MAX_BODY: usize = 64 * 1024;

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
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => Rejection::TooLarge,
                // Cut short, or too slow (the connection's body deadline).
                _ => Rejection::BadRequest(format!(
                    "the request body was not read: {}",
                    e.body_text()
                )),
            })?;
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

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn voice(State(state): State<Arc<AppState>>, req: Signed) -> Response {
    let call = match CallParams::from_form(&req.form) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    let now = state.clock.now();
    let policy_open = lock(&state.call_log_breaker).admit(now) == Admit::Backup;
    let decision = decide::voice(&state, &req.config, &call, now, policy_open);
    respond(&state, &call.account_sid, req.received, decision).await
}

/// Shared by the flow callbacks: decide, log, answer.
async fn continue_flow(
    state: &Arc<AppState>,
    req: &Signed,
    endpoint: &'static str,
    call: &CallParams,
    input: Input,
    events: Vec<Event>,
) -> Response {
    let now = state.clock.now();
    let policy_open = lock(&state.call_log_breaker).admit(now) == Admit::Backup;
    let callback = decide::Callback {
        query: &req.query,
        endpoint,
        call,
        input,
        events,
    };
    let decided = decide::resume(state, &req.config, callback, policy_open);
    match decided {
        Ok(decision) => respond(state, &call.account_sid, req.received, decision).await,
        Err(NotResumed::BadUrl(e)) => bad_request(e),
        Err(NotResumed::OtherAccount) => {
            Rejection::Forbidden("callback for a company of another carrier account")
                .into_response()
        }
    }
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
    let doc = decide::flow_of(&req.config, &at)
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
    let event = Event {
        call_sid: cb.call.call_sid.clone(),
        at: now,
        body: EventBody::CallStatus(event::CallStatusUpdate {
            status: cb.call.call_status.as_str().to_owned(),
            duration_s: cb.call_duration,
        }),
    };
    let acknowledged = acknowledge(&state, "status", &req, &cb.call.account_sid, event).await;
    if acknowledged.is_ok()
        && cb.call.call_status.is_final()
        && let Some(carrier) = req.config.carrier_by_sid(&cb.call.account_sid)
    {
        state.admission.call_ended(carrier, &cb.call.call_sid, now);
    }
    acknowledged.unwrap_or_else(|refused| refused)
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
    let event = Event {
        call_sid: parent.clone(),
        at: now,
        body: EventBody::Leg(event::LegUpdate {
            leg_sid: cb.call.call_sid.clone(),
            to: cb.call.to.clone(),
            status: status.to_owned(),
            event: cb.event.map(|e| e.as_str().to_owned()),
            duration_s: cb.call_duration,
        }),
    };
    let acknowledged = acknowledge(&state, "leg", &req, &cb.call.account_sid, event).await;
    if acknowledged.is_err() {
        return acknowledged.unwrap_or_else(|refused| refused);
    }
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
    acknowledged.unwrap_or_else(|refused| refused)
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
    acknowledge(&state, "recording", &req, &rec.account_sid, event)
        .await
        .unwrap_or_else(|refused| refused)
}

/// Status-type callbacks: log durably, answer an empty document (`Ok`: the caller applies the
/// callback's effects). If the log cannot confirm, the carrier gets a 200 all the same (a retry
/// would not help the caller) and the writer spools. An event for another account's call is
/// refused (`Err`: 403, nothing changed).
async fn acknowledge(
    state: &AppState,
    endpoint: &'static str,
    req: &Signed,
    signed_by: &str,
    event: Event,
) -> Result<Response, Response> {
    let call_sid = event.call_sid.clone();
    let batch = Batch {
        events: vec![event],
        signed_by: Some(signed_by.to_owned()),
        ..Default::default()
    };
    match tokio::time::timeout(state.durability_budget, state.store.append(batch)).await {
        Ok(Ok(())) => observe(endpoint, "ok", req.received),
        Ok(Err(StoreError::Refused(refusal))) => {
            return Err(respond::refused(
                endpoint,
                &call_sid,
                refusal,
                &twiml::Response::default(),
            ));
        }
        Ok(Err(e)) => {
            tracing::error!(endpoint, error = %e, "call log write failed");
            observe(endpoint, "store_error", req.received);
        }
        Err(_) => {
            tracing::error!(endpoint, "call log write timed out");
            observe(endpoint, "store_error", req.received);
        }
    }
    Ok(empty())
}
