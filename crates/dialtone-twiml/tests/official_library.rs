//! Cross-checks against the carrier's official Python helper library (`twilio` on PyPI), run
//! through `scripts/official_twilio.py`: nobody on the team wrote the signing rules, so the
//! library is the oracle. `scripts/test-deps.sh` installs it.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use dialtone_twiml::*;
use serde_json::{Value, json};

fn oracle(request: Value) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("DIALTONE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-test/bin/python"));
    assert!(
        python.exists(),
        "{} not found: run scripts/test-deps.sh to install the official twilio library",
        python.display()
    );
    let mut child = Command::new(&python)
        .arg(root.join("scripts/official_twilio.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "official_twilio.py failed");
    serde_json::from_slice(&out.stdout).expect("JSON from the oracle")
}

const TOKEN: &str = "12345-auth-token";

fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// URLs and parameter sets that have tripped signature code before.
fn cases() -> Vec<(String, Vec<(String, String)>)> {
    let call = p(&[
        ("AccountSid", "AC00000000000000000000000000000001"),
        ("CallSid", "CA1234567890ABCDE"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]);
    vec![
        ("https://mycompany.com/myapp.php?foo=1&bar=2".into(), call.clone()),
        ("http://127.0.0.1:8080/twilio/voice".into(), call.clone()),
        ("http://127.0.0.1/twilio/voice".into(), call.clone()),
        ("http://127.0.0.1:80/twilio/voice".into(), call.clone()),
        ("https://calls.example.com:443/twilio/voice".into(), call.clone()),
        ("https://calls.example.com:8443/twilio/voice".into(), call.clone()),
        ("https://calls.example.com/twilio/gather?company=acme&flow=main&step=menu&rec=1&n=2&rr=0".into(), call.clone()),
        ("https://calls.example.com/x?q=a%20b&r=%2B1&s=caf%C3%A9".into(), call.clone()),
        ("https://calls.example.com/empty".into(), vec![]),
        ("https://calls.example.com/repeat".into(), p(&[("B", "2"), ("A", "z"), ("A", "a"), ("A", "m")])),
        ("https://calls.example.com/dup".into(), p(&[("A", "1"), ("A", "1"), ("B", "")])),
        ("https://calls.example.com/unicode".into(), p(&[("CallerName", "José Ñúñez ☎"), ("Digits", "１２")])),
        ("https://calls.example.com/special".into(), p(&[("Body", "a&b=c+d e%20f"), ("Empty", ""), ("Spaces", "  x  ")])),
        ("https://calls.example.com/case".into(), p(&[("a", "1"), ("B", "2"), ("_", "3"), ("Z", "4")])),
        ("https://calls.example.com/frag#rt=3000".into(), call),
    ]
}

#[test]
fn our_signatures_equal_the_official_ones() {
    let cases = cases();
    let request = json!({
        "op": "sign",
        "token": TOKEN,
        "cases": cases.iter().map(|(url, params)| json!({"url": url, "params": params})).collect::<Vec<_>>(),
    });
    let official = oracle(request);
    for (i, (url, params)) in cases.iter().enumerate() {
        assert_eq!(
            compute_signature(TOKEN, url, params),
            official[i].as_str().unwrap(),
            "case {i}: {url} {params:?}"
        );
    }
}

#[test]
fn we_accept_exactly_what_the_official_validator_accepts() {
    // Every case signed over each port variant of its URL, with the right token, a wrong token, a
    // tampered parameter and a tampered URL; both validators must agree on every one.
    let mut checks = Vec::new();
    for (url, params) in cases() {
        let variants = [
            url.clone(),
            url.replacen("://calls.example.com/", "://calls.example.com:443/", 1),
            url.replacen(":443/", "/", 1),
            url.replacen("127.0.0.1/", "127.0.0.1:80/", 1),
            url.replacen(":80/", "/", 1),
            url.replacen(":8080/", "/", 1),
        ];
        for signed_url in variants {
            let good = compute_signature(TOKEN, &signed_url, &params);
            let wrong_token = compute_signature("another-token", &signed_url, &params);
            let mut tampered = params.clone();
            tampered.push(("Extra".into(), "1".into()));
            checks.push((url.clone(), params.clone(), good.clone()));
            checks.push((url.clone(), params.clone(), wrong_token));
            checks.push((url.clone(), tampered, good.clone()));
            checks.push((format!("{url}&evil=1"), params.clone(), good));
        }
    }
    let request = json!({
        "op": "validate",
        "token": TOKEN,
        "cases": checks.iter().map(|(u, p, s)| json!({"url": u, "params": p, "signature": s})).collect::<Vec<_>>(),
    });
    let official = oracle(request);
    let mut accepted = 0;
    for (i, (url, params, sig)) in checks.iter().enumerate() {
        let theirs = official[i].as_bool().unwrap();
        assert_eq!(
            validate_signature(TOKEN, url, params, sig),
            theirs,
            "check {i}: {url} {params:?} {sig}"
        );
        accepted += usize::from(theirs);
    }
    // The table must exercise both answers, or it proves nothing.
    assert!(
        accepted > 10 && accepted < checks.len() / 2,
        "{accepted} of {}",
        checks.len()
    );
}

fn say(text: &str) -> Say {
    Say {
        text: text.into(),
        ..Default::default()
    }
}

/// What each document the official library builds must parse into.
fn expected(name: &str) -> Response {
    let verbs = match name {
        "say" => vec![Verb::Say(Say {
            text: "Hello & welcome <friend> \"quoted\" 'single' — café ☎".into(),
            voice: Some("alice".into()),
            language: Some("en-US".into()),
            loop_count: Some(2),
        })],
        "play_pause" => vec![
            Verb::Play(Play {
                url: "https://example.com/a.mp3".into(),
                loop_count: Some(3),
                digits: Some("ww1".into()),
            }),
            Verb::Pause(Pause { length: Some(2) }),
            Verb::Pause(Pause { length: None }),
        ],
        "gather" => {
            let url = "https://dt.example/twilio/gather?company=a&flow=b&step=c".to_owned();
            vec![
                Verb::Gather(Gather {
                    action: Some(url.clone()),
                    method: Some(Method::Post),
                    input: Some("dtmf".into()),
                    num_digits: Some(1),
                    timeout: Some(5),
                    finish_on_key: Some("#".into()),
                    action_on_empty_result: Some(true),
                    children: vec![
                        GatherChild::Say(say("For sales, press 1.")),
                        GatherChild::Play(Play {
                            url: "https://example.com/menu.mp3".into(),
                            ..Default::default()
                        }),
                        GatherChild::Pause(Pause { length: Some(1) }),
                    ],
                }),
                Verb::Redirect(Redirect {
                    url,
                    method: Some(Method::Post),
                }),
            ]
        }
        "dial" => vec![Verb::Dial(Dial {
            action: Some("https://dt.example/twilio/dial?step=ring&rec=1".into()),
            method: Some(Method::Post),
            timeout: Some(20),
            time_limit: Some(600),
            caller_id: Some("+14045550100".into()),
            record: Some(DialRecord::RecordFromAnswerDual),
            recording_status_callback: Some("https://dt.example/twilio/recording".into()),
            answer_on_bridge: Some(true),
            hangup_on_star: Some(false),
            targets: vec![
                DialTarget::Number(Number {
                    number: "+14045550111".into(),
                    url: Some("https://dt.example/twilio/whisper?step=ring".into()),
                    method: Some(Method::Post),
                    send_digits: Some("ww12".into()),
                    status_callback: Some("https://dt.example/twilio/leg".into()),
                    status_callback_event: vec![
                        CallEvent::Initiated,
                        CallEvent::Ringing,
                        CallEvent::Answered,
                        CallEvent::Completed,
                    ],
                    status_callback_method: Some(Method::Post),
                }),
                DialTarget::Number(Number {
                    number: "+14045550112".into(),
                    ..Default::default()
                }),
                DialTarget::Client("agent_jane".into()),
                DialTarget::Sip("sip:jane@example.com".into()),
            ],
        })],
        "dial_bare" => vec![Verb::Dial(Dial {
            targets: vec![DialTarget::Bare("+14045550111".into())],
            ..Default::default()
        })],
        "record_hangup" => vec![
            Verb::Record(Record {
                action: Some("https://dt.example/twilio/voicemail".into()),
                method: Some(Method::Post),
                timeout: Some(5),
                max_length: Some(120),
                finish_on_key: Some("#".into()),
                play_beep: Some(true),
                transcribe: Some(false),
                recording_status_callback: Some(
                    "https://dt.example/twilio/recording?voicemail=1".into(),
                ),
            }),
            Verb::Hangup,
        ],
        "reject" => vec![Verb::Reject(Reject {
            reason: Some("busy".into()),
        })],
        "empty" => vec![],
        other => panic!("the oracle built a document this test does not know: {other}"),
    };
    Response { verbs }
}

#[test]
fn documents_built_by_the_official_library_parse_into_our_model() {
    let docs = oracle(json!({"op": "twiml"}));
    let docs = docs.as_array().unwrap();
    assert!(docs.len() >= 8);
    for doc in docs {
        let (name, xml) = (doc["name"].as_str().unwrap(), doc["xml"].as_str().unwrap());
        let ours = parse(xml).unwrap_or_else(|e| panic!("{name}: {e}\n{xml}"));
        let model = expected(name);
        assert_eq!(ours, model, "{name}: {xml}");
        // And what we write from that model reads back the same.
        assert_eq!(parse(&model.to_xml()).unwrap(), model, "{name}");
    }
}
