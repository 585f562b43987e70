//! The inbound-call webhook's work in-process, without the network and the disk: signature
//! check, configuration lookup, flow evaluation, TwiML writing. Instruction-level companion to
//! `scripts/bench-webhook.sh`, which measures the whole server over HTTP.

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use dialtone_core::engine::{self, Call};
use dialtone_core::{config, demo, links::Links};
use dialtone_server::RoundRobin;
use dialtone_twiml::{Form, webhook::CallParams};

fn inbound_body(url: &str) -> (Vec<u8>, String) {
    let params: Vec<(String, String)> = [
        ("AccountSid", demo::ACCOUNT_SID),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", "CA0123456789abcdef0123456789abcdef"),
        ("CallStatus", "ringing"),
        ("Called", "+14045550100"),
        ("Caller", "+17705550123"),
        ("CallerCity", "MARIETTA"),
        ("CallerState", "GA"),
        ("Direction", "inbound"),
        ("From", "+17705550123"),
        ("FromCity", "MARIETTA"),
        ("FromState", "GA"),
        ("To", "+14045550100"),
        ("ToCity", "ATLANTA"),
        ("ToState", "GA"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signature = dialtone_twiml::compute_signature(demo::AUTH_TOKEN, url, &params);
    (dialtone_twiml::encode(&params).into_bytes(), signature)
}

fn hot_path(c: &mut Criterion) {
    let config = config::load("demo", demo::CONFIG, &|_: &str| None).expect("demo config");
    let links = Links::new("https://dt.example");
    let url = "https://dt.example/twilio/voice";
    let (body, signature) = inbound_body(url);
    let turns = RoundRobin::default();
    let now = chrono::Utc::now();

    c.bench_function("inbound webhook: parse, verify, route, write TwiML", |b| {
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            let form = Form::parse(black_box(&body));
            let carrier = config
                .carrier_by_sid(form.get("AccountSid").unwrap())
                .unwrap();
            assert!(dialtone_twiml::validate_signature(
                &carrier.auth_token,
                url,
                form.pairs(),
                &signature
            ));
            let call = CallParams::from_form(&form).unwrap();
            let t = config.tracker_for(&call.to).unwrap();
            let outcome = engine::start(
                &Call {
                    company: t.company,
                    flow: t.flow,
                    tracking_number: &call.to,
                    now,
                    admission: &dialtone_core::engine::Unlimited,
                },
                &links,
                &turns,
            );
            out.clear();
            outcome.response.write_to(&mut out);
            black_box(out.len())
        })
    });

    c.bench_function("signature check alone", |b| {
        let form = Form::parse(&body);
        b.iter(|| {
            dialtone_twiml::validate_signature(
                demo::AUTH_TOKEN,
                url,
                black_box(form.pairs()),
                &signature,
            )
        })
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
