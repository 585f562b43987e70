//! `dialtone plot --out FILE REPORT.json...`: replays of one scenario (their `--json` reports)
//! drawn side by side, labelled by file name.

use std::path::PathBuf;

use anyhow::Context;
use chrono::DateTime;
use clap::Args;
use dialtone_carrier::emulator::Report;

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// The SVG to write.
    #[arg(long)]
    out: PathBuf,
    /// `dialtone replay --json` outputs, one per run.
    #[arg(required = true)]
    reports: Vec<PathBuf>,
}

pub fn run(args: PlotArgs) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    let mut title = String::new();
    let mut start = None;
    for path in &args.reports {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a replay's JSON report", path.display()))?;
        let report: Report = serde_json::from_value(json["report"].clone())
            .with_context(|| format!("{}: no replay report in it", path.display()))?;
        if title.is_empty() {
            // The baseline's title says its carrier had no limit; the scenario is the same.
            let scenario = json["scenario"].as_str().unwrap_or("replay");
            title = scenario
                .trim_end_matches(" (carrier without its limit)")
                .to_owned();
        }
        if start.is_none() {
            start = json["start"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok());
        }
        let label = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        runs.push((label, report));
    }
    let label = |m: u32| match start {
        Some(s) => (s + chrono::TimeDelta::minutes(i64::from(m)))
            .format("%H:%M")
            .to_string(),
        None => format!("{m} min"),
    };
    let refs: Vec<(String, &Report)> = runs.iter().map(|(l, r)| (l.clone(), r)).collect();
    let doc = dialtone_carrier::plot::compare(&refs, &title, &label);
    std::fs::write(&args.out, doc).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{} runs drawn side by side in {}",
        runs.len(),
        args.out.display()
    );
    Ok(())
}
