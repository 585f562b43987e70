//! The carrier's webhook requests as types: the server reads them, the carrier emulator writes
//! them, and `from_form(to_params(x)) == x`.

use std::str::FromStr;

use crate::form::{Form, MissingParameter};
use crate::model::CallEvent;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Missing(#[from] MissingParameter),
    #[error("invalid value `{value}` for parameter `{name}`")]
    Invalid { name: &'static str, value: String },
}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire),* }
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($wire => Ok(Self::$variant),)* _ => Err(()) }
            }
        }
    };
}

wire_enum!(
    /// `CallStatus`.
    CallStatus {
        Queued => "queued",
        Initiated => "initiated",
        Ringing => "ringing",
        InProgress => "in-progress",
        Canceled => "canceled",
        Completed => "completed",
        Failed => "failed",
        Busy => "busy",
        NoAnswer => "no-answer",
    }
);

impl CallStatus {
    /// The call is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Canceled | Self::Completed | Self::Failed | Self::Busy | Self::NoAnswer
        )
    }
}

wire_enum!(
    /// `Direction`.
    Direction { Inbound => "inbound", OutboundApi => "outbound-api", OutboundDial => "outbound-dial" }
);

wire_enum!(
    /// `DialCallStatus` of a `<Dial action>` request.
    DialCallStatus {
        Completed => "completed",
        Answered => "answered",
        Busy => "busy",
        NoAnswer => "no-answer",
        Failed => "failed",
        Canceled => "canceled",
    }
);

fn required<T: FromStr>(form: &Form, name: &'static str) -> Result<T, WebhookError> {
    let v = form.require(name)?;
    v.parse().map_err(|_| WebhookError::Invalid {
        name,
        value: v.to_owned(),
    })
}

/// A carrier sid (call, account, recording): 1 to 64 letters, digits, `-` or `_`. Twilio's are
/// two letters and 32 hex digits; other dialects use UUIDs. An empty or odd one is not a call.
fn sid(form: &Form, name: &'static str) -> Result<String, WebhookError> {
    let v = form.require(name)?;
    if is_sid(v) {
        Ok(v.to_owned())
    } else {
        Err(WebhookError::Invalid {
            name,
            value: v.chars().take(80).collect(),
        })
    }
}

fn optional_sid(form: &Form, name: &'static str) -> Result<Option<String>, WebhookError> {
    match form.get(name).filter(|v| !v.is_empty()) {
        Some(_) => sid(form, name).map(Some),
        None => Ok(None),
    }
}

/// Whether `v` is shaped like a carrier sid.
pub fn is_sid(v: &str) -> bool {
    (1..=64).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn optional<T: FromStr>(form: &Form, name: &'static str) -> Result<Option<T>, WebhookError> {
    form.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse().map_err(|_| WebhookError::Invalid {
                name,
                value: v.to_owned(),
            })
        })
        .transpose()
}

fn text(form: &Form, name: &'static str) -> Option<String> {
    form.get(name).map(str::to_owned)
}

fn push(out: &mut Vec<(String, String)>, name: &str, value: impl ToString) {
    out.push((name.to_owned(), value.to_string()));
}

fn push_opt(out: &mut Vec<(String, String)>, name: &str, value: &Option<impl ToString>) {
    if let Some(v) = value {
        push(out, name, v.to_string());
    }
}

/// The parameters every call request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallParams {
    pub call_sid: String,
    pub account_sid: String,
    pub from: String,
    pub to: String,
    pub call_status: CallStatus,
    pub direction: Direction,
    pub api_version: Option<String>,
    pub forwarded_from: Option<String>,
    pub caller_name: Option<String>,
    pub parent_call_sid: Option<String>,
}

impl CallParams {
    pub fn from_form(form: &Form) -> Result<Self, WebhookError> {
        Ok(Self {
            call_sid: sid(form, "CallSid")?,
            account_sid: sid(form, "AccountSid")?,
            from: required(form, "From")?,
            to: required(form, "To")?,
            call_status: required::<CallStatus>(form, "CallStatus")?,
            direction: required::<Direction>(form, "Direction")?,
            api_version: text(form, "ApiVersion"),
            forwarded_from: text(form, "ForwardedFrom"),
            caller_name: text(form, "CallerName"),
            parent_call_sid: optional_sid(form, "ParentCallSid")?,
        })
    }

    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut p = Vec::with_capacity(16);
        push(&mut p, "CallSid", &self.call_sid);
        push(&mut p, "AccountSid", &self.account_sid);
        push(&mut p, "From", &self.from);
        push(&mut p, "Caller", &self.from);
        push(&mut p, "To", &self.to);
        push(&mut p, "Called", &self.to);
        push(&mut p, "CallStatus", self.call_status.as_str());
        push(&mut p, "Direction", self.direction.as_str());
        push_opt(&mut p, "ApiVersion", &self.api_version);
        push_opt(&mut p, "ForwardedFrom", &self.forwarded_from);
        push_opt(&mut p, "CallerName", &self.caller_name);
        push_opt(&mut p, "ParentCallSid", &self.parent_call_sid);
        p
    }
}

/// The `<Gather action>` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherResult {
    pub call: CallParams,
    pub digits: Option<String>,
}

impl GatherResult {
    pub fn from_form(form: &Form) -> Result<Self, WebhookError> {
        Ok(Self {
            call: CallParams::from_form(form)?,
            digits: text(form, "Digits"),
        })
    }

    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut p = self.call.to_params();
        push_opt(&mut p, "Digits", &self.digits);
        p
    }
}

/// The `<Dial action>` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialResult {
    pub call: CallParams,
    pub dial_call_status: DialCallStatus,
    pub dial_call_sid: Option<String>,
    pub dial_call_duration: Option<u32>,
    pub dial_bridged: Option<bool>,
    pub recording_url: Option<String>,
}

impl DialResult {
    pub fn from_form(form: &Form) -> Result<Self, WebhookError> {
        Ok(Self {
            call: CallParams::from_form(form)?,
            dial_call_status: required(form, "DialCallStatus")?,
            dial_call_sid: text(form, "DialCallSid"),
            dial_call_duration: optional(form, "DialCallDuration")?,
            dial_bridged: optional(form, "DialBridged")?,
            recording_url: text(form, "RecordingUrl"),
        })
    }

    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut p = self.call.to_params();
        push(&mut p, "DialCallStatus", self.dial_call_status.as_str());
        push_opt(&mut p, "DialCallSid", &self.dial_call_sid);
        push_opt(&mut p, "DialCallDuration", &self.dial_call_duration);
        push_opt(&mut p, "DialBridged", &self.dial_bridged);
        push_opt(&mut p, "RecordingUrl", &self.recording_url);
        p
    }
}

impl FromStr for CallEvent {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        CallEvent::from_wire(s).ok_or(())
    }
}

/// A status callback (the call's, or a leg's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCallback {
    pub call: CallParams,
    pub event: Option<CallEvent>,
    pub call_duration: Option<u32>,
    pub timestamp: Option<String>,
    pub sequence_number: Option<u32>,
    /// `call-progress-events`, on every status callback.
    pub callback_source: Option<String>,
    /// Terminal events: the SIP response that ended the call (200 answered, 486 busy, 487 not
    /// answered or canceled).
    pub sip_response_code: Option<u32>,
    /// Terminal events: the minutes billed (`Duration`).
    pub duration_minutes: Option<u32>,
    /// On `completed`, when the leg was recorded: `RecordingUrl`, `RecordingSid`,
    /// `RecordingDuration`.
    pub recording: Option<CallbackRecording>,
}

/// The recording a status callback reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRecording {
    pub url: String,
    pub sid: String,
    pub duration: u32,
}

impl StatusCallback {
    pub fn from_form(form: &Form) -> Result<Self, WebhookError> {
        Ok(Self {
            call: CallParams::from_form(form)?,
            event: optional(form, "StatusCallbackEvent")?,
            call_duration: optional(form, "CallDuration")?,
            timestamp: text(form, "Timestamp"),
            sequence_number: optional(form, "SequenceNumber")?,
            callback_source: text(form, "CallbackSource"),
            sip_response_code: optional(form, "SipResponseCode")?,
            duration_minutes: optional(form, "Duration")?,
            recording: match (text(form, "RecordingUrl"), text(form, "RecordingSid")) {
                (Some(url), Some(sid)) => Some(CallbackRecording {
                    url,
                    sid,
                    duration: optional(form, "RecordingDuration")?.unwrap_or(0),
                }),
                _ => None,
            },
        })
    }

    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut p = self.call.to_params();
        if let Some(e) = self.event {
            push(&mut p, "StatusCallbackEvent", e.as_str());
        }
        push_opt(&mut p, "CallDuration", &self.call_duration);
        push_opt(&mut p, "Timestamp", &self.timestamp);
        push_opt(&mut p, "SequenceNumber", &self.sequence_number);
        push_opt(&mut p, "CallbackSource", &self.callback_source);
        push_opt(&mut p, "SipResponseCode", &self.sip_response_code);
        push_opt(&mut p, "Duration", &self.duration_minutes);
        if let Some(r) = &self.recording {
            push(&mut p, "RecordingUrl", &r.url);
            push(&mut p, "RecordingSid", &r.sid);
            push(&mut p, "RecordingDuration", r.duration.to_string());
        }
        p
    }
}

/// A recording status callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingStatus {
    pub account_sid: String,
    pub call_sid: String,
    pub recording_sid: String,
    pub recording_url: String,
    pub recording_status: String,
    pub recording_duration: Option<u32>,
    pub recording_channels: Option<u32>,
    pub recording_source: Option<String>,
    /// RFC 2822.
    pub recording_start_time: Option<String>,
    /// inbound, outbound or both.
    pub recording_track: Option<String>,
    pub error_code: Option<String>,
}

impl RecordingStatus {
    pub fn from_form(form: &Form) -> Result<Self, WebhookError> {
        Ok(Self {
            account_sid: sid(form, "AccountSid")?,
            call_sid: sid(form, "CallSid")?,
            recording_sid: sid(form, "RecordingSid")?,
            recording_url: required(form, "RecordingUrl")?,
            recording_status: required(form, "RecordingStatus")?,
            recording_duration: optional(form, "RecordingDuration")?,
            recording_channels: optional(form, "RecordingChannels")?,
            recording_source: text(form, "RecordingSource"),
            recording_start_time: text(form, "RecordingStartTime"),
            recording_track: text(form, "RecordingTrack"),
            error_code: text(form, "ErrorCode"),
        })
    }

    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut p = Vec::with_capacity(10);
        push(&mut p, "AccountSid", &self.account_sid);
        push(&mut p, "CallSid", &self.call_sid);
        push(&mut p, "RecordingSid", &self.recording_sid);
        push(&mut p, "RecordingUrl", &self.recording_url);
        push(&mut p, "RecordingStatus", &self.recording_status);
        push_opt(&mut p, "RecordingDuration", &self.recording_duration);
        push_opt(&mut p, "RecordingChannels", &self.recording_channels);
        push_opt(&mut p, "RecordingSource", &self.recording_source);
        push_opt(&mut p, "RecordingStartTime", &self.recording_start_time);
        push_opt(&mut p, "RecordingTrack", &self.recording_track);
        push_opt(&mut p, "ErrorCode", &self.error_code);
        p
    }
}

/// The `<Record action>` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordResult {
    pub call: CallParams,
    pub recording_url: String,
    pub recording_duration: Option<u32>,
    pub digits: Option<String>,
}

impl RecordResult {
    pub fn from_form(form: &Form) -> Result<Self, WebhookError> {
        Ok(Self {
            call: CallParams::from_form(form)?,
            recording_url: required(form, "RecordingUrl")?,
            recording_duration: optional(form, "RecordingDuration")?,
            digits: text(form, "Digits"),
        })
    }

    pub fn to_params(&self) -> Vec<(String, String)> {
        let mut p = self.call.to_params();
        push(&mut p, "RecordingUrl", &self.recording_url);
        push_opt(&mut p, "RecordingDuration", &self.recording_duration);
        push_opt(&mut p, "Digits", &self.digits);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> CallParams {
        CallParams {
            call_sid: "CA1".into(),
            account_sid: "AC1".into(),
            from: "+17705550123".into(),
            to: "+14045550100".into(),
            call_status: CallStatus::InProgress,
            direction: Direction::Inbound,
            api_version: Some("2010-04-01".into()),
            forwarded_from: None,
            caller_name: Some("Jane & Co".into()),
            parent_call_sid: None,
        }
    }

    fn round_trip(params: Vec<(String, String)>) -> Form {
        Form::parse(crate::form::encode(&params).as_bytes())
    }

    #[test]
    fn requests_round_trip_through_the_wire() {
        let c = call();
        assert_eq!(
            CallParams::from_form(&round_trip(c.to_params())).unwrap(),
            c
        );
        let d = DialResult {
            call: c.clone(),
            dial_call_status: DialCallStatus::NoAnswer,
            dial_call_sid: Some("CA2".into()),
            dial_call_duration: Some(0),
            dial_bridged: Some(false),
            recording_url: None,
        };
        assert_eq!(
            DialResult::from_form(&round_trip(d.to_params())).unwrap(),
            d
        );
        let s = StatusCallback {
            call: c.clone(),
            event: Some(CallEvent::Ringing),
            call_duration: Some(3),
            timestamp: Some("Thu, 14 May 2026 13:00:05 +0000".into()),
            sequence_number: Some(1),
            callback_source: Some("call-progress-events".into()),
            sip_response_code: Some(200),
            duration_minutes: Some(1),
            recording: Some(CallbackRecording {
                url: "https://carrier.example/Recordings/RE1".into(),
                sid: "RE1".into(),
                duration: 12,
            }),
        };
        assert_eq!(
            StatusCallback::from_form(&round_trip(s.to_params())).unwrap(),
            s
        );
        let g = GatherResult {
            call: c.clone(),
            digits: Some("1".into()),
        };
        assert_eq!(
            GatherResult::from_form(&round_trip(g.to_params())).unwrap(),
            g
        );
        let r = RecordResult {
            call: c,
            recording_url: "https://r/RE1".into(),
            recording_duration: Some(9),
            digits: Some("hangup".into()),
        };
        assert_eq!(
            RecordResult::from_form(&round_trip(r.to_params())).unwrap(),
            r
        );
    }

    #[test]
    fn errors_name_the_parameter() {
        let mut p = call().to_params();
        p.retain(|(k, _)| k != "CallSid");
        assert_eq!(
            CallParams::from_form(&round_trip(p))
                .unwrap_err()
                .to_string(),
            "missing required parameter `CallSid`"
        );
        let mut p = call().to_params();
        p.iter_mut().find(|(k, _)| k == "CallStatus").unwrap().1 = "sideways".into();
        assert_eq!(
            CallParams::from_form(&round_trip(p))
                .unwrap_err()
                .to_string(),
            "invalid value `sideways` for parameter `CallStatus`"
        );
    }
}
