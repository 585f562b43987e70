//! The emulated carrier's REST API: the Calls resource with the carrier's paging, recordings.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use chrono::{TimeZone, Utc};
use dialtone_carrier::api::{CallLog, router};
use dialtone_carrier::cdr::{self, CallRecords};
use dialtone_carrier::emulator::CallRun;
use dialtone_carrier::{CallOutcome, LegRecord, RecordingRecord, Transcript};
use serde_json::Value;
use tower::ServiceExt;

const SID: &str = "AC00000000000000000000000000000007";
const TOKEN: &str = "api-token";

/// Call `n`, arriving at `n` seconds, with one answered and recorded leg.
fn call(n: u32) -> CallRecords {
    let call_sid = format!("CA{n:032x}");
    let leg_sid = format!("CA{:032x}", 0xff00 + n);
    let run = CallRun {
        arrived_at: f64::from(n),
        from: format!("+1770555{n:04}"),
        to: if n.is_multiple_of(2) {
            "+14045550100"
        } else {
            "+14045550150"
        }
        .into(),
        transcript: Transcript {
            call_sid: call_sid.clone(),
            steps: Vec::new(),
            outcome: CallOutcome::Answered,
            duration_s: 30.0,
            legs: vec![LegRecord {
                sid: leg_sid.clone(),
                to: "+14045551000".into(),
                from: "+17705550000".into(),
                requested_at_s: 1.0,
                started_at_s: Some(1.5),
                answered_at_s: Some(4.0),
                ended_at_s: 28.0,
                status: "completed",
                talk_s: 24.0,
            }],
            post_dial_delay_s: Some(0.5),
            recordings: vec![RecordingRecord {
                sid: format!("RE{n:032x}"),
                call_sid: call_sid.clone(),
                url: format!("http://carrier.test/2010-04-01/Accounts/{SID}/Recordings/RE{n:032x}"),
                started_at_s: 4.0,
                duration_s: 2,
                channels: 2,
                voicemail: false,
            }],
        },
        requests: Default::default(),
    };
    let start = Utc
        .with_ymd_and_hms(2026, 5, 14, 13, 0, 0)
        .single()
        .expect("start");
    cdr::records(&run, SID, start)
}

fn log_of(calls: u32) -> Arc<CallLog> {
    let log = CallLog::new(SID, TOKEN);
    for n in 1..=calls {
        log.add(&call(n));
    }
    log
}

async fn get(
    log: &Arc<CallLog>,
    path: &str,
    credentials: Option<(&str, &str)>,
) -> (StatusCode, Vec<u8>) {
    let mut req = Request::get(path);
    if let Some((user, password)) = credentials {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        req = req.header("authorization", format!("Basic {basic}"));
    }
    let res = router(log.clone())
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("router");
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, body.to_vec())
}

async fn json(log: &Arc<CallLog>, path: &str) -> Value {
    let (status, body) = get(log, path, Some((SID, TOKEN))).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{path}: {}",
        String::from_utf8_lossy(&body)
    );
    serde_json::from_slice(&body).expect("JSON")
}

fn sids(page: &Value, key: &str) -> Vec<String> {
    page[key]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["sid"].as_str().expect("sid").to_owned())
        .collect()
}

#[tokio::test]
async fn following_next_page_uri_lists_every_call_once_newest_first_even_while_calls_arrive() {
    let log = log_of(7);
    let path = format!("/2010-04-01/Accounts/{SID}/Calls.json?PageSize=3");
    let mut page = json(&log, &path).await;
    assert_eq!(page["page"], 0);
    assert_eq!(page["page_size"], 3);
    assert_eq!(page["previous_page_uri"], Value::Null);
    let mut seen = sids(&page, "calls");
    let mut arrivals = 7;
    while let Some(next) = page["next_page_uri"].as_str().map(str::to_owned) {
        // A new call ends while the list is being read: it goes on top, not into the pages.
        arrivals += 1;
        log.add(&call(arrivals));
        page = json(&log, &next).await;
        seen.extend(sids(&page, "calls"));
    }
    // 7 calls and their 7 legs, newest first: call 7 (then its leg), call 6 ...
    assert_eq!(seen.len(), 14, "{seen:?}");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 14, "a record was listed twice: {seen:?}");
    assert_eq!(seen[0], format!("CA{:032x}", 0xff00 + 7));
    assert_eq!(seen[1], format!("CA{:032x}", 7));
    assert_eq!(seen[13], format!("CA{:032x}", 1));
    assert_eq!(page["page"], 4);

    // The previous page of the last one is the one before it.
    let previous = page["previous_page_uri"]
        .as_str()
        .expect("previous")
        .to_owned();
    let back = json(&log, &previous).await;
    assert_eq!(sids(&back, "calls"), seen[9..12].to_vec());
}

#[tokio::test]
async fn filters_stay_in_the_paging_uris() {
    let log = log_of(6);
    let path = format!("/2010-04-01/Accounts/{SID}/Calls.json?To=%2B14045550100&PageSize=2");
    let page = json(&log, &path).await;
    let next = page["next_page_uri"].as_str().expect("next");
    assert!(next.contains("To=%2B14045550100"), "{next}");
    let rest = json(&log, next).await;
    let all: Vec<String> = sids(&page, "calls")
        .into_iter()
        .chain(sids(&rest, "calls"))
        .collect();
    assert_eq!(all, [6, 4, 2].map(|n| format!("CA{n:032x}")));

    let parent = format!("CA{:032x}", 3);
    let legs = json(
        &log,
        &format!("/2010-04-01/Accounts/{SID}/Calls.json?ParentCallSid={parent}"),
    )
    .await;
    assert_eq!(sids(&legs, "calls"), [format!("CA{:032x}", 0xff00 + 3)]);
    assert_eq!(legs["calls"][0]["direction"], "outbound-dial");
    assert_eq!(legs["calls"][0]["queue_time"], "500");
    assert_eq!(
        legs["calls"][0]["start_time"],
        "Thu, 14 May 2026 13:00:04 +0000"
    );
}

#[tokio::test]
async fn the_api_wants_the_accounts_credentials() {
    let log = log_of(1);
    let path = format!("/2010-04-01/Accounts/{SID}/Calls.json");
    let (status, body) = get(&log, &path, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let error: Value = serde_json::from_slice(&body).expect("error JSON");
    assert_eq!(error["code"], 20003);
    assert_eq!(
        get(&log, &path, Some((SID, "wrong"))).await.0,
        StatusCode::UNAUTHORIZED
    );
    let other = "/2010-04-01/Accounts/AC99999999999999999999999999999999/Calls.json";
    assert_eq!(
        get(&log, other, Some((SID, TOKEN))).await.0,
        StatusCode::NOT_FOUND
    );
    for bad in [
        "PageSize=0",
        "PageSize=1001",
        "PageSize=x",
        "Page=-1",
        "PageToken=PAnobody",
    ] {
        let (status, _) = get(&log, &format!("{path}?{bad}"), Some((SID, TOKEN))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn calls_and_recordings_are_fetched_one_by_one_and_recordings_download_as_wav() {
    let log = log_of(2);
    let one = json(
        &log,
        &format!("/2010-04-01/Accounts/{SID}/Calls/CA{:032x}.json", 2),
    )
    .await;
    assert_eq!(one["status"], "completed");
    assert_eq!(one["duration"], "30");
    let missing = format!("/2010-04-01/Accounts/{SID}/Calls/CA{:032x}.json", 9);
    assert_eq!(
        get(&log, &missing, Some((SID, TOKEN))).await.0,
        StatusCode::NOT_FOUND
    );

    // A recorded <Dial>'s recording is the parent call's, not the leg's.
    let parent = format!("CA{:032x}", 2);
    let of_call = json(
        &log,
        &format!("/2010-04-01/Accounts/{SID}/Calls/{parent}/Recordings.json"),
    )
    .await;
    assert_eq!(sids(&of_call, "recordings"), [format!("RE{:032x}", 2)]);
    assert_eq!(of_call["recordings"][0]["source"], "DialVerb");
    assert_eq!(of_call["recordings"][0]["call_sid"], parent.as_str());
    let all = json(&log, &format!("/2010-04-01/Accounts/{SID}/Recordings.json")).await;
    assert_eq!(sids(&all, "recordings").len(), 2);

    // The audio needs no credentials, as at the carrier by default.
    let audio = format!("/2010-04-01/Accounts/{SID}/Recordings/RE{:032x}.wav", 2);
    let (status, wav) = get(&log, &audio, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&wav[..4], b"RIFF");
    assert_eq!(wav.len(), 44 + 2 * 8000 * 2, "2 s of 8 kHz 16-bit mono");
    let mp3 = format!("/2010-04-01/Accounts/{SID}/Recordings/RE{:032x}.mp3", 2);
    assert_eq!(get(&log, &mp3, None).await.0, StatusCode::NOT_FOUND);
}
