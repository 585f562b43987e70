//! The carrier side of the TwiML protocol: an interpreter that plays the carrier for a call
//! against any voice app (`dialtone call`), the first piece of the carrier emulator.

pub mod api;
pub mod cdr;
mod document;
pub mod emulator;
pub mod interpreter;
pub mod plot;
pub mod queue;
pub mod sim;
pub mod transcript;
pub mod transport;

pub use interpreter::{
    Answer, CallSetup, HungUp, PickUp, Script, ScriptWorld, World, run_call, run_call_in,
    run_call_observed, sid,
};
pub use transcript::{CallOutcome, LegRecord, RecordingRecord, Step, StepKind, Transcript};
pub use transport::{HttpTransport, Transport, TransportError, WebhookReply, WebhookRequest};
