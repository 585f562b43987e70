//! What happened on one call, step by step, as the carrier saw it.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// Simulated seconds since the call started.
    pub at_s: f64,
    #[serde(flatten)]
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum StepKind {
    /// A webhook request the carrier made, and what came back.
    Request {
        method: String,
        url: String,
        purpose: String,
        status: Option<u16>,
        elapsed_ms: f64,
    },
    CallerHears {
        text: String,
    },
    CallerPresses {
        digits: String,
    },
    GatherTimeout {
        timeout_s: u32,
    },
    Dialing {
        numbers: Vec<String>,
        timeout_s: u32,
    },
    /// The carrier set the leg up (after `queued_s` in its dial queue) and it rings.
    LegRinging {
        number: String,
        queued_s: f64,
    },
    LegAnswered {
        number: String,
        sid: String,
    },
    LegNoAnswer {
        number: String,
    },
    LegCanceled {
        number: String,
    },
    AgentHears {
        text: String,
    },
    Bridged {
        number: String,
        talk_s: f64,
    },
    Recorded {
        url: String,
        duration_s: u32,
        voicemail: bool,
    },
    Error {
        code: u32,
        message: String,
    },
    Hangup {
        by: String,
    },
}

/// How the call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// An agent took the call.
    Answered,
    /// The caller left a message.
    Voicemail,
    /// The call ended without anyone answering and without a message.
    NotAnswered,
    /// The app rejected the call before answering it.
    Rejected,
    /// The carrier could not get usable TwiML.
    ApplicationError,
    /// The caller hung up before reaching anyone.
    Abandoned,
}

/// One outbound leg, as the carrier's call records show it. Times in seconds since the call
/// arrived.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegRecord {
    pub sid: String,
    pub to: String,
    pub from: String,
    pub requested_at_s: f64,
    /// When the carrier set it up (it left the dial queue); `None` if it never did.
    pub started_at_s: Option<f64>,
    pub answered_at_s: Option<f64>,
    pub ended_at_s: f64,
    /// completed, no-answer, busy or canceled.
    pub status: &'static str,
    pub talk_s: f64,
}

impl LegRecord {
    /// Seconds in the carrier's dial queue (so far, for a leg that never left it).
    pub fn queue_s(&self) -> f64 {
        self.started_at_s.unwrap_or(self.ended_at_s) - self.requested_at_s
    }
}

/// A recording the carrier made during the call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingRecord {
    pub sid: String,
    /// The call recorded: the parent call, a recorded `<Dial>`'s leg too, as at the carrier.
    pub call_sid: String,
    pub url: String,
    /// When recording started, in seconds since the call arrived.
    pub started_at_s: f64,
    pub duration_s: u32,
    /// 1 (mono), or 2 for a dual-channel `<Dial>` recording.
    pub channels: u32,
    /// A `<Record>` (voicemail), else a recorded `<Dial>`.
    pub voicemail: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    pub call_sid: String,
    pub steps: Vec<Step>,
    pub outcome: CallOutcome,
    pub duration_s: f64,
    /// Every outbound leg the call's `<Dial>`s asked for.
    pub legs: Vec<LegRecord>,
    /// From the first `<Dial>` to its first leg ringing.
    pub post_dial_delay_s: Option<f64>,
    pub recordings: Vec<RecordingRecord>,
}

impl Transcript {
    /// Numbers rung by each `<Dial>`, in order.
    pub fn dialed(&self) -> Vec<Vec<String>> {
        self.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Dialing { numbers, .. } => Some(numbers.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn answered_by(&self) -> Option<&str> {
        self.steps.iter().find_map(|s| match &s.kind {
            StepKind::LegAnswered { number, .. } => Some(number.as_str()),
            _ => None,
        })
    }

    /// Everything the caller heard, in order.
    pub fn heard(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::CallerHears { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    pub fn agent_heard(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::AgentHears { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Every request: (purpose, url, HTTP status).
    pub fn requests(&self) -> Vec<(&str, &str, Option<u16>)> {
        self.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Request {
                    purpose,
                    url,
                    status,
                    ..
                } => Some((purpose.as_str(), url.as_str(), *status)),
                _ => None,
            })
            .collect()
    }

    pub fn errors(&self) -> Vec<(u32, &str)> {
        self.steps
            .iter()
            .filter_map(|s| match &s.kind {
                StepKind::Error { code, message } => Some((*code, message.as_str())),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:7.1}s  ", self.at_s)?;
        match &self.kind {
            StepKind::Request {
                method,
                url,
                purpose,
                status,
                elapsed_ms,
            } => {
                let status = status.map_or("no answer".to_owned(), |s| s.to_string());
                write!(
                    f,
                    "→ {method} {url}  [{purpose}]  {status} ({elapsed_ms:.1} ms)"
                )
            }
            StepKind::CallerHears { text } => write!(f, "caller hears: \"{text}\""),
            StepKind::CallerPresses { digits } => write!(f, "caller presses {digits}"),
            StepKind::GatherTimeout { timeout_s } => {
                write!(f, "caller presses nothing ({timeout_s} s)")
            }
            StepKind::Dialing { numbers, timeout_s } => {
                write!(f, "dialing {} (ring {timeout_s} s)", numbers.join(", "))
            }
            StepKind::LegRinging { number, queued_s } if *queued_s > 0.0 => {
                write!(
                    f,
                    "{number} rings (after {queued_s:.1} s in the carrier's queue)"
                )
            }
            StepKind::LegRinging { number, .. } => write!(f, "{number} rings"),
            StepKind::LegAnswered { number, sid } => write!(f, "{number} answered ({sid})"),
            StepKind::LegNoAnswer { number } => write!(f, "{number} did not answer"),
            StepKind::LegCanceled { number } => {
                write!(f, "{number} stops ringing (answered elsewhere)")
            }
            StepKind::AgentHears { text } => write!(f, "agent hears: \"{text}\""),
            StepKind::Bridged { number, talk_s } => {
                write!(f, "caller connected to {number}, talk {talk_s:.0} s")
            }
            StepKind::Recorded {
                url,
                duration_s,
                voicemail,
            } => {
                let what = if *voicemail {
                    "voicemail"
                } else {
                    "call recording"
                };
                write!(f, "{what} of {duration_s} s: {url}")
            }
            StepKind::Error { code, message } => write!(f, "error {code}: {message}"),
            StepKind::Hangup { by } => write!(f, "hangup by {by}"),
        }
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "{s}")?;
        }
        write!(
            f,
            "{:?} after {:.0} s ({})",
            self.outcome, self.duration_s, self.call_sid
        )
    }
}
