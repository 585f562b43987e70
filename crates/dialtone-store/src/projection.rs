//! What each event means for the `calls` and `legs` projections, the same on every backend; the
//! backends' own modules (`sqlite/project.rs`, `postgres/writer.rs`) say it in their SQL.

use dialtone_core::event::{
    CallChange, DialEnded, EventBody, FlowAnswered, LegUpdate, RecordingUpdate, Routing,
};

/// The event's type, as stored beside its body.
pub(crate) fn kind_of(body: &EventBody) -> &'static str {
    match body {
        EventBody::CallReceived(_) => "call_received",
        EventBody::FlowAnswered(_) => "flow_answered",
        EventBody::Leg(_) => "leg",
        EventBody::DialEnded(_) => "dial_ended",
        EventBody::Recording(_) => "recording",
        EventBody::CallStatus(_) => "call_status",
        EventBody::CallModified(_) => "call_modified",
    }
}

/// The `calls` column a person's change sets, and its new value as text (`None`: cleared; tags
/// as a JSON array; spam as `true`).
pub(crate) fn change_column(c: &CallChange) -> (&'static str, Option<String>) {
    match c {
        CallChange::Tags(t) => (
            "tags",
            Some(serde_json::to_string(t).unwrap_or_else(|_| "[]".into())),
        ),
        CallChange::Note(n) => ("note", n.clone()),
        CallChange::Value(v) => ("value", v.clone()),
        CallChange::LeadStatus(l) => ("lead_status", l.map(|l| l.as_str().to_owned())),
        CallChange::CustomerName(n) => ("caller_name", n.clone()),
        CallChange::Spam => ("spam", Some("true".into())),
    }
}

/// Which of a leg's times a leg callback sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegTime {
    Initiated,
    Ringing,
    Answered,
    Completed,
}

impl LegTime {
    pub(crate) fn of(l: &LegUpdate) -> Self {
        match l.event.as_deref().unwrap_or(l.status.as_str()) {
            "initiated" | "queued" => LegTime::Initiated,
            "ringing" => LegTime::Ringing,
            "answered" | "in-progress" => LegTime::Answered,
            _ => LegTime::Completed,
        }
    }

    pub(crate) fn column(self) -> &'static str {
        match self {
            LegTime::Initiated => "initiated_at",
            LegTime::Ringing => "ringing_at",
            LegTime::Answered => "answered_at",
            LegTime::Completed => "completed_at",
        }
    }
}

/// The inbound call's own answer was not delivered (the call log did not confirm it in time)
/// and backup routing was answered instead: the flow never started, and no notice was played,
/// so what the call row says of the flow is cleared.
pub(crate) fn flow_never_started(f: &FlowAnswered) -> bool {
    f.trigger == "voice" && f.answer.routing == Some(Routing::Backup)
}

/// The `<Dial>` ended with someone answering.
pub(crate) fn dial_answered(d: &DialEnded) -> bool {
    matches!(d.status.as_str(), "completed" | "answered")
}

/// A recording worth linking: completed, and not empty.
pub(crate) fn recording_usable(r: &RecordingUpdate) -> bool {
    r.status == "completed" && r.duration_s.is_none_or(|d| d > 0)
}

/// The carrier's status ends the call.
pub(crate) fn ends_call(status: &str) -> bool {
    matches!(
        status,
        "completed" | "busy" | "failed" | "no-answer" | "canceled"
    )
}
