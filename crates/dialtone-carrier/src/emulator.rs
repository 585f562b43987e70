//! The emulated carrier in virtual time: callers arrive, each call runs the interpreter in a
//! world where legs wait in the account's dial queue, callers run out of patience and dialed
//! people answer (or not) after a while. Every draw comes from a seeded generator per call, so a
//! run depends only on its scenario and seed.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};
use serde::{Deserialize, Serialize};

use crate::interpreter::{CallSetup, HungUp, PickUp, World, run_call_in, sid};
use crate::queue::{DialLimit, DialQueue};
use crate::sim::Sim;
use crate::transcript::{CallOutcome, Transcript};
use crate::transport::Transport;

/// A random duration in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "distribution", rename_all = "snake_case")]
pub enum Duration {
    Fixed {
        s: f64,
    },
    Exponential {
        mean_s: f64,
    },
    /// Log-normal with this median and shape (the σ of the underlying normal).
    LogNormal {
        median_s: f64,
        sigma: f64,
    },
}

impl Duration {
    fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match *self {
            Duration::Fixed { s } => s,
            Duration::Exponential { mean_s } => Exp::new(1.0 / mean_s.max(1e-9))
                .map(|d| d.sample(rng))
                .unwrap_or(mean_s),
            Duration::LogNormal { median_s, sigma } => {
                LogNormal::new(median_s.max(1e-9).ln(), sigma)
                    .map(|d| d.sample(rng))
                    .unwrap_or(median_s)
            }
        }
    }
}

/// The world around the calls: who calls, how patient they are, who answers.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    pub duration_s: f64,
    /// Mean arrivals per second (Poisson), times `curve` at each hour if given.
    pub arrivals_per_second: f64,
    /// Multipliers of the arrival rate by hour of the run (0 = first hour), linearly
    /// interpolated; empty = flat.
    pub curve: Vec<f64>,
    /// Stop after this many calls (with `duration_s`, whichever comes first).
    pub max_calls: Option<u64>,
    /// Numbers called (tracking numbers), chosen in proportion to `number_weights`.
    pub numbers: Vec<String>,
    /// One weight per number; empty = uniform.
    pub number_weights: Vec<f64>,
    /// How long a caller waits for a person before hanging up; `None` = for ever.
    pub patience: Option<Duration>,
    pub answer_probability: f64,
    pub busy_probability: f64,
    pub ring: Duration,
    pub talk: Duration,
    /// Length of a voicemail message; 0 = callers hang up at the beep.
    pub voicemail_s: u32,
    /// Keys callers press at menus, one choice per call drawn uniformly from these.
    pub menu_choices: Vec<String>,
    pub limit: Option<DialLimit>,
    /// Whether `<Dial>` legs count against `limit` (they did at the seed's carrier).
    pub dial_legs_limited: bool,
    /// Whether the carrier cancels a queued leg when its caller hangs up; if not, the leg still
    /// takes its setup when its turn comes and the queue sheds nothing.
    pub cancels_abandoned_legs: bool,
    pub seed: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            duration_s: 3600.0,
            arrivals_per_second: 1.0,
            curve: Vec::new(),
            max_calls: None,
            numbers: vec!["+14045550100".into()],
            number_weights: Vec::new(),
            patience: None,
            answer_probability: 1.0,
            busy_probability: 0.0,
            ring: Duration::Fixed { s: 0.0 },
            talk: Duration::Exponential { mean_s: 120.0 },
            voicemail_s: 20,
            menu_choices: Vec::new(),
            limit: None,
            dial_legs_limited: true,
            cancels_abandoned_legs: true,
            seed: 1,
        }
    }
}

impl Scenario {
    fn rate_at(&self, t: f64) -> f64 {
        if self.curve.is_empty() {
            return self.arrivals_per_second;
        }
        let h = (t / 3600.0).max(0.0);
        let i = (h.floor() as usize).min(self.curve.len() - 1);
        let j = (i + 1).min(self.curve.len() - 1);
        let f = (h - i as f64).min(1.0);
        self.arrivals_per_second * (self.curve[i] * (1.0 - f) + self.curve[j] * f)
    }

    /// The curve's mean over the run (1 when flat): calls expected = rate · this · duration.
    pub fn mean_rate_multiplier(&self) -> f64 {
        if self.curve.is_empty() || self.arrivals_per_second <= 0.0 {
            return 1.0;
        }
        let steps = (self.duration_s / 60.0).ceil().max(1.0) as usize;
        let dt = self.duration_s / steps as f64;
        let sum: f64 = (0..steps)
            .map(|i| self.rate_at((i as f64 + 0.5) * dt))
            .sum();
        sum / steps as f64 / self.arrivals_per_second
    }

    fn peak_rate(&self) -> f64 {
        let peak = self.curve.iter().copied().fold(0.0_f64, f64::max);
        self.arrivals_per_second * if self.curve.is_empty() { 1.0 } else { peak }
    }
}

/// The carrier account the calls arrive on, and where the number's webhooks point.
#[derive(Debug, Clone)]
pub struct Account {
    pub sid: String,
    pub auth_token: String,
    pub voice_url: String,
    pub status_callback: Option<String>,
    pub fallback_url: Option<String>,
    /// Where recordings are served (the emulator's REST API), if anywhere.
    pub api_base_url: Option<String>,
    /// The carrier's clock at the run's second 0 (wall time for `dialtone carrier`, the
    /// scenario's start in a replay): callbacks' timestamps count from it.
    pub epoch: chrono::DateTime<chrono::Utc>,
}

struct CallWorld {
    sim: Sim,
    arrived_at: f64,
    patience_at: Option<f64>,
    connected: Cell<bool>,
    queue: Option<DialQueue>,
    rng: RefCell<ChaCha8Rng>,
    scenario: Rc<Scenario>,
    digits: RefCell<Vec<char>>,
}

impl World for CallWorld {
    fn now(&self) -> f64 {
        self.sim.now() - self.arrived_at
    }

    async fn wait_until(&self, at: f64) -> Result<(), HungUp> {
        let at = self.arrived_at + at;
        match self.patience_at {
            Some(gives_up) if !self.connected.get() && gives_up < at => {
                self.sim.sleep_until(gives_up).await;
                Err(HungUp)
            }
            _ => {
                self.sim.sleep_until(at).await;
                Ok(())
            }
        }
    }

    async fn setup_leg(&self) -> f64 {
        match &self.queue {
            Some(q) => q.acquire().await.queue_s(),
            None => 0.0,
        }
    }

    fn leg_ended(&self) {
        if let Some(q) = &self.queue {
            q.release();
        }
    }

    fn pick_up(&self, _number: &str, _index: usize) -> PickUp {
        let s = &self.scenario;
        let mut rng = self.rng.borrow_mut();
        let ring = s.ring.sample(&mut rng);
        let roll: f64 = rng.random();
        let talk = s.talk.sample(&mut rng);
        if roll < s.busy_probability {
            PickUp::Busy { after_s: ring }
        } else if roll < s.busy_probability + s.answer_probability {
            PickUp::Answers {
                after_s: ring,
                talk_s: talk,
            }
        } else {
            PickUp::NoAnswer
        }
    }

    fn next_digit(&self) -> Option<char> {
        let mut d = self.digits.borrow_mut();
        if d.is_empty() {
            None
        } else {
            Some(d.remove(0))
        }
    }

    fn voicemail_s(&self) -> u32 {
        self.scenario.voicemail_s
    }

    fn connected(&self) {
        self.connected.set(true);
    }
}

/// One call as it happened: when it arrived (seconds into the run) and its transcript.
#[derive(Debug, Clone)]
pub struct CallRun {
    pub arrived_at: f64,
    pub from: String,
    pub to: String,
    pub transcript: Transcript,
    /// Its requests to the application, by how they were answered (counted before the
    /// transcript's steps are dropped).
    pub requests: Requests,
}

/// A deterministic per-call seed: the run's seed and the call's index, mixed (SplitMix64).
fn call_seed(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Spawns the arrivals of `scenario` on `sim`; each finished call is pushed to the returned list.
/// Run the sim to completion, then read the list.
pub fn start<T: Transport + 'static>(
    sim: &Sim,
    transport: Rc<T>,
    account: Account,
    scenario: Scenario,
) -> Rc<RefCell<Vec<CallRun>>> {
    let done = Rc::new(RefCell::new(Vec::new()));
    let scenario = Rc::new(scenario);
    let queue = match (scenario.limit, scenario.dial_legs_limited) {
        (Some(limit), true) => Some(DialQueue::with_abandoned(
            sim,
            limit,
            scenario.cancels_abandoned_legs,
        )),
        _ => None,
    };
    let (sim2, done2) = (sim.clone(), done.clone());
    sim.spawn(async move {
        let mut arrivals = ChaCha8Rng::seed_from_u64(scenario.seed);
        let peak = scenario.peak_rate();
        if peak <= 0.0 || scenario.numbers.is_empty() {
            return;
        }
        let gap = Exp::new(peak).ok();
        let pick = if scenario.number_weights.is_empty() {
            None
        } else {
            match rand_distr::weighted::WeightedIndex::new(&scenario.number_weights) {
                Ok(w) => Some(w),
                // Weights that cannot be drawn from: nobody calls.
                Err(_) => return,
            }
        };
        let mut t = 0.0;
        let mut n: u64 = 0;
        loop {
            if scenario.max_calls.is_some_and(|max| n >= max) {
                return;
            }
            // Thinning: candidates at the peak rate, kept with probability rate(t)/peak.
            t += gap.map_or(f64::INFINITY, |g| g.sample(&mut arrivals));
            if t >= scenario.duration_s {
                return;
            }
            let keep: f64 = arrivals.random();
            if keep * peak > scenario.rate_at(t) {
                continue;
            }
            sim2.sleep_until(t).await;
            n += 1;
            let mut rng = ChaCha8Rng::seed_from_u64(call_seed(scenario.seed, n));
            let i = match &pick {
                Some(w) => w.sample(&mut rng),
                None => rng.random_range(0..scenario.numbers.len()),
            };
            let Some(to) = scenario.numbers.get(i).cloned() else {
                return;
            };
            let from = format!(
                "+1{}",
                2_000_000_000 + rng.random_range(0..7_999_999_999_u64)
            );
            let patience_at = scenario.patience.map(|p| t + p.sample(&mut rng));
            let digits = if scenario.menu_choices.is_empty() {
                Vec::new()
            } else {
                let i = rng.random_range(0..scenario.menu_choices.len());
                scenario.menu_choices[i].chars().collect()
            };
            let setup = CallSetup {
                account_sid: account.sid.clone(),
                auth_token: account.auth_token.clone(),
                voice_url: account.voice_url.clone(),
                status_callback: account.status_callback.clone(),
                fallback_url: account.fallback_url.clone(),
                api_base_url: account.api_base_url.clone(),
                arrived_at: account.epoch + chrono::TimeDelta::microseconds((t * 1e6) as i64),
                from: from.clone(),
                to: to.clone(),
                call_sid: sid(
                    "CA",
                    u128::from(call_seed(scenario.seed ^ 0xca11, n)) << 64 | u128::from(n),
                ),
            };
            let world = CallWorld {
                sim: sim2.clone(),
                arrived_at: t,
                patience_at,
                connected: Cell::new(false),
                queue: queue.clone(),
                rng: RefCell::new(rng),
                scenario: scenario.clone(),
                digits: RefCell::new(digits),
            };
            let (transport, done) = (transport.clone(), done2.clone());
            sim2.spawn(async move {
                let mut transcript = run_call_in(&*transport, &setup, &world, &mut |_| {}).await;
                let requests = Requests::of(&transcript);
                // A day of calls is kept for the report and the call records, which need the
                // outcome and the legs, not every step (a day's steps are gigabytes).
                transcript.steps = Vec::new();
                done.borrow_mut().push(CallRun {
                    arrived_at: world.arrived_at,
                    from,
                    to,
                    transcript,
                    requests,
                });
            });
        }
    });
    done
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub count: usize,
}

impl Summary {
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let q = |p: f64| {
            let i = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len()) - 1;
            round6(values[i])
        };
        Self {
            mean: round6(values.iter().sum::<f64>() / values.len() as f64),
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
            max: q(1.0),
            count: values.len(),
        }
    }
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Minute {
    pub minute: u32,
    pub arrivals: u32,
    pub connected: u32,
    pub voicemail: u32,
    pub abandoned: u32,
    pub failed: u32,
    pub legs_started: u32,
    pub queue_wait_mean_s: f64,
    pub queue_wait_p95_s: f64,
    pub post_dial_delay_mean_s: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Legs {
    pub requested: usize,
    /// Left the queue and rang.
    pub started: usize,
    pub answered: usize,
    /// Dropped from the queue before ringing (the caller hung up, or another leg answered).
    pub never_rang: usize,
}

/// The carrier's requests to the application (voice, action, status and recording callbacks),
/// by how they were answered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    /// Answered 2xx.
    pub ok: usize,
    /// Answered 4xx.
    pub client_error: usize,
    /// Answered 5xx.
    pub server_error: usize,
    /// Answered anything else, or not at all (refused, timed out).
    pub other: usize,
}

impl Requests {
    pub fn of(transcript: &Transcript) -> Self {
        let mut r = Self::default();
        for (_, _, status) in transcript.requests() {
            match status {
                Some(200..=299) => r.ok += 1,
                Some(400..=499) => r.client_error += 1,
                Some(500..=599) => r.server_error += 1,
                _ => r.other += 1,
            }
        }
        r
    }

    fn add(&mut self, other: &Self) {
        self.ok += other.ok;
        self.client_error += other.client_error;
        self.server_error += other.server_error;
        self.other += other.other;
    }
}

/// What a replay measured. Calls end in exactly one of connected, voicemail, abandoned, failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub calls: usize,
    /// Bridged to a person.
    pub connected: usize,
    pub voicemail: usize,
    /// Hung up before reaching anyone.
    pub abandoned: usize,
    /// Ended without a person, a message or the caller giving up: nobody answered, the app
    /// failed or rejected the call.
    pub failed: usize,
    pub abandoned_ratio: f64,
    pub legs: Legs,
    /// Time legs spent in the carrier's dial queue, over legs that left it.
    pub queue_wait_s: Summary,
    /// From a call's first `<Dial>` to its first leg ringing, over calls that dialed and rang.
    pub post_dial_delay_s: Summary,
    pub simulated_s: f64,
    pub per_minute: Vec<Minute>,
    #[serde(default)]
    pub requests: Requests,
}

impl Report {
    pub fn of<'a>(calls: impl IntoIterator<Item = &'a CallRun>, simulated_s: f64) -> Self {
        let mut calls: Vec<&CallRun> = calls.into_iter().collect();
        calls.sort_by(|a, b| a.arrived_at.total_cmp(&b.arrived_at));
        let mut r = Report {
            calls: calls.len(),
            simulated_s: round6(simulated_s),
            ..Report::default()
        };
        let minutes = (calls.last().map_or(0.0, |c| c.arrived_at) / 60.0).floor() as usize + 1;
        let mut per_minute: Vec<Minute> = (0..minutes)
            .map(|m| Minute {
                minute: m as u32,
                ..Minute::default()
            })
            .collect();
        let mut minute_waits: Vec<Vec<f64>> = vec![Vec::new(); minutes];
        let mut minute_pdd: Vec<Vec<f64>> = vec![Vec::new(); minutes];
        let (mut waits, mut pdds) = (Vec::new(), Vec::new());
        for c in &calls {
            let m = &mut per_minute[(c.arrived_at / 60.0) as usize];
            m.arrivals += 1;
            match c.transcript.outcome {
                CallOutcome::Answered => {
                    r.connected += 1;
                    m.connected += 1;
                }
                CallOutcome::Voicemail => {
                    r.voicemail += 1;
                    m.voicemail += 1;
                }
                CallOutcome::Abandoned => {
                    r.abandoned += 1;
                    m.abandoned += 1;
                }
                CallOutcome::NotAnswered
                | CallOutcome::Rejected
                | CallOutcome::ApplicationError => {
                    r.failed += 1;
                    m.failed += 1;
                }
            }
            r.requests.add(&c.requests);
            if let Some(pdd) = c.transcript.post_dial_delay_s {
                pdds.push(pdd);
                minute_pdd[m.minute as usize].push(pdd);
            }
            for leg in &c.transcript.legs {
                r.legs.requested += 1;
                match leg.started_at_s {
                    Some(_) => {
                        r.legs.started += 1;
                        m.legs_started += 1;
                        waits.push(leg.queue_s());
                        minute_waits[m.minute as usize].push(leg.queue_s());
                    }
                    None => r.legs.never_rang += 1,
                }
                if leg.answered_at_s.is_some() {
                    r.legs.answered += 1;
                }
            }
        }
        for (m, (w, p)) in per_minute
            .iter_mut()
            .zip(minute_waits.into_iter().zip(minute_pdd))
        {
            let w = Summary::of(w);
            m.queue_wait_mean_s = w.mean;
            m.queue_wait_p95_s = w.p95;
            m.post_dial_delay_mean_s = Summary::of(p).mean;
        }
        r.abandoned_ratio = if r.calls == 0 {
            0.0
        } else {
            round6(r.abandoned as f64 / r.calls as f64)
        };
        r.queue_wait_s = Summary::of(waits);
        r.post_dial_delay_s = Summary::of(pdds);
        r.per_minute = per_minute;
        r
    }
}
