//! The carrier side of the TwiML protocol: an interpreter that plays the carrier for a call
//! against any voice app (`dialtone call`), the first piece of the carrier emulator.

pub mod interpreter;
pub mod transcript;
pub mod transport;

pub use interpreter::{Answer, CallSetup, Script, run_call, run_call_observed, sid};
pub use transcript::{CallOutcome, Step, StepKind, Transcript};
pub use transport::{HttpTransport, Transport, TransportError, WebhookReply, WebhookRequest};
