//! Whatever the model holds, what we write reads back as the same model.

use dialtone_twiml::*;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    "[ -~éü☎€]{0,16}"
}

/// Fields the parser trims (numbers, URLs), so they never start or end with a space.
fn trimmed() -> impl Strategy<Value = String> {
    "[!-~é☎]([ -~é☎]{0,10}[!-~é☎])?"
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

fn method() -> impl Strategy<Value = Option<Method>> {
    prop::option::of(prop_oneof![Just(Method::Get), Just(Method::Post)])
}

fn say() -> impl Strategy<Value = Say> {
    (
        text(),
        opt_text(),
        opt_text(),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(text, voice, language, loop_count)| Say {
            text,
            voice,
            language,
            loop_count,
        })
}

fn play() -> impl Strategy<Value = Play> {
    (trimmed(), prop::option::of(any::<u32>()), opt_text()).prop_map(|(url, loop_count, digits)| {
        Play {
            url,
            loop_count,
            digits,
        }
    })
}

fn pause() -> impl Strategy<Value = Pause> {
    prop::option::of(any::<u32>()).prop_map(|length| Pause { length })
}

fn number() -> impl Strategy<Value = Number> {
    let events = prop::collection::vec(
        prop_oneof![
            Just(CallEvent::Initiated),
            Just(CallEvent::Ringing),
            Just(CallEvent::Answered),
            Just(CallEvent::Completed)
        ],
        0..4,
    );
    (
        trimmed(),
        opt_text(),
        method(),
        opt_text(),
        opt_text(),
        events,
        method(),
    )
        .prop_map(
            |(
                number,
                url,
                method,
                send_digits,
                status_callback,
                status_callback_event,
                status_callback_method,
            )| Number {
                number,
                url,
                method,
                send_digits,
                status_callback,
                status_callback_event,
                status_callback_method,
            },
        )
}

fn dial() -> impl Strategy<Value = Dial> {
    let record = prop::option::of(prop_oneof![
        Just(DialRecord::DoNotRecord),
        Just(DialRecord::RecordFromAnswer),
        Just(DialRecord::RecordFromRinging),
        Just(DialRecord::RecordFromAnswerDual),
        Just(DialRecord::RecordFromRingingDual),
    ]);
    // A bare number is only ever alone: next to nouns it would merge with their whitespace.
    let targets = prop_oneof![
        trimmed().prop_map(|n| vec![DialTarget::Bare(n)]),
        prop::collection::vec(
            prop_oneof![
                number().prop_map(DialTarget::Number),
                trimmed().prop_map(DialTarget::Client),
                trimmed().prop_map(DialTarget::Sip),
            ],
            1..4
        ),
    ];
    let flags = (
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
    );
    (
        opt_text(),
        method(),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        opt_text(),
        record,
        opt_text(),
        flags,
        targets,
    )
        .prop_map(
            |(
                action,
                method,
                timeout,
                time_limit,
                caller_id,
                record,
                recording_status_callback,
                (answer_on_bridge, hangup_on_star),
                targets,
            )| {
                Dial {
                    action,
                    method,
                    timeout,
                    time_limit,
                    caller_id,
                    record,
                    recording_status_callback,
                    answer_on_bridge,
                    hangup_on_star,
                    targets,
                }
            },
        )
}

fn verb() -> impl Strategy<Value = Verb> {
    let gather_children = prop::collection::vec(
        prop_oneof![
            say().prop_map(GatherChild::Say),
            play().prop_map(GatherChild::Play),
            pause().prop_map(GatherChild::Pause)
        ],
        0..3,
    );
    let gather = (
        opt_text(),
        method(),
        opt_text(),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        opt_text(),
        prop::option::of(any::<bool>()),
        gather_children,
    )
        .prop_map(
            |(
                action,
                method,
                input,
                num_digits,
                timeout,
                finish_on_key,
                action_on_empty_result,
                children,
            )| Gather {
                action,
                method,
                input,
                num_digits,
                timeout,
                finish_on_key,
                action_on_empty_result,
                children,
            },
        );
    let record = (
        opt_text(),
        method(),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        opt_text(),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        opt_text(),
    )
        .prop_map(
            |(
                action,
                method,
                timeout,
                max_length,
                finish_on_key,
                play_beep,
                transcribe,
                recording_status_callback,
            )| Record {
                action,
                method,
                timeout,
                max_length,
                finish_on_key,
                play_beep,
                transcribe,
                recording_status_callback,
            },
        );
    prop_oneof![
        say().prop_map(Verb::Say),
        play().prop_map(Verb::Play),
        pause().prop_map(Verb::Pause),
        gather.prop_map(Verb::Gather),
        dial().prop_map(Verb::Dial),
        record.prop_map(Verb::Record),
        (trimmed(), method()).prop_map(|(url, method)| Verb::Redirect(Redirect { url, method })),
        Just(Verb::Hangup),
        opt_text().prop_map(|reason| Verb::Reject(Reject { reason })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn parse_inverts_write(verbs in prop::collection::vec(verb(), 0..6)) {
        let doc = Response { verbs };
        let xml = doc.to_xml();
        prop_assert_eq!(parse(&xml).map_err(|e| format!("{e}\n{xml}")), Ok(doc));
    }
}
