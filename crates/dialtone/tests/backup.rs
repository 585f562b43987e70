//! `dialtone backup export`: a static document per tracking number that rings the company's
//! primary number, for the carrier's Fallback URL when dialtone is unreachable.

mod common;

use common::*;
use dialtone_twiml::{DialTarget, Verb};

#[test]
fn every_tracking_number_gets_a_document_ringing_its_companys_primary_number() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    let (code, stdout, err) = run(&["backup", "export", "--demo", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.starts_with("6 backup documents"), "{stdout}");
    let index = std::fs::read_to_string(out.join("index.csv")).unwrap();
    let rows: Vec<&str> = index.lines().skip(1).collect();
    assert_eq!(rows.len(), 6);
    for row in rows {
        let fields: Vec<&str> = row.split(',').collect();
        let (number, primary, file) = (fields[0], fields[3], fields[4]);
        assert_eq!(file, format!("{}.xml", &number[1..]));
        let doc = dialtone_twiml::parse(&std::fs::read_to_string(out.join(file)).unwrap())
            .expect("valid TwiML");
        let Some(Verb::Dial(dial)) = doc.verbs.first() else {
            panic!("{doc:?}")
        };
        let rung: Vec<&str> = dial
            .targets
            .iter()
            .filter_map(|t| match t {
                DialTarget::Number(n) => Some(n.number.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(rung, [primary], "{number}");
        assert_eq!(primary, "+14045550111", "the demo company's office");
    }
}

async fn voice(server: &Server, n: u64, to: &str) -> String {
    server.voice(&sid("CA", n), to).await
}

fn backup(server: &Server, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["backup"];
    all.extend(args);
    all.extend([
        "--url",
        &server.url,
        "--api-key",
        dialtone_core::demo::OPERATOR_KEY,
    ]);
    run(&all)
}

#[tokio::test]
async fn an_operator_sends_one_tracker_to_backup_and_no_one_else_until_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::demo(dir.path(), MONDAY_MORNING);
    let billboard = "+14045550150";
    let google = "+14045550100";
    assert!(
        voice(&server, 1, billboard).await.contains("<Gather"),
        "the menu flow"
    );

    let (code, out, err) = backup(
        &server,
        &[
            "on",
            "--company",
            "acme-plumbing",
            "--tracker",
            "Billboard I-85",
            "--reason",
            "carrier queueing",
            "--for",
            "30m",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("#1 100% of tracker \"Billboard I-85\" of acme-plumbing"),
        "{out}"
    );

    // The billboard's callers ring the office directly, and are still logged.
    let twiml = voice(&server, 2, billboard).await;
    assert!(
        twiml.contains(">+14045550111</Number>")
            && twiml.matches("<Number").count() == 1
            && !twiml.contains("<Gather"),
        "{twiml}"
    );
    let call = server.call(&sid("CA", 2)).await;
    assert_eq!(call["routing"], "backup");
    assert_eq!(call["routing_reason"], "backup rule 1: carrier queueing");
    assert_eq!(call["source"], "Billboard I-85", "still attributed");
    // Nobody else is touched.
    assert!(
        voice(&server, 3, google).await.contains("recorded"),
        "the main flow's notice"
    );

    // The rule survives a restart.
    server.kill9();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let (code, out, _) = backup(&server, &["status"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("#1 100% of tracker"), "{out}");
    assert!(!voice(&server, 4, billboard).await.contains("<Gather"));

    let (code, out, err) = backup(&server, &["off", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ended"));
    assert!(
        voice(&server, 5, billboard).await.contains("<Gather"),
        "back to its flow"
    );
    let (_, out, _) = backup(&server, &["status"]);
    assert!(out.starts_with("no backup routing rules"), "{out}");
}

#[tokio::test]
async fn bad_backup_rules_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    for (args, reason) in [
        (
            vec!["on", "--reason", "x", "--for", "1h"],
            "say which calls",
        ),
        (
            vec!["on", "--company", "nobody", "--reason", "x", "--for", "1h"],
            "unknown company `nobody`",
        ),
        (
            vec!["on", "--all", "--reason", " ", "--for", "1h"],
            "needs a reason",
        ),
        (
            vec!["on", "--all", "--reason", "x", "--for", "30d"],
            "a week",
        ),
        (
            vec![
                "on",
                "--all",
                "--reason",
                "x",
                "--for",
                "1h",
                "--percent",
                "0",
            ],
            "percent",
        ),
        (
            vec!["on", "--all", "--reason", "x", "--for", "soon"],
            "not a duration",
        ),
        (vec!["off", "42"], "no live backup rule 42"),
    ] {
        let (code, _, err) = backup(&server, &args);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(reason), "{args:?}: {err}");
    }
}

/// The seed's backup routing lost tracking. Here a website visitor's call that an operator sent
/// to backup routing still rings the primary number *and* is attributed to the visit.
#[tokio::test]
async fn calls_in_backup_routing_keep_their_website_attribution() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::demo(dir.path(), MONDAY_MORNING);
    let number = server
        .pool_number_for("https://acme.example/?gclid=G&utm_term=leak+repair")
        .await;
    let (code, _, err) = backup(
        &server,
        &[
            "on",
            "--company",
            "acme-plumbing",
            "--reason",
            "carrier queueing",
            "--for",
            "30m",
        ],
    );
    assert_eq!(code, 0, "{err}");

    let twiml = voice(&server, 40, &number).await;
    assert!(
        twiml.contains(">+14045550111</Number>") && twiml.matches("<Number").count() == 1,
        "{twiml}"
    );
    let call = server.call(&sid("CA", 40)).await;
    assert_eq!(call["routing"], "backup", "{call}");
    assert_eq!(call["source"], "Google Ads");
    assert_eq!(call["keywords"], "leak repair");
    assert_eq!(call["gclid"], "G");
    assert_eq!(call["attribution"]["confidence"], "certain");
}
