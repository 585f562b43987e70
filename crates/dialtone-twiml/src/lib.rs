//! TwiML for dialtone: typed documents, webhook requests and request signatures.
//!
//! Pure: nothing here touches the network, the disk or the clock.

pub mod form;
pub mod model;
pub mod parse;
pub mod signature;
pub mod webhook;
mod write;

pub use form::{Form, MissingParameter, encode};
pub use model::*;
pub use parse::{ParseError, parse};
pub use signature::{compute_signature, validate_signature};
