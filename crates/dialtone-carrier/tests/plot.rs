//! The replay plot is a well-formed SVG whose series hold every minute, inside their panels.

use dialtone_carrier::emulator::{Minute, Report};
use dialtone_carrier::plot::{compare, svg};
use quick_xml::Reader;
use quick_xml::events::Event;

fn report(minutes: u32) -> Report {
    let per_minute = (0..minutes)
        .map(|m| Minute {
            minute: m,
            arrivals: 10 + m,
            connected: 8,
            voicemail: 1,
            abandoned: m,
            failed: 1,
            legs_started: 9,
            queue_wait_mean_s: f64::from(m) * 0.5,
            queue_wait_p95_s: f64::from(m) * 1.5,
            post_dial_delay_mean_s: f64::from(m) * 0.6,
        })
        .collect();
    Report {
        calls: 100,
        per_minute,
        ..Report::default()
    }
}

/// A drawn series: (element, data-series, points).
type Drawn = (String, String, Vec<(f64, f64)>);

/// Every series in the document; panics if it is not XML.
fn series(doc: &str) -> Vec<Drawn> {
    let mut reader = Reader::from_str(doc);
    let mut found = Vec::new();
    let mut depth = 0i32;
    loop {
        match reader.read_event().expect("well-formed SVG") {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth -= 1,
            Event::Empty(e) => {
                let mut name = None;
                let mut points = Vec::new();
                for a in e.attributes() {
                    let a = a.expect("attribute");
                    let value = a.unescape_value().expect("value").into_owned();
                    match a.key.as_ref() {
                        b"data-series" => name = Some(value),
                        b"points" => {
                            points = value
                                .split_whitespace()
                                .map(|p| {
                                    let (x, y) = p.split_once(',').expect("x,y");
                                    (x.parse().expect("x"), y.parse().expect("y"))
                                })
                                .collect()
                        }
                        _ => {}
                    }
                }
                if let Some(name) = name {
                    let tag = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    found.push((tag, name, points));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every element closed");
    found
}

#[test]
fn every_minute_is_drawn_inside_its_panel() {
    let doc = svg(&report(90), "May 14 <replay> & co", &|m| {
        format!("13:{m:02}")
    });
    assert!(
        doc.contains("May 14 &lt;replay&gt; &amp; co"),
        "titles are escaped"
    );
    let all = series(&doc);
    let names: Vec<&str> = all.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "queue wait p95",
            "queue wait mean",
            "post-dial delay mean",
            "connected",
            "voicemail",
            "abandoned",
            "failed"
        ]
    );
    for (tag, name, points) in &all {
        let (want, top, bottom) = if tag == "polyline" {
            (90, 85.0, 275.0)
        } else {
            (180, 335.0, 525.0)
        };
        assert_eq!(points.len(), want, "{name}");
        assert!(
            points.iter().all(|(_, y)| (top..=bottom).contains(y)),
            "{name}: {points:?}"
        );
        assert!(
            points.iter().all(|(x, _)| (70.0..=830.0).contains(x)),
            "{name}"
        );
    }
    // The last minute's p95 wait is the top panel's highest point, above the mean's.
    let last_y = |name: &str| {
        all.iter()
            .find(|s| s.1 == name)
            .and_then(|s| s.2.last())
            .map(|p| p.1)
    };
    assert!(last_y("queue wait p95") < last_y("queue wait mean"));
    // Stacked: the failed band's upper edge is the minute's total, the highest of the four.
    let upper_first = |name: &str| all.iter().find(|s| s.1 == name).map(|s| s.2[89].1);
    assert!(upper_first("failed") < upper_first("abandoned"));
    assert!(upper_first("abandoned") < upper_first("connected"));
}

#[test]
fn an_empty_report_still_draws() {
    let doc = svg(&Report::default(), "nothing", &|m| m.to_string());
    let all = series(&doc);
    assert!(all.iter().all(|(_, _, p)| p.is_empty()));
}

#[test]
fn runs_side_by_side_draw_a_wait_and_a_connected_line_each() {
    let (a, b) = (report(30), report(45));
    let runs = vec![("none".to_owned(), &a), ("adaptive".to_owned(), &b)];
    let doc = compare(&runs, "May 14", &|m| m.to_string());
    let all = series(&doc);
    let names: Vec<&str> = all.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "none wait",
            "none connected",
            "adaptive wait",
            "adaptive connected"
        ]
    );
    assert_eq!(all[0].2.len(), 30);
    assert_eq!(all[2].2.len(), 45);
    // 8 of each minute's 10 + m calls connected: the share falls minute by minute.
    let connected = &all[1].2;
    assert!(
        connected[0].1 < connected[29].1,
        "lower on screen is a smaller share"
    );
    assert!(connected.iter().all(|(_, y)| (335.0..=525.0).contains(y)));
}
