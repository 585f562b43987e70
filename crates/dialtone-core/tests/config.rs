//! Loading configuration files: the demo loads, and every kind of mistake is refused with its line.

use dialtone_core::config::{ConfigErrors, load};
use dialtone_core::demo;

fn no_env(_: &str) -> Option<String> {
    None
}

fn errors(source: &str) -> ConfigErrors {
    load("test.toml", source, &no_env).expect_err("config should be refused")
}

/// The demo file with one substitution, checked to have happened.
fn demo_with(from: &str, to: &str) -> String {
    assert!(
        demo::CONFIG.contains(from),
        "demo config no longer contains {from:?}"
    );
    demo::CONFIG.replacen(from, to, 1)
}

fn line_of(source: &str, needle: &str) -> usize {
    let at = source.find(needle).expect("needle in source");
    source[..at].matches('\n').count() + 1
}

#[test]
fn the_demo_configuration_loads() {
    let config = load(demo::CONFIG_NAME, demo::CONFIG, &no_env).unwrap();
    assert_eq!(config.companies.len(), 1);
    let acme = &config.companies[0];
    assert_eq!(acme.slug, "acme-plumbing");
    assert_eq!(acme.primary_number.as_str(), "+14045550111");
    assert_eq!(config.tracking_numbers(), 6);
    let t = config.tracker_for("+14045550150").unwrap();
    assert_eq!(
        (t.tracker.name.as_str(), t.flow.name.as_str()),
        ("Billboard I-85", "menu")
    );
    assert_eq!(
        config.tracker_for("+14045550203").unwrap().tracker.name,
        "Google Ads"
    );
    assert!(config.tracker_for("+14045550999").is_none());
    assert_eq!(
        config.carrier_by_sid(demo::ACCOUNT_SID).unwrap().auth_token,
        demo::AUTH_TOKEN
    );
}

#[test]
fn syntax_errors_name_file_line_and_column() {
    let src = demo_with(
        "time_zone = \"America/New_York\"",
        "time_zone = America/New_York",
    );
    let e = errors(&src);
    let text = e.to_string();
    let line = line_of(&src, "time_zone = America");
    assert!(text.starts_with(&format!("test.toml:{line}:")), "{text}");
}

#[test]
fn unknown_step_references_are_refused_at_their_line() {
    let src = demo_with("next = \"voicemail\"", "next = \"voicemal\"");
    let e = errors(&src);
    let line = line_of(&src, "voicemal\"");
    assert_eq!(e.errors.len(), 1, "{e}");
    assert_eq!(e.errors[0].line, Some(line));
    assert!(
        e.errors[0].message.contains("unknown step `voicemal`"),
        "{e}"
    );
}

#[test]
fn unreachable_steps_are_refused() {
    let src = format!(
        "{}\n[companies.flows.menu.steps.orphan]\ntype = \"hangup\"\n",
        demo::CONFIG
    );
    let e = errors(&src);
    assert!(
        e.to_string().contains("step `orphan` can never be reached"),
        "{e}"
    );
    assert_eq!(
        e.errors[0].line,
        Some(line_of(&src, "[companies.flows.menu.steps.orphan]"))
    );
}

#[test]
fn loops_without_a_key_press_are_refused() {
    // The voicemail of `main` becomes a greeting that leads back to the dial: nobody answering
    // would ring forever.
    let src = demo_with(
        "[companies.flows.main.steps.voicemail]\ntype = \"voicemail\"\nsay = \"Sorry, nobody at Acme Plumbing can take your call. Please leave a message after the tone.\"",
        "[companies.flows.main.steps.voicemail]\ntype = \"greeting\"\nsay = \"Still trying\"\nnext = \"ring\"",
    );
    let e = errors(&src);
    assert!(
        e.to_string()
            .contains("loop without the caller pressing a key"),
        "{e}"
    );
    assert!(e.to_string().contains("ring → voicemail → ring"), "{e}");
}

#[test]
fn a_menu_without_default_is_refused() {
    let src = demo_with("default = \"sales\"\n", "");
    let e = errors(&src);
    assert!(
        e.to_string().contains("a menu needs a `default` step"),
        "{e}"
    );
    assert_eq!(
        e.errors[0].line,
        Some(line_of(&src, "[companies.flows.menu.steps.choose]"))
    );
}

#[test]
fn recording_without_notice_needs_an_explicit_opt_out_with_a_reason() {
    let src = demo_with("start = \"notice\"", "start = \"record\"");
    let e = errors(&src);
    // The notice step is now unreachable too; the recording error is the one that matters here.
    let text = e.to_string();
    assert!(
        text.contains(
            "step `record` records the call but the path record plays no recording notice"
        ),
        "{text}"
    );

    let opted_out = src.replace(
        "notice = \"This call may be recorded for quality assurance.\"",
        "without_notice_reason = \"Callers consent in the contract they sign\"",
    );
    let e = errors(&opted_out);
    assert!(
        !e.to_string().contains("records the call"),
        "opt-out should allow it: {e}"
    );
    assert!(
        e.to_string().contains("`notice` can never be reached"),
        "{e}"
    );

    let empty_reason = src.replace(
        "notice = \"This call may be recorded for quality assurance.\"",
        "without_notice_reason = \"  \"",
    );
    assert!(errors(&empty_reason).to_string().contains("must say why"));
}

#[test]
fn bad_values_are_each_reported() {
    let src = demo_with("office = \"+14045550111\"", "office = \"404-555-0111\"")
        .replace(
            "time_zone = \"America/New_York\"",
            "time_zone = \"Mars/Olympus\"",
        )
        .replace("strategy = \"sequential\"", "strategy = \"shotgun\"")
        .replace(
            "hours = [\"mon-fri 08:00-18:00\"]",
            "hours = [\"mon-fri 8-18\"]",
        );
    let e = errors(&src);
    let text = e.to_string();
    for expected in [
        "`404-555-0111` is not an E.164 phone number",
        "`Mars/Olympus` is not an IANA time zone",
        "strategy `shotgun` is not simulcall",
        "`mon-fri 8-18` is not a business-hours range",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn fields_that_do_not_apply_and_unknown_fields_are_refused() {
    let src = demo_with("type = \"record\"", "type = \"record\"\nring_timeout_s = 5");
    assert!(
        errors(&src)
            .to_string()
            .contains("`ring_timeout_s` does not apply to a `record` step")
    );
    let src = demo_with("ring_timeout_s = 20", "ring_timout_s = 20");
    assert!(
        errors(&src)
            .to_string()
            .contains("unknown field `ring_timout_s`")
    );
}

#[test]
fn a_number_on_two_trackers_is_refused() {
    let src = demo_with("number = \"+14045550150\"", "number = \"+14045550100\"");
    let e = errors(&src);
    assert!(
        e.to_string()
            .contains("+14045550100 belongs to two trackers"),
        "{e}"
    );
    // The line of its second appearance, where the mistake usually is.
    let second = src.match_indices("\"+14045550100\"").nth(1).unwrap().0;
    let line = src[..second].matches('\n').count() + 1;
    assert_eq!(e.errors[0].line, Some(line), "{e}");
}

#[test]
fn tokens_can_come_from_the_environment() {
    let src = demo_with(
        "auth_token = \"demo-auth-token\"",
        "auth_token_env = \"ACME_TOKEN\"",
    );
    let config = load("x", &src, &|name: &str| {
        (name == "ACME_TOKEN").then(|| "from-env".to_owned())
    })
    .unwrap();
    assert_eq!(config.carrier_accounts[0].auth_token, "from-env");
    assert!(
        errors(&src)
            .to_string()
            .contains("environment variable `ACME_TOKEN` is not set")
    );
}

#[test]
fn dni_settings_are_checked() {
    let source = demo_with(
        r#"origins = ["http://127.0.0.1:*", "http://localhost:*"]"#,
        r#"origins = ["acme.example", "https://*.acme.example"]"#,
    );
    let e = errors(&source).to_string();
    assert!(
        e.contains(&format!("test.toml:{}:", line_of(&source, "origins = ")))
            && e.contains("`acme.example` is not an origin"),
        "{e}"
    );

    let source = demo_with(
        r#"{ landing = { gclid = "*" } },"#,
        r#"{ landing = { gclid = "*" }, referrer_group = "search" }, { referrer_group = "news" },"#,
    );
    let e = errors(&source).to_string();
    assert!(e.contains("a swap rule is exactly one of"), "{e}");
    assert!(e.contains("referrer_group `news` is not"), "{e}");

    // A session tracker without rules would never show its pool.
    let source = demo_with("swap = [", "unused = [");
    assert!(
        errors(&source)
            .to_string()
            .contains("unknown field `unused`")
    );
    let source = demo_with(
        "swap = [\n  { landing = { gclid = \"*\" } },\n  { landing = { utm_source = \"google\", utm_medium = \"cpc\" } },\n]",
        "",
    );
    assert!(
        errors(&source)
            .to_string()
            .contains("session tracker `Google Ads` needs `swap` rules")
    );

    let config = load(demo::CONFIG_NAME, demo::CONFIG, &no_env).unwrap();
    let acme = &config.companies[0];
    assert_eq!(acme.website.lease_idle_s, 1200);
    assert!(acme.website.origins[0].allows("http://127.0.0.1:5555"));
    assert_eq!(config.locate("+14045550203"), Some((0, 2, 2)));
    assert_eq!(config.dni.attribution_grace_s, 120);
}

/// Every problem in one run, each with its line: shape problems (an unknown field, a value of
/// the wrong type) and meaning problems (a step that does not exist) alike, in file order.
#[test]
fn every_problem_is_reported_in_one_run_with_its_line() {
    let src = demo_with("ring_timeout_s = 20", "ring_timout_s = 20")
        .replacen("lease_idle_min = 20", "lease_idle_min = \"twenty\"", 1)
        .replacen("next = \"voicemail\"", "next = \"nowhere\"", 1);
    let e = errors(&src);
    let line_of = |needle: &str| src[..src.find(needle).unwrap()].matches('\n').count() + 1;
    let expected = [
        (line_of("lease_idle_min = \"twenty\""), "invalid type"),
        (line_of("ring_timout_s"), "unknown field `ring_timout_s`"),
        (line_of("\"nowhere\""), "unknown step `nowhere`"),
    ];
    for (line, message) in expected {
        assert!(
            e.errors
                .iter()
                .any(|x| x.line == Some(line) && x.message.contains(message)),
            "line {line}: {message}, in:\n{e}"
        );
    }
    let lines: Vec<usize> = e.errors.iter().filter_map(|x| x.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted, "in file order: {e}");
}
