//! Plays the carrier for one inbound call: fetches TwiML, executes it verb by verb with the
//! carrier's documented defaults, and sends the callbacks the document asks for.
//!
//! Time, the carrier's dial queue, the caller and the people dialed are a [`World`]: for
//! `dialtone call` a [`ScriptWorld`] whose clock jumps by what each verb would take, so a whole call
//! runs in milliseconds; for replay the emulator's world in virtual time, where calls share one
//! dial queue and callers hang up when they run out of patience.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;

use futures_util::StreamExt;
use futures_util::future::{Either, select};
use futures_util::stream::FuturesUnordered;

use chrono::{DateTime, TimeDelta, Utc};
use dialtone_twiml::webhook::{
    CallParams, CallStatus, CallbackRecording, DialCallStatus, DialResult, Direction, GatherResult,
    RecordResult, RecordingStatus, StatusCallback,
};
use dialtone_twiml::{self as twiml, CallEvent, DialRecord, DialTarget, Method, Response, Verb};

use crate::document::executable;
use crate::transcript::{CallOutcome, LegRecord, RecordingRecord, Step, StepKind, Transcript};
use crate::transport::{Transport, WebhookRequest};

/// The call being placed.
#[derive(Debug, Clone)]
pub struct CallSetup {
    pub account_sid: String,
    pub auth_token: String,
    /// The number's Voice URL.
    pub voice_url: String,
    /// The number's status callback (completed), if any.
    pub status_callback: Option<String>,
    /// The number's Fallback URL, requested when a document cannot be fetched or parsed.
    pub fallback_url: Option<String>,
    pub from: String,
    pub to: String,
    pub call_sid: String,
    /// Where the carrier's REST API serves recordings; `None`: an address that never resolves.
    pub api_base_url: Option<String>,
    /// When the call arrived, by the carrier's clock: callbacks' `Timestamp`s and recordings'
    /// start times count from it.
    pub arrived_at: DateTime<Utc>,
}

/// Who answers a `<Dial>`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Answer {
    /// Nobody: every leg rings out.
    #[default]
    Nobody,
    /// The first leg rung.
    Anyone,
    /// These numbers; the first of them rung (in document order) takes the call.
    Numbers(Vec<String>),
}

/// The world around one call: what the caller and the agents do.
#[derive(Debug, Clone)]
pub struct Script {
    /// Keys the caller will press, consumed by `<Gather>`s in order.
    pub digits: String,
    pub answer: Answer,
    /// Seconds an agent's phone rings before they answer.
    pub ring_s: f64,
    /// Seconds caller and agent talk.
    pub talk_s: f64,
    /// Length of the message the caller leaves at a `<Record>`; 0 = hangs up without one.
    pub voicemail_s: u32,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            digits: String::new(),
            answer: Answer::Nobody,
            ring_s: 4.0,
            talk_s: 30.0,
            voicemail_s: 12,
        }
    }
}

/// The caller hung up while waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HungUp;

/// How the person at a dialed number responds to a leg once it rings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PickUp {
    Answers { after_s: f64, talk_s: f64 },
    Busy { after_s: f64 },
    NoAnswer,
}

/// Everything around one call that is not the voice app.
pub trait World {
    /// Seconds since the call arrived.
    fn now(&self) -> f64;
    /// Lets time pass until `at`; `Err` if the caller hangs up first (time then stands at the
    /// hang-up).
    fn wait_until(&self, at: f64) -> impl Future<Output = Result<(), HungUp>>;
    /// Waits for the carrier to set up an outbound leg (its dial queue); the seconds queued.
    /// Dropping the future leaves the queue.
    fn setup_leg(&self) -> impl Future<Output = f64>;
    /// A leg that was set up has ended.
    fn leg_ended(&self);
    /// What the person at `number` (the `index`th of its `<Dial>`) does.
    fn pick_up(&self, number: &str, index: usize) -> PickUp;
    /// The next key the caller presses at a menu, if any.
    fn next_digit(&self) -> Option<char>;
    /// Length of the message the caller leaves at a `<Record>`; 0 = hangs up at the beep.
    fn voicemail_s(&self) -> u32;
    /// The caller reached a person or a voicemail box: they no longer hang up for impatience.
    fn connected(&self);
}

/// The world of one scripted call (`dialtone call`): nobody waits in a queue, nobody hangs up
/// early, and time jumps.
pub struct ScriptWorld {
    script: Script,
    clock: Cell<f64>,
    digits: RefCell<VecDeque<char>>,
}

impl ScriptWorld {
    pub fn new(script: &Script) -> Self {
        Self {
            script: script.clone(),
            clock: Cell::new(0.0),
            digits: RefCell::new(script.digits.chars().collect()),
        }
    }
}

impl World for ScriptWorld {
    fn now(&self) -> f64 {
        self.clock.get()
    }

    // Time moves when the wait is polled, not when it is made: a wait that loses a race (to a
    // leg setting up) must not have moved the clock.
    async fn wait_until(&self, at: f64) -> Result<(), HungUp> {
        self.clock.set(self.clock.get().max(at));
        Ok(())
    }

    fn setup_leg(&self) -> impl Future<Output = f64> {
        std::future::ready(0.0)
    }

    fn leg_ended(&self) {}

    fn pick_up(&self, number: &str, index: usize) -> PickUp {
        let answers = match &self.script.answer {
            Answer::Nobody => false,
            Answer::Anyone => index == 0,
            Answer::Numbers(ns) => ns.iter().any(|n| n == number),
        };
        if answers {
            PickUp::Answers {
                after_s: self.script.ring_s,
                talk_s: self.script.talk_s,
            }
        } else {
            PickUp::NoAnswer
        }
    }

    fn next_digit(&self) -> Option<char> {
        self.digits.borrow_mut().pop_front()
    }

    fn voicemail_s(&self) -> u32 {
        self.script.voicemail_s
    }

    fn connected(&self) {}
}

/// Documents one call may fetch before the carrier gives up (a redirect loop).
const MAX_DOCUMENTS: usize = 100;
const APPLICATION_ERROR: &str = "An application error has occurred. Goodbye.";

pub fn sid(prefix: &str, n: u128) -> String {
    format!("{prefix}{n:032x}")
}

/// A child sid derived from the parent's, so legs of the same call are recognisable.
fn child_sid(parent: &str, k: u32) -> String {
    let base = parent
        .get(2..)
        .and_then(|h| u128::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| {
            parent.bytes().fold(0xcbf2_9ce4_8422_2325_u128, |h, b| {
                (h ^ u128::from(b)).wrapping_mul(0x1000_0000_01b3)
            })
        });
    sid(
        "CA",
        base.wrapping_mul(0x9e37_79b9)
            .wrapping_add(u128::from(k) + 1),
    )
}

/// A recording the carrier made: `n` seeds its sid.
struct Recording {
    n: u128,
    /// 2 for a `-dual` `<Dial record>` (caller and agent apart), else 1.
    channels: u32,
    started_at_s: f64,
    duration_s: u32,
    voicemail: bool,
}

/// Up to this many `<Number>`s of one `<Dial>` are rung.
const MAX_NUMBERS: usize = 10;

/// How the ringing of a `<Dial>` ended.
#[derive(Clone, Copy)]
enum DialEnd {
    /// This leg answered; the caller and agent talk this long.
    Answered(usize, f64),
    Timeout,
    /// Every leg was busy.
    AllBusy,
    CallerHungUp,
}

enum Next {
    /// Fetch this document and run it.
    Fetch {
        method: Method,
        url: String,
        params: Vec<(String, String)>,
        purpose: &'static str,
    },
    /// Run the rest of the current document.
    Continue,
    End(CallOutcome, &'static str),
}

struct Session<'a, T: Transport, W: World> {
    transport: &'a T,
    setup: &'a CallSetup,
    world: &'a W,
    observer: &'a mut dyn FnMut(&Step),
    steps: Vec<Step>,
    leg_records: Vec<LegRecord>,
    recordings: Vec<RecordingRecord>,
    post_dial_delay_s: Option<f64>,
    legs: u32,
    answered: bool,
    voicemail: bool,
    in_progress: bool,
    /// Status callbacks sent so far, per call or leg sid (their `SequenceNumber`).
    sequence: HashMap<String, u32>,
}

/// How a call or leg ended, for its terminal status callback.
struct Ended {
    duration: u32,
    recording: Option<CallbackRecording>,
}

/// The SIP response a call or leg in `status` ended with.
fn sip_response_code(status: CallStatus) -> u32 {
    match status {
        CallStatus::Busy => 486,
        CallStatus::NoAnswer | CallStatus::Canceled => 487,
        CallStatus::Failed => 500,
        _ => 200,
    }
}

/// Runs one call to completion.
pub async fn run_call<T: Transport>(
    transport: &T,
    setup: &CallSetup,
    script: &Script,
) -> Transcript {
    run_call_observed(transport, setup, script, &mut |_| {}).await
}

/// Like [`run_call`], telling `observer` about each step as it happens.
pub async fn run_call_observed<T: Transport>(
    transport: &T,
    setup: &CallSetup,
    script: &Script,
    observer: &mut dyn FnMut(&Step),
) -> Transcript {
    run_call_in(transport, setup, &ScriptWorld::new(script), observer).await
}

/// Runs one call in `world`, telling `observer` about each step as it happens.
pub async fn run_call_in<T: Transport, W: World>(
    transport: &T,
    setup: &CallSetup,
    world: &W,
    observer: &mut dyn FnMut(&Step),
) -> Transcript {
    let mut s = Session {
        transport,
        setup,
        world,
        observer,
        steps: Vec::new(),
        leg_records: Vec::new(),
        recordings: Vec::new(),
        post_dial_delay_s: None,
        legs: 0,
        answered: false,
        voicemail: false,
        in_progress: false,
        sequence: HashMap::new(),
    };
    let outcome = s.run().await;
    let final_status = match outcome {
        CallOutcome::Rejected => CallStatus::Busy,
        _ => CallStatus::Completed,
    };
    let duration_s = world.now();
    if let Some(url) = &setup.status_callback {
        let ended = Ended {
            duration: duration_s.round() as u32,
            recording: None,
        };
        let cb = s.status_callback(s.call_params(final_status), None, Some(ended));
        s.callback(url, Method::Post, cb.to_params(), "status callback")
            .await;
    }
    Transcript {
        call_sid: setup.call_sid.clone(),
        steps: s.steps,
        outcome,
        duration_s,
        legs: s.leg_records,
        post_dial_delay_s: s.post_dial_delay_s,
        recordings: s.recordings,
    }
}

/// Seconds the carrier takes to speak `text`.
fn speech_s(text: &str) -> f64 {
    (text.chars().count() as f64 * 0.07).max(1.0)
}

fn resolve(base: &str, target: &str) -> String {
    match url::Url::parse(base).and_then(|b| b.join(target)) {
        Ok(u) => u.to_string(),
        Err(_) => target.to_owned(),
    }
}

impl<T: Transport, W: World> Session<'_, T, W> {
    fn now(&self) -> f64 {
        self.world.now()
    }

    /// Lets `seconds` pass for the caller.
    async fn pass(&self, seconds: f64) -> Result<(), HungUp> {
        self.world.wait_until(self.now() + seconds).await
    }

    fn note(&mut self, kind: StepKind) {
        let step = Step {
            at_s: (self.now() * 10.0).round() / 10.0,
            kind,
        };
        (self.observer)(&step);
        self.steps.push(step);
    }

    /// The carrier's clock `at_s` seconds into the call, as it writes times (RFC 2822).
    fn wall_time(&self, at_s: f64) -> String {
        crate::cdr::rfc2822(self.setup.arrived_at + TimeDelta::microseconds((at_s * 1e6) as i64))
    }

    /// A status callback about `call` (the call's own, or a leg's), numbered in its sequence;
    /// `ended` for the terminal one.
    fn status_callback(
        &mut self,
        call: CallParams,
        event: Option<CallEvent>,
        ended: Option<Ended>,
    ) -> StatusCallback {
        let counter = self.sequence.entry(call.call_sid.clone()).or_insert(0);
        let sequence_number = *counter;
        *counter += 1;
        let status = call.call_status;
        StatusCallback {
            call,
            event,
            call_duration: ended.as_ref().map(|e| e.duration),
            timestamp: Some(self.wall_time(self.now())),
            sequence_number: Some(sequence_number),
            callback_source: Some("call-progress-events".into()),
            sip_response_code: ended.as_ref().map(|_| sip_response_code(status)),
            duration_minutes: ended.as_ref().map(|e| e.duration.div_ceil(60)),
            recording: ended.and_then(|e| e.recording),
        }
    }

    fn call_params(&self, status: CallStatus) -> CallParams {
        CallParams {
            call_sid: self.setup.call_sid.clone(),
            account_sid: self.setup.account_sid.clone(),
            from: self.setup.from.clone(),
            to: self.setup.to.clone(),
            call_status: status,
            direction: Direction::Inbound,
            api_version: Some("2010-04-01".into()),
            forwarded_from: None,
            caller_name: None,
            parent_call_sid: None,
        }
    }

    fn current_status(&self) -> CallStatus {
        if self.in_progress {
            CallStatus::InProgress
        } else {
            CallStatus::Ringing
        }
    }

    /// A signed request; the reply body, or the carrier's error code and why.
    async fn request(
        &mut self,
        method: Method,
        url: &str,
        params: Vec<(String, String)>,
        purpose: &str,
    ) -> Result<String, (u32, String)> {
        let req = WebhookRequest::new(method, url, params);
        let signature = req.signature(&self.setup.auth_token);
        let result = self.transport.send(&req, &signature).await;
        let (status, elapsed_ms) = match &result {
            Ok(r) => (Some(r.status), r.elapsed.as_secs_f64() * 1000.0),
            Err(_) => (None, 0.0),
        };
        self.note(StepKind::Request {
            method: method.as_str().to_owned(),
            url: req.url.clone(),
            purpose: purpose.to_owned(),
            status,
            elapsed_ms: (elapsed_ms * 10.0).round() / 10.0,
        });
        match result {
            Ok(r) if (200..300).contains(&r.status) => Ok(r.body),
            Ok(r) => Err((11200, format!("{url} answered HTTP {}", r.status))),
            Err(e) => Err((e.error_code(), format!("{url}: {e}"))),
        }
    }

    /// Status-type callbacks: their answers do not matter to the call.
    async fn callback(
        &mut self,
        url: &str,
        method: Method,
        params: Vec<(String, String)>,
        purpose: &str,
    ) {
        if let Err((code, message)) = self.request(method, url, params, purpose).await {
            self.note(StepKind::Error { code, message });
        }
    }

    /// Fetches and parses a document; on failure tries the Fallback URL once.
    async fn document(
        &mut self,
        method: Method,
        url: &str,
        params: Vec<(String, String)>,
        purpose: &str,
    ) -> Option<(Response, String)> {
        let failure = match self.request(method, url, params.clone(), purpose).await {
            Ok(body) => match executable(&body) {
                Ok(doc) => return Some((doc, url.to_owned())),
                Err((code, e)) => (code, format!("{url}: {e}")),
            },
            Err(f) => f,
        };
        self.note(StepKind::Error {
            code: failure.0,
            message: failure.1.clone(),
        });
        let fallback = self.setup.fallback_url.clone()?;
        let mut with_error = params;
        with_error.push(("ErrorCode".into(), failure.0.to_string()));
        with_error.push((
            "ErrorUrl".into(),
            url.split('#').next().unwrap_or(url).to_owned(),
        ));
        match self
            .request(Method::Post, &fallback, with_error, "fallback")
            .await
        {
            Ok(body) => match executable(&body) {
                Ok(doc) => Some((doc, fallback)),
                Err((code, e)) => {
                    self.note(StepKind::Error {
                        code,
                        message: format!("{fallback}: {e}"),
                    });
                    None
                }
            },
            Err((code, message)) => {
                self.note(StepKind::Error { code, message });
                None
            }
        }
    }

    async fn run(&mut self) -> CallOutcome {
        let params = self.call_params(CallStatus::Ringing).to_params();
        let mut next = Next::Fetch {
            method: Method::Post,
            url: self.setup.voice_url.clone(),
            params,
            purpose: "voice",
        };
        let mut fetched = 0;
        loop {
            let Next::Fetch {
                method,
                url,
                params,
                purpose,
            } = next
            else {
                unreachable!("only fetches loop")
            };
            fetched += 1;
            if fetched > MAX_DOCUMENTS {
                self.note(StepKind::Error {
                    code: 11215,
                    message: format!("more than {MAX_DOCUMENTS} documents in one call"),
                });
                return self.application_error().await;
            }
            let Some((doc, doc_url)) = self.document(method, &url, params, purpose).await else {
                return self.application_error().await;
            };
            next = Next::Continue;
            for (i, verb) in doc.verbs.iter().enumerate() {
                next = self.execute(verb, i == 0, &doc_url).await;
                if !matches!(next, Next::Continue) {
                    break;
                }
            }
            match next {
                Next::Fetch { .. } => continue,
                Next::Continue => {
                    self.note(StepKind::Hangup {
                        by: "carrier (end of document)".into(),
                    });
                    return self.outcome();
                }
                Next::End(outcome, by) => {
                    self.note(StepKind::Hangup { by: by.into() });
                    return outcome;
                }
            }
        }
    }

    async fn application_error(&mut self) -> CallOutcome {
        self.note(StepKind::CallerHears {
            text: APPLICATION_ERROR.into(),
        });
        // The call ends either way, whether or not the caller waits for the end of the message.
        let _ = self.pass(speech_s(APPLICATION_ERROR)).await;
        self.note(StepKind::Hangup {
            by: "carrier (application error)".into(),
        });
        CallOutcome::ApplicationError
    }

    fn outcome(&self) -> CallOutcome {
        match () {
            _ if self.answered => CallOutcome::Answered,
            _ if self.voicemail => CallOutcome::Voicemail,
            _ => CallOutcome::NotAnswered,
        }
    }

    async fn hear(&mut self, text: &str, times: u32) -> Result<(), HungUp> {
        for _ in 0..times.max(1) {
            self.note(StepKind::CallerHears {
                text: text.to_owned(),
            });
            self.pass(speech_s(text)).await?;
        }
        Ok(())
    }

    async fn hear_child(&mut self, child: &twiml::GatherChild) -> Result<(), HungUp> {
        match child {
            twiml::GatherChild::Say(s) => self.hear(&s.text, s.loop_count.unwrap_or(1)).await,
            twiml::GatherChild::Play(p) => {
                self.hear(&format!("<audio {}>", p.url), p.loop_count.unwrap_or(1))
                    .await
            }
            twiml::GatherChild::Pause(p) => self.pass(f64::from(p.length.unwrap_or(1))).await,
        }
    }

    /// The caller gave up waiting: the call ends where it stands.
    fn hung_up(&self) -> Next {
        Next::End(CallOutcome::Abandoned, "caller (gave up waiting)")
    }

    async fn execute(&mut self, verb: &Verb, first: bool, doc_url: &str) -> Next {
        if !matches!(verb, Verb::Reject(_)) {
            self.in_progress = true;
        }
        let waited = match verb {
            Verb::Say(s) => self.hear(&s.text, s.loop_count.unwrap_or(1)).await,
            Verb::Play(p) => {
                self.hear(&format!("<audio {}>", p.url), p.loop_count.unwrap_or(1))
                    .await
            }
            Verb::Pause(p) => self.pass(f64::from(p.length.unwrap_or(1))).await,
            Verb::Gather(g) => return self.gather(g, doc_url).await,
            Verb::Dial(d) => return self.dial(d, doc_url).await,
            Verb::Record(r) => return self.record(r, doc_url).await,
            Verb::Redirect(r) => {
                return Next::Fetch {
                    method: r.method.unwrap_or(Method::Post),
                    url: resolve(doc_url, &r.url),
                    params: self.call_params(self.current_status()).to_params(),
                    purpose: "redirect",
                };
            }
            Verb::Hangup => return Next::End(self.outcome(), "app"),
            Verb::Reject(r) => {
                // Only honoured as the first verb: the call is never answered.
                if first {
                    let reason = r.reason.clone().unwrap_or_else(|| "rejected".into());
                    self.note(StepKind::CallerHears {
                        text: format!("<{reason} signal>"),
                    });
                    return Next::End(CallOutcome::Rejected, "app (rejected)");
                }
                return Next::End(self.outcome(), "app");
            }
        };
        match waited {
            Ok(()) => Next::Continue,
            Err(HungUp) => self.hung_up(),
        }
    }

    async fn gather(&mut self, g: &twiml::Gather, doc_url: &str) -> Next {
        for child in &g.children {
            // A caller who already knows the menu may press during the prompt; we let it finish.
            if self.hear_child(child).await.is_err() {
                return self.hung_up();
            }
        }
        let finish = g.finish_on_key.clone().unwrap_or_else(|| "#".into());
        let limit = g.num_digits.map_or(usize::MAX, |n| n as usize);
        let mut pressed = String::new();
        while pressed.len() < limit {
            let Some(c) = self.world.next_digit() else {
                break;
            };
            if finish.contains(c) {
                break;
            }
            pressed.push(c);
        }
        let action = resolve(doc_url, g.action.as_deref().unwrap_or(doc_url));
        let method = g.method.unwrap_or(Method::Post);
        if pressed.is_empty() {
            let timeout = g.timeout.unwrap_or(5);
            self.note(StepKind::GatherTimeout { timeout_s: timeout });
            if self.pass(f64::from(timeout)).await.is_err() {
                return self.hung_up();
            }
            if g.action_on_empty_result != Some(true) {
                return Next::Continue;
            }
        } else {
            self.note(StepKind::CallerPresses {
                digits: pressed.clone(),
            });
            if self.pass(0.3 * pressed.len() as f64).await.is_err() {
                return self.hung_up();
            }
        }
        let result = GatherResult {
            call: self.call_params(CallStatus::InProgress),
            digits: Some(pressed),
        };
        Next::Fetch {
            method,
            url: action,
            params: result.to_params(),
            purpose: "gather action",
        }
    }

    async fn leg_callback(
        &mut self,
        number: &twiml::Number,
        leg: &CallParams,
        event: CallEvent,
        ended: Option<Ended>,
    ) {
        let Some(url) = &number.status_callback else {
            return;
        };
        // Without statusCallbackEvent the carrier reports `completed` only.
        let wanted = if number.status_callback_event.is_empty() {
            event == CallEvent::Completed
        } else {
            number.status_callback_event.contains(&event)
        };
        if !wanted {
            return;
        }
        let cb = self.status_callback(leg.clone(), Some(event), ended);
        let method = number.status_callback_method.unwrap_or(Method::Post);
        self.callback(url, method, cb.to_params(), "leg status")
            .await;
    }

    async fn dial(&mut self, d: &twiml::Dial, doc_url: &str) -> Next {
        let timeout = d.timeout.unwrap_or(30);
        let numbers: Vec<twiml::Number> = d
            .targets
            .iter()
            .filter_map(|t| match t {
                // Callback and whisper URLs may be relative to the document.
                DialTarget::Number(n) => Some(twiml::Number {
                    status_callback: n.status_callback.as_ref().map(|u| resolve(doc_url, u)),
                    url: n.url.as_ref().map(|u| resolve(doc_url, u)),
                    ..n.clone()
                }),
                DialTarget::Bare(n) => Some(twiml::Number {
                    number: n.clone(),
                    ..Default::default()
                }),
                // Clients and SIP endpoints are not emulated yet: they never answer.
                DialTarget::Client(_) | DialTarget::Sip(_) => None,
            })
            .take(MAX_NUMBERS)
            .collect();
        self.note(StepKind::Dialing {
            numbers: numbers.iter().map(|n| n.number.clone()).collect(),
            timeout_s: timeout,
        });
        let from = d
            .caller_id
            .clone()
            .unwrap_or_else(|| self.setup.from.clone());
        let dial_started = self.now();
        // The carrier's timer runs from the verb, so time spent in its dial queue rings no phone.
        let deadline = dial_started + f64::from(timeout);
        let mut legs = Vec::new();
        for n in &numbers {
            self.legs += 1;
            legs.push(CallParams {
                call_sid: child_sid(&self.setup.call_sid, self.legs),
                account_sid: self.setup.account_sid.clone(),
                from: from.clone(),
                to: n.number.clone(),
                call_status: CallStatus::Initiated,
                direction: Direction::OutboundDial,
                api_version: Some("2010-04-01".into()),
                forwarded_from: None,
                caller_name: None,
                parent_call_sid: Some(self.setup.call_sid.clone()),
            });
        }
        let first_record = self.leg_records.len();
        for leg in &legs {
            self.leg_records.push(LegRecord {
                sid: leg.call_sid.clone(),
                to: leg.to.clone(),
                from: from.clone(),
                requested_at_s: dial_started,
                started_at_s: None,
                answered_at_s: None,
                ended_at_s: dial_started,
                status: "canceled",
                talk_s: 0.0,
            });
        }

        // Every leg waits for the carrier to set it up, then rings until someone answers, is
        // busy, the timeout passes or the caller gives up.
        let world = self.world;
        let mut setups: FuturesUnordered<_> = (0..numbers.len())
            .map(|i| async move { (i, world.setup_leg().await) })
            .collect();
        let mut ringing: Vec<Option<(f64, PickUp)>> = vec![None; numbers.len()];
        let ended = loop {
            // The next thing a ringing phone does, else the timeout.
            let next = ringing
                .iter()
                .enumerate()
                .filter_map(|(i, r)| match r {
                    Some((since, PickUp::Answers { after_s, .. }))
                    | Some((since, PickUp::Busy { after_s })) => Some((since + after_s, i)),
                    _ => None,
                })
                .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
                .filter(|(t, _)| *t < deadline);
            let until = next.map_or(deadline, |(t, _)| t);
            let waited = if setups.is_empty() {
                world.wait_until(until).await
            } else {
                let wait = std::pin::pin!(world.wait_until(until));
                match select(setups.next(), wait).await {
                    Either::Left((Some((i, queued_s)), _)) => {
                        self.leg_rings(&numbers[i], &legs[i], first_record + i, queued_s)
                            .await;
                        ringing[i] = Some((self.now(), world.pick_up(&numbers[i].number, i)));
                        continue;
                    }
                    Either::Left((None, _)) => continue,
                    Either::Right((waited, _)) => waited,
                }
            };
            match (waited, next) {
                (Err(HungUp), _) => break DialEnd::CallerHungUp,
                (Ok(()), None) => break DialEnd::Timeout,
                (Ok(()), Some((_, i))) => match ringing[i] {
                    Some((_, PickUp::Answers { talk_s, .. })) => {
                        break DialEnd::Answered(i, talk_s);
                    }
                    _ => {
                        ringing[i] = None;
                        self.leg_ends(
                            &numbers[i],
                            &legs[i],
                            first_record + i,
                            CallStatus::Busy,
                            None,
                        )
                        .await;
                        let others_left = !setups.is_empty() || ringing.iter().any(Option::is_some);
                        if !others_left {
                            break DialEnd::AllBusy;
                        }
                    }
                },
            }
        };
        // Legs still in the carrier's queue are dropped from it: they never rang.
        drop(setups);

        let mut result = DialResult {
            call: self.call_params(CallStatus::InProgress),
            dial_call_status: DialCallStatus::NoAnswer,
            dial_call_sid: None,
            dial_call_duration: Some(0),
            dial_bridged: Some(false),
            recording_url: None,
        };
        let answered = match ended {
            DialEnd::Answered(a, talk_s) => Some((a, talk_s)),
            _ => None,
        };
        if let Some((a, _)) = answered {
            let leg = CallParams {
                call_status: CallStatus::InProgress,
                ..legs[a].clone()
            };
            self.note(StepKind::LegAnswered {
                number: numbers[a].number.clone(),
                sid: leg.call_sid.clone(),
            });
            self.answered = true;
            self.world.connected();
            self.leg_records[first_record + a].answered_at_s = Some(self.now());
            self.leg_callback(&numbers[a], &leg, CallEvent::Answered, None)
                .await;
        }
        for (i, n) in numbers.iter().enumerate() {
            if ringing[i].is_none() || answered.is_some_and(|(a, _)| a == i) {
                continue;
            }
            let status = match ended {
                DialEnd::Timeout => {
                    self.note(StepKind::LegNoAnswer {
                        number: n.number.clone(),
                    });
                    CallStatus::NoAnswer
                }
                _ => {
                    self.note(StepKind::LegCanceled {
                        number: n.number.clone(),
                    });
                    CallStatus::Canceled
                }
            };
            self.leg_ends(n, &legs[i], first_record + i, status, None)
                .await;
        }
        match ended {
            DialEnd::CallerHungUp => return self.hung_up(),
            DialEnd::AllBusy if numbers.len() == 1 => {
                result.dial_call_status = DialCallStatus::Busy;
            }
            DialEnd::Answered(a, talk_s) => {
                let number = numbers[a].clone();
                let leg = CallParams {
                    call_status: CallStatus::InProgress,
                    ..legs[a].clone()
                };
                if let Some(whisper) = &number.url {
                    self.whisper(
                        &resolve(doc_url, whisper),
                        number.method.unwrap_or(Method::Post),
                        &leg,
                    )
                    .await;
                }
                self.note(StepKind::Bridged {
                    number: number.number.clone(),
                    talk_s,
                });
                let _ = self.pass(talk_s).await;
                let talk = talk_s.round() as u32;
                self.leg_records[first_record + a].talk_s = talk_s;
                let recording = d
                    .record
                    .is_some_and(|r| r != DialRecord::DoNotRecord)
                    .then(|| Recording {
                        n: u128::from_str_radix(&leg.call_sid[2..], 16).unwrap_or(0),
                        channels: match d.record {
                            Some(
                                DialRecord::RecordFromAnswerDual
                                | DialRecord::RecordFromRingingDual,
                            ) => 2,
                            _ => 1,
                        },
                        started_at_s: self.now() - talk_s,
                        duration_s: talk,
                        voicemail: false,
                    });
                let reported = recording.as_ref().map(|r| CallbackRecording {
                    url: self.recording_url(&sid("RE", r.n)),
                    sid: sid("RE", r.n),
                    duration: r.duration_s,
                });
                self.leg_ends(
                    &number,
                    &legs[a],
                    first_record + a,
                    CallStatus::Completed,
                    reported,
                )
                .await;
                result.dial_call_status = DialCallStatus::Completed;
                result.dial_call_sid = Some(leg.call_sid.clone());
                result.dial_call_duration = Some(talk);
                result.dial_bridged = Some(true);
                if let Some(recording) = recording {
                    let url = self
                        .recorded(recording, d.recording_status_callback.as_deref(), doc_url)
                        .await;
                    result.recording_url = Some(url);
                }
            }
            DialEnd::Timeout | DialEnd::AllBusy => {}
        }
        match &d.action {
            Some(action) => Next::Fetch {
                method: d.method.unwrap_or(Method::Post),
                url: resolve(doc_url, action),
                params: result.to_params(),
                purpose: "dial action",
            },
            None => Next::Continue,
        }
    }

    /// A leg left the carrier's queue and rings: its initiated and ringing callbacks.
    async fn leg_rings(
        &mut self,
        number: &twiml::Number,
        leg: &CallParams,
        record: usize,
        queued_s: f64,
    ) {
        let now = self.now();
        self.post_dial_delay_s
            .get_or_insert(now - self.leg_records[record].requested_at_s);
        self.leg_records[record].started_at_s = Some(now);
        self.note(StepKind::LegRinging {
            number: number.number.clone(),
            queued_s: (queued_s * 1000.0).round() / 1000.0,
        });
        self.leg_callback(number, leg, CallEvent::Initiated, None)
            .await;
        let ringing = CallParams {
            call_status: CallStatus::Ringing,
            ..leg.clone()
        };
        self.leg_callback(number, &ringing, CallEvent::Ringing, None)
            .await;
    }

    /// A leg that rang is over: its completed callback (with its recording, if it was
    /// recorded), and its slot freed.
    async fn leg_ends(
        &mut self,
        number: &twiml::Number,
        leg: &CallParams,
        record: usize,
        status: CallStatus,
        recording: Option<CallbackRecording>,
    ) {
        let talk = self.leg_records[record].talk_s.round() as u32;
        self.leg_records[record].ended_at_s = self.now();
        self.leg_records[record].status = status.as_str();
        self.world.leg_ended();
        let done = CallParams {
            call_status: status,
            ..leg.clone()
        };
        let ended = Ended {
            duration: talk,
            recording,
        };
        self.leg_callback(number, &done, CallEvent::Completed, Some(ended))
            .await;
    }

    /// A finished recording: noted, and reported to `callback` if the document asked. Returns
    /// its URL.
    async fn recorded(&mut self, rec: Recording, callback: Option<&str>, doc_url: &str) -> String {
        let recording_sid = sid("RE", rec.n);
        let url = self.recording_url(&recording_sid);
        self.recordings.push(RecordingRecord {
            sid: recording_sid.clone(),
            // The carrier files a recording under the parent call, a recorded <Dial>'s too.
            call_sid: self.setup.call_sid.clone(),
            url: url.clone(),
            started_at_s: rec.started_at_s,
            duration_s: rec.duration_s,
            channels: rec.channels,
            voicemail: rec.voicemail,
        });
        self.note(StepKind::Recorded {
            url: url.clone(),
            duration_s: rec.duration_s,
            voicemail: rec.voicemail,
        });
        if let Some(cb) = callback {
            let source = if rec.voicemail {
                "RecordVerb"
            } else {
                "DialVerb"
            };
            let status = RecordingStatus {
                account_sid: self.setup.account_sid.clone(),
                call_sid: self.setup.call_sid.clone(),
                recording_sid,
                recording_url: url.clone(),
                recording_status: "completed".into(),
                recording_duration: Some(rec.duration_s),
                recording_channels: Some(rec.channels),
                recording_source: Some(source.into()),
                recording_start_time: Some(self.wall_time(rec.started_at_s)),
                recording_track: Some("both".into()),
                // The carrier sends 0 for a recording that completed.
                error_code: Some("0".into()),
            };
            self.callback(
                &resolve(doc_url, cb),
                Method::Post,
                status.to_params(),
                "recording status",
            )
            .await;
        }
        url
    }

    /// Where the carrier serves the recording `recording_sid`.
    fn recording_url(&self, recording_sid: &str) -> String {
        let base = self
            .setup
            .api_base_url
            .as_deref()
            .unwrap_or("https://carrier.invalid");
        format!(
            "{}/2010-04-01/Accounts/{}/Recordings/{recording_sid}",
            base.trim_end_matches('/'),
            self.setup.account_sid
        )
    }

    /// Runs the whisper document for the agent; a broken whisper does not stop the bridge.
    async fn whisper(&mut self, url: &str, method: Method, leg: &CallParams) {
        let body = match self.request(method, url, leg.to_params(), "whisper").await {
            Ok(b) => b,
            Err((code, message)) => return self.note(StepKind::Error { code, message }),
        };
        match executable(&body) {
            Ok(doc) => {
                for verb in &doc.verbs {
                    match verb {
                        Verb::Say(s) => {
                            self.note(StepKind::AgentHears {
                                text: s.text.clone(),
                            });
                            let _ = self.pass(speech_s(&s.text)).await;
                        }
                        Verb::Play(p) => self.note(StepKind::AgentHears {
                            text: format!("<audio {}>", p.url),
                        }),
                        Verb::Pause(p) => {
                            let _ = self.pass(f64::from(p.length.unwrap_or(1))).await;
                        }
                        other => self.note(StepKind::Error {
                            code: 13201,
                            message: format!("{other:?} is not allowed in a whisper"),
                        }),
                    }
                }
            }
            Err((code, e)) => self.note(StepKind::Error {
                code,
                message: format!("whisper: {e}"),
            }),
        }
    }

    async fn record(&mut self, r: &twiml::Record, doc_url: &str) -> Next {
        let length = self.world.voicemail_s().min(r.max_length.unwrap_or(3600));
        if length == 0 {
            // The caller hung up at the beep.
            return Next::End(self.outcome(), "caller");
        }
        self.world.connected();
        let _ = self.pass(f64::from(length)).await;
        let n = u128::from_str_radix(self.setup.call_sid.get(2..).unwrap_or("0"), 16).unwrap_or(0);
        let recording = Recording {
            n: n.wrapping_add(0x5eed),
            channels: 1,
            started_at_s: self.now() - f64::from(length),
            duration_s: length,
            voicemail: true,
        };
        let url = self
            .recorded(recording, r.recording_status_callback.as_deref(), doc_url)
            .await;
        self.voicemail = true;
        let result = RecordResult {
            call: self.call_params(CallStatus::InProgress),
            recording_url: url,
            recording_duration: Some(length),
            digits: Some("hangup".into()),
        };
        Next::Fetch {
            method: r.method.unwrap_or(Method::Post),
            url: resolve(doc_url, r.action.as_deref().unwrap_or(doc_url)),
            params: result.to_params(),
            purpose: "record action",
        }
    }
}
