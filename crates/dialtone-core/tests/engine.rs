//! The flow engine on the demo flows, and properties over randomly built flows.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use dialtone_core::PhoneNumber;
use dialtone_core::config::{Company, load};
use dialtone_core::demo;
use dialtone_core::engine::{self, Call, Input, Turns};
use dialtone_core::flow::{
    Action, CallerId, DialStep, Flow, Menu, Message, Step, Strategy as DialStrategy,
};
use dialtone_core::links::{Links, Resume};
use dialtone_twiml::{DialRecord, Response, Verb};
use proptest::prelude::*;

#[derive(Default)]
struct Counter(RefCell<HashMap<String, u64>>);

impl Turns for Counter {
    fn take_turn(&self, key: &str) -> u64 {
        let mut m = self.0.borrow_mut();
        let c = m.entry(key.to_owned()).or_default();
        *c += 1;
        *c - 1
    }
}

fn acme() -> Company {
    let config = load("demo", demo::CONFIG, &|_: &str| None).unwrap();
    config.companies[0].clone()
}

/// Monday 2026-11-23 at the given New York time.
fn monday(hh: u32, mm: u32) -> DateTime<Utc> {
    chrono_tz::America::New_York
        .with_ymd_and_hms(2026, 11, 23, hh, mm, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn links() -> Links {
    Links::new("https://dt.example")
}

fn said(r: &Response) -> Vec<String> {
    r.verbs
        .iter()
        .flat_map(|v| match v {
            Verb::Say(s) => vec![s.text.clone()],
            Verb::Gather(g) => g
                .children
                .iter()
                .filter_map(|c| match c {
                    dialtone_twiml::GatherChild::Say(s) => Some(s.text.clone()),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        })
        .collect()
}

fn the_dial(r: &Response) -> &dialtone_twiml::Dial {
    r.verbs
        .iter()
        .find_map(|v| if let Verb::Dial(d) = v { Some(d) } else { None })
        .expect("a <Dial>")
}

fn numbers(d: &dialtone_twiml::Dial) -> Vec<&str> {
    d.targets
        .iter()
        .map(|t| match t {
            dialtone_twiml::DialTarget::Number(n) => n.number.as_str(),
            other => panic!("unexpected target {other:?}"),
        })
        .collect()
}

fn resume_of(url: &str) -> Resume {
    Resume::parse(url.split_once('?').expect("query").1).unwrap()
}

#[test]
fn main_flow_plays_the_notice_then_rings_everyone_recorded() {
    let company = acme();
    let flow = &company.flows["main"];
    let call = Call {
        company: &company,
        flow,
        tracking_number: "+14045550100",
        now: monday(10, 0),
        admission: &dialtone_core::engine::Unlimited,
    };
    let out = engine::start(&call, &links(), &Counter::default());
    assert_eq!(out.path, ["notice", "record", "ring"]);
    assert!(out.notice_played && out.recording);
    assert_eq!(
        said(&out.response),
        ["This call may be recorded for quality assurance."]
    );
    let dial = the_dial(&out.response);
    assert_eq!(numbers(dial), ["+14045550111", "+14045550112"]);
    assert_eq!(dial.timeout, Some(20));
    assert_eq!(dial.record, Some(DialRecord::RecordFromAnswerDual));
    let action = dial.action.as_deref().unwrap();
    assert!(action.starts_with("https://dt.example/twilio/dial?"));
    let at = resume_of(action);
    assert_eq!((at.step.as_str(), at.recording), ("ring", true));

    // Nobody answers: voicemail. Someone answers: the call ends when they hang up.
    let missed = engine::resume(
        &call,
        &links(),
        &Counter::default(),
        &at,
        Input::DialEnded { answered: false },
    )
    .unwrap();
    assert_eq!(missed.path, ["voicemail"]);
    assert!(matches!(missed.response.verbs[1], Verb::Record(_)));
    let answered = engine::resume(
        &call,
        &links(),
        &Counter::default(),
        &at,
        Input::DialEnded { answered: true },
    )
    .unwrap();
    assert_eq!(answered.response.verbs, [Verb::Hangup]);
}

#[test]
fn menu_flow_routes_by_digit_and_business_hours() {
    let company = acme();
    let flow = &company.flows["menu"];
    let turns = Counter::default();
    let open = Call {
        company: &company,
        flow,
        tracking_number: "+14045550150",
        now: monday(9, 30),
        admission: &dialtone_core::engine::Unlimited,
    };
    let out = engine::start(&open, &links(), &turns);
    assert_eq!(out.path, ["hours", "greeting", "choose"]);
    let Verb::Gather(gather) = &out.response.verbs[1] else {
        panic!("{:?}", out.response)
    };
    let at = resume_of(gather.action.as_deref().unwrap());
    assert_eq!(at.n, 1);
    assert!(
        matches!(&out.response.verbs[2], Verb::Redirect(r) if Some(&r.url) == gather.action.as_ref())
    );

    // 1: sales rings the office, then the mobile, then voicemail.
    let sales = engine::resume(
        &open,
        &links(),
        &turns,
        &at,
        Input::Menu {
            digits: Some("1".into()),
        },
    )
    .unwrap();
    assert_eq!(numbers(the_dial(&sales.response)), ["+14045550111"]);
    let at2 = resume_of(the_dial(&sales.response).action.as_deref().unwrap());
    let next = engine::resume(
        &open,
        &links(),
        &turns,
        &at2,
        Input::DialEnded { answered: false },
    )
    .unwrap();
    assert_eq!(numbers(the_dial(&next.response)), ["+14045550112"]);
    let at3 = resume_of(the_dial(&next.response).action.as_deref().unwrap());
    let last = engine::resume(
        &open,
        &links(),
        &turns,
        &at3,
        Input::DialEnded { answered: false },
    )
    .unwrap();
    assert_eq!(last.path, ["voicemail"]);

    // An invalid key is explained and the menu offered again; silence too, without the apology.
    let invalid = engine::resume(
        &open,
        &links(),
        &turns,
        &at,
        Input::Menu {
            digits: Some("7".into()),
        },
    )
    .unwrap();
    assert_eq!(
        said(&invalid.response)[0],
        "Sorry, that is not a valid choice."
    );
    let Verb::Gather(g2) = &invalid.response.verbs[1] else {
        panic!()
    };
    let at_retry = resume_of(g2.action.as_deref().unwrap());
    assert_eq!(at_retry.n, 2);
    let silent =
        engine::resume(&open, &links(), &turns, &at, Input::Menu { digits: None }).unwrap();
    assert!(matches!(silent.response.verbs[0], Verb::Gather(_)));
    // After the retries, the default (sales).
    let exhausted = Resume { n: 3, ..at.clone() };
    let default = engine::resume(
        &open,
        &links(),
        &turns,
        &exhausted,
        Input::Menu { digits: None },
    )
    .unwrap();
    assert_eq!(default.path, ["sales"]);

    // Saturday, or 18:00 on a weekday: straight to voicemail.
    let closed = Call {
        now: monday(18, 0),
        admission: &dialtone_core::engine::Unlimited,
        ..open
    };
    assert_eq!(
        engine::start(&closed, &links(), &turns).path,
        ["hours", "voicemail"]
    );
}

#[test]
fn round_robin_takes_turns_across_calls_and_falls_over_to_the_next() {
    let company = acme();
    let flow = &company.flows["menu"];
    let turns = Counter::default();
    let call = Call {
        company: &company,
        flow,
        tracking_number: "+14045550150",
        now: monday(11, 0),
        admission: &dialtone_core::engine::Unlimited,
    };
    let start = engine::start(&call, &links(), &turns);
    let Verb::Gather(g) = &start.response.verbs[1] else {
        panic!("{:?}", start.response)
    };
    let menu_at = resume_of(g.action.as_deref().unwrap());
    let mut firsts = Vec::new();
    for _ in 0..4 {
        let out = engine::resume(
            &call,
            &links(),
            &turns,
            &menu_at,
            Input::Menu {
                digits: Some("2".into()),
            },
        )
        .unwrap();
        let dial = the_dial(&out.response);
        firsts.push(numbers(dial)[0].to_owned());
        // Nobody answers the first: the other one rings next.
        let at = resume_of(dial.action.as_deref().unwrap());
        let next = engine::resume(
            &call,
            &links(),
            &turns,
            &at,
            Input::DialEnded { answered: false },
        )
        .unwrap();
        assert_ne!(numbers(the_dial(&next.response))[0], firsts.last().unwrap());
    }
    assert_eq!(
        firsts,
        [
            "+14045550111",
            "+14045550112",
            "+14045550111",
            "+14045550112"
        ]
    );
}

#[test]
fn a_callback_for_a_step_that_changed_kind_is_an_error_not_a_panic() {
    let company = acme();
    let flow = &company.flows["main"];
    let call = Call {
        company: &company,
        flow,
        tracking_number: "+14045550100",
        now: monday(10, 0),
        admission: &dialtone_core::engine::Unlimited,
    };
    let at = Resume {
        company: "acme-plumbing".into(),
        flow: "main".into(),
        step: "ring".into(),
        ..Default::default()
    };
    assert!(
        engine::resume(
            &call,
            &links(),
            &Counter::default(),
            &at,
            Input::Menu { digits: None }
        )
        .is_err()
    );
    let gone = Resume {
        step: "nope".into(),
        ..at
    };
    assert!(
        engine::resume(
            &call,
            &links(),
            &Counter::default(),
            &gone,
            Input::VoicemailEnded
        )
        .is_err()
    );
}

// ---------------------------------------------------------------------------------------------
// Properties over random flows.

#[derive(Debug, Clone)]
enum Kind {
    Greeting,
    Notice,
    Record,
    Menu,
    Schedule,
    Dial(u8),
    Voicemail,
    Hangup,
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Greeting),
        Just(Kind::Notice),
        Just(Kind::Record),
        Just(Kind::Menu),
        Just(Kind::Schedule),
        (0u8..3).prop_map(Kind::Dial),
        Just(Kind::Voicemail),
        Just(Kind::Hangup),
    ]
}

/// A flow of `kinds` where every reference is an index chosen by `picks`.
fn build(kinds: &[Kind], picks: &[usize]) -> Flow {
    let n = kinds.len();
    let mut p = picks.iter().cycle();
    let mut pick = || *p.next().unwrap() % n;
    let maybe = |pick: &mut dyn FnMut() -> usize| {
        let x = pick();
        (x != 0).then_some(x)
    };
    let destinations: Vec<PhoneNumber> = ["+14045550111", "+14045550112", "+14045550113"]
        .iter()
        .map(|s| PhoneNumber::parse(s).unwrap())
        .collect();
    let steps = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let action = match k {
                Kind::Greeting => Action::Greeting {
                    message: Message::Say(format!("g{i}")),
                    next: maybe(&mut pick),
                },
                Kind::Notice => Action::RecordingNotice {
                    text: "notice".into(),
                    next: maybe(&mut pick),
                },
                Kind::Record => Action::Record {
                    next: maybe(&mut pick),
                },
                Kind::Menu => Action::Menu(Menu {
                    prompt: Message::Say("menu".into()),
                    options: BTreeMap::from([("1".to_owned(), pick()), ("2".to_owned(), pick())]),
                    default: pick(),
                    retries: 1,
                    timeout_s: 5,
                    invalid_message: "invalid".into(),
                }),
                Kind::Schedule => Action::Schedule(dialtone_core::flow::Schedule {
                    hours: vec![
                        dialtone_core::schedule::WeeklyHours::parse("mon-fri 09:00-17:00").unwrap(),
                    ],
                    holidays: Default::default(),
                    open: pick(),
                    closed: pick(),
                }),
                Kind::Dial(s) => Action::Dial(DialStep {
                    strategy: [
                        DialStrategy::Simulcall,
                        DialStrategy::Sequential,
                        DialStrategy::RoundRobin,
                    ][*s as usize],
                    destinations: destinations.clone(),
                    ring_timeout_s: 20,
                    whisper: Some("w".into()),
                    caller_id: CallerId::TrackingNumber,
                    next: maybe(&mut pick),
                }),
                Kind::Voicemail => Action::Voicemail {
                    prompt: Message::Say("vm".into()),
                    max_length_s: 60,
                },
                Kind::Hangup => Action::Hangup { message: None },
            };
            Step {
                id: format!("s{i}"),
                action,
            }
        })
        .collect();
    Flow {
        name: "f".into(),
        start: 0,
        steps,
    }
}

/// The URL the carrier would call next, and what it would report, or `None` when the call ends.
fn next_callback(r: &Response, answered: bool, digits: Option<String>) -> Option<(String, Input)> {
    for v in &r.verbs {
        match v {
            Verb::Gather(g) => return Some((g.action.clone()?, Input::Menu { digits })),
            Verb::Dial(d) => return Some((d.action.clone()?, Input::DialEnded { answered })),
            Verb::Record(rec) => return Some((rec.action.clone()?, Input::VoicemailEnded)),
            Verb::Hangup => return None,
            _ => {}
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, max_global_rejects: 200_000, ..ProptestConfig::default() })]

    /// Any flow that passes validation runs without error whatever the caller and the agents do,
    /// every document waits for the carrier or hangs up, and nothing is recorded before a notice.
    #[test]
    fn valid_flows_run_safely(
        kinds in prop::collection::vec(kind(), 2..8),
        picks in prop::collection::vec(0usize..8, 24),
        events in prop::collection::vec((any::<bool>(), prop::option::of("[0-9]")), 12),
        hour in 0u32..24,
    ) {
        let flow = build(&kinds, &picks);
        prop_assume!(flow.problems(false).is_empty());
        let company = acme();
        let call = Call { company: &company, flow: &flow, tracking_number: "+14045550100", now: monday(hour, 0), admission: &dialtone_core::engine::Unlimited };
        let turns = Counter::default();
        let mut out = engine::start(&call, &links(), &turns);
        let mut notice = false;
        for (answered, digits) in events {
            notice |= out.notice_played;
            let last = out.response.verbs.last().cloned();
            prop_assert!(
                matches!(last, Some(Verb::Hangup) | Some(Verb::Redirect(_)) | Some(Verb::Dial(_))),
                "document ends with {:?}", last
            );
            for v in &out.response.verbs {
                if let Verb::Dial(d) = v {
                    prop_assert!(d.record.is_none() || notice, "recording before any notice: {:?}", out.path);
                    prop_assert!(d.action.is_some());
                    prop_assert!(!d.targets.is_empty());
                }
            }
            let Some((url, input)) = next_callback(&out.response, answered, digits) else { break };
            let at = resume_of(&url);
            out = engine::resume(&call, &links(), &turns, &at, input).unwrap();
        }
    }
}

/// Admission that always answers one shape.
struct Shaped(dialtone_core::admission::DialShape);

impl engine::Admission for Shaped {
    fn shape(&self, _legs: u32) -> dialtone_core::admission::DialShape {
        self.0
    }
}

#[test]
fn a_degraded_simulcall_rings_the_primary_first_then_the_others_then_voicemail() {
    use dialtone_core::admission::DialShape;
    let company = acme();
    let flow = &company.flows["main"];
    let call = Call {
        company: &company,
        flow,
        tracking_number: "+14045550100",
        now: monday(10, 0),
        admission: &Shaped(DialShape::PrimaryFirst),
    };
    let out = engine::start(&call, &links(), &Counter::default());
    assert_eq!(out.degraded, Some(DialShape::PrimaryFirst));
    // The carrier asks for the legs once the 48-character notice is spoken (0.07 s a character).
    let before = engine::seconds_before_dial(&out.response);
    assert!(
        before.is_some_and(|s| (s - 3.36).abs() < 1e-9),
        "{before:?}"
    );
    let first = the_dial(&out.response);
    assert_eq!(numbers(first), ["+14045550111"], "the primary alone");
    assert_eq!(first.timeout, Some(10), "half the 20 s ring timeout");
    assert!(
        out.notice_played && out.recording,
        "the caller still gets the flow"
    );

    // The carrier's answer to the URL it was given: nobody answered the primary.
    let at = resume_of(first.action.as_deref().expect("dial action"));
    assert_eq!(
        at.shape,
        DialShape::PrimaryFirst,
        "the shape rides in the callback URL"
    );
    let unlimited = Call {
        admission: &engine::Unlimited,
        ..call
    };
    let out = engine::resume(
        &unlimited,
        &links(),
        &Counter::default(),
        &at,
        Input::DialEnded { answered: false },
    )
    .expect("resumes");
    let second = the_dial(&out.response);
    assert_eq!(
        numbers(second),
        ["+14045550112"],
        "then the others together"
    );
    assert_eq!(second.timeout, Some(20));
    assert_eq!(
        second.record,
        Some(DialRecord::RecordFromAnswerDual),
        "still recorded"
    );

    let at = resume_of(second.action.as_deref().expect("dial action"));
    let out = engine::resume(
        &unlimited,
        &links(),
        &Counter::default(),
        &at,
        Input::DialEnded { answered: false },
    )
    .expect("resumes");
    assert!(out.voicemail_offered, "{:?}", out.path);
}

#[test]
fn primary_only_rings_one_number_and_moves_on() {
    use dialtone_core::admission::DialShape;
    let company = acme();
    let flow = &company.flows["main"];
    let call = Call {
        company: &company,
        flow,
        tracking_number: "+14045550100",
        now: monday(10, 0),
        admission: &Shaped(DialShape::PrimaryOnly),
    };
    let out = engine::start(&call, &links(), &Counter::default());
    let dial = the_dial(&out.response);
    assert_eq!(numbers(dial), ["+14045550111"]);
    assert_eq!(dial.timeout, Some(20));
    let at = resume_of(dial.action.as_deref().expect("dial action"));
    let out = engine::resume(
        &call,
        &links(),
        &Counter::default(),
        &at,
        Input::DialEnded { answered: false },
    )
    .expect("resumes");
    assert!(out.voicemail_offered);
}
