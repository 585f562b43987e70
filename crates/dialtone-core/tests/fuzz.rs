//! Fuzzing what a stranger can make the domain core read: configuration files (whoever edits
//! one, or a truncated copy), website visits (the landing page and referrer any visitor's
//! browser sends), callback URLs' flow positions, and `X-Forwarded-For` chains. Property-based:
//! generated inputs, never a panic, and every refusal says what is wrong. `PROPTEST_CASES` sets
//! the number of cases (CI: proptest's default 256; `scripts/fuzz.sh`, a million per target).

use dialtone_core::config::load;
use dialtone_core::demo;
use dialtone_core::dni::{TrustedProxies, Visit, client_address};
use dialtone_core::links::Resume;
use proptest::prelude::*;

/// The demo configuration cut short, with a byte range replaced or a line dropped: the files
/// people and failed copies actually produce.
fn damaged_config() -> impl Strategy<Value = String> {
    let len = demo::CONFIG.len();
    prop_oneof![
        (0..len).prop_map(|cut| demo::CONFIG[..floor(cut)].to_owned()),
        (0..len, 0..40usize, "\\PC{0,12}").prop_map(move |(at, n, with)| {
            let start = floor(at);
            let end = floor((at + n).min(len));
            format!("{}{with}{}", &demo::CONFIG[..start], &demo::CONFIG[end..])
        }),
        (0..200usize).prop_map(|skip| {
            demo::CONFIG
                .lines()
                .enumerate()
                .filter(|(i, _)| *i != skip)
                .map(|(_, l)| l)
                .collect::<Vec<_>>()
                .join("\n")
        }),
        "\\PC{0,300}",
    ]
}

/// The largest char boundary of the demo configuration at or before `i`.
fn floor(mut i: usize) -> usize {
    while !demo::CONFIG.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn url_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,80}",
        (
            prop::sample::select(vec![
                "https://",
                "http://",
                "javascript:",
                "",
                "//",
                "ftp://"
            ]),
            "[a-z0-9.-]{0,20}",
            "(/[A-Za-z0-9%._~-]{0,10}){0,3}",
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "gclid",
                        "utm_source",
                        "utm_medium",
                        "utm_campaign",
                        "utm_term",
                        "utm_content",
                        "msclkid",
                        "fbclid",
                        "keyword",
                        "x",
                    ]),
                    "[A-Za-z0-9%+ &=._-]{0,16}",
                ),
                0..6
            ),
        )
            .prop_map(|(scheme, host, path, params)| {
                let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{scheme}{host}{path}?{}", query.join("&"))
            }),
    ]
}

proptest! {
    #[test]
    fn configuration_files_never_panic_and_refusals_say_why(text in damaged_config()) {
        match load("fuzz.toml", &text, &|_: &str| None) {
            Ok(config) => prop_assert!(!config.carrier_accounts.is_empty()),
            Err(e) => {
                prop_assert!(!e.errors.is_empty());
                for err in &e.errors {
                    prop_assert!(!err.message.trim().is_empty(), "an empty message in {}", e);
                }
            }
        }
    }

    #[test]
    fn visits_never_panic(landing in url_like(), referrer in proptest::option::of(url_like())) {
        let (visit, _params) = Visit::read(&landing, referrer.as_deref());
        prop_assert!(!visit.source.is_empty());
    }

    #[test]
    fn callback_positions_never_panic(query in prop_oneof![
        "\\PC{0,120}",
        "(company=[a-z-]{0,8}&)?(flow=[a-z]{0,6}&)?(step=[a-z]{0,6}&)?(n=[0-9-]{0,4}&)?(rr=[0-9]{0,3}&)?(ds=[a-z_]{0,12}&)?(rec=[01]{0,1})?",
    ]) {
        let _ = Resume::parse(&query);
    }

    #[test]
    fn forwarded_chains_never_panic_and_never_name_a_hop_left_of_the_trusted(
        // Hops as a header carries them: no commas inside one.
        hops in prop::collection::vec(prop_oneof!["[^,]{0,16}", "[0-9]{1,3}(\\.[0-9]{1,3}){3}", "[0-9a-f:]{2,12}"], 0..6),
        count in 0u8..4,
    ) {
        let peer: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let header = hops.join(",");
        let trusted = TrustedProxies { count, cidrs: vec![] };
        let client = client_address(peer, Some(&header), &trusted);
        // The answer is the peer or one of the last `count` hops: never one further left.
        let believable: Vec<std::net::IpAddr> = hops
            .iter()
            .rev()
            .take(usize::from(count))
            .filter_map(|h| h.trim().parse().ok())
            .collect();
        prop_assert!(client == peer || believable.contains(&client), "{client} from {header:?}");
    }
}
