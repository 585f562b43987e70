//! Every operation the emulated carrier's REST API serves, checked against the carrier's own
//! published description of that API (`tests/spec/`, an extract of twilio/twilio-oai): the status
//! it documents, and a body with exactly the fields its schema names (each one, no other), of the
//! types, enumerations, patterns and formats it gives (RFC 2822 dates, relative URIs, E.164
//! numbers). The records come from calls the emulator placed itself.
//!
//! The description's schemas are OpenAPI 3.0: `nullable` becomes a JSON Schema null type, and
//! every object's properties become required with nothing else allowed, because the carrier
//! always writes every field (null when it does not apply).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use chrono::DateTime;
use dialtone_carrier::api::{CallLog, router};
use jsonschema::Validator;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use common::{NUMBERS, SID, TOKEN, emulated_calls, log_of};

const BASE: &str = "/2010-04-01/Accounts/{AccountSid}";

fn spec() -> Value {
    let text = include_str!("spec/twilio_api_v2010.json");
    serde_json::from_str(text).expect("the description is JSON")
}

/// `node` as strict JSON Schema: nullable as a null type, every property required, no other.
fn strict(node: &Value) -> Value {
    let Value::Object(map) = node else {
        return node.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        if k.starts_with("x-") || k == "description" || k == "nullable" {
            continue;
        }
        let v = match k.as_str() {
            "properties" => Value::Object(
                v.as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), strict(s)))
                    .collect(),
            ),
            "items" => strict(v),
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    if map.get("nullable") == Some(&Value::Bool(true)) {
        match out.get("type").cloned() {
            Some(Value::String(t)) => {
                out.insert("type".into(), json!([t, "null"]));
            }
            // A field of no type (the description's `encryption_details`) is anything.
            None if !out.contains_key("$ref") => {}
            _ => {}
        }
        if let Some(Value::Array(e)) = out.get_mut("enum") {
            e.push(Value::Null);
        }
    }
    if let Some(Value::Object(props)) = out.get("properties") {
        let names: Vec<Value> = props.keys().map(|k| Value::String(k.clone())).collect();
        out.insert("required".into(), Value::Array(names));
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

fn rfc2822_utc(s: &str) -> bool {
    DateTime::parse_from_rfc2822(s).is_ok() && s.ends_with(" +0000")
}

/// A URI as this API writes them: absolute http(s), or a path relative to the API's host.
fn uri(s: &str) -> bool {
    s.starts_with('/') || url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// A phone number: E.164, or (as the description's own examples write `friendly_name`, which it
/// gives this format) a North American number formatted for display, `(808) 925-1571`.
fn phone_number(s: &str) -> bool {
    let e164 = s
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()));
    let display = s.len() == 14
        && s.char_indices().all(|(i, c)| match i {
            0 => c == '(',
            4 => c == ')',
            5 => c == ' ',
            9 => c == '-',
            _ => c.is_ascii_digit(),
        });
    e164 || display
}

/// A validator for `schema` (a fragment of the description, resolved against its components).
fn validator(spec: &Value, schema: &Value) -> Validator {
    let mut root = strict(schema)
        .as_object()
        .cloned()
        .expect("a schema object");
    let schemas: Map<String, Value> = spec["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, s)| (name.clone(), strict(s)))
        .collect();
    root.insert("components".into(), json!({ "schemas": schemas }));
    jsonschema::options()
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_format("date-time-rfc-2822", rfc2822_utc)
        .with_format("uri", uri)
        .with_format("phone-number", phone_number)
        .with_format("http-method", |s: &str| s == "GET" || s == "POST")
        .with_format("iso-country-code", |s: &str| {
            s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase())
        })
        .with_format("currency", |s: &str| {
            s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase())
        })
        // Formats of objects and numbers: the schema's types already check them.
        .with_format("uri-map", |_: &str| false)
        .with_format("phone-number-capabilities", |_: &str| false)
        .with_format("int64", |_: &str| false)
        .build(&Value::Object(root))
        .expect("the description's schema compiles")
}

/// What the description says `method template` answers: its success status and body schema.
fn documented(spec: &Value, method: &Method, template: &str) -> (StatusCode, Option<Value>) {
    let op = &spec["paths"][format!("{BASE}{template}")][method.as_str().to_lowercase()];
    let responses = op["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{method} {template} is not in the description"));
    let (code, response) = responses.iter().next().expect("a documented response");
    let status = StatusCode::from_bytes(code.as_bytes()).expect("a status code");
    let schema = response["content"]["application/json"]["schema"].clone();
    (status, (!schema.is_null()).then_some(schema))
}

async fn send(
    log: &Arc<CallLog>,
    method: Method,
    path: &str,
    form: &[(&str, &str)],
    authenticated: bool,
) -> (StatusCode, Option<String>, Vec<u8>) {
    let mut req = Request::builder().method(method).uri(path);
    if authenticated {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"));
        req = req.header("authorization", format!("Basic {basic}"));
    }
    let body = if form.is_empty() {
        Body::empty()
    } else {
        req = req.header("content-type", "application/x-www-form-urlencoded");
        let encoded: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        Body::from(encoded)
    };
    let res = router(log.clone())
        .oneshot(req.body(body).expect("request"))
        .await
        .expect("router");
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, content_type, body.to_vec())
}

/// Sends the request and checks the answer against the description; returns the body.
async fn conforms(
    spec: &Value,
    log: &Arc<CallLog>,
    method: Method,
    template: &str,
    path: &str,
    form: &[(&str, &str)],
) -> Value {
    let (status, _, body) = send(log, method.clone(), path, form, true).await;
    let (want, schema) = documented(spec, &method, template);
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, want, "{method} {path}: {text}");
    let Some(schema) = schema else {
        assert!(body.is_empty(), "{method} {path} documents no body: {text}");
        return Value::Null;
    };
    let value: Value = serde_json::from_slice(&body).expect("a JSON body");
    let problems: Vec<String> = validator(spec, &schema)
        .iter_errors(&value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        problems.is_empty(),
        "{method} {path} does not match the description:\n  {}\n{value:#}",
        problems.join("\n  ")
    );
    value
}

fn records<'a>(page: &'a Value, key: &str) -> &'a Vec<Value> {
    page[key].as_array().expect("a list")
}

fn sid_of(v: &Value) -> String {
    v["sid"].as_str().expect("a sid").to_owned()
}

#[tokio::test]
async fn calls_and_their_paging_match_the_description() {
    let spec = spec();
    let (runs, _) = emulated_calls(12);
    let log = log_of(&runs);
    let path = format!("/2010-04-01/Accounts/{SID}/Calls.json?PageSize=5");
    let mut page = conforms(&spec, &log, Method::GET, "/Calls.json", &path, &[]).await;
    let mut calls = records(&page, "calls").clone();
    while let Some(next) = page["next_page_uri"].as_str().map(str::to_owned) {
        page = conforms(&spec, &log, Method::GET, "/Calls.json", &next, &[]).await;
        calls.extend(records(&page, "calls").iter().cloned());
    }
    let legs = runs.iter().map(|r| r.transcript.legs.len()).sum::<usize>();
    assert_eq!(calls.len(), runs.len() + legs);

    // Direction is a string in the schema; its description names the values.
    let directions = [
        "inbound",
        "outbound-api",
        "outbound-dial",
        "trunking-terminating",
        "trunking-originating",
    ];
    let statuses: BTreeSet<&str> = calls.iter().filter_map(|c| c["status"].as_str()).collect();
    assert!(statuses.len() > 1, "only {statuses:?}: the run should vary");
    for c in &calls {
        assert!(
            directions.contains(&c["direction"].as_str().unwrap_or("")),
            "{c}"
        );
        let one = format!("/2010-04-01/Accounts/{SID}/Calls/{}.json", sid_of(c));
        let fetched = conforms(&spec, &log, Method::GET, "/Calls/{Sid}.json", &one, &[]).await;
        assert_eq!(&fetched, c);
    }

    // Filters, kept in the paging URIs.
    let leg = calls
        .iter()
        .find(|c| c["parent_call_sid"].is_string())
        .expect("a dialed leg");
    let parent = leg["parent_call_sid"].as_str().unwrap_or_default();
    for query in [
        "To=%2B14045550100&PageSize=2".to_owned(),
        format!(
            "From={}",
            url::form_urlencoded::byte_serialize(leg["from"].as_str().unwrap_or("").as_bytes())
                .collect::<String>()
        ),
        "Status=completed".to_owned(),
        format!("ParentCallSid={parent}"),
        "StartTime%3E=2026-05-14&EndTime%3C=2026-05-15".to_owned(),
        "StartTime=2026-05-14".to_owned(),
    ] {
        let path = format!("/2010-04-01/Accounts/{SID}/Calls.json?{query}");
        let page = conforms(&spec, &log, Method::GET, "/Calls.json", &path, &[]).await;
        assert!(!records(&page, "calls").is_empty(), "{query}");
    }
    let none = format!("/2010-04-01/Accounts/{SID}/Calls.json?StartTime%3C=2026-05-14");
    let page = conforms(&spec, &log, Method::GET, "/Calls.json", &none, &[]).await;
    assert!(records(&page, "calls").is_empty());
}

#[tokio::test]
async fn recordings_match_the_description_and_belong_to_the_parent_call() {
    let spec = spec();
    let (runs, _) = emulated_calls(12);
    let log = log_of(&runs);
    let path = format!("/2010-04-01/Accounts/{SID}/Recordings.json");
    let all = conforms(&spec, &log, Method::GET, "/Recordings.json", &path, &[]).await;
    let recordings = records(&all, "recordings").clone();
    let sources: BTreeSet<&str> = recordings
        .iter()
        .filter_map(|r| r["source"].as_str())
        .collect();
    assert_eq!(
        sources,
        BTreeSet::from(["DialVerb", "RecordVerb"]),
        "recorded <Dial>s and voicemails"
    );
    let calls_path = format!("/2010-04-01/Accounts/{SID}/Calls.json?PageSize=1000");
    let calls = conforms(&spec, &log, Method::GET, "/Calls.json", &calls_path, &[]).await;
    for r in &recordings {
        let sid = sid_of(r);
        let call_sid = r["call_sid"].as_str().unwrap_or_default();
        // "This will always refer to the parent leg of a two-leg call."
        let call = records(&calls, "calls")
            .iter()
            .find(|c| c["sid"] == call_sid)
            .unwrap_or_else(|| panic!("{sid}: call_sid {call_sid} is no call"));
        assert!(
            call["parent_call_sid"].is_null(),
            "{sid} is filed under a dialed leg, not its parent call: {call}"
        );
        let of_call = format!("/2010-04-01/Accounts/{SID}/Calls/{call_sid}/Recordings.json");
        let listed = conforms(
            &spec,
            &log,
            Method::GET,
            "/Calls/{CallSid}/Recordings.json",
            &of_call,
            &[],
        )
        .await;
        assert!(
            records(&listed, "recordings")
                .iter()
                .any(|x| x["sid"] == sid),
            "{sid} is not among its call's recordings"
        );
        let one = format!("/2010-04-01/Accounts/{SID}/Calls/{call_sid}/Recordings/{sid}.json");
        let template = "/Calls/{CallSid}/Recordings/{Sid}.json";
        conforms(&spec, &log, Method::GET, template, &one, &[]).await;
        let one = format!("/2010-04-01/Accounts/{SID}/Recordings/{sid}.json");
        let fetched = conforms(
            &spec,
            &log,
            Method::GET,
            "/Recordings/{Sid}.json",
            &one,
            &[],
        )
        .await;
        assert_eq!(&fetched, r);
        // The media: a WAV file of the recording's duration, without credentials.
        let media = fetched["media_url"].as_str().unwrap_or_default();
        let media_path = media.strip_prefix("http://carrier.test").expect(media);
        let (status, content_type, wav) = send(&log, Method::GET, media_path, &[], false).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some("audio/x-wav"));
        let seconds: usize = r["duration"].as_str().unwrap_or("0").parse().unwrap_or(0);
        assert_eq!(wav.len(), 44 + seconds * 8000 * 2);
    }
    let filtered = format!(
        "{path}?CallSid={}&DateCreated%3E=2026-05-14",
        recordings[0]["call_sid"].as_str().unwrap_or_default()
    );
    let page = conforms(&spec, &log, Method::GET, "/Recordings.json", &filtered, &[]).await;
    assert!(!records(&page, "recordings").is_empty());

    // Deleted: gone from the list and the media, kept as `deleted` for who asks.
    let sid = sid_of(&recordings[0]);
    let one = format!("/2010-04-01/Accounts/{SID}/Recordings/{sid}.json");
    conforms(
        &spec,
        &log,
        Method::DELETE,
        "/Recordings/{Sid}.json",
        &one,
        &[],
    )
    .await;
    let after = conforms(&spec, &log, Method::GET, "/Recordings.json", &path, &[]).await;
    assert_eq!(records(&after, "recordings").len(), recordings.len() - 1);
    let soft = format!("{one}?IncludeSoftDeleted=true");
    let kept = conforms(
        &spec,
        &log,
        Method::GET,
        "/Recordings/{Sid}.json",
        &soft,
        &[],
    )
    .await;
    assert_eq!(kept["status"], "deleted");
    let media = format!("/2010-04-01/Accounts/{SID}/Recordings/{sid}");
    assert_eq!(
        send(&log, Method::GET, &media, &[], false).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn numbers_are_searched_bought_updated_and_released_as_described() {
    let spec = spec();
    let log = log_of(&[]);
    let base = format!("/2010-04-01/Accounts/{SID}");
    let local = "/AvailablePhoneNumbers/{CountryCode}/Local.json";
    let search = format!("{base}/AvailablePhoneNumbers/US/Local.json?AreaCode=404&PageSize=3");
    let found = conforms(&spec, &log, Method::GET, local, &search, &[]).await;
    let offered = records(&found, "available_phone_numbers");
    assert_eq!(offered.len(), 3);
    assert_eq!(offered[0]["locality"], "Atlanta");
    assert!(
        offered
            .iter()
            .all(|n| !NUMBERS.contains(&n["phone_number"].as_str().unwrap_or(""))),
        "numbers the account owns are not for sale"
    );
    let contains =
        format!("{base}/AvailablePhoneNumbers/US/Local.json?AreaCode=415&Contains=5550*99");
    let found = conforms(&spec, &log, Method::GET, local, &contains, &[]).await;
    assert_eq!(
        records(&found, "available_phone_numbers")[0]["phone_number"],
        "+14155550199"
    );
    let toll = format!("{base}/AvailablePhoneNumbers/US/TollFree.json?PageSize=2");
    let template = "/AvailablePhoneNumbers/{CountryCode}/TollFree.json";
    conforms(&spec, &log, Method::GET, template, &toll, &[]).await;

    let chosen = offered[0]["phone_number"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let list = format!("{base}/IncomingPhoneNumbers.json");
    let bought = conforms(
        &spec,
        &log,
        Method::POST,
        "/IncomingPhoneNumbers.json",
        &list,
        &[
            ("PhoneNumber", &chosen),
            ("VoiceUrl", "https://dialtone.example/twilio/voice"),
            ("VoiceFallbackUrl", "https://backup.example/fallback.xml"),
            ("StatusCallback", "https://dialtone.example/twilio/status"),
        ],
    )
    .await;
    assert_eq!(bought["phone_number"], chosen.as_str());
    assert_eq!(bought["voice_url"], "https://dialtone.example/twilio/voice");
    let by_area = conforms(
        &spec,
        &log,
        Method::POST,
        "/IncomingPhoneNumbers.json",
        &list,
        &[("AreaCode", "770")],
    )
    .await;
    assert!(
        by_area["phone_number"]
            .as_str()
            .unwrap_or("")
            .starts_with("+1770")
    );

    let owned = conforms(
        &spec,
        &log,
        Method::GET,
        "/IncomingPhoneNumbers.json",
        &list,
        &[],
    )
    .await;
    assert_eq!(
        records(&owned, "incoming_phone_numbers").len(),
        NUMBERS.len() + 2
    );
    let one = format!("{base}/IncomingPhoneNumbers/{}.json", sid_of(&bought));
    let template = "/IncomingPhoneNumbers/{Sid}.json";
    let updated = conforms(
        &spec,
        &log,
        Method::POST,
        template,
        &one,
        &[
            ("VoiceUrl", "https://elsewhere.example/voice"),
            ("VoiceMethod", "GET"),
        ],
    )
    .await;
    assert_eq!(updated["voice_url"], "https://elsewhere.example/voice");
    assert_eq!(updated["voice_method"], "GET");
    assert_eq!(
        updated["voice_fallback_url"],
        "https://backup.example/fallback.xml"
    );
    let fetched = conforms(&spec, &log, Method::GET, template, &one, &[]).await;
    assert_eq!(fetched, updated);
    conforms(&spec, &log, Method::DELETE, template, &one, &[]).await;
    assert_eq!(
        send(&log, Method::GET, &one, &[], true).await.0,
        StatusCode::NOT_FOUND
    );
    // Released: for sale again.
    let again = format!("{base}/AvailablePhoneNumbers/US/Local.json?AreaCode=404&PageSize=1");
    let found = conforms(&spec, &log, Method::GET, local, &again, &[]).await;
    assert_eq!(
        records(&found, "available_phone_numbers")[0]["phone_number"],
        chosen.as_str()
    );
}

/// The carrier's error document: exactly its four fields, the status repeated.
fn assert_error(status: StatusCode, body: &[u8], want: StatusCode, code: u64, what: &str) {
    let text = String::from_utf8_lossy(body);
    assert_eq!(status, want, "{what}: {text}");
    let doc: Value = serde_json::from_slice(body).unwrap_or_else(|_| panic!("{what}: {text}"));
    let keys: BTreeSet<&str> = doc
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        BTreeSet::from(["code", "message", "more_info", "status"]),
        "{what}"
    );
    assert_eq!(doc["code"], code, "{what}: {text}");
    assert_eq!(doc["status"], want.as_u16(), "{what}");
    assert!(!doc["message"].as_str().unwrap_or("").is_empty(), "{what}");
    assert_eq!(
        doc["more_info"],
        format!("https://www.twilio.com/docs/errors/{code}"),
        "{what}"
    );
}

/// A request the carrier refuses, and how.
struct Refused {
    method: Method,
    path: String,
    form: Vec<(&'static str, &'static str)>,
    status: StatusCode,
    code: u64,
}

fn refused(method: Method, path: String, status: StatusCode, code: u64) -> Refused {
    Refused {
        method,
        path,
        form: Vec::new(),
        status,
        code,
    }
}

#[tokio::test]
async fn refusals_are_the_carriers_error_documents() {
    let (runs, _) = emulated_calls(2);
    let log = log_of(&runs);
    let base = format!("/2010-04-01/Accounts/{SID}");
    let (bad, missing) = (StatusCode::BAD_REQUEST, StatusCode::NOT_FOUND);
    let calls = format!("{base}/Calls.json");
    let numbers = format!("{base}/IncomingPhoneNumbers.json");
    let buy = |form: Vec<(&'static str, &'static str)>, code| Refused {
        form,
        ..refused(Method::POST, numbers.clone(), bad, code)
    };
    let cases = [
        refused(Method::GET, format!("{calls}?PageSize=0"), bad, 20001),
        refused(
            Method::GET,
            format!("{calls}?Status=ringingish"),
            bad,
            20001,
        ),
        refused(
            Method::GET,
            format!("{calls}?StartTime=yesterday"),
            bad,
            20001,
        ),
        refused(
            Method::GET,
            format!("{base}/Calls/CA{:032x}.json", 9),
            missing,
            20404,
        ),
        refused(
            Method::GET,
            format!("{base}/Recordings/RE{:032x}.json", 9),
            missing,
            20404,
        ),
        refused(Method::GET, format!("{base}/Nothing.json"), missing, 20404),
        refused(
            Method::DELETE,
            calls.clone(),
            StatusCode::METHOD_NOT_ALLOWED,
            20004,
        ),
        refused(
            Method::GET,
            format!("{base}/AvailablePhoneNumbers/FR/Local.json"),
            missing,
            20404,
        ),
        refused(
            Method::GET,
            format!("{base}/AvailablePhoneNumbers/US/Local.json?AreaCode=800"),
            bad,
            20001,
        ),
        buy(vec![("PhoneNumber", "4045550101")], 21421),
        buy(vec![("PhoneNumber", NUMBERS[0])], 21422),
        buy(vec![("AreaCode", "40x")], 21452),
        buy(vec![], 20001),
        buy(vec![("AreaCode", "404"), ("VoiceUrl", "ftp://x")], 20001),
        buy(
            vec![("AreaCode", "404"), ("SmsUrl", "https://x.example")],
            20001,
        ),
        refused(
            Method::POST,
            format!("{base}/IncomingPhoneNumbers/PN{:032}.json", 1),
            missing,
            20404,
        ),
    ];
    let (status, _, body) = send(&log, Method::GET, &calls, &[], false).await;
    assert_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        20003,
        "no credentials",
    );
    for case in cases {
        let what = format!("{} {} {:?}", case.method, case.path, case.form);
        let (status, _, body) = send(&log, case.method, &case.path, &case.form, true).await;
        assert_error(status, &body, case.status, case.code, &what);
    }
}
