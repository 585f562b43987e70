//! The drift detectors against their published average run lengths (samples until an alarm),
//! by simulation: `../shared/reference/resilience-math.md` lists them from NIST's handbook and
//! Montgomery. A shift of δσ starts at the first sample; with none, the run length is the mean
//! time between false alarms. `cargo test -p dialtone-core --test detectors -- --nocapture
//! --test-threads 1` prints each measured figure beside the published one.

use dialtone_core::detect::{Cusum, Ewma, Threshold};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Mean samples to the first alarm over `runs` runs with the mean shifted by `shift` σ.
fn arl(
    runs: u32,
    shift: f64,
    seed: u64,
    mut detector: impl FnMut() -> Box<dyn FnMut(f64) -> bool>,
) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut total = 0u64;
    for _ in 0..runs {
        let mut alarm = detector();
        let mut n = 0u64;
        loop {
            n += 1;
            let z: f64 = StandardNormal.sample(&mut rng);
            if alarm(z + shift) || n > 1_000_000 {
                break;
            }
        }
        total += n;
    }
    total as f64 / f64::from(runs)
}

fn cusum(h: f64) -> impl FnMut() -> Box<dyn FnMut(f64) -> bool> {
    move || {
        let mut c = Cusum::new(0.5, h);
        Box::new(move |z| c.push(z))
    }
}

fn ewma() -> Box<dyn FnMut(f64) -> bool> {
    let mut e = Ewma::new(0.1, 2.814);
    Box::new(move |z| e.push(z))
}

fn threshold() -> Box<dyn FnMut(f64) -> bool> {
    let mut t = Threshold { limit: 3.0 };
    Box::new(move |z| t.push(z))
}

/// Within `tolerance` (relative) of the published figure; prints both (`--nocapture`).
fn close(measured: f64, published: f64, tolerance: f64) -> bool {
    eprintln!("ARL measured {measured:8.2}, published {published:6.1}");
    (measured / published - 1.0).abs() <= tolerance
}

#[test]
fn cusum_k_half_h_five_detects_a_one_sigma_shift_in_about_ten_samples() {
    let at_1 = arl(20_000, 1.0, 1, cusum(5.0));
    assert!(close(at_1, 10.4, 0.04), "ARL at 1σ: {at_1}");
    let at_2 = arl(20_000, 2.0, 2, cusum(5.0));
    assert!(close(at_2, 4.0, 0.06), "ARL at 2σ: {at_2}");
    // Run lengths in control are roughly exponential: 3,000 runs give about ±2 %.
    let at_0 = arl(3_000, 0.0, 3, cusum(5.0));
    assert!(close(at_0, 930.0, 0.08), "ARL in control: {at_0}");
}

#[test]
fn cusum_k_half_h_four() {
    let at_1 = arl(20_000, 1.0, 4, cusum(4.0));
    assert!(close(at_1, 8.4, 0.05), "ARL at 1σ: {at_1}");
    let at_0 = arl(3_000, 0.0, 5, cusum(4.0));
    assert!(close(at_0, 336.0, 0.08), "ARL in control: {at_0}");
}

#[test]
fn ewma_lambda_one_tenth() {
    let at_1 = arl(20_000, 1.0, 6, ewma);
    assert!(close(at_1, 10.3, 0.06), "ARL at 1σ: {at_1}");
    let at_0 = arl(3_000, 0.0, 7, ewma);
    assert!(close(at_0, 500.0, 0.08), "ARL in control: {at_0}");
}

#[test]
fn a_plain_three_sigma_threshold_takes_four_times_longer_to_see_one_sigma() {
    let at_1 = arl(20_000, 1.0, 8, threshold);
    assert!(close(at_1, 43.9, 0.04), "ARL at 1σ: {at_1}");
    let at_0 = arl(3_000, 0.0, 9, threshold);
    assert!(close(at_0, 370.0, 0.08), "ARL in control: {at_0}");
    let cusum_at_1 = arl(20_000, 1.0, 10, cusum(5.0));
    assert!(at_1 / cusum_at_1 > 3.5, "{at_1} vs {cusum_at_1}");
}
