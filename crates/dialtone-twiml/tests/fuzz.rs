//! Fuzzing what a stranger can send the TwiML crate: webhook form bodies (from anyone who
//! reaches the carrier endpoints) and TwiML documents (the emulator reads third-party apps').
//! Property-based: generated inputs, never a panic, and what parses writes back and parses the
//! same. `PROPTEST_CASES` sets the number of cases (CI: proptest's default 256; the fuzz script,
//! `scripts/fuzz.sh`, a million per target).

use dialtone_twiml::webhook::{
    CallParams, DialResult, GatherResult, RecordResult, RecordingStatus, StatusCallback,
};
use dialtone_twiml::{Form, parse};
use proptest::prelude::*;

/// Form bodies: raw bytes, or `name=value` pairs of the carrier's names with odd values.
fn form_body() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "AccountSid",
        "CallSid",
        "ParentCallSid",
        "From",
        "To",
        "CallStatus",
        "Direction",
        "Digits",
        "DialCallStatus",
        "DialCallDuration",
        "RecordingUrl",
        "RecordingSid",
        "RecordingStatus",
        "RecordingDuration",
        "StatusCallbackEvent",
        "CallDuration",
    ]);
    let value = prop_oneof![
        "[A-Za-z0-9+%=&._-]{0,40}",
        "\\PC{0,20}",
        Just("ringing".to_owned()),
        Just("completed".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("-1".to_owned()),
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::vec((names, value), 0..20).prop_map(|pairs| {
            pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        }),
    ]
}

/// TwiML-ish documents: random text, or verbs and attributes from the vocabulary, nested.
fn twiml_doc() -> impl Strategy<Value = String> {
    let tag = prop::sample::select(vec![
        "Response", "Say", "Play", "Dial", "Number", "Gather", "Record", "Hangup", "Pause",
        "Redirect", "Reject", "Client", "Sip", "Queue", "Enqueue", "Unknown",
    ]);
    let attr = prop::sample::select(vec![
        "action",
        "timeout",
        "numDigits",
        "voice",
        "loop",
        "length",
        "callerId",
        "url",
        "method",
        "maxLength",
        "finishOnKey",
        "record",
        "statusCallback",
        "statusCallbackEvent",
    ]);
    let value = "[A-Za-z0-9 .:/?&=#*-]{0,20}";
    let element = (
        tag,
        prop::collection::vec((attr, value), 0..4),
        "[^<>]{0,20}",
    );
    prop_oneof![
        "\\PC{0,200}",
        prop::collection::vec(element, 0..8).prop_map(|els| {
            let mut doc = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>");
            for (i, (tag, attrs, text)) in els.iter().enumerate() {
                doc.push('<');
                doc.push_str(tag);
                for (a, v) in attrs {
                    doc.push_str(&format!(" {a}=\"{v}\""));
                }
                doc.push('>');
                doc.push_str(&text.replace('&', "&amp;"));
                // Every other element left open: nesting, and unbalanced documents.
                if i % 2 == 0 {
                    doc.push_str(&format!("</{tag}>"));
                }
            }
            doc.push_str("</Response>");
            doc
        }),
    ]
}

proptest! {
    #[test]
    fn webhook_forms_never_panic(body in form_body()) {
        let form = Form::parse(&body);
        let _ = CallParams::from_form(&form);
        let _ = GatherResult::from_form(&form);
        let _ = DialResult::from_form(&form);
        let _ = RecordResult::from_form(&form);
        let _ = RecordingStatus::from_form(&form);
        let _ = StatusCallback::from_form(&form);
        // What parses as a call writes back as the same call.
        if let Ok(call) = CallParams::from_form(&form) {
            let again = Form::parse(dialtone_twiml::encode(&call.to_params()).as_bytes());
            prop_assert_eq!(CallParams::from_form(&again).ok(), Some(call));
        }
    }

    #[test]
    fn twiml_documents_never_panic_and_round_trip(doc in twiml_doc()) {
        if let Ok(parsed) = parse(&doc) {
            let mut written = Vec::new();
            parsed.write_to(&mut written);
            let text = String::from_utf8(written).expect("UTF-8");
            let again = parse(&text);
            prop_assert_eq!(again.as_ref().ok(), Some(&parsed), "{}", text);
        }
    }
}
