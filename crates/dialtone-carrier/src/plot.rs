//! A replay's per-minute series drawn as an SVG people would rather look at than read: queue wait
//! and post-dial delay on top, what became of the calls below. Hand-written SVG: two panels of
//! lines and stacked areas need no plotting library, and the file opens in any browser.

use std::fmt::Write;

use crate::emulator::{Minute, Report};

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP_PANEL: (f64, f64) = (85.0, 275.0);
const BOTTOM_PANEL: (f64, f64) = (335.0, 525.0);
const HEIGHT: f64 = 580.0;

/// (label, colour, value of a minute). Outcomes stack bottom to top.
type Series = (&'static str, &'static str, fn(&Minute) -> f64);
const OUTCOMES: [Series; 4] = [
    ("connected", "#2e7d32", |m| f64::from(m.connected)),
    ("voicemail", "#1565c0", |m| f64::from(m.voicemail)),
    ("abandoned", "#ef6c00", |m| f64::from(m.abandoned)),
    ("failed", "#c62828", |m| f64::from(m.failed)),
];
const WAITS: [Series; 3] = [
    ("queue wait p95", "#6a1b9a", |m| m.queue_wait_p95_s),
    ("queue wait mean", "#ab47bc", |m| m.queue_wait_mean_s),
    ("post-dial delay mean", "#00838f", |m| {
        m.post_dial_delay_mean_s
    }),
];
/// Dashes for the post-dial delay, which equals the queue wait whenever a call dials one leg.
const DASHED: &str = "post-dial delay mean";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round step (1, 2 or 5 times a power of ten) giving at most about five ticks up to `max`.
fn tick_step(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude)
}

/// Minutes between time labels: a clock-friendly step giving at most about eight.
fn minute_step(minutes: usize) -> usize {
    [1, 2, 5, 10, 15, 30, 60, 120, 180, 240, 360, 720]
        .into_iter()
        .find(|s| minutes.div_ceil(*s) <= 8)
        .unwrap_or(1440)
}

fn number(v: f64) -> String {
    if v >= 10.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

struct Panel {
    top: f64,
    bottom: f64,
    y_max: f64,
    minutes: usize,
}

impl Panel {
    fn new((top, bottom): (f64, f64), max: f64, minutes: usize) -> Self {
        let step = tick_step(max);
        let y_max = (max / step).ceil().max(1.0) * step;
        Self {
            top,
            bottom,
            y_max,
            minutes,
        }
    }

    fn x(&self, minute: f64) -> f64 {
        let span = (self.minutes.max(2) - 1) as f64;
        LEFT + (WIDTH - LEFT - RIGHT) * minute / span
    }

    fn y(&self, v: f64) -> f64 {
        self.bottom - (self.bottom - self.top) * (v / self.y_max).clamp(0.0, 1.0)
    }

    /// Frame, horizontal grid with labels, the axis title, and minute labels below.
    fn axes(&self, out: &mut String, title: &str, minute_label: &dyn Fn(u32) -> String) {
        let step = tick_step(self.y_max);
        let mut v = 0.0;
        while v <= self.y_max + step * 1e-9 {
            let y = self.y(v);
            let _ = write!(
                out,
                r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e0e0e0"/><text x="{:.1}" y="{:.1}" text-anchor="end" class="tick">{}</text>"##,
                WIDTH - RIGHT,
                LEFT - 6.0,
                y + 4.0,
                number(v)
            );
            v += step;
        }
        let _ = write!(
            out,
            r##"<text x="{LEFT}" y="{:.1}" class="axis">{}</text>"##,
            self.top - 10.0,
            escape(title)
        );
        let every = minute_step(self.minutes);
        for m in (0..self.minutes).step_by(every) {
            let x = self.x(m as f64);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}" stroke="#9e9e9e"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" class="tick">{}</text>"##,
                self.bottom,
                self.bottom + 4.0,
                self.bottom + 18.0,
                escape(&minute_label(m as u32))
            );
        }
        let _ = write!(
            out,
            r##"<rect x="{LEFT}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#616161"/>"##,
            self.top,
            WIDTH - LEFT - RIGHT,
            self.bottom - self.top
        );
    }
}

fn legend(out: &mut String, top: f64, entries: &[(&str, &str, bool)]) {
    for (i, (label, colour, area)) in entries.iter().enumerate() {
        let y = top + 10.0 + 20.0 * i as f64;
        let x = WIDTH - RIGHT + 14.0;
        if *area {
            let _ = write!(
                out,
                r##"<rect x="{x}" y="{:.1}" width="14" height="10" fill="{colour}"/>"##,
                y - 9.0
            );
        } else {
            let _ = write!(
                out,
                r##"<line x1="{x}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/>"##,
                x + 14.0,
                y - 4.0,
                y - 4.0
            );
        }
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{y:.1}" class="legend">{}</text>"##,
            x + 20.0,
            escape(label)
        );
    }
}

/// The report's per-minute series as an SVG document. `minute_label` names minute `m` on the
/// time axis (a clock time, or the minute number).
pub fn svg(report: &Report, title: &str, minute_label: &dyn Fn(u32) -> String) -> String {
    let minutes = &report.per_minute;
    let n = minutes.len().max(1);
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="system-ui, sans-serif"><style>.tick{{font-size:11px;fill:#424242}}.axis{{font-size:13px;fill:#212121}}.legend{{font-size:12px;fill:#212121}}.title{{font-size:16px;font-weight:600}}</style><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="26" class="title">{}</text>"##,
        escape(title)
    );
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="46" class="axis">{} calls: {} connected, {} voicemail, {} abandoned, {} failed; queue wait p95 {:.2} s, post-dial delay p95 {:.2} s</text>"##,
        report.calls,
        report.connected,
        report.voicemail,
        report.abandoned,
        report.failed,
        report.queue_wait_s.p95,
        report.post_dial_delay_s.p95
    );

    // Top: seconds of waiting, as lines.
    let wait_max = minutes
        .iter()
        .flat_map(|m| WAITS.iter().map(move |(_, _, f)| f(m)))
        .fold(0.0, f64::max);
    let top = Panel::new(TOP_PANEL, wait_max, n);
    top.axes(
        &mut out,
        "seconds: queue wait and post-dial delay, per minute",
        minute_label,
    );
    for (label, colour, value) in WAITS {
        let points: Vec<String> = minutes
            .iter()
            .enumerate()
            .map(|(i, m)| format!("{:.1},{:.1}", top.x(i as f64), top.y(value(m))))
            .collect();
        let dash = if label == DASHED {
            r#" stroke-dasharray="6 4""#
        } else {
            ""
        };
        let _ = write!(
            out,
            r##"<polyline data-series="{label}" fill="none" stroke="{colour}" stroke-width="1.5"{dash} points="{}"/>"##,
            points.join(" ")
        );
    }
    let entries: Vec<(&str, &str, bool)> = WAITS.iter().map(|(l, c, _)| (*l, *c, false)).collect();
    legend(&mut out, TOP_PANEL.0, &entries);

    // Bottom: calls arriving in each minute by what became of them, stacked.
    let calls_max = minutes
        .iter()
        .map(|m| OUTCOMES.iter().map(|(_, _, f)| f(m)).sum::<f64>())
        .fold(0.0, f64::max);
    let bottom = Panel::new(BOTTOM_PANEL, calls_max, n);
    bottom.axes(&mut out, "calls per minute, by outcome", minute_label);
    let mut base = vec![0.0; minutes.len()];
    for (label, colour, value) in OUTCOMES {
        let tops: Vec<f64> = minutes
            .iter()
            .zip(&base)
            .map(|(m, b)| b + value(m))
            .collect();
        let upper = tops
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", bottom.x(i as f64), bottom.y(*v)));
        let lower = base
            .iter()
            .enumerate()
            .rev()
            .map(|(i, v)| format!("{:.1},{:.1}", bottom.x(i as f64), bottom.y(*v)));
        let points: Vec<String> = upper.chain(lower).collect();
        let _ = write!(
            out,
            r##"<polygon data-series="{label}" fill="{colour}" fill-opacity="0.85" points="{}"/>"##,
            points.join(" ")
        );
        base = tops;
    }
    let entries: Vec<(&str, &str, bool)> = OUTCOMES
        .iter()
        .rev()
        .map(|(l, c, _)| (*l, *c, true))
        .collect();
    legend(&mut out, BOTTOM_PANEL.0, &entries);
    out.push_str("</svg>\n");
    out
}

/// Colours for runs drawn side by side.
const RUN_COLOURS: [&str; 6] = [
    "#616161", "#c62828", "#2e7d32", "#1565c0", "#ef6c00", "#6a1b9a",
];

/// Several runs of the same scenario side by side: each run's mean queue wait per minute on top,
/// the share of each minute's calls that reached a person below.
pub fn compare(
    runs: &[(String, &Report)],
    title: &str,
    minute_label: &dyn Fn(u32) -> String,
) -> String {
    let n = runs
        .iter()
        .map(|(_, r)| r.per_minute.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="system-ui, sans-serif"><style>.tick{{font-size:11px;fill:#424242}}.axis{{font-size:13px;fill:#212121}}.legend{{font-size:12px;fill:#212121}}.title{{font-size:16px;font-weight:600}}</style><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="26" class="title">{}</text>"##,
        escape(title)
    );
    let wait_max = runs
        .iter()
        .flat_map(|(_, r)| r.per_minute.iter().map(|m| m.queue_wait_mean_s))
        .fold(0.0, f64::max);
    let top = Panel::new(TOP_PANEL, wait_max, n);
    top.axes(
        &mut out,
        "seconds: mean queue wait per minute",
        minute_label,
    );
    let bottom = Panel::new(BOTTOM_PANEL, 1.0, n);
    bottom.axes(
        &mut out,
        "share of each minute's calls that reached a person",
        minute_label,
    );
    let mut entries = Vec::new();
    for (i, (label, report)) in runs.iter().enumerate() {
        let colour = RUN_COLOURS[i % RUN_COLOURS.len()];
        let line = |panel: &Panel, value: &dyn Fn(&Minute) -> f64| -> String {
            report
                .per_minute
                .iter()
                .enumerate()
                .map(|(m, minute)| {
                    format!("{:.1},{:.1}", panel.x(m as f64), panel.y(value(minute)))
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let waits = line(&top, &|m| m.queue_wait_mean_s);
        let connected = line(&bottom, &|m| {
            f64::from(m.connected) / f64::from(m.arrivals.max(1))
        });
        for (panel, points) in [("wait", waits), ("connected", connected)] {
            let _ = write!(
                out,
                r##"<polyline data-series="{} {panel}" fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>"##,
                escape(label)
            );
        }
        entries.push((label.as_str(), colour, false));
    }
    legend(&mut out, TOP_PANEL.0, &entries);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round() {
        assert_eq!(tick_step(10.0), 2.0);
        assert_eq!(tick_step(0.37), 0.1);
        assert_eq!(tick_step(700.0), 200.0);
        assert_eq!(tick_step(0.0), 1.0);
        assert_eq!(minute_step(120), 15);
        assert_eq!(minute_step(600), 120);
        assert_eq!(minute_step(5), 1);
    }
}
