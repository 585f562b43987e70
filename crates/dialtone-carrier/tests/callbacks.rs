//! Every request the emulator sends a TwiML app, against the parameters the carrier documents
//! for that request: each one it always sends is there, and nothing else is. The table below is
//! the carrier's documentation (twilio.com/docs/voice/twiml#request-parameters, …/twiml/dial,
//! …/twiml/gather, …/twiml/record, …/api/call-resource#statuscallback,
//! …/usage/security/availability-reliability#fallback-urls); where the carrier leaves a request
//! undocumented (the whisper) the row says so.

mod common;

use std::collections::{BTreeSet, HashMap};

use chrono::DateTime;
use dialtone_carrier::WebhookRequest;

use common::emulated_calls;

/// What the carrier always sends with a call's request, and what only sometimes.
const CALL: &[&str] = &[
    "CallSid",
    "AccountSid",
    "From",
    "To",
    "CallStatus",
    "ApiVersion",
    "Direction",
    "Caller",
    "Called",
];
const CALL_SOMETIMES: &[&str] = &[
    "ForwardedFrom",
    "CallerName",
    "ParentCallSid",
    "CallToken",
    "FromCity",
    "FromState",
    "FromZip",
    "FromCountry",
    "ToCity",
    "ToState",
    "ToZip",
    "ToCountry",
    "CallerCity",
    "CallerState",
    "CallerZip",
    "CallerCountry",
    "CalledCity",
    "CalledState",
    "CalledZip",
    "CalledCountry",
    "StirVerstat",
    "AnsweredBy",
];
const STATUS: &[&str] = &["CallbackSource", "Timestamp", "SequenceNumber"];
const STATUS_SOMETIMES: &[&str] = &[
    "StatusCallbackEvent",
    "CallDuration",
    "SipResponseCode",
    "Duration",
    "RecordingUrl",
    "RecordingSid",
    "RecordingDuration",
    "StirStatus",
];

/// One request the carrier makes: the app's path it goes to here, what it always carries, what
/// it may carry, and whether the call's parameters come with it.
struct Documented {
    name: &'static str,
    path: &'static str,
    call_parameters: bool,
    always: &'static [&'static str],
    sometimes: &'static [&'static str],
}

const TABLE: &[Documented] = &[
    Documented {
        name: "voice webhook",
        path: "/voice",
        call_parameters: true,
        always: &[],
        sometimes: &[],
    },
    Documented {
        name: "Fallback URL",
        path: "/fallback",
        call_parameters: true,
        always: &["ErrorCode", "ErrorUrl"],
        sometimes: &[],
    },
    Documented {
        name: "<Gather action>",
        path: "/dial",
        call_parameters: true,
        always: &[],
        sometimes: &["Digits", "SpeechResult", "Confidence"],
    },
    Documented {
        name: "<Dial action>",
        path: "/after-dial",
        call_parameters: true,
        always: &["DialCallStatus"],
        sometimes: &[
            "DialCallSid",
            "DialCallDuration",
            "DialBridged",
            "RecordingUrl",
        ],
    },
    Documented {
        name: "<Record action>",
        path: "/voicemail",
        call_parameters: true,
        always: &["RecordingUrl", "RecordingDuration", "Digits"],
        sometimes: &[],
    },
    Documented {
        name: "recording status callback",
        path: "/recording",
        call_parameters: false,
        always: &[
            "AccountSid",
            "CallSid",
            "RecordingSid",
            "RecordingUrl",
            "RecordingStatus",
            "RecordingChannels",
            "RecordingSource",
        ],
        sometimes: &[
            "RecordingDuration",
            "RecordingStartTime",
            "RecordingTrack",
            "ErrorCode",
        ],
    },
    Documented {
        name: "the number's status callback",
        path: "/status",
        call_parameters: true,
        always: STATUS,
        sometimes: STATUS_SOMETIMES,
    },
    Documented {
        name: "<Number statusCallback>",
        path: "/leg",
        call_parameters: true,
        always: STATUS,
        sometimes: STATUS_SOMETIMES,
    },
    // Undocumented: the request for the dialed party's leg, as for any <Dial>-created call.
    Documented {
        name: "<Number url> (whisper)",
        path: "/whisper",
        call_parameters: true,
        always: &["ParentCallSid"],
        sometimes: &[],
    },
];

/// The optional parameters the emulator models: each must be seen in the run.
const MODELLED: &[(&str, &str)] = &[
    ("/dial", "Digits"),
    ("/after-dial", "DialCallSid"),
    ("/after-dial", "DialCallDuration"),
    ("/after-dial", "DialBridged"),
    ("/after-dial", "RecordingUrl"),
    ("/recording", "RecordingDuration"),
    ("/recording", "RecordingStartTime"),
    ("/recording", "RecordingTrack"),
    ("/recording", "ErrorCode"),
    ("/leg", "StatusCallbackEvent"),
    ("/leg", "CallDuration"),
    ("/leg", "SipResponseCode"),
    ("/leg", "Duration"),
    ("/leg", "RecordingUrl"),
    ("/leg", "RecordingSid"),
    ("/leg", "RecordingDuration"),
    ("/leg", "ParentCallSid"),
    ("/status", "CallDuration"),
    ("/status", "SipResponseCode"),
    ("/status", "Duration"),
];

fn path_of(r: &WebhookRequest) -> String {
    let url = url::Url::parse(&r.url).expect("an absolute URL");
    url.path().to_owned()
}

fn params(r: &WebhookRequest) -> HashMap<&str, &str> {
    r.params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn every_callback_carries_what_the_carrier_documents_and_nothing_else() {
    let (_, app) = emulated_calls(40);
    let seen = app.seen.lock().expect("requests").clone();
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    for request in &seen {
        let path = path_of(request);
        let row = TABLE
            .iter()
            .find(|d| d.path == path)
            .unwrap_or_else(|| panic!("a request the table does not know: {}", request.url));
        let sent = params(request);
        let mut always: Vec<&str> = row.always.to_vec();
        let mut allowed: BTreeSet<&str> = row.always.iter().chain(row.sometimes).copied().collect();
        if row.call_parameters {
            always.extend(CALL);
            allowed.extend(CALL.iter().chain(CALL_SOMETIMES));
        }
        for name in &always {
            assert!(
                sent.contains_key(name),
                "{}: no {name} in {:?}",
                row.name,
                request.params
            );
        }
        for name in sent.keys() {
            assert!(
                allowed.contains(name),
                "{}: the carrier does not send {name} ({:?})",
                row.name,
                request.params
            );
            covered.insert((path.clone(), (*name).to_owned()));
        }
    }
    for (path, name) in MODELLED {
        assert!(
            covered.contains(&((*path).to_owned(), (*name).to_owned())),
            "{name} was never sent to {path}: the run does not exercise it"
        );
    }
    for row in TABLE {
        assert!(
            seen.iter().any(|r| path_of(r) == row.path),
            "no {} in the run",
            row.name
        );
    }
}

#[test]
fn callbacks_say_what_the_carrier_says_about_the_call() {
    let (runs, app) = emulated_calls(40);
    let seen = app.seen.lock().expect("requests").clone();
    let parents: BTreeSet<&str> = runs
        .iter()
        .map(|r| r.transcript.call_sid.as_str())
        .collect();
    let mut sequences: HashMap<String, Vec<u32>> = HashMap::new();
    let mut recorded_legs = BTreeSet::new();
    let mut recordings = BTreeSet::new();
    for request in &seen {
        let p = params(request);
        let path = path_of(request);
        if let Some(t) = p.get("Timestamp").or(p.get("RecordingStartTime")) {
            assert!(
                DateTime::parse_from_rfc2822(t).is_ok() && t.ends_with("+0000"),
                "{path}: {t} is not RFC 2822 in UTC"
            );
        }
        match path.as_str() {
            "/leg" | "/status" => {
                let sequence = p["SequenceNumber"].parse().expect("a number");
                sequences
                    .entry(p["CallSid"].to_owned())
                    .or_default()
                    .push(sequence);
                assert_eq!(p["CallbackSource"], "call-progress-events");
                let terminal = p
                    .get("StatusCallbackEvent")
                    .is_none_or(|e| *e == "completed");
                for name in ["CallDuration", "SipResponseCode", "Duration"] {
                    assert_eq!(p.contains_key(name), terminal, "{path} {name}: {p:?}");
                }
                if let Some(minutes) = p.get("Duration") {
                    let seconds: u32 = p["CallDuration"].parse().expect("seconds");
                    assert_eq!(minutes.parse::<u32>().ok(), Some(seconds.div_ceil(60)));
                }
                if let Some(sid) = p.get("RecordingSid") {
                    recorded_legs.insert((*sid).to_owned());
                }
                if path == "/leg" {
                    assert_eq!(p["Direction"], "outbound-dial");
                    assert!(parents.contains(p["ParentCallSid"]));
                }
            }
            "/recording" => {
                // "will always refer to the parent leg of a two-leg call"
                assert!(parents.contains(p["CallSid"]), "{p:?}");
                assert_eq!(p["ErrorCode"], "0");
                let dial = p["RecordingSource"] == "DialVerb";
                assert_eq!(p["RecordingChannels"], if dial { "2" } else { "1" });
                if dial {
                    recordings.insert(p["RecordingSid"].to_owned());
                }
            }
            "/fallback" => {
                assert_eq!(p["ErrorCode"], "11200");
                assert!(p["ErrorUrl"].ends_with("/voice"));
            }
            "/whisper" => {
                assert_eq!(p["Direction"], "outbound-dial");
                assert_eq!(p["CallStatus"], "in-progress");
            }
            _ => {}
        }
    }
    for (sid, numbers) in &sequences {
        let expected: Vec<u32> = (0..numbers.len() as u32).collect();
        assert_eq!(
            numbers, &expected,
            "{sid}: sequence numbers from 0, one apart"
        );
    }
    assert!(!recordings.is_empty());
    assert_eq!(
        recorded_legs, recordings,
        "a recorded leg's completed callback names its recording"
    );
}
