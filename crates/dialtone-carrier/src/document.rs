//! A document the carrier fetched: parsed, and checked that the emulator can play it as the
//! carrier would.

use dialtone_twiml::{self as twiml, DialTarget, Response, Verb};

/// Parses a document the carrier fetched and checks the emulator can play it as the carrier
/// would: what the carrier does but the emulator does not model is refused with the carrier's
/// schema error (12200), rather than played as if it were not there.
pub(crate) fn executable(body: &str) -> Result<Response, (u32, String)> {
    let doc = twiml::parse(body).map_err(|e| (e.error_code(), format!("invalid TwiML: {e}")))?;
    match unemulated(&doc) {
        Some(what) => Err((12200, format!("{what} is not emulated"))),
        None => Ok(doc),
    }
}

/// The first feature of `doc` the emulator parses but does not play.
fn unemulated(doc: &Response) -> Option<String> {
    doc.verbs.iter().find_map(|verb| match verb {
        Verb::Gather(g) => g
            .input
            .as_deref()
            .filter(|i| i.split_whitespace().any(|x| x != "dtmf"))
            .map(|i| format!("<Gather input=\"{i}\">")),
        Verb::Dial(d) if d.answer_on_bridge == Some(true) => {
            Some("<Dial answerOnBridge=\"true\">".into())
        }
        Verb::Dial(d) if d.hangup_on_star == Some(true) => {
            Some("<Dial hangupOnStar=\"true\">".into())
        }
        Verb::Dial(d) if d.time_limit.is_some() => Some("<Dial timeLimit>".into()),
        Verb::Dial(d) => d.targets.iter().find_map(|t| match t {
            DialTarget::Client(_) => Some("<Dial><Client>".into()),
            DialTarget::Sip(_) => Some("<Dial><Sip>".into()),
            _ => None,
        }),
        Verb::Record(r) if r.transcribe == Some(true) => {
            Some("<Record transcribe=\"true\">".into())
        }
        _ => None,
    })
}
