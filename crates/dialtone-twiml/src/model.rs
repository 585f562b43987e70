//! The TwiML voice document model.
//!
//! Every attribute is an `Option`: `None` means "not written", so the carrier's documented default
//! applies. That keeps a parsed document equal to the one that was written, whoever wrote it.

/// `<Response>`: the root of every TwiML document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    pub verbs: Vec<Verb>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verb {
    Say(Say),
    Play(Play),
    Pause(Pause),
    Gather(Gather),
    Dial(Dial),
    Record(Record),
    Redirect(Redirect),
    Hangup,
    Reject(Reject),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Say {
    pub text: String,
    pub voice: Option<String>,
    pub language: Option<String>,
    /// `loop` attribute.
    pub loop_count: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Play {
    pub url: String,
    pub loop_count: Option<u32>,
    pub digits: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pause {
    /// Seconds; the carrier's default is 1.
    pub length: Option<u32>,
}

/// What may be nested inside `<Gather>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatherChild {
    Say(Say),
    Play(Play),
    Pause(Pause),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Gather {
    pub action: Option<String>,
    pub method: Option<Method>,
    /// `input`: "dtmf", "speech" or "dtmf speech".
    pub input: Option<String>,
    /// `numDigits`.
    pub num_digits: Option<u32>,
    /// Seconds of silence before the gather ends (default 5).
    pub timeout: Option<u32>,
    /// `finishOnKey` (default `#`; empty string disables).
    pub finish_on_key: Option<String>,
    /// `actionOnEmptyResult`.
    pub action_on_empty_result: Option<bool>,
    pub children: Vec<GatherChild>,
}

/// `record` attribute of `<Dial>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialRecord {
    DoNotRecord,
    RecordFromAnswer,
    RecordFromRinging,
    RecordFromAnswerDual,
    RecordFromRingingDual,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dial {
    pub action: Option<String>,
    pub method: Option<Method>,
    /// Ring timeout in seconds (default 30).
    pub timeout: Option<u32>,
    /// `timeLimit` in seconds (default 14400).
    pub time_limit: Option<u32>,
    /// `callerId` (default: the caller's number).
    pub caller_id: Option<String>,
    pub record: Option<DialRecord>,
    /// `recordingStatusCallback`.
    pub recording_status_callback: Option<String>,
    /// `answerOnBridge`.
    pub answer_on_bridge: Option<bool>,
    /// `hangupOnStar`.
    pub hangup_on_star: Option<bool>,
    pub targets: Vec<DialTarget>,
}

/// What `<Dial>` connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A bare number as the text of `<Dial>`: `<Dial>+14045550111</Dial>`.
    Bare(String),
    Number(Number),
    Client(String),
    Sip(String),
}

/// A `statusCallbackEvent` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CallEvent {
    Initiated,
    Ringing,
    Answered,
    Completed,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Number {
    pub number: String,
    /// Whisper: TwiML run on the answering party before the calls are bridged.
    pub url: Option<String>,
    pub method: Option<Method>,
    /// `sendDigits`.
    pub send_digits: Option<String>,
    pub status_callback: Option<String>,
    /// `statusCallbackEvent`, written space-separated in this order (default: completed only).
    pub status_callback_event: Vec<CallEvent>,
    pub status_callback_method: Option<Method>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub action: Option<String>,
    pub method: Option<Method>,
    /// Seconds of silence that end the recording (default 5).
    pub timeout: Option<u32>,
    /// `maxLength` in seconds (default 3600).
    pub max_length: Option<u32>,
    /// `finishOnKey` (default: any key).
    pub finish_on_key: Option<String>,
    /// `playBeep` (default true).
    pub play_beep: Option<bool>,
    pub transcribe: Option<bool>,
    /// `recordingStatusCallback`.
    pub recording_status_callback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Redirect {
    pub url: String,
    pub method: Option<Method>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reject {
    /// "rejected" (default) or "busy".
    pub reason: Option<String>,
}

/// Wire names of the small enums, in both directions.
macro_rules! wire_names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }

            /// Reads the wire name (case-sensitive, as the carrier writes it).
            pub fn from_wire(s: &str) -> Option<Self> {
                match s { $($name => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

wire_names!(Method { Get => "GET", Post => "POST" });
wire_names!(DialRecord {
    DoNotRecord => "do-not-record",
    RecordFromAnswer => "record-from-answer",
    RecordFromRinging => "record-from-ringing",
    RecordFromAnswerDual => "record-from-answer-dual",
    RecordFromRingingDual => "record-from-ringing-dual",
});
wire_names!(CallEvent { Initiated => "initiated", Ringing => "ringing", Answered => "answered", Completed => "completed" });
