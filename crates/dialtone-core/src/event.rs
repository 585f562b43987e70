//! The call log's events. Every state change of a call is one of these, appended durably before
//! the response that depends on it is sent; the calls and legs tables are projections of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The inbound call this event belongs to (a leg's events carry its parent's sid).
    pub call_sid: String,
    /// When dialtone received what caused the event.
    pub at: DateTime<Utc>,
    pub body: EventBody,
}

// A call's first event is its biggest, and there is one per call: boxing it would cost an
// allocation per call to save a few hundred bytes on the smaller events, which are as few.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// The inbound-call webhook: the call exists from here on.
    CallReceived(CallReceived),
    /// A flow callback (menu input, dial ended, voicemail ended) was answered.
    FlowAnswered(FlowAnswered),
    /// An outbound leg moved: initiated, ringing, answered, completed (or failed, busy...).
    Leg(LegUpdate),
    /// A `<Dial>` ended, as the carrier reported to its action URL.
    DialEnded(DialEnded),
    /// A recording (of the call, or a voicemail) is available or failed.
    Recording(RecordingUpdate),
    /// The carrier's status callback for the inbound call.
    CallStatus(CallStatusUpdate),
    /// Someone changed what the log says of the call through the API (tags, note, lead...).
    CallModified(CallModified),
}

/// How a call was routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Through its call flow.
    Normal,
    /// Straight to the company's primary number, because something inside dialtone failed.
    Backup,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::Normal => "normal",
            Routing::Backup => "backup",
        }
    }
}

/// What the flow answered, shared by the first webhook and every later callback.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Answer {
    /// When the TwiML answer was ready to send.
    pub answered_at: Option<DateTime<Utc>>,
    pub path: Vec<String>,
    pub dialed: Vec<String>,
    pub strategy: Option<String>,
    pub recording: bool,
    pub notice_played: bool,
    pub voicemail_offered: bool,
    pub routing: Option<Routing>,
    /// Why the answer is not the flow's normal one (backup routing, unknown number...).
    pub reason: Option<String>,
    /// The dial's shape when the carrier's limit made dialtone ask for fewer legs.
    #[serde(default)]
    pub degraded: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReceived {
    pub account: String,
    pub company: String,
    pub tracker: String,
    pub tracker_kind: String,
    pub carrier_account_sid: String,
    pub tracking_number: String,
    pub caller: String,
    pub forwarded_from: Option<String>,
    pub caller_name: Option<String>,
    pub flow: String,
    pub answer: Answer,
    /// The website visitor the call is attributed to (calls to a DNI pool number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<Box<CallAttribution>>,
    /// Whether the caller had never called the company before. Left unset when the call is
    /// received: the call log decides it as it writes the call, from the calls it holds (events
    /// logged by earlier versions carry the answer their node's memory gave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_call: Option<bool>,
}

/// The visitor session a call to a pool number belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallAttribution {
    /// The session's public id (without its secret).
    pub session: u64,
    pub visitor: String,
    pub visit: crate::dni::Visit,
    /// Sessions holding the number when the call came: 1 means certain.
    pub shared_with: u32,
}

impl CallReceived {
    /// A call to one of `t`'s tracking numbers, as the log records it.
    pub fn to_tracker(
        t: &crate::config::TrackerRef<'_>,
        carrier_account_sid: &str,
        tracking_number: &str,
        caller: &str,
        forwarded_from: Option<String>,
        caller_name: Option<String>,
        answer: Answer,
    ) -> Self {
        Self {
            account: t.company.account.clone(),
            company: t.company.slug.clone(),
            tracker: t.tracker.name.clone(),
            tracker_kind: t.tracker.kind.as_str().to_owned(),
            carrier_account_sid: carrier_account_sid.to_owned(),
            tracking_number: tracking_number.to_owned(),
            caller: caller.to_owned(),
            forwarded_from,
            caller_name,
            flow: t.flow.name.clone(),
            answer,
            attribution: None,
            first_call: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowAnswered {
    /// The callback that asked: gather, dial, voicemail.
    pub trigger: String,
    pub digits: Option<String>,
    pub answer: Answer,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegUpdate {
    pub leg_sid: String,
    pub to: String,
    /// The carrier's CallStatus for the leg.
    pub status: String,
    /// The StatusCallbackEvent (initiated, ringing, answered, completed), when sent.
    pub event: Option<String>,
    pub duration_s: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DialEnded {
    pub status: String,
    pub dial_call_sid: Option<String>,
    pub duration_s: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingUpdate {
    pub recording_sid: String,
    pub url: String,
    pub status: String,
    pub duration_s: Option<u32>,
    pub voicemail: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallStatusUpdate {
    pub status: String,
    pub duration_s: Option<u32>,
}

/// What a person changed of a call (CallRail's call update): each change is the field's new
/// value, `None` clearing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallModified {
    /// Who made the change: the API key's account, or `operator`.
    pub by: String,
    pub changes: Vec<CallChange>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallChange {
    /// The call's tags, all of them.
    Tags(Vec<String>),
    Note(Option<String>),
    /// What the call was worth, a decimal amount (`125.00`).
    Value(Option<String>),
    LeadStatus(Option<LeadStatus>),
    CustomerName(Option<String>),
    /// Marked as spam: hidden from listings from now on (it cannot be unmarked).
    Spam,
}

/// Whether a call was a lead, as someone judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadStatus {
    GoodLead,
    NotALead,
}

impl LeadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LeadStatus::GoodLead => "good_lead",
            LeadStatus::NotALead => "not_a_lead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "good_lead" => Some(LeadStatus::GoodLead),
            "not_a_lead" => Some(LeadStatus::NotALead),
            _ => None,
        }
    }
}

/// Final outcome of a call, derived from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    InProgress,
    Answered,
    Voicemail,
    /// Nobody answered and no message was left.
    Missed,
    /// The carrier could not complete the call (failed, busy, canceled).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "in_progress",
            Outcome::Answered => "answered",
            Outcome::Voicemail => "voicemail",
            Outcome::Missed => "missed",
            Outcome::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Outcome::InProgress,
            Outcome::Answered,
            Outcome::Voicemail,
            Outcome::Missed,
            Outcome::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }

    /// The outcome once the inbound call has ended with `status`.
    pub fn at_end(status: &str, answered: bool, voicemail: bool) -> Self {
        match status {
            _ if answered => Outcome::Answered,
            _ if voicemail => Outcome::Voicemail,
            "completed" => Outcome::Missed,
            _ => Outcome::Failed,
        }
    }
}
