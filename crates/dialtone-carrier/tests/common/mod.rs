//! Calls placed by the emulator itself (interpreter, dial queue, recordings) against a scripted
//! TwiML app, in virtual time, and the carrier's API holding their records.

#![allow(dead_code)] // each test binary uses part of it

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use dialtone_carrier::api::{CallLog, NumberSettings};
use dialtone_carrier::cdr;
use dialtone_carrier::emulator::{self, Account, CallRun, Duration, Scenario};
use dialtone_carrier::sim::Sim;
use dialtone_carrier::{Transport, TransportError, WebhookReply, WebhookRequest};
use serde_json::Value;

pub const SID: &str = "AC00000000000000000000000000000007";
pub const TOKEN: &str = "api-token";
pub const NUMBERS: [&str; 2] = ["+14045550100", "+14045550150"];

/// A small call-tracking app: a one-key menu, then ring one number (recorded, with a whisper
/// and every leg event); on no answer, take a voicemail. Its Voice URL fails for callers whose
/// number ends in an odd digit, and its Fallback URL answers with the same menu. Remembers
/// every request it was sent.
#[derive(Default)]
pub struct App {
    pub seen: Mutex<Vec<WebhookRequest>>,
}

impl Transport for App {
    async fn send(
        &self,
        request: &WebhookRequest,
        _signature: &str,
    ) -> Result<WebhookReply, TransportError> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(request.clone());
        }
        let param = |name: &str| {
            request
                .params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let path = request.url.rsplit('/').next().unwrap_or_default();
        let odd_caller = param("From")
            .and_then(|f| f.bytes().last())
            .is_some_and(|d| (d - b'0') % 2 == 1);
        let body = match path {
            "voice" if odd_caller => {
                return Ok(WebhookReply {
                    status: 500,
                    content_type: Some("text/plain".into()),
                    body: "down".into(),
                    elapsed: std::time::Duration::ZERO,
                });
            }
            "voice" | "fallback" => {
                r#"<Response><Gather action="/dial" numDigits="1" actionOnEmptyResult="true"><Say>Press 1 for sales.</Say></Gather></Response>"#
            }
            "dial" => {
                r#"<Response><Dial action="/after-dial" timeout="20" record="record-from-answer-dual" recordingStatusCallback="/recording">
                 <Number url="/whisper" statusCallback="/leg" statusCallbackEvent="initiated ringing answered completed">+14045551000</Number>
               </Dial></Response>"#
            }
            "after-dial" if param("DialCallStatus") != Some("completed") => {
                r#"<Response><Say>Leave a message.</Say><Record action="/voicemail" maxLength="30" recordingStatusCallback="/recording"/></Response>"#
            }
            "whisper" => "<Response><Say>A call from the website.</Say></Response>",
            _ => "<Response><Hangup/></Response>",
        };
        Ok(WebhookReply {
            status: 200,
            content_type: Some("text/xml".into()),
            body: body.into(),
            elapsed: std::time::Duration::ZERO,
        })
    }
}

/// When the runs start: the seed's afternoon.
pub fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 14, 13, 0, 0)
        .single()
        .expect("a valid time")
}

/// `calls` calls placed on the app (about half answered and recorded, the rest to voicemail;
/// about half through the Fallback URL).
pub fn emulated_calls(calls: u64) -> (Vec<CallRun>, Rc<App>) {
    let sim = Sim::new();
    let app = Rc::new(App::default());
    let account = Account {
        sid: SID.into(),
        auth_token: TOKEN.into(),
        voice_url: "http://app.example/voice".into(),
        status_callback: Some("http://app.example/status".into()),
        fallback_url: Some("http://app.example/fallback".into()),
        api_base_url: Some("http://carrier.test".into()),
        epoch: start(),
    };
    let scenario = Scenario {
        duration_s: 3600.0,
        arrivals_per_second: 0.5,
        max_calls: Some(calls),
        numbers: NUMBERS.iter().map(|n| (*n).to_owned()).collect(),
        answer_probability: 0.5,
        ring: Duration::Fixed { s: 3.0 },
        talk: Duration::Fixed { s: 12.0 },
        voicemail_s: 8,
        menu_choices: vec!["1".into(), String::new()],
        seed: 7,
        ..Scenario::default()
    };
    let runs = emulator::start(&sim, app.clone(), account, scenario);
    sim.run(0, &mut |_| {});
    let runs = runs.borrow().clone();
    assert_eq!(runs.len() as u64, calls);
    (runs, app)
}

/// The carrier's API state after `runs`, with the numbers called bought and pointed at the app.
pub fn log_of(runs: &[CallRun]) -> Arc<CallLog> {
    let log = CallLog::new(SID, TOKEN);
    let start = start();
    for n in NUMBERS {
        let settings = NumberSettings {
            voice_url: Some("http://app.example/voice".into()),
            ..NumberSettings::default()
        };
        log.provision(n, settings, &cdr::rfc2822(start));
    }
    for run in runs {
        log.add(&cdr::records(run, SID, start));
    }
    log
}

/// Asks the carrier's official helper library (`scripts/official_twilio.py`, in the virtualenv
/// `scripts/test-deps.sh` makes) and returns its answer.
pub fn oracle(request: Value) -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("DIALTONE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-test/bin/python"));
    assert!(
        python.exists(),
        "{} not found: run scripts/test-deps.sh",
        python.display()
    );
    let mut child = Command::new(&python)
        .arg(root.join("scripts/official_twilio.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start python");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(request.to_string().as_bytes())
        .expect("write the request");
    drop(stdin);
    let out = child.wait_with_output().expect("python ran");
    assert!(out.status.success(), "official_twilio.py failed");
    serde_json::from_slice(&out.stdout).expect("JSON from the oracle")
}
