//! Every request the emulator sends during a replayed call (voice, leg status callbacks, dial
//! action, a GET redirect, the status callback) carries a signature the carrier's official
//! `RequestValidator` accepts. `scripts/test-deps.sh` installs the library.

use std::rc::Rc;
use std::sync::Mutex;

use dialtone_carrier::emulator::{self, Account, Duration, Scenario};
use dialtone_carrier::queue::DialLimit;
use dialtone_carrier::sim::Sim;
use dialtone_carrier::{Transport, TransportError, WebhookReply, WebhookRequest};
use dialtone_twiml::Method;
use serde_json::{Value, json};

mod common;
use common::oracle;

const TOKEN: &str = "emulator-token ☎";

/// A small app: dial two numbers with leg callbacks and an action, redirect by GET, hang up.
/// Remembers every request and its signature.
#[derive(Default)]
struct App {
    seen: Mutex<Vec<Signed>>,
}

/// A request as signed: the URL requested, the parameters signed, the signature.
type Signed = (String, Vec<(String, String)>, String);

impl Transport for App {
    async fn send(
        &self,
        request: &WebhookRequest,
        signature: &str,
    ) -> Result<WebhookReply, TransportError> {
        let signed_params = match request.method {
            Method::Post => request.params.clone(),
            Method::Get => Vec::new(),
        };
        self.seen
            .lock()
            .unwrap()
            .push((request.full_url(), signed_params, signature.to_owned()));
        let body = if request.url.contains("/voice") {
            r#"<Response><Dial action="/after-dial?step=1&amp;x=%C3%A9" timeout="20">
                 <Number statusCallback="/leg?company=a%20b" statusCallbackEvent="initiated ringing answered completed">+14045550111</Number>
                 <Number statusCallback="http://app.example:8080/leg">+14045550112</Number>
               </Dial></Response>"#
        } else if request.url.contains("/after-dial") {
            r#"<Response><Redirect method="GET">/next?café=1</Redirect></Response>"#
        } else {
            "<Response><Hangup/></Response>"
        };
        Ok(WebhookReply {
            status: 200,
            content_type: Some("text/xml".into()),
            body: body.into(),
            elapsed: std::time::Duration::ZERO,
        })
    }
}

#[test]
fn every_request_the_emulator_sends_verifies_with_the_official_validator() {
    let sim = Sim::new();
    let app = Rc::new(App::default());
    let account = Account {
        sid: "AC00000000000000000000000000000001".into(),
        auth_token: TOKEN.into(),
        voice_url: "http://app.example:8080/voice?tenant=acme&x=1".into(),
        status_callback: Some("http://app.example:8080/status".into()),
        fallback_url: None,
        api_base_url: None,
        epoch: chrono::DateTime::UNIX_EPOCH,
    };
    let scenario = Scenario {
        duration_s: 60.0,
        arrivals_per_second: 0.2,
        limit: Some(DialLimit::per_second(1.0)),
        ring: Duration::Fixed { s: 3.0 },
        talk: Duration::Fixed { s: 10.0 },
        seed: 2,
        ..Scenario::default()
    };
    let calls = emulator::start(&sim, app.clone(), account, scenario);
    sim.run(0, &mut |_| {});
    assert!(!calls.borrow().is_empty());
    let seen = app.seen.lock().unwrap().clone();
    let purposes = |needle: &str| seen.iter().filter(|(u, ..)| u.contains(needle)).count();
    for needle in ["/voice", "/leg", "/after-dial", "/next?", "/status"] {
        assert!(purposes(needle) > 0, "no request to {needle}: {seen:?}");
    }
    let cases: Vec<Value> = seen
        .iter()
        .map(|(url, params, signature)| json!({"url": url, "params": params, "signature": signature}))
        .collect();
    let verdicts = oracle(json!({"op": "validate", "token": TOKEN, "cases": cases}));
    let verdicts = verdicts.as_array().expect("a list of verdicts");
    assert_eq!(verdicts.len(), seen.len());
    for (verdict, request) in verdicts.iter().zip(&seen) {
        assert_eq!(
            verdict,
            &json!(true),
            "the official validator refused {request:?}"
        );
    }
}
