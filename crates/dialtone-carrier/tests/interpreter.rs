//! The interpreter against a small voice app of canned documents: fallback, errors, redirects,
//! relative URLs, gathers, and that everything it sends is signed.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::post;
use dialtone_carrier::{Answer, CallOutcome, CallSetup, HttpTransport, Script, run_call};
use dialtone_twiml::Form;

const TOKEN: &str = "app-token";

/// A request the app received: path and query, form parameters, signature header.
type Received = (String, Vec<(String, String)>, String);

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Received>>>);

async fn app(
    State(seen): State<Seen>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let form = Form::parse(&body);
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    seen.0
        .lock()
        .unwrap()
        .push((uri.to_string(), form.pairs().to_vec(), signature));
    let xml = |s: &str| {
        (
            StatusCode::OK,
            [("content-type", "text/xml")],
            format!("<Response>{s}</Response>"),
        )
    };
    match uri.path() {
        "/broken" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            "oops".to_owned(),
        ),
        "/garbage" => (
            StatusCode::OK,
            [("content-type", "text/xml")],
            "<Response><Say>unclosed</Response>".to_owned(),
        ),
        "/fallback" => xml("<Say>Fallback speaking.</Say><Hangup/>"),
        "/loop" => xml("<Redirect>loop</Redirect>"),
        "/menu" => xml(
            r#"<Gather action="choice" numDigits="1"><Say>Press a key.</Say></Gather><Say>You pressed nothing.</Say>"#,
        ),
        "/choice" => xml(&format!(
            "<Say>You pressed {}.</Say>",
            form.get("Digits").unwrap_or("?")
        )),
        "/dial" => xml(
            r#"<Dial action="/after" timeout="10"><Number statusCallback="/leg" statusCallbackEvent="initiated answered completed">+15550001</Number><Number statusCallback="/leg">+15550002</Number></Dial>"#,
        ),
        "/after" => xml(&format!(
            "<Say>Dial {}.</Say>",
            form.get("DialCallStatus").unwrap_or("?")
        )),
        // Features the emulator does not model, and an attribute TwiML does not have.
        "/speech" => xml(r#"<Gather input="speech"><Say>Say something.</Say></Gather>"#),
        "/bridge" => xml(r#"<Dial answerOnBridge="true"><Number>+15550001</Number></Dial>"#),
        "/client" => xml("<Dial><Client>agent</Client></Dial>"),
        "/transcribe" => xml(r#"<Record transcribe="true"/>"#),
        "/ringtone" => xml(r#"<Dial ringTone="uk"><Number>+15550001</Number></Dial>"#),
        "/colour" => xml(r#"<Say colour="blue">hi</Say>"#),
        _ => xml(""),
    }
}

async fn start() -> (String, Seen) {
    let seen = Seen::default();
    let router = Router::new()
        .route("/{*path}", post(app))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (base, seen)
}

fn setup(base: &str, path: &str, fallback: Option<&str>) -> CallSetup {
    CallSetup {
        account_sid: "AC00000000000000000000000000000009".into(),
        auth_token: TOKEN.into(),
        voice_url: format!("{base}{path}"),
        status_callback: Some(format!("{base}/status")),
        fallback_url: fallback.map(|f| format!("{base}{f}")),
        from: "+15559990000".into(),
        to: "+15551110000".into(),
        call_sid: "CA00000000000000000000000000000042".into(),
        api_base_url: None,
        arrived_at: chrono::DateTime::UNIX_EPOCH,
    }
}

fn assert_all_signed(base: &str, seen: &Seen) {
    for (uri, params, signature) in seen.0.lock().unwrap().iter() {
        let url = format!("{base}{uri}");
        assert!(
            dialtone_twiml::validate_signature(TOKEN, &url, params, signature),
            "unsigned request to {url}"
        );
    }
}

#[tokio::test]
async fn an_http_error_goes_to_the_fallback_url_with_the_error() {
    let (base, seen) = start().await;
    let t = run_call(
        &HttpTransport::new(),
        &setup(&base, "/broken", Some("/fallback")),
        &Script::default(),
    )
    .await;
    assert_eq!(t.heard(), ["Fallback speaking."]);
    assert_eq!(t.errors()[0].0, 11200);
    let requests = seen.0.lock().unwrap().clone();
    let fallback = requests
        .iter()
        .find(|(u, _, _)| u == "/fallback")
        .expect("fallback requested");
    let get = |k: &str| {
        fallback
            .1
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(get("ErrorCode").as_deref(), Some("11200"));
    assert_eq!(get("ErrorUrl"), Some(format!("{base}/broken")));
    assert_all_signed(&base, &seen);
}

#[tokio::test]
async fn what_the_emulator_does_not_model_is_the_carriers_schema_error_not_ignored() {
    let (base, seen) = start().await;
    for path in [
        "/speech",
        "/bridge",
        "/client",
        "/transcribe",
        "/ringtone",
        "/colour",
    ] {
        seen.0.lock().unwrap().clear();
        let t = run_call(
            &HttpTransport::new(),
            &setup(&base, path, Some("/fallback")),
            &Script::default(),
        )
        .await;
        assert_eq!(t.errors()[0].0, 12200, "{path}: {:?}", t.errors());
        assert_eq!(t.heard(), ["Fallback speaking."], "{path}");
        let requests = seen.0.lock().unwrap().clone();
        let fallback = requests
            .iter()
            .find(|(u, _, _)| u == "/fallback")
            .unwrap_or_else(|| panic!("{path}: no fallback request"));
        assert!(
            fallback
                .1
                .iter()
                .any(|(k, v)| k == "ErrorCode" && v == "12200"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn invalid_twiml_without_fallback_is_an_application_error() {
    let (base, seen) = start().await;
    let t = run_call(
        &HttpTransport::new(),
        &setup(&base, "/garbage", None),
        &Script::default(),
    )
    .await;
    assert_eq!(t.outcome, CallOutcome::ApplicationError);
    assert_eq!(t.errors()[0].0, 12100);
    assert!(t.heard()[0].contains("application error"));
    // The call still ends with a status callback.
    assert_eq!(seen.0.lock().unwrap().last().unwrap().0, "/status");
}

#[tokio::test]
async fn redirect_loops_are_cut_off() {
    let (base, seen) = start().await;
    let t = run_call(
        &HttpTransport::new(),
        &setup(&base, "/loop", None),
        &Script::default(),
    )
    .await;
    assert_eq!(t.outcome, CallOutcome::ApplicationError);
    assert!(t.errors().iter().any(|(code, _)| *code == 11215), "{t}");
    let loops = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(u, _, _)| u == "/loop")
        .count();
    assert_eq!(
        loops, 100,
        "the relative Redirect resolved to /loop each time"
    );
}

#[tokio::test]
async fn gather_sends_digits_to_a_relative_action_or_falls_through() {
    let (base, seen) = start().await;
    let pressed = Script {
        digits: "7".into(),
        ..Script::default()
    };
    let t = run_call(
        &HttpTransport::new(),
        &setup(&base, "/menu", None),
        &pressed,
    )
    .await;
    assert_eq!(t.heard(), ["Press a key.", "You pressed 7."]);
    let t = run_call(
        &HttpTransport::new(),
        &setup(&base, "/menu", None),
        &Script::default(),
    )
    .await;
    assert_eq!(t.heard(), ["Press a key.", "You pressed nothing."]);
    assert_all_signed(&base, &seen);
}

#[tokio::test]
async fn simulcall_answers_one_leg_and_cancels_the_other() {
    let (base, seen) = start().await;
    let script = Script {
        answer: Answer::Numbers(vec!["+15550002".into()]),
        ..Script::default()
    };
    let t = run_call(&HttpTransport::new(), &setup(&base, "/dial", None), &script).await;
    assert_eq!(t.answered_by(), Some("+15550002"));
    assert_eq!(t.heard(), ["Dial completed."]);
    let legs: Vec<(String, String)> = seen
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|(u, _, _)| u == "/leg")
        .map(|(_, p, _)| {
            let get = |k: &str| {
                p.iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (
                get("To"),
                format!("{}:{}", get("StatusCallbackEvent"), get("CallStatus")),
            )
        })
        .collect();
    // The first number asked for three events; the second only for `completed` (the default).
    assert_eq!(
        legs,
        [
            ("+15550001".to_owned(), "initiated:initiated".to_owned()),
            ("+15550001".to_owned(), "completed:canceled".to_owned()),
            ("+15550002".to_owned(), "completed:completed".to_owned()),
        ]
    );
    // Nobody answering: no-answer reaches the action.
    let t = run_call(
        &HttpTransport::new(),
        &setup(&base, "/dial", None),
        &Script::default(),
    )
    .await;
    assert_eq!(t.heard(), ["Dial no-answer."]);
    assert_all_signed(&base, &seen);
}

#[tokio::test]
async fn an_unreachable_app_is_a_connection_failure() {
    let t = run_call(
        &HttpTransport::new(),
        &setup("http://127.0.0.1:9", "/voice", None),
        &Script::default(),
    )
    .await;
    assert_eq!(t.outcome, CallOutcome::ApplicationError);
    assert_eq!(t.errors()[0].0, 11205);
}
