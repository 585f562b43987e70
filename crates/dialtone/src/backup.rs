//! `dialtone backup export --out DIR`: for the case where dialtone itself is unreachable, one
//! static TwiML document per tracking number that the carrier can serve as the number's Fallback
//! URL (from any static file host): ring the company's primary number.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use dialtone_core::engine;

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Write one backup TwiML document per tracking number, and an index of them.
    Export(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The directory to write to (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// The configuration whose tracking numbers are exported.
    #[arg(long, env = "DIALTONE_CONFIG")]
    config: Option<PathBuf>,
    /// Use the demo configuration.
    #[arg(long)]
    demo: bool,
}

/// The file a tracking number's document is written to: its digits, so any web server serves it.
pub fn file_name(number: &str) -> String {
    format!("{}.xml", number.trim_start_matches('+'))
}

pub fn run(command: BackupCommand) -> anyhow::Result<()> {
    let BackupCommand::Export(args) = command;
    let config = crate::config_source(args.config, args.demo)?
        .load()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("configuration refused")?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut index = String::from("tracking_number,company,tracker,primary_number,file\n");
    let mut written = 0;
    for company in &config.companies {
        let doc = engine::backup(&company.primary_number).to_xml();
        for tracker in &company.trackers {
            for number in &tracker.numbers {
                let name = file_name(number.as_str());
                let path = args.out.join(&name);
                std::fs::write(&path, &doc)
                    .with_context(|| format!("writing {}", path.display()))?;
                index.push_str(&format!(
                    "{},{},{},{},{name}\n",
                    number.as_str(),
                    company.slug,
                    tracker.name.replace(',', " "),
                    company.primary_number.as_str()
                ));
                written += 1;
            }
        }
    }
    let index_path = args.out.join("index.csv");
    std::fs::write(&index_path, index)
        .with_context(|| format!("writing {}", index_path.display()))?;
    println!(
        "{written} backup documents in {} (index.csv lists them); set each number's Fallback URL to where they are served",
        args.out.display()
    );
    Ok(())
}
