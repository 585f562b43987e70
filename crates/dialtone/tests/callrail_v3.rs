//! The CallRail-compatible API (`/v3`), read by two third-party CallRail clients unchanged but
//! for their base URL (`scripts/callrail_clients.py`: callrail-mcp and pycallrail, installed by
//! `scripts/test-deps.sh`), and who may read what.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use common::*;
use dialtone_carrier::{Answer, CallOutcome, HttpTransport, Script, run_call};
use dialtone_core::demo;
use serde_json::{Value, json};

const GBP: &str = "+14045550100";
const MOBILE: &str = "+14045550112";

/// CallRail's default call fields: a call carries these and nothing else unless asked.
const DEFAULT_FIELDS: [&str; 16] = [
    "answered",
    "business_phone_number",
    "customer_city",
    "customer_country",
    "customer_name",
    "customer_phone_number",
    "customer_state",
    "direction",
    "duration",
    "id",
    "recording",
    "recording_duration",
    "recording_player",
    "start_time",
    "tracking_phone_number",
    "voicemail",
];

fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::env::var_os("DIALTONE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".venv-test/bin/python"))
}

/// What the clients read, `day` the date (of the server's clock) callrail-mcp's windows end on.
fn clients(server: &Server, key: &str, day: &str) -> Value {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/callrail_clients.py"
    );
    let out = Command::new(python())
        .args([script, &server.url, key, day])
        .output()
        .expect("run scripts/callrail_clients.py (bash scripts/test-deps.sh installs its clients)");
    assert!(
        out.status.success(),
        "callrail_clients.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script's JSON")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

/// A carrier call sid as CallRail's clients see it.
fn cal(sid: &str) -> String {
    format!("CAL{}", sid.strip_prefix("CA").unwrap())
}

#[tokio::test]
async fn callrail_clients_list_and_read_calls_unchanged_but_for_the_base_url() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    // An answered call, then one that goes to voicemail (CallRail counts it missed), then 205
    // calls still ringing: more than two of pycallrail's relative pages of 100.
    let answered = server.demo_call(GBP, sid("CA", 1));
    let script = Script {
        answer: Answer::Numbers(vec![MOBILE.to_owned()]),
        ..Script::default()
    };
    let t = run_call(&HttpTransport::new(), &answered, &script).await;
    assert_eq!(t.outcome, CallOutcome::Answered, "{t}");
    let voicemail = server.demo_call(GBP, sid("CA", 2));
    let t = run_call(&HttpTransport::new(), &voicemail, &Script::default()).await;
    assert_eq!(t.outcome, CallOutcome::Voicemail, "{t}");
    for n in 3..208 {
        server.voice(&sid("CA", n), GBP).await;
    }
    // The call log, newest first, as the native API lists it.
    let logged: Vec<String> = server
        .calls()
        .await
        .iter()
        .map(|c| cal(c["id"].as_str().unwrap()))
        .collect();
    assert_eq!(logged.len(), 207);

    let seen = clients(&server, demo::API_KEY, &MONDAY_MORNING[..10]);

    // Accounts: the key's own, in CallRail's envelope and shape.
    assert_eq!(seen["accounts"]["total_records"], 1, "{}", seen["accounts"]);
    assert_eq!(
        seen["account"],
        json!({ "id": "ACCdemo", "name": "Demo Agency", "outbound_recording_enabled": false, "hipaa_account": false })
    );
    assert_eq!(seen["pycallrail_account"], "ACCdemo");

    // Every call, newest first, by each client's paging: offset pages of 50 (callrail-mcp),
    // relative pages of 100 following next_page, offset pages repeating `page=` (pycallrail).
    assert_eq!(ids(&seen["offset_ids"]), logged);
    let relative: Vec<String> = seen["relative"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(relative, logged);
    assert_eq!(ids(&seen["pycallrail_offset_ids"]), logged);

    // The caller's first call is the oldest; pycallrail's strict model read every call.
    let first_calls: Vec<&Value> = seen["relative"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["first_call"] == true)
        .collect();
    assert_eq!(first_calls.len(), 1, "{first_calls:?}");
    assert_eq!(first_calls[0]["id"], cal(&sid("CA", 1)));

    // Filters: voicemail counts as missed; answered calls with the fields asked for.
    assert_eq!(ids(&seen["missed_ids"]), vec![cal(&sid("CA", 2))]);
    let answered_page = &seen["answered"];
    assert_eq!(answered_page["total_records"], 1, "{answered_page}");
    let call = &answered_page["calls"][0];
    assert_eq!(call["id"], cal(&sid("CA", 1)));
    assert_eq!(call["answered"], true);
    assert_eq!(call["business_phone_number"], MOBILE);
    assert_eq!(call["company_id"], "COMacme-plumbing");
    assert_eq!(call["source"], "Google Business Profile");
    assert_eq!(call["call_type"], "answered");
    assert!(
        call["tracker_id"].as_str().unwrap().starts_with("TRK"),
        "{call}"
    );
    assert!(
        call["start_time"].as_str().unwrap().ends_with("-05:00"),
        "local time in the company's zone: {call}"
    );

    // One call: the default fields and exactly the ones asked for.
    let shown = &seen["shown"];
    let mut expected: BTreeSet<String> = DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect();
    expected.extend(["first_call", "call_type", "routing", "flow_path"].map(String::from));
    assert_eq!(keys(shown), expected, "{shown}");
    assert_eq!(shown["id"], cal(&sid("CA", 1)));
    assert_eq!(shown["first_call"], true);
    assert_eq!(shown["routing"], "normal");

    // Updates: replaced tags, a note and a lead (callrail-mcp), a tag added and a value
    // (its client), then pycallrail's update, which clears what it sends as null.
    let newest = &logged[0];
    assert_eq!(seen["updated"]["id"], *newest);
    assert_eq!(seen["updated"]["tags"], json!(["New Client"]));
    assert_eq!(seen["appended"]["tags"], json!(["New Client", "VIP"]));
    assert_eq!(seen["appended"]["value"], "1250.50");
    let after = &seen["after_mcp"];
    assert_eq!(after["note"], "call back", "{after}");
    assert_eq!(after["lead_status"], "good_lead", "{after}");
    assert_eq!(after["formatted_value"], "$1250.50", "{after}");
    let after = &seen["after_pycallrail"];
    assert_eq!(
        after["tags"],
        json!(["New Client", "VIP", "Callback"]),
        "{after}"
    );
    assert_eq!(after["note"], "left a message", "{after}");
    assert_eq!(
        (&after["value"], &after["lead_status"]),
        (&Value::Null, &Value::Null),
        "{after}"
    );
    // Each update is in the call's timeline.
    let record = server.call(&format!("CA{}", &newest[3..])).await;
    let modified = record["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "call_modified")
        .count();
    assert_eq!(modified, 3, "{record}");
}

#[tokio::test]
async fn a_calls_default_fields_are_callrails_and_fields_adds_only_what_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    server.voice(&sid("CA", 1), GBP).await;
    server.voice(&sid("CA", 2), GBP).await;
    let key = Some(demo::API_KEY);
    // Both ways of paging name the next page in a Link header (Airbyte's connector pages so).
    for (query, next) in [
        ("per_page=1", "page=2"),
        ("per_page=1&relative_pagination=true", "cursor="),
    ] {
        let res = reqwest::Client::new()
            .get(format!("{}/v3/a/ACCdemo/calls.json?{query}", server.url))
            .header("Authorization", format!("Token token={}", demo::API_KEY))
            .send()
            .await
            .unwrap();
        let link = res.headers()["link"].to_str().unwrap().to_owned();
        assert!(
            link.starts_with(&format!("<{}/v3/a/ACCdemo/calls.json?", server.url))
                && link.contains(next)
                && link.ends_with(">; rel=\"next\""),
            "{query}: {link}"
        );
    }
    let (code, page) = v3(&server, "/v3/a/ACCdemo/calls.json", key).await;
    assert_eq!(code, 200, "{page}");
    let expected: BTreeSet<String> = DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect();
    assert_eq!(keys(&page["calls"][0]), expected);
    assert_eq!(page["calls"][0]["recording_duration"], Value::Null);

    let (code, body) = v3(
        &server,
        "/v3/a/ACCdemo/calls.json?fields=customer_secret",
        key,
    )
    .await;
    assert_eq!((code, body["error"].is_string()), (400, true), "{body}");
    // A filter dialtone cannot apply is refused, never ignored.
    let (code, body) = v3(&server, "/v3/a/ACCdemo/calls.json?search=smith", key).await;
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("search"), "{body}");
    // Listed above without dates (CallRail's `recent`, by the server's clock); not from a
    // later start date; an empty list is still one page.
    let (code, body) = v3(
        &server,
        "/v3/a/ACCdemo/calls.json?start_date=2026-11-30",
        key,
    )
    .await;
    assert_eq!(
        (code, body["total_records"].clone()),
        (200, json!(0)),
        "{body}"
    );
    assert_eq!(body["total_pages"], 1, "{body}");
}

/// A PUT of `body` with CallRail's authentication header.
async fn put(server: &Server, path: &str, key: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .put(format!("{}{}", server.url, path))
        .header("Authorization", format!("Token token=\"{key}\""))
        .json(&body)
        .send()
        .await
        .expect("v3 request");
    let code = res.status().as_u16();
    (code, res.json().await.unwrap_or(Value::Null))
}

/// A GET with CallRail's authentication header (or none).
async fn v3(server: &Server, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{}{}", server.url, path));
    if let Some(k) = key {
        req = req.header("Authorization", format!("Token token=\"{k}\""));
    }
    let res = req.send().await.expect("v3 request");
    let code = res.status().as_u16();
    (code, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_key_reads_its_own_account_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(dir.path(), &with_second_account(false), MONDAY_MORNING);
    server.voice(&sid("CA", 1), GBP).await;
    let acme_call = format!("/v3/a/ACCdemo/calls/{}.json", cal(&sid("CA", 1)));
    let database = format!("sqlite://{}", server.db.display());
    let config = dir.path().join("dialtone.toml");
    for admin in [false, true] {
        let mut args = vec!["keys", "create", "--database", &database];
        args.extend(["--config", config.to_str().unwrap(), "--account", "other"]);
        if admin {
            args.push("--admin");
        }
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        let bob = out.trim().to_owned();

        // Another account's key: Acme's account, calls and call are as absent as none at all.
        for path in ["/v3/a/ACCdemo.json", "/v3/a/ACCdemo/calls.json", &acme_call] {
            let (code, body) = v3(&server, path, Some(&bob)).await;
            assert_eq!(code, 404, "{path}: {body}");
        }
        // Nor through its own account's path; nor can it change the call.
        let theirs = acme_call.replace("ACCdemo", "ACCother");
        let (code, body) = v3(&server, &theirs, Some(&bob)).await;
        assert_eq!(code, 404, "{body}");
        // (A key that may only read learns no more than that.)
        let own_path = if admin { 404 } else { 403 };
        for (path, expected) in [(acme_call.as_str(), 404), (theirs.as_str(), own_path)] {
            let (code, body) = put(&server, path, &bob, json!({ "note": "mine" })).await;
            assert_eq!(code, expected, "{path}: {body}");
        }
        let (code, body) = v3(&server, "/v3/a.json", Some(&bob)).await;
        assert_eq!(code, 200);
        assert_eq!(body["accounts"][0]["id"], "ACCother", "{body}");
        assert_eq!(body["total_records"], 1, "{body}");
    }
    // Acme's own key reads it, in every form CallRail's clients send the key.
    for header in [
        format!("Token token=\"{}\"", demo::API_KEY),
        format!("Token token={}", demo::API_KEY),
        format!("Bearer {}", demo::API_KEY),
    ] {
        let res = reqwest::Client::new()
            .get(format!("{}{acme_call}", server.url))
            .header("Authorization", header.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{header}");
    }
    // A key that may only read cannot change a call; the account's admin key can, the operator's
    // too; a bad update is refused whole.
    let (code, out, err) = run(&[
        "keys",
        "create",
        "--database",
        &database,
        "--config",
        config.to_str().unwrap(),
        "--account",
        "demo",
    ]);
    assert_eq!(code, 0, "{err}");
    let reader = out.trim().to_owned();
    let (code, body) = put(&server, &acme_call, &reader, json!({ "note": "x" })).await;
    assert_eq!(code, 403, "{body}");
    for (key, note) in [
        (demo::API_KEY, "by the admin"),
        (demo::OPERATOR_KEY, "by the operator"),
    ] {
        let (code, body) = put(&server, &acme_call, key, json!({ "note": note })).await;
        assert_eq!(code, 200, "{body}");
    }
    let (code, body) = put(
        &server,
        &acme_call,
        demo::API_KEY,
        json!({ "note": "lost", "lead_status": "maybe" }),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    let (_, call) = v3(
        &server,
        &format!("{acme_call}?fields=note"),
        Some(demo::API_KEY),
    )
    .await;
    assert_eq!(call["note"], "by the operator", "{call}");
    // Marked as spam, the call is hidden.
    let (code, _) = put(&server, &acme_call, demo::API_KEY, json!({ "spam": true })).await;
    assert_eq!(code, 200);
    let (code, _) = v3(&server, &acme_call, Some(demo::API_KEY)).await;
    assert_eq!(code, 404);
    let (_, page) = v3(&server, "/v3/a/ACCdemo/calls.json", Some(demo::API_KEY)).await;
    assert_eq!(page["total_records"], 0, "{page}");

    // The operator's key sees every account.
    let (_, body) = v3(&server, "/v3/a.json", Some(demo::OPERATOR_KEY)).await;
    assert_eq!(body["total_records"], 2, "{body}");
    // No key, or an unknown one: 401 in CallRail's shape.
    for key in [None, Some("not-a-key")] {
        let (code, body) = v3(&server, "/v3/a.json", key).await;
        assert_eq!(code, 401, "{body}");
        assert_eq!(body, json!({ "error": "HTTP Token: Access denied." }));
    }
}
