//! The REST API: authentication, account isolation, filters and paging.

mod common;

use common::*;
use dialtone_core::demo;

async fn inbound_call(server: &Server, n: u64, to: &str) -> String {
    let call_sid = sid("CA", n);
    let p = inbound(&call_sid, to);
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = server.post_signed("/twilio/voice", &p).await;
    assert_eq!(status, 200, "{body}");
    call_sid
}

async fn end_call(server: &Server, call_sid: &str, to: &str, status: &str) {
    let p = [
        ("AccountSid", demo::ACCOUNT_SID),
        ("CallSid", call_sid),
        ("CallStatus", status),
        ("Direction", "inbound"),
        ("From", CALLER),
        ("To", to),
        ("CallDuration", "7"),
    ];
    let (code, body) = server.post_signed("/twilio/status", &p).await;
    assert_eq!(code, 200, "{body}");
}

#[tokio::test]
async fn keys_are_required_and_accounts_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(dir.path(), &with_second_account(false), MONDAY_MORNING);
    let database = format!("sqlite://{}", server.db.display());
    let config = dir.path().join("dialtone.toml");
    let config = config.to_str().unwrap();
    // A key is for an account the configuration has: not an unknown one, not an empty one (it
    // would see every untracked call), and not unchecked.
    for (account, with_config, expected) in [
        ("nobody", true, "no account `nobody`"),
        ("", true, "no account ``"),
        ("other", false, "checked against the configuration"),
    ] {
        let mut args = vec![
            "keys",
            "create",
            "--account",
            account,
            "--database",
            &database,
        ];
        if with_config {
            args.extend(["--config", config]);
        }
        let (code, out, err) = run(&args);
        assert_ne!(code, 0, "{account}: {out}");
        assert!(err.contains(expected), "{account}: {err}");
    }
    let (code, other_key, err) = run(&[
        "keys",
        "create",
        "--account",
        "other",
        "--config",
        config,
        "--database",
        &database,
    ]);
    assert_eq!(code, 0, "{err}");
    let other_key = other_key.trim().to_owned();

    let acme = inbound_call(&server, 1, "+14045550100").await;
    let bobs = inbound_call(&server, 2, "+13125550100").await;

    let (status, body) = server.api("/api/v1/calls", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("Bearer"));
    assert_eq!(server.api("/api/v1/calls", Some("wrong-key")).await.0, 401);

    let (_, demo_page) = server.api("/api/v1/calls", Some(demo::API_KEY)).await;
    let ids: Vec<&str> = demo_page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [acme.as_str()]);
    let (_, other_page) = server.api("/api/v1/calls", Some(&other_key)).await;
    assert_eq!(other_page["calls"][0]["id"], bobs.as_str());
    assert_eq!(other_page["total_records"], 1);

    // Another account's call is not found, not forbidden: its existence is not revealed.
    assert_eq!(
        server
            .api(&format!("/api/v1/calls/{bobs}"), Some(demo::API_KEY))
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .api(&format!("/api/v1/calls/{acme}"), Some(&other_key))
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .api(&format!("/api/v1/calls/{acme}"), Some(demo::API_KEY))
            .await
            .0,
        200
    );
    // Only admin keys reload the configuration.
    assert_eq!(
        server.api_post("/api/v1/config/reload", &other_key).await.0,
        403
    );
}

#[tokio::test]
async fn filters_and_paging() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let mut sids = Vec::new();
    for n in 0..7u64 {
        let to = if n % 2 == 0 {
            "+14045550100"
        } else {
            "+14045550150"
        };
        let s = inbound_call(&server, 100 + n, to).await;
        if n < 3 {
            end_call(&server, &s, to, "completed").await;
        }
        sids.push(s);
    }
    let key = Some(demo::API_KEY);
    let (_, page) = server.api("/api/v1/calls?per_page=3&page=2", key).await;
    assert_eq!(
        (
            page["total_records"].as_u64(),
            page["total_pages"].as_u64(),
            page["page"].as_u64()
        ),
        (Some(7), Some(3), Some(2))
    );
    // Newest first: the second page holds the 4th to 6th newest.
    let ids: Vec<&str> = page["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [sids[3].as_str(), sids[2].as_str(), sids[1].as_str()]);

    // Relative pagination follows `next_page` links, keeps the filters, and counts nothing.
    let mut walked = Vec::new();
    let mut path =
        "/api/v1/calls?relative_pagination=true&per_page=3&company=acme-plumbing".to_owned();
    loop {
        let (status, page) = server.api(&path, key).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.get("total_records").is_none(), "{page}");
        walked.extend(
            page["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned()),
        );
        let Some(next) = page["next_page"].as_str() else {
            assert_eq!(page["has_next_page"], false);
            break;
        };
        assert_eq!(page["has_next_page"], true);
        assert!(next.contains("company=acme-plumbing"), "{next}");
        path = next
            .strip_prefix(&server.url)
            .unwrap_or_else(|| panic!("{next} is not on {}", server.url))
            .to_owned();
    }
    let newest_first: Vec<String> = sids.iter().rev().cloned().collect();
    assert_eq!(walked, newest_first);

    let (_, billboard) = server
        .api("/api/v1/calls?tracker=Billboard%20I-85", key)
        .await;
    assert_eq!(billboard["total_records"], 3);
    assert!(
        billboard["calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["source"] == "Billboard I-85")
    );
    let (_, missed) = server.api("/api/v1/calls?outcome=missed", key).await;
    assert_eq!(missed["total_records"], 3, "{missed}");
    let (_, live) = server
        .api(
            "/api/v1/calls?outcome=in_progress&company=acme-plumbing",
            key,
        )
        .await;
    assert_eq!(live["total_records"], 4);
    let (_, none) = server.api("/api/v1/calls?company=someone-else", key).await;
    assert_eq!(none["total_records"], 0);

    // Dates are inclusive, on the call's start.
    // The server's clock runs from MONDAY_MORNING, so calls are dated 2026-11-23.
    let (_, on_monday) = server
        .api(
            "/api/v1/calls?start_date=2026-11-23&end_date=2026-11-23",
            key,
        )
        .await;
    assert_eq!(on_monday["total_records"], 7);
    let (_, after) = server.api("/api/v1/calls?start_date=2026-11-24", key).await;
    assert_eq!(after["total_records"], 0);

    for (query, needle) in [
        ("per_page=251", "per_page"),
        ("per_page=0", "per_page"),
        ("page=x", "page"),
        ("outcome=great", "outcome"),
        ("start_date=yesterday", "start_date"),
        ("start_date=2026-11-24&end_date=2026-11-23", "end_date"),
        ("relative_pagination=yes", "relative_pagination"),
        ("relative_pagination=true&page=2", "next_page"),
        ("cursor=abc", "relative_pagination=true"),
        ("relative_pagination=true&cursor=abc", "cursor"),
        ("relative_pagination=true&cursor=!!", "cursor"),
    ] {
        let (status, body) = server.api(&format!("/api/v1/calls?{query}"), key).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }
}
