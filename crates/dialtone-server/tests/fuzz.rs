//! Fuzzing the HTTP surface a stranger reaches, through the real router on a real SQLite store:
//! signed carrier webhooks with generated parameters (a signed request gets past the signature,
//! so its parsing is what is tried), API query strings and cursors, DNI session bodies and AMP
//! queries. Never a panic, never a 5xx. `PROPTEST_CASES` sets the number of cases (CI:
//! proptest's default 256; `scripts/fuzz.sh`, a million per target).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use dialtone_core::{config, demo, links::Links};
use dialtone_server::{AppState, ConfigSource, SystemClock};
use dialtone_store::prelude::*;
use dialtone_store::{ApiKey, SqliteOptions};
use proptest::prelude::*;
use tower::ServiceExt;

mod common;
use common::PUBLIC;

struct App {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    _dir: tempfile::TempDir,
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.db");
        let options = SqliteOptions {
            fsync_every_commit: false,
            ..Default::default()
        };
        let store: Arc<dyn Store> =
            Arc::new(dialtone_store::sqlite::open(path.to_str().unwrap(), options).unwrap());
        let router = runtime.block_on(async {
            store
                .create_api_key(
                    demo::API_KEY,
                    &ApiKey::account(demo::ACCOUNT, true),
                    "fuzz",
                    chrono::Utc::now(),
                )
                .await
                .unwrap();
            let state = Arc::new(AppState::new(
                config::load("demo", demo::CONFIG, &|_: &str| None).unwrap(),
                ConfigSource::Builtin {
                    name: demo::CONFIG_NAME,
                    text: demo::CONFIG,
                },
                store,
                Arc::new(SystemClock),
                Links::new(PUBLIC),
                HashMap::new(),
            ));
            dialtone_server::router(state)
        });
        App {
            runtime,
            router,
            _dir: dir,
        }
    })
}

fn status_of(req: Request<Body>) -> u16 {
    let app = app();
    app.runtime
        .block_on(app.router.clone().oneshot(req))
        .unwrap()
        .status()
        .as_u16()
}

fn param() -> impl Strategy<Value = (String, String)> {
    let name = prop::sample::select(vec![
        "CallSid",
        "ParentCallSid",
        "From",
        "To",
        "CallStatus",
        "Direction",
        "Digits",
        "DialCallStatus",
        "DialCallSid",
        "DialCallDuration",
        "RecordingUrl",
        "RecordingSid",
        "RecordingStatus",
        "RecordingDuration",
        "StatusCallbackEvent",
        "CallDuration",
        "Other",
    ]);
    let value = prop_oneof![
        "\\PC{0,24}",
        Just("CA0123456789abcdef0123456789abcdef".to_owned()),
        Just("+14045550100".to_owned()),
        Just("+14045550150".to_owned()),
        Just("completed".to_owned()),
        Just("ringing".to_owned()),
        Just("inbound".to_owned()),
        Just("initiated".to_owned()),
        "[0-9]{0,12}",
    ];
    (name.prop_map(str::to_owned), value)
}

fn endpoint() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/twilio/voice".to_owned()),
        Just("/twilio/status".to_owned()),
        Just("/twilio/leg?company=acme-plumbing".to_owned()),
        Just("/twilio/recording".to_owned()),
        Just("/twilio/recording?voicemail=1".to_owned()),
        Just("/twilio/whisper?company=acme-plumbing&flow=main&step=ring".to_owned()),
        "/twilio/(gather|dial|voicemail)\\?(company=[a-z-]{0,14}&)?(flow=[a-z]{0,6}&)?(step=[a-z]{0,8}&)?(n=[0-9-]{0,3}&)?(rr=[0-9]{0,2}&)?(ds=[a-z_]{0,13})?",
    ]
}

proptest! {
    #[test]
    fn signed_webhooks_never_5xx(path in endpoint(), mut params in prop::collection::vec(param(), 0..10)) {
        params.push(("AccountSid".into(), demo::ACCOUNT_SID.into()));
        let url = format!("{PUBLIC}{path}");
        let signature = dialtone_twiml::compute_signature(demo::AUTH_TOKEN, &url, &params);
        let req = Request::post(&path)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .body(Body::from(dialtone_twiml::encode(&params)))
            .unwrap();
        let status = status_of(req);
        prop_assert!(status < 500, "{status} for {path} {params:?}");
    }

    #[test]
    fn api_queries_and_cursors_never_5xx(query in prop_oneof![
        "\\PC{0,60}",
        "(page=[0-9a-z-]{0,6}&)?(per_page=[0-9-]{0,5}&)?(start_date=[0-9T:-]{0,12}&)?(end_date=[0-9-]{0,10}&)?(outcome=[a-z_]{0,10}&)?(relative_pagination=[a-z]{0,5}&)?(cursor=[A-Za-z0-9_-]{0,40})?",
    ], path in prop::sample::select(vec!["/api/v1/calls", "/api/v1/calls/CA1", "/api/v1/dni/pools"])) {
        let uri = format!("{path}?{}", query.replace(['#', ' '], "%20"));
        let Ok(req) = Request::get(&uri).header("authorization", format!("Bearer {}", demo::API_KEY)).body(Body::empty()) else {
            return Ok(()); // not a URI a client could send
        };
        let status = status_of(req);
        prop_assert!(status < 500, "{status} for {uri}");
    }

    #[test]
    fn callrail_v3_queries_never_5xx(query in prop_oneof![
        "\\PC{0,60}",
        "(page=[0-9a-z-]{0,6}&)*(per_page=[0-9-]{0,5}&)?(date_range=[a-z_0-9]{0,12}&)?(start_date=[0-9T:.+-]{0,26}&)?(end_date=[0-9T:-]{0,12}&)?(time_zone=[A-Za-z/_]{0,20}&)?(answer_status=[a-z]{0,9}&)?(call_type=[a-z_]{0,10}&)?(direction=[a-z]{0,8}&)?(company_id=[A-Za-z-]{0,16}&)?(tracker_id=TRK[0-9a-f]{0,4}&)?(fields=[a-z_,]{0,40}&)?(sort=[a-z_]{0,10}&)?(order=[a-z]{0,4}&)?(relative_pagination=[a-z]{0,5}&)?(offset=[0-9]{0,4}&)?(cursor=[A-Za-z0-9_-]{0,40})?",
    ], path in prop::sample::select(vec![
        "/v3/a.json", "/v3/a/ACCdemo.json", "/v3/a/ACCdemo/calls.json", "/v3/a/ACCnobody/calls.json",
        "/v3/a/ACCdemo/calls/CAL1.json", "/v3/a/ACCdemo/calls/CAL_.json", "/v3/a/ACCdemo/calls/x",
    ]), quoted in any::<bool>()) {
        let uri = format!("{path}?{}", query.replace(['#', ' '], "%20"));
        let key = if quoted { format!("Token token=\"{}\"", demo::API_KEY) } else { format!("Token token={}", demo::API_KEY) };
        let Ok(req) = Request::get(&uri).header("authorization", key).body(Body::empty()) else {
            return Ok(()); // not a URI a client could send
        };
        let status = status_of(req);
        prop_assert!(status < 500, "{status} for {uri}");
    }

    #[test]
    fn dni_requests_never_5xx(body in prop_oneof![
        "\\PC{0,200}",
        ("\\PC{0,12}", "\\PC{0,40}", proptest::option::of("\\PC{0,20}"), proptest::option::of("\\PC{0,30}")).prop_map(|(company, landing, visitor, session)| {
            serde_json::json!({"company": company, "landing_url": landing, "visitor_id": visitor, "session_id": session}).to_string()
        }),
    ], amp in "(company=[a-z-]{0,14}&)?(url=[A-Za-z0-9%:/._-]{0,30}&)?(ref=[a-z%:/._-]{0,10}&)?(vid=[A-Za-z0-9._-]{0,20}&)?(__amp_source_origin=[a-z%:/.]{0,20})?") {
        let req = Request::post("/dni/v1/sessions")
            .header("content-type", "text/plain;charset=UTF-8")
            .header("origin", "http://127.0.0.1:4000")
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0 Safari/537.36")
            .body(Body::from(body.clone()))
            .unwrap();
        let status = status_of(req);
        prop_assert!(status < 500, "{status} for {body}");
        let uri = format!("/dni/v1/amp?{amp}");
        let req = Request::get(&uri).header("origin", "http://127.0.0.1:4000").body(Body::empty()).unwrap();
        let status = status_of(req);
        prop_assert!(status < 500, "{status} for {uri}");
    }
}
