//! The flow engine: where a call is in its flow, plus what just happened, gives the TwiML to
//! answer. Pure: the time, the round-robin turns and the URLs are all handed in.

use chrono::{DateTime, Utc};
use dialtone_twiml as twiml;

use crate::admission::DialShape;
use crate::config::Company;
use crate::flow::{Action, CallerId, DialStep, Flow, Menu, Message, StepId, Strategy};
use crate::links::{Callback, Links, Resume};
use crate::phone::PhoneNumber;
use crate::schedule::{is_holiday, is_open};

/// The call being routed.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub company: &'a Company,
    pub flow: &'a Flow,
    pub tracking_number: &'a str,
    pub now: DateTime<Utc>,
    /// What the carrier's dial limit allows right now.
    pub admission: &'a (dyn Admission + Sync),
}

/// How many legs a dial may ask for, decided by the caller of the engine from the carrier's
/// dial limit (see [`crate::admission`]).
pub trait Admission {
    /// The shape of a dial that would ask for `legs` destinations at once.
    fn shape(&self, legs: u32) -> DialShape;
}

impl std::fmt::Debug for dyn Admission + Sync + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admission")
    }
}

/// Seconds of speech a caller hears before `response`'s `<Dial>` runs: when the carrier will
/// actually ask for its legs. Text-to-speech runs at about 14 characters a second (150 words a
/// minute); audio files are not known and count as nothing. `None` without a `<Dial>`.
pub fn seconds_before_dial(response: &twiml::Response) -> Option<f64> {
    let dial = response
        .verbs
        .iter()
        .position(|v| matches!(v, twiml::Verb::Dial(_)))?;
    Some(speech_seconds(&response.verbs[..dial]))
}

/// Seconds the caller spends hearing `verbs` (see [`seconds_before_dial`]).
fn speech_seconds(verbs: &[twiml::Verb]) -> f64 {
    verbs
        .iter()
        .map(|verb| match verb {
            twiml::Verb::Say(s) => {
                let once = (s.text.chars().count() as f64 * 0.07).max(1.0);
                once * f64::from(s.loop_count.unwrap_or(1).max(1))
            }
            twiml::Verb::Pause(p) => f64::from(p.length.unwrap_or(1)),
            _ => 0.0,
        })
        .sum()
}

/// Every dial as the flow says.
pub struct Unlimited;

impl Admission for Unlimited {
    fn shape(&self, _legs: u32) -> DialShape {
        DialShape::Full
    }
}

/// Round-robin turns, kept by the caller of the engine (they outlive a call and survive restarts).
pub trait Turns {
    /// Returns this call's turn for `key` and moves the counter on.
    fn take_turn(&self, key: &str) -> u64;
}

/// What happened since the flow last answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// The caller pressed these keys at a menu, or nothing (`None`) before the timeout.
    Menu { digits: Option<String> },
    /// A dial ended; `answered` when an agent took the call.
    DialEnded { answered: bool },
    /// The voicemail recording ended.
    VoicemailEnded,
}

/// The engine's answer: the document for the carrier and what it means for the call log.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub response: twiml::Response,
    /// Step names entered while answering, in order.
    pub path: Vec<String>,
    /// Destinations asked to ring now.
    pub dialed: Vec<PhoneNumber>,
    pub strategy: Option<Strategy>,
    pub recording: bool,
    pub notice_played: bool,
    pub voicemail_offered: bool,
    /// A round-robin counter that moved: (key, turns taken so far).
    pub turn: Option<(String, u64)>,
    /// The shape of the dial asked for, when it is not the flow's own (degraded).
    pub degraded: Option<DialShape>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("flow `{flow}` has no step `{step}` (was the configuration changed during the call?)")]
    UnknownStep { flow: String, step: String },
    #[error(
        "step `{step}` of flow `{flow}` is a `{kind}` step, not the {expected} this callback is for"
    )]
    WrongStep {
        flow: String,
        step: String,
        kind: &'static str,
        expected: &'static str,
    },
}

/// Starts a call at the flow's first step.
pub fn start(call: &Call, links: &Links, turns: &dyn Turns) -> Outcome {
    let mut run = Run::new(call, links, turns, false);
    run.from(Some(call.flow.start));
    run.out
}

/// Continues a call from the step a callback URL names.
pub fn resume(
    call: &Call,
    links: &Links,
    turns: &dyn Turns,
    at: &Resume,
    input: Input,
) -> Result<Outcome, EngineError> {
    let flow = call.flow;
    let id = flow
        .step_index(&at.step)
        .ok_or_else(|| EngineError::UnknownStep {
            flow: flow.name.clone(),
            step: at.step.clone(),
        })?;
    let action = &flow.steps[id].action;
    let wrong = |expected| EngineError::WrongStep {
        flow: flow.name.clone(),
        step: at.step.clone(),
        kind: action.kind(),
        expected,
    };
    let mut run = Run::new(call, links, turns, at.recording);
    run.shape = at.shape;
    match (input, action) {
        (Input::Menu { digits }, Action::Menu(menu)) => {
            let choice = digits.as_deref().filter(|d| !d.is_empty());
            match choice.and_then(|d| menu.options.get(d)) {
                Some(&target) => run.from(Some(target)),
                None if at.n <= menu.retries => {
                    if choice.is_some() {
                        run.say(&menu.invalid_message);
                    }
                    run.menu(id, menu, at.n + 1);
                }
                None => run.from(Some(menu.default)),
            }
        }
        (Input::Menu { .. }, _) => return Err(wrong("menu")),
        (Input::DialEnded { answered: true }, Action::Dial(_)) => {
            run.out.response.verbs.push(twiml::Verb::Hangup);
        }
        (Input::DialEnded { answered: false }, Action::Dial(dial)) => {
            let tried = at.n as usize + 1;
            let more = match (dial.strategy, at.shape) {
                // The primary alone did not answer: now the others, together.
                (Strategy::Simulcall, DialShape::PrimaryFirst) => {
                    at.n == 0 && tried < dial.destinations.len()
                }
                (Strategy::Simulcall, _) => false,
                _ => tried < dial.destinations.len(),
            };
            if more {
                run.dial(id, dial, at.n + 1, at.rotation);
            } else {
                run.from(dial.next);
            }
        }
        (Input::DialEnded { .. }, _) => return Err(wrong("dial")),
        (Input::VoicemailEnded, Action::Voicemail { .. }) => {
            run.say("Thank you. Goodbye.");
            run.out.response.verbs.push(twiml::Verb::Hangup);
        }
        (Input::VoicemailEnded, _) => return Err(wrong("voicemail")),
    }
    Ok(run.out)
}

/// The whisper an agent hears on answering, before being connected to the caller.
pub fn whisper(flow: &Flow, step: &str) -> Result<twiml::Response, EngineError> {
    let id = flow
        .step_index(step)
        .ok_or_else(|| EngineError::UnknownStep {
            flow: flow.name.clone(),
            step: step.to_owned(),
        })?;
    match &flow.steps[id].action {
        Action::Dial(DialStep { whisper, .. }) => Ok(twiml::Response {
            verbs: whisper
                .iter()
                .map(|text| {
                    twiml::Verb::Say(twiml::Say {
                        text: text.clone(),
                        ..Default::default()
                    })
                })
                .collect(),
        }),
        other => Err(EngineError::WrongStep {
            flow: flow.name.clone(),
            step: step.to_owned(),
            kind: other.kind(),
            expected: "dial",
        }),
    }
}

/// The safest routing when dialtone cannot do better: ring the company's primary number.
pub fn backup(primary: &PhoneNumber) -> twiml::Response {
    twiml::Response {
        verbs: vec![twiml::Verb::Dial(twiml::Dial {
            targets: vec![twiml::DialTarget::Number(twiml::Number {
                number: primary.to_string(),
                ..Default::default()
            })],
            ..Default::default()
        })],
    }
}

/// Backup routing answered by a running dialtone: the primary number rung as [`backup`] does,
/// with the leg's status callbacks, so that the call log learns whether someone answered.
pub fn backup_observed(primary: &PhoneNumber, links: &Links, company: &str) -> twiml::Response {
    twiml::Response {
        verbs: vec![twiml::Verb::Dial(twiml::Dial {
            targets: vec![observed(primary, links.leg_status(company), None)],
            ..Default::default()
        })],
    }
}

/// A number dialed with every status callback of its leg (and, optionally, a whisper).
fn observed(
    number: &PhoneNumber,
    leg_status: String,
    whisper: Option<String>,
) -> twiml::DialTarget {
    twiml::DialTarget::Number(twiml::Number {
        number: number.to_string(),
        url: whisper,
        status_callback: Some(leg_status),
        status_callback_event: vec![
            twiml::CallEvent::Initiated,
            twiml::CallEvent::Ringing,
            twiml::CallEvent::Answered,
            twiml::CallEvent::Completed,
        ],
        ..Default::default()
    })
}

/// For numbers dialtone does not track.
pub fn not_in_service() -> twiml::Response {
    twiml::Response {
        verbs: vec![
            twiml::Verb::Say(twiml::Say {
                text: "The number you have called is not in service.".into(),
                ..Default::default()
            }),
            twiml::Verb::Hangup,
        ],
    }
}

struct Run<'a> {
    call: &'a Call<'a>,
    links: &'a Links,
    turns: &'a dyn Turns,
    out: Outcome,
    /// The shape of this call's dial, carried in its callback URLs.
    shape: DialShape,
}

impl<'a> Run<'a> {
    fn new(call: &'a Call<'a>, links: &'a Links, turns: &'a dyn Turns, recording: bool) -> Self {
        Self {
            call,
            links,
            turns,
            out: Outcome {
                recording,
                ..Default::default()
            },
            shape: DialShape::Full,
        }
    }

    fn resume_at(&self, step: StepId, n: u32, rotation: u32) -> Resume {
        Resume {
            company: self.call.company.slug.clone(),
            flow: self.call.flow.name.clone(),
            step: self.call.flow.steps[step].id.clone(),
            recording: self.out.recording,
            n,
            rotation,
            shape: self.shape,
        }
    }

    fn say(&mut self, text: &str) {
        self.out.response.verbs.push(twiml::Verb::Say(twiml::Say {
            text: text.to_owned(),
            ..Default::default()
        }));
    }

    fn message(&mut self, m: &Message) {
        let verb = match m {
            Message::Say(text) => twiml::Verb::Say(twiml::Say {
                text: text.clone(),
                ..Default::default()
            }),
            Message::Play(url) => twiml::Verb::Play(twiml::Play {
                url: url.clone(),
                ..Default::default()
            }),
        };
        self.out.response.verbs.push(verb);
    }

    /// Runs steps that need no answer from the carrier until one does, or the flow ends.
    fn from(&mut self, mut step: Option<StepId>) {
        let flow = self.call.flow;
        // Validation refuses loops without a key press, so this bound is never reached by a
        // loaded flow; it keeps a hand-built one from spinning.
        let mut budget = flow.steps.len() + 1;
        while let Some(id) = step {
            if budget == 0 {
                break;
            }
            budget -= 1;
            self.out.path.push(flow.steps[id].id.clone());
            step = match &flow.steps[id].action {
                Action::Greeting { message, next } => {
                    self.message(message);
                    *next
                }
                Action::RecordingNotice { text, next } => {
                    self.say(text);
                    self.out.notice_played = true;
                    *next
                }
                Action::Record { next } => {
                    self.out.recording = true;
                    *next
                }
                Action::Schedule(s) => {
                    let (now, tz) = (self.call.now, self.call.company.time_zone);
                    let open = is_open(now, tz, &s.hours, &self.call.company.holidays)
                        && !is_holiday(now, tz, &s.holidays);
                    Some(if open { s.open } else { s.closed })
                }
                Action::Menu(menu) => return self.menu(id, menu, 1),
                Action::Dial(dial) => {
                    let rotation = match dial.strategy {
                        Strategy::RoundRobin => {
                            let key = format!(
                                "{}/{}/{}",
                                self.call.company.slug, flow.name, flow.steps[id].id
                            );
                            let turn = self.turns.take_turn(&key);
                            self.out.turn = Some((key, turn + 1));
                            (turn % dial.destinations.len().max(1) as u64) as u32
                        }
                        _ => 0,
                    };
                    self.shape = match dial.strategy {
                        Strategy::Simulcall => {
                            let legs = u32::try_from(dial.destinations.len()).unwrap_or(u32::MAX);
                            self.call.admission.shape(legs)
                        }
                        // One leg at a time already.
                        Strategy::Sequential | Strategy::RoundRobin => DialShape::Full,
                    };
                    return self.dial(id, dial, 0, rotation);
                }
                Action::Voicemail {
                    prompt,
                    max_length_s,
                } => {
                    self.message(prompt);
                    self.out.voicemail_offered = true;
                    let company = &self.call.company.slug;
                    self.out
                        .response
                        .verbs
                        .push(twiml::Verb::Record(twiml::Record {
                            action: Some(
                                self.links
                                    .flow(Callback::Voicemail, &self.resume_at(id, 0, 0)),
                            ),
                            max_length: Some(*max_length_s),
                            finish_on_key: Some("#".into()),
                            play_beep: Some(true),
                            recording_status_callback: Some(self.links.recording(company, true)),
                            ..Default::default()
                        }));
                    self.out.response.verbs.push(twiml::Verb::Hangup);
                    return;
                }
                Action::Hangup { message } => {
                    if let Some(m) = message {
                        self.message(m);
                    }
                    break;
                }
            };
        }
        self.out.response.verbs.push(twiml::Verb::Hangup);
    }

    fn menu(&mut self, id: StepId, menu: &Menu, attempt: u32) {
        let action = self
            .links
            .flow(Callback::Gather, &self.resume_at(id, attempt, 0));
        let prompt = match &menu.prompt {
            Message::Say(text) => twiml::GatherChild::Say(twiml::Say {
                text: text.clone(),
                ..Default::default()
            }),
            Message::Play(url) => twiml::GatherChild::Play(twiml::Play {
                url: url.clone(),
                ..Default::default()
            }),
        };
        self.out
            .response
            .verbs
            .push(twiml::Verb::Gather(twiml::Gather {
                action: Some(action.clone()),
                num_digits: Some(menu.num_digits()),
                timeout: Some(menu.timeout_s),
                children: vec![prompt],
                ..Default::default()
            }));
        // Nothing pressed: the carrier falls through to here, and the same callback decides.
        self.out
            .response
            .verbs
            .push(twiml::Verb::Redirect(twiml::Redirect {
                url: action,
                method: Some(twiml::Method::Post),
            }));
    }

    /// Rings the destinations for position `n` of this dial's order.
    fn dial(&mut self, id: StepId, dial: &DialStep, n: u32, rotation: u32) {
        let count = dial.destinations.len();
        let primary = || dial.destinations.first().cloned().into_iter().collect();
        let now_ringing: Vec<PhoneNumber> = match (dial.strategy, self.shape) {
            (Strategy::Simulcall, DialShape::Full) => dial.destinations.clone(),
            (Strategy::Simulcall, DialShape::PrimaryFirst) if n == 0 => primary(),
            (Strategy::Simulcall, DialShape::PrimaryFirst) => {
                dial.destinations.iter().skip(1).cloned().collect()
            }
            (Strategy::Simulcall, DialShape::PrimaryOnly) => primary(),
            (Strategy::Sequential, _) => dial
                .destinations
                .get(n as usize)
                .cloned()
                .into_iter()
                .collect(),
            (Strategy::RoundRobin, _) => dial
                .destinations
                .get((rotation as usize + n as usize) % count.max(1))
                .cloned()
                .into_iter()
                .collect(),
        };
        let company = &self.call.company.slug;
        let resume = self.resume_at(id, n, rotation);
        let whisper = dial
            .whisper
            .as_ref()
            .map(|_| self.links.flow(Callback::Whisper, &resume));
        let leg_status = self.links.leg_status(company);
        let targets = now_ringing
            .iter()
            .map(|number| observed(number, leg_status.clone(), whisper.clone()))
            .collect();
        let caller_id = match &dial.caller_id {
            CallerId::Caller => None,
            CallerId::TrackingNumber => Some(self.call.tracking_number.to_owned()),
            CallerId::Fixed(n) => Some(n.to_string()),
        };
        let recording = self.out.recording;
        // The primary alone rings half the timeout (at least 5 s), leaving the others theirs.
        let timeout = match self.shape {
            DialShape::PrimaryFirst if n == 0 && dial.strategy == Strategy::Simulcall => {
                (dial.ring_timeout_s / 2).max(5).min(dial.ring_timeout_s)
            }
            _ => dial.ring_timeout_s,
        };
        if self.shape != DialShape::Full {
            self.out.degraded = Some(self.shape);
        }
        self.out.response.verbs.push(twiml::Verb::Dial(twiml::Dial {
            action: Some(self.links.flow(Callback::Dial, &resume)),
            timeout: Some(timeout),
            caller_id,
            record: recording.then_some(twiml::DialRecord::RecordFromAnswerDual),
            recording_status_callback: recording.then(|| self.links.recording(company, false)),
            targets,
            ..Default::default()
        }));
        self.out.dialed = now_ringing;
        self.out.strategy = Some(dial.strategy);
    }
}
