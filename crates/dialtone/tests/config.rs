//! Configuration from the command line: `config check`, refusing bad files at start, and reloads
//! that keep the running configuration when the new one is bad.

mod common;

use common::*;
use dialtone_core::demo;

#[test]
fn config_check_names_file_line_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, demo::CONFIG).unwrap();
    let (code, out, _) = run(&["config", "check", good.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.contains("ok (1 companies, 6 tracking numbers)"),
        "{out}"
    );

    let bad = dir.path().join("bad.toml");
    let text = demo::CONFIG.replacen("next = \"voicemail\"", "next = \"nowhere\"", 1);
    std::fs::write(&bad, &text).unwrap();
    let (code, _, err) = run(&["config", "check", bad.to_str().unwrap()]);
    assert_ne!(code, 0);
    let line = text[..text.find("\"nowhere\"").unwrap()]
        .matches('\n')
        .count()
        + 1;
    assert!(err.contains(&format!("bad.toml:{line}:")), "{err}");
    assert!(err.contains("unknown step `nowhere`"), "{err}");

    let (code, _, err) = run(&[
        "config",
        "check",
        dir.path().join("missing.toml").to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("missing.toml") && err.contains("cannot read"),
        "{err}"
    );

    // An empty, comment-only or cut-short file would route no call: each is an error that says
    // so, never `ok` and never an empty message.
    let cut = &demo::CONFIG[..demo::CONFIG.find("[[companies]]").unwrap() + "[[compan".len()];
    for (name, text, expected) in [
        ("empty.toml", "", "no [[carrier_accounts]]"),
        (
            "comments.toml",
            "# nothing yet\n\n",
            "no [[carrier_accounts]]",
        ),
        ("cut.toml", cut, "cut.toml:"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let (code, out, err) = run(&["config", "check", path.to_str().unwrap()]);
        assert_ne!(code, 0, "{name}: {out}");
        assert!(err.contains(expected), "{name}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.trim_end().len() > format!("{}: ", path.display()).len() + 10,
            "{name}: a message, not just a place: {err}"
        );
    }
}

#[test]
fn serve_refuses_a_bad_configuration_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        demo::CONFIG.replace("America/New_York", "Nowhere/Special"),
    )
    .unwrap();
    let (code, _, err) = run(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        bad.to_str().unwrap(),
        "--database",
        "sqlite::memory:",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("bad.toml:") && err.contains("Nowhere/Special"),
        "{err}"
    );
}

async fn inbound_status(server: &Server, n: u64, to: &str) -> (u16, String) {
    let p = inbound(&sid("CA", n), to);
    let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
    server.post_signed("/twilio/voice", &p).await
}

#[tokio::test]
async fn reload_by_api_and_sighup_keeps_the_running_config_when_the_new_one_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dialtone.toml");
    std::fs::write(&file, demo::CONFIG).unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--demo",
            "--config",
            file.to_str().unwrap(),
            "--clock-start",
            MONDAY_MORNING,
        ],
    );
    let new_number = "+14045550160";
    assert!(
        inbound_status(&server, 1, new_number)
            .await
            .1
            .contains("not in service")
    );

    // A bad edit is refused with its errors, and calls keep flowing on the old configuration.
    std::fs::write(&file, demo::CONFIG.replace("default = \"sales\"\n", "")).unwrap();
    let (status, body) = server
        .api_post("/api/v1/config/reload", demo::OPERATOR_KEY)
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("needs a `default`"),
        "{body}"
    );
    let (status, body) = inbound_status(&server, 2, "+14045550100").await;
    assert_eq!(status, 200);
    assert!(body.contains("<Dial"), "{body}");

    // A good edit adding a tracker takes effect without a restart.
    // (In TOML a company's trackers come before its flows, so insert it among the trackers.)
    let with_tracker = demo::CONFIG.replacen(
        "[[companies.trackers]]\nname = \"Google Ads\"",
        &format!("[[companies.trackers]]\nname = \"Radio\"\ntype = \"source\"\nnumber = \"{new_number}\"\nflow = \"main\"\n\n[[companies.trackers]]\nname = \"Google Ads\""),
        1,
    );
    std::fs::write(&file, &with_tracker).unwrap();
    let (status, body) = server
        .api_post("/api/v1/config/reload", demo::OPERATOR_KEY)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracking_numbers"], 7);
    assert!(
        inbound_status(&server, 3, new_number)
            .await
            .1
            .contains("<Dial")
    );

    // Removing it again: it took a call today, so a reload that drops it is refused with what
    // it would drop, and its callers keep being routed...
    std::fs::write(&file, demo::CONFIG).unwrap();
    let (status, body) = server
        .api_post("/api/v1/config/reload", demo::OPERATOR_KEY)
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["removals"][0]["kind"], "tracking_number", "{body}");
    assert_eq!(body["removals"][0]["name"], new_number, "{body}");
    assert_eq!(body["removals"][0]["calls_24h"], 1, "{body}");
    assert!(
        inbound_status(&server, 4, new_number)
            .await
            .1
            .contains("<Dial")
    );
    // ...unless asked for, by the API or the command line.
    let (code, out, err) = run(&[
        "config",
        "reload",
        "--url",
        &server.url,
        "--api-key",
        demo::OPERATOR_KEY,
    ]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("would drop tracking number +14045550160 (2 calls"),
        "{err}"
    );
    let (code, out, err) = run(&[
        "config",
        "reload",
        "--allow-removals",
        "--url",
        &server.url,
        "--api-key",
        demo::OPERATOR_KEY,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("removed tracking_number +14045550160"),
        "{out}"
    );
    assert!(
        inbound_status(&server, 5, new_number)
            .await
            .1
            .contains("not in service")
    );

    // An empty file (a failed copy) would drop everything: refused as a configuration.
    std::fs::write(&file, "").unwrap();
    let (status, body) = server
        .api_post("/api/v1/config/reload", demo::OPERATOR_KEY)
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("no [[carrier_accounts]]"),
        "{body}"
    );

    // SIGHUP: add it back.
    std::fs::write(&file, &with_tracker).unwrap();
    server.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if inbound_status(&server, 6, new_number)
            .await
            .1
            .contains("<Dial")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // A bad file on SIGHUP is refused too.
    std::fs::write(&file, "this is not toml [").unwrap();
    server.signal("HUP");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        inbound_status(&server, 7, "+14045550100")
            .await
            .1
            .contains("<Dial")
    );
}
