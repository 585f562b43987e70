//! Whole calls through every path of the demo flows, driven by the carrier interpreter against
//! the real server, then read back through the API.

mod common;

use common::*;
use dialtone_carrier::{Answer, CallOutcome, HttpTransport, Script, Transcript, run_call};
use serde_json::Value;

const OFFICE: &str = "+14045550111";
const MOBILE: &str = "+14045550112";
const GBP: &str = "+14045550100";
const BILLBOARD: &str = "+14045550150";

async fn call(server: &Server, n: u64, to: &str, script: Script) -> (Transcript, Value) {
    let setup = server.demo_call(to, sid("CA", 0xca11_0000 + n));
    let transcript = run_call(&HttpTransport::new(), &setup, &script).await;
    for (purpose, url, status) in transcript.requests() {
        assert_eq!(status, Some(200), "{purpose} {url}\n{transcript}");
    }
    assert!(transcript.errors().is_empty(), "{transcript}");
    let record = server.call(&setup.call_sid).await;
    (transcript, record)
}

fn answering(numbers: &[&str]) -> Script {
    Script {
        answer: Answer::Numbers(numbers.iter().map(|s| s.to_string()).collect()),
        ..Script::default()
    }
}

fn path(record: &Value) -> Vec<&str> {
    record["flow_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn timeline_types(record: &Value) -> Vec<&str> {
    record["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn main_flow_answered_by_the_mobile_is_recorded_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let (t, rec) = call(&server, 1, GBP, answering(&[MOBILE])).await;

    assert_eq!(t.outcome, CallOutcome::Answered);
    assert_eq!(
        t.heard()[0],
        "This call may be recorded for quality assurance."
    );
    assert_eq!(t.dialed(), [vec![OFFICE.to_owned(), MOBILE.to_owned()]]);
    assert_eq!(t.answered_by(), Some(MOBILE));
    assert_eq!(t.agent_heard(), ["Call from Acme Plumbing tracking."]);

    assert_eq!(rec["answered"], true);
    assert_eq!(rec["outcome"], "answered");
    assert_eq!(rec["business_phone_number"], MOBILE);
    assert_eq!(rec["tracking_phone_number"], GBP);
    assert_eq!(rec["customer_phone_number"], CALLER);
    assert_eq!(rec["source"], "Google Business Profile");
    assert_eq!(rec["recording_notice_played"], true);
    assert!(
        rec["recording"]
            .as_str()
            .unwrap()
            .contains("/Recordings/RE")
    );
    assert_eq!(rec["recording_duration"], 30);
    assert_eq!(rec["duration"], t.duration_s.round() as u64);
    assert_eq!(path(&rec), ["notice", "record", "ring"]);
    // Both legs, with their timings: the office was canceled when the mobile answered.
    let legs = rec["legs"].as_array().unwrap();
    assert_eq!(legs.len(), 2);
    let office = legs.iter().find(|l| l["to"] == OFFICE).unwrap();
    let mobile = legs.iter().find(|l| l["to"] == MOBILE).unwrap();
    assert_eq!(office["status"], "canceled");
    assert!(office["answered_at"].is_null());
    assert_eq!(mobile["status"], "completed");
    for field in ["initiated_at", "ringing_at", "answered_at", "completed_at"] {
        assert!(mobile[field].is_string(), "{field} missing: {mobile}");
    }
    assert!(mobile["initiated_at"].as_str() <= mobile["answered_at"].as_str());
    // Every step of the call is in the timeline, in order.
    let types = timeline_types(&rec);
    assert_eq!(types.first(), Some(&"call_received"));
    assert_eq!(types.last(), Some(&"call_status"));
    for kind in ["leg", "recording", "dial_ended", "flow_answered"] {
        assert!(types.contains(&kind), "{kind} not in {types:?}");
    }
}

#[tokio::test]
async fn main_flow_nobody_answers_goes_to_voicemail() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let (t, rec) = call(&server, 2, GBP, Script::default()).await;
    assert_eq!(t.outcome, CallOutcome::Voicemail);
    assert!(
        t.heard().iter().any(|h| h.contains("leave a message")),
        "{t}"
    );
    assert_eq!(rec["outcome"], "voicemail");
    assert_eq!(rec["answered"], false);
    assert_eq!(rec["voicemail"], true);
    assert!(
        rec["voicemail_recording"]
            .as_str()
            .unwrap()
            .contains("/Recordings/RE")
    );
    assert_eq!(path(&rec), ["notice", "record", "ring", "voicemail"]);
    assert!(
        rec["legs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["status"] == "no-answer"),
        "{rec}"
    );

    // A caller who hangs up at the beep leaves no message: a missed call.
    let silent = Script {
        voicemail_s: 0,
        ..Script::default()
    };
    let (_, rec) = call(&server, 3, GBP, silent).await;
    assert_eq!(rec["outcome"], "missed");
    assert_eq!(rec["voicemail"], false);
}

#[tokio::test]
async fn pool_numbers_route_by_their_flow_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let (t, rec) = call(&server, 4, "+14045550203", answering(&[OFFICE])).await;
    assert_eq!(t.answered_by(), Some(OFFICE));
    assert_eq!(rec["source"], "Google Ads");
    assert_eq!(rec["source_type"], "session");
}

#[tokio::test]
async fn menu_one_is_sales_office_then_mobile_then_voicemail() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let script = Script {
        digits: "1".into(),
        ..answering(&[MOBILE])
    };
    let (t, rec) = call(&server, 10, BILLBOARD, script).await;
    assert_eq!(
        t.heard()[..2],
        [
            "Thank you for calling Acme Plumbing.",
            "For sales, press 1. For service, press 2."
        ]
    );
    assert_eq!(
        t.dialed(),
        [vec![OFFICE.to_owned()], vec![MOBILE.to_owned()]]
    );
    assert_eq!(t.answered_by(), Some(MOBILE));
    assert_eq!(rec["outcome"], "answered");
    // The path lists steps entered; the second ring of the same dial step is in the timeline.
    assert_eq!(path(&rec), ["hours", "greeting", "choose", "sales"]);
    assert_eq!(
        timeline_types(&rec)
            .iter()
            .filter(|t| **t == "dial_ended")
            .count(),
        2
    );

    let (t, rec) = call(
        &server,
        11,
        BILLBOARD,
        Script {
            digits: "1".into(),
            ..Script::default()
        },
    )
    .await;
    assert_eq!(t.dialed().len(), 2);
    assert_eq!(rec["outcome"], "voicemail");
    assert_eq!(rec["legs"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn menu_two_is_service_in_turns_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut firsts = Vec::new();
    {
        let server = Server::demo(dir.path(), MONDAY_MORNING);
        for n in 0..3 {
            let (t, _) = call(
                &server,
                20 + n,
                BILLBOARD,
                Script {
                    digits: "2".into(),
                    ..answering(&[OFFICE, MOBILE])
                },
            )
            .await;
            firsts.push(t.dialed()[0][0].clone());
        }
    }
    // A new process on the same database continues the rotation where it stopped.
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let (t, _) = call(
        &server,
        23,
        BILLBOARD,
        Script {
            digits: "2".into(),
            ..answering(&[OFFICE, MOBILE])
        },
    )
    .await;
    firsts.push(t.dialed()[0][0].clone());
    assert_eq!(firsts, [OFFICE, MOBILE, OFFICE, MOBILE]);
}

#[tokio::test]
async fn menu_retries_then_defaults_to_sales() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    // An invalid key, then silence, then silence again: offered three times, then sales.
    let script = Script {
        digits: "7".into(),
        ..answering(&[OFFICE])
    };
    let (t, rec) = call(&server, 30, BILLBOARD, script).await;
    let prompts = t
        .heard()
        .iter()
        .filter(|h| h.starts_with("For sales"))
        .count();
    assert_eq!(prompts, 3, "{t}");
    assert!(t.heard().contains(&"Sorry, that is not a valid choice."));
    assert_eq!(t.dialed(), [vec![OFFICE.to_owned()]]);
    assert_eq!(path(&rec), ["hours", "greeting", "choose", "sales"]);
    let gathers = rec["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["detail"]["trigger"] == "gather")
        .count();
    assert_eq!(gathers, 3, "three menu answers logged");
}

#[tokio::test]
async fn outside_business_hours_goes_straight_to_voicemail() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), SATURDAY);
    let (t, rec) = call(
        &server,
        40,
        BILLBOARD,
        Script {
            digits: "1".into(),
            ..answering(&[OFFICE])
        },
    )
    .await;
    assert!(t.dialed().is_empty());
    assert_eq!(
        t.heard()[0],
        "You have reached Acme Plumbing. Please leave a message after the tone."
    );
    assert_eq!(rec["outcome"], "voicemail");
    assert_eq!(path(&rec), ["hours", "voicemail"]);
}

#[test]
fn dialtone_call_prints_the_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let (code, out, err) = run(&[
        "call",
        "--server",
        &server.url,
        "--to",
        GBP,
        "--answer",
        MOBILE,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("caller hears: \"This call may be recorded for quality assurance.\""),
        "{out}"
    );
    assert!(out.contains(&format!("{MOBILE} answered")), "{out}");
    assert!(out.contains(&format!("Answered by {MOBILE}")), "{out}");

    let (code, _, err) = run(&["call", "--server", "http://127.0.0.1:9", "--to", GBP]);
    assert_ne!(code, 0);
    assert!(err.contains("could not reach"), "{err}");
}
