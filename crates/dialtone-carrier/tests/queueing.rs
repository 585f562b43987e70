//! The emulator's dial queue against queueing theory (reference figures in the team's
//! resilience-math notes): M/D/1 mean waits, Whitt's fluid model for impatient callers in
//! overload, conservation of calls and legs, and byte-for-byte determinism.

use std::rc::Rc;

use dialtone_carrier::emulator::{self, Account, Duration, Report, Scenario};
use dialtone_carrier::queue::DialLimit;
use dialtone_carrier::sim::Sim;
use dialtone_carrier::{Transport, TransportError, WebhookReply, WebhookRequest};

/// A voice app that dials one or more numbers at once and nothing else.
struct Dialer {
    twiml: String,
}

impl Dialer {
    fn fanout(k: usize) -> Self {
        let numbers: String = (0..k)
            .map(|i| format!("<Number>+1404555{:04}</Number>", 111 + i))
            .collect();
        Self {
            twiml: format!("<Response><Dial timeout=\"600\">{numbers}</Dial></Response>"),
        }
    }
}

impl Transport for Dialer {
    async fn send(
        &self,
        _request: &WebhookRequest,
        _signature: &str,
    ) -> Result<WebhookReply, TransportError> {
        Ok(WebhookReply {
            status: 200,
            content_type: Some("text/xml".into()),
            body: self.twiml.clone(),
            elapsed: std::time::Duration::ZERO,
        })
    }
}

fn run(app: Dialer, scenario: Scenario) -> Report {
    let sim = Sim::new();
    let account = Account {
        sid: "AC00000000000000000000000000000001".into(),
        auth_token: "token".into(),
        voice_url: "http://app.invalid/voice".into(),
        status_callback: None,
        fallback_url: None,
        api_base_url: None,
        epoch: chrono::DateTime::UNIX_EPOCH,
    };
    let calls = emulator::start(&sim, Rc::new(app), account, scenario);
    sim.run(0, &mut |_| {});
    let calls = calls.borrow();
    Report::of(calls.iter(), sim.now())
}

fn md1(arrivals: f64, limit: f64, duration_s: f64, seed: u64) -> Report {
    run(
        Dialer::fanout(1),
        Scenario {
            duration_s,
            arrivals_per_second: arrivals,
            limit: Some(DialLimit::per_second(limit)),
            talk: Duration::Fixed { s: 1.0 },
            seed,
            ..Scenario::default()
        },
    )
}

#[test]
fn one_leg_per_call_is_an_md1_queue() {
    let c = 10.0;
    for (rho, duration_s) in [(0.5, 20_000.0), (0.8, 40_000.0)] {
        let report = md1(rho * c, c, duration_s, 7);
        let theory = rho / (2.0 * c * (1.0 - rho));
        let measured = report.queue_wait_s.mean;
        println!("M/D/1 rho {rho}: mean wait {measured:.5} s, theory {theory:.5} s");
        assert!(
            (measured / theory - 1.0).abs() < 0.05,
            "rho {rho}: mean wait {measured} s, M/D/1 says {theory} s ({} legs)",
            report.queue_wait_s.count
        );
        assert_eq!(
            report.connected, report.calls,
            "nobody gives up without patience"
        );
    }
}

#[test]
fn impatient_callers_in_overload_abandon_as_the_fluid_model_says() {
    let c = 10.0;
    let lambda = 1.2 * c;
    let report = run(
        Dialer::fanout(1),
        Scenario {
            duration_s: 4.0 * 3600.0,
            arrivals_per_second: lambda,
            limit: Some(DialLimit::per_second(c)),
            patience: Some(Duration::Exponential { mean_s: 60.0 }),
            talk: Duration::Fixed { s: 1.0 },
            seed: 11,
            ..Scenario::default()
        },
    );
    let fluid = 1.0 - c / lambda;
    println!(
        "overload 1.2c: abandoned {:.4} of {} calls, fluid model {fluid:.4}",
        report.abandoned_ratio, report.calls
    );
    assert!(
        (report.abandoned_ratio - fluid).abs() < 0.02,
        "abandoned {} of {} calls = {}, fluid model {fluid}",
        report.abandoned,
        report.calls,
        report.abandoned_ratio
    );
}

fn mixed(seed: u64) -> Report {
    run(
        Dialer::fanout(3),
        Scenario {
            duration_s: 1800.0,
            arrivals_per_second: 4.0,
            curve: vec![0.5, 1.5],
            limit: Some(DialLimit::per_second(10.0)),
            patience: Some(Duration::LogNormal {
                median_s: 20.0,
                sigma: 0.8,
            }),
            answer_probability: 0.6,
            busy_probability: 0.1,
            ring: Duration::LogNormal {
                median_s: 6.0,
                sigma: 0.5,
            },
            talk: Duration::Exponential { mean_s: 90.0 },
            seed,
            ..Scenario::default()
        },
    )
}

#[test]
fn every_call_and_leg_is_accounted_for_and_a_seed_replays_exactly() {
    let report = mixed(3);
    assert!(report.calls > 1000, "{}", report.calls);
    assert_eq!(
        report.connected + report.voicemail + report.abandoned + report.failed,
        report.calls
    );
    assert!(report.abandoned > 0 && report.connected > 0 && report.failed > 0);
    assert_eq!(report.legs.requested, 3 * report.calls);
    assert_eq!(
        report.legs.started + report.legs.never_rang,
        report.legs.requested
    );
    assert!(report.legs.answered <= report.connected);
    let minutes: u32 = report.per_minute.iter().map(|m| m.arrivals).sum();
    assert_eq!(minutes as usize, report.calls);

    let again = serde_json::to_string(&mixed(3)).unwrap();
    assert_eq!(serde_json::to_string(&report).unwrap(), again);
    assert_ne!(serde_json::to_string(&mixed(4)).unwrap(), again);
}
