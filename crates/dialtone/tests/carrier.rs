//! `dialtone carrier`: the emulated carrier in real time, over HTTP, against a voice app built
//! with the carrier's official helper library and against `dialtone serve`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{BIN, Server};
use dialtone_core::demo;
use serde_json::Value;

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("DIALTONE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-test/bin/python"));
    assert!(
        python.exists(),
        "{} not found: run scripts/test-deps.sh",
        python.display()
    );
    python
}

/// A process whose stdout (or stderr) lines arrive on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn wait_for(&self, prefix: &str) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line starting with {prefix:?} within 60 s"),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(mut command: Command, watch_stderr: bool) -> Running {
    if watch_stderr {
        command.stderr(Stdio::piped());
    } else {
        command.stdout(Stdio::piped());
    }
    let mut child = command.spawn().expect("spawn");
    let (tx, lines) = mpsc::channel();
    let out: Box<dyn std::io::Read + Send> = if watch_stderr {
        Box::new(child.stderr.take().expect("stderr"))
    } else {
        Box::new(child.stdout.take().expect("stdout"))
    };
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    Running { child, lines }
}

/// The voice app of scripts/twiml_app.py, logging every request it got to `log`.
fn official_app(token: &str, log: &Path) -> (Running, String) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut command = Command::new(python());
    command
        .arg(root.join("scripts/twiml_app.py"))
        .arg(token)
        .arg(log);
    let app = spawn(command, false);
    let url = app.wait_for("listening on ")["listening on ".len()..].to_owned();
    (app, url)
}

fn jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

fn carrier(args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(BIN)
        .arg("carrier")
        .args(args)
        .output()
        .expect("run dialtone carrier");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const ACCOUNT: &str = "AC0000000000000000000000000000beef";
const TOKEN: &str = "official-app-token";

#[test]
fn the_carrier_runs_calls_through_an_app_built_with_the_official_library() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.jsonl");
    let cdr = dir.path().join("cdr.jsonl");
    let (_app, url) = official_app(TOKEN, &log);
    let voice = format!("{url}/voice");
    let (code, report, stderr) = carrier(&[
        "--voice-url",
        &voice,
        "--account-sid",
        ACCOUNT,
        "--auth-token",
        TOKEN,
        "--to",
        "+15005550100",
        "--calls",
        "6",
        "--arrivals-per-second",
        "20",
        "--menu-choice",
        "1",
        "--menu-choice",
        "2",
        "--ring-median-s",
        "0.3",
        "--talk-mean-s",
        "1",
        "--voicemail-s",
        "1",
        "--seed",
        "7",
        "--cdr-out",
        cdr.to_str().expect("path"),
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["calls"], 6, "{report}");
    assert_eq!(
        report["connected"].as_u64().unwrap_or(0) + report["voicemail"].as_u64().unwrap_or(0),
        6,
        "every call reached sales or left a message: {report}"
    );
    assert!(
        report["voicemail"].as_u64() > Some(0),
        "seed 7 picks both menu choices: {report}"
    );

    // The app's RequestValidator accepted every request the carrier made.
    let requests = jsonl(&log);
    assert!(requests.iter().all(|r| r["valid"] == true), "{requests:?}");
    let calls: Vec<&Value> = requests.iter().filter(|r| r["path"] == "/voice").collect();
    assert_eq!(calls.len(), 6);
    for r in &calls {
        assert_eq!(r["params"]["AccountSid"], ACCOUNT);
        assert_eq!(r["params"]["CallStatus"], "ringing");
        assert_eq!(r["params"]["Direction"], "inbound");
    }
    // Each answered leg reported initiated, ringing, answered, completed, in that order.
    let mut events: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for r in requests.iter().filter(|r| r["path"] == "/leg") {
        let sid = r["params"]["CallSid"].as_str().expect("leg sid").to_owned();
        let event = r["params"]["StatusCallbackEvent"]
            .as_str()
            .expect("event")
            .to_owned();
        events.entry(sid).or_default().push(event);
    }
    let answered: Vec<&Vec<String>> = events
        .values()
        .filter(|e| e.contains(&"answered".to_owned()))
        .collect();
    assert_eq!(
        answered.len() as u64,
        report["connected"].as_u64().unwrap_or(0)
    );
    for e in &answered {
        assert_eq!(**e, ["initiated", "ringing", "answered", "completed"]);
    }
    // Both kinds of recording were reported: the bridged call and the voicemails.
    let recordings: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/recording")
        .collect();
    assert_eq!(recordings.len(), 6, "{recordings:?}");
    let done: Vec<&Value> = requests
        .iter()
        .filter(|r| r["path"] == "/dial-done")
        .collect();
    assert!(
        done.iter()
            .all(|r| r["params"]["DialCallStatus"] == "completed")
    );

    // The call records: each inbound call, then its legs, pointing at their parent.
    let records = jsonl(&cdr);
    let inbound: Vec<&Value> = records
        .iter()
        .filter(|r| r["direction"] == "inbound")
        .collect();
    assert_eq!(inbound.len(), 6);
    let parents: Vec<&str> = inbound.iter().filter_map(|r| r["sid"].as_str()).collect();
    for leg in records.iter().filter(|r| r["direction"] == "outbound-dial") {
        let parent = leg["parent_call_sid"].as_str().expect("parent");
        assert!(parents.contains(&parent), "{leg}");
        assert!(
            ["completed", "canceled"].contains(&leg["status"].as_str().unwrap_or("")),
            "{leg}"
        );
    }
}

#[test]
fn a_broken_voice_url_goes_to_the_fallback_with_the_error_and_a_wrong_token_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("app.jsonl");
    let (_app, url) = official_app(TOKEN, &log);
    // /nowhere answers an empty 200: not TwiML.
    let (code, report, stderr) = carrier(&[
        "--voice-url",
        &format!("{url}/nowhere"),
        "--fallback-url",
        &format!("{url}/recorded"),
        "--account-sid",
        ACCOUNT,
        "--auth-token",
        TOKEN,
        "--to",
        "+15005550100",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["failed"], 1, "{report}");
    let requests = jsonl(&log);
    let fallback = requests
        .iter()
        .find(|r| r["path"] == "/recorded")
        .expect("the fallback was asked");
    assert_eq!(fallback["params"]["ErrorUrl"], format!("{url}/nowhere"));
    assert_eq!(
        fallback["params"]["ErrorCode"], "12100",
        "a document that does not parse"
    );

    // Signed with the wrong token: the official validator says no, the caller hears an
    // application error.
    let (code, report, stderr) = carrier(&[
        "--voice-url",
        &format!("{url}/voice"),
        "--account-sid",
        ACCOUNT,
        "--auth-token",
        "not-the-token",
        "--to",
        "+15005550100",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["failed"], 1, "{report}");
    assert!(jsonl(&log).iter().any(|r| r["valid"] == false));
}

#[test]
fn the_carrier_rejects_bad_flags_with_a_reason() {
    for (args, reason) in [
        (vec!["--to", "4045550100"], "E.164"),
        (vec!["--to", "+14045550100", "--calls", "0"], "--calls"),
        (
            vec!["--to", "+14045550100", "--answer-probability", "2"],
            "between 0 and 1",
        ),
        (
            vec!["--to", "+14045550100", "--menu-choice", "1x"],
            "keys are",
        ),
    ] {
        let mut all = vec![
            "--voice-url",
            "http://127.0.0.1:9/voice",
            "--account-sid",
            ACCOUNT,
            "--auth-token",
            TOKEN,
        ];
        all.extend(args);
        let (code, _, stderr) = carrier(&all);
        assert_ne!(code, 0);
        assert!(stderr.contains(reason), "{reason}: {stderr}");
    }
}

#[tokio::test]
async fn the_carrier_calls_dialtone_serve_and_serves_its_call_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::demo(dir.path(), common::MONDAY_MORNING);
    let cdr = dir.path().join("cdr.jsonl");
    let mut command = Command::new(BIN);
    command.args([
        "carrier",
        "--voice-url",
        &format!("{}/twilio/voice", server.url),
        "--status-callback",
        &format!("{}/twilio/status", server.url),
        "--account-sid",
        demo::ACCOUNT_SID,
        "--auth-token",
        demo::AUTH_TOKEN,
        "--to",
        "+14045550100",
        "--calls",
        "3",
        "--arrivals-per-second",
        "20",
        "--talk-mean-s",
        "2",
        "--seed",
        "2",
        "--api-listen",
        "127.0.0.1:0",
        "--cdr-out",
        cdr.to_str().expect("path"),
        "--quiet",
    ]);
    let carrier = spawn(command, true);
    let api = carrier.wait_for("carrier API on ")["carrier API on ".len()..].to_owned();
    carrier.wait_for("calls done");

    // Page through the carrier's Calls resource two at a time.
    let client = reqwest::Client::new();
    let origin = api.split("/2010-04-01").next().expect("origin").to_owned();
    let mut url = format!("{api}?PageSize=2");
    let mut listed = Vec::new();
    loop {
        let page: Value = client
            .get(&url)
            .basic_auth(demo::ACCOUNT_SID, Some(demo::AUTH_TOKEN))
            .send()
            .await
            .expect("Calls.json")
            .json()
            .await
            .expect("JSON");
        listed.extend(page["calls"].as_array().expect("calls").iter().cloned());
        match page["next_page_uri"].as_str() {
            Some(next) => url = format!("{origin}{next}"),
            None => break,
        }
    }
    let records = jsonl(&cdr);
    assert_eq!(
        listed.len(),
        records.len(),
        "the API and the file hold the same records"
    );
    let inbound: Vec<String> = listed
        .iter()
        .filter(|c| c["direction"] == "inbound")
        .filter_map(|c| c["sid"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(inbound.len(), 3);

    // The demo flow records the bridged call: its audio downloads from the carrier.
    let recordings: Value = client
        .get(format!(
            "{origin}/2010-04-01/Accounts/{}/Recordings.json",
            demo::ACCOUNT_SID
        ))
        .basic_auth(demo::ACCOUNT_SID, Some(demo::AUTH_TOKEN))
        .send()
        .await
        .expect("Recordings.json")
        .json()
        .await
        .expect("JSON");
    let media = recordings["recordings"][0]["media_url"]
        .as_str()
        .expect("a recording")
        .to_owned();
    let audio = client.get(&media).send().await.expect("media");
    assert_eq!(audio.status(), 200);
    let bytes = audio.bytes().await.expect("audio");
    assert_eq!(&bytes[..4], b"RIFF");

    // dialtone logged every call the carrier placed, answered as the carrier saw it.
    let logged = server.calls().await;
    for sid in &inbound {
        let Some(call) = logged.iter().find(|c| c["id"] == sid.as_str()) else {
            panic!("{sid} not in dialtone's call log {logged:?}");
        };
        // A dialed leg that was answered ends `completed` (`answered_by` is machine
        // detection's, null here as at the carrier).
        let answered_leg = listed
            .iter()
            .any(|l| l["parent_call_sid"] == sid.as_str() && l["status"] == "completed");
        assert_eq!(call["answered"], answered_leg, "{call}");
    }
}
