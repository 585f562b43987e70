//! `dialtone backup`: operator backup routing through a running server's API (`on`, `off`,
//! `status`), and `export --out DIR` for the case where dialtone itself is unreachable: one
//! static TwiML document per tracking number that the carrier can serve as the number's Fallback
//! URL (from any static file host), ringing the company's primary number.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use dialtone_core::engine;

#[derive(Subcommand, Debug)]
pub enum BackupCommand {
    /// Send calls to backup routing (their company's primary number), with a reason and an
    /// expiry: one tracker, one company, one service tier, or all; all calls or a percentage.
    On(OnArgs),
    /// End a backup rule.
    Off {
        id: i64,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the backup rules in force.
    Status {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Write one backup TwiML document per tracking number, and an index of them.
    Export(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// The running server.
    #[arg(long, env = "DIALTONE_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An admin API key.
    #[arg(long, env = "DIALTONE_API_KEY", hide_env_values = true)]
    api_key: String,
}

#[derive(Args, Debug)]
pub struct OnArgs {
    /// Every call.
    #[arg(long, conflicts_with_all = ["company", "tier"])]
    all: bool,
    /// One company (by slug).
    #[arg(long)]
    company: Option<String>,
    /// One tracker of --company (by name).
    #[arg(long, requires = "company")]
    tracker: Option<String>,
    /// One service tier.
    #[arg(long, conflicts_with = "company")]
    tier: Option<String>,
    /// Share of those calls, 1 to 100.
    #[arg(long, default_value_t = 100)]
    percent: u32,
    /// Why (kept with the rule and in each call's log).
    #[arg(long)]
    reason: String,
    /// How long: 90s, 30m, 2h, 1d (at most 7d).
    #[arg(long = "for", value_parser = parse_duration)]
    duration_s: u64,
    #[command(flatten)]
    server: ServerArgs,
}

/// `90s`, `30m`, `2h`, `1d` (or plain seconds) in seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 30m, 2h or 1d"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: the unit is s, m, h or d")),
    };
    Ok(n * scale)
}

async fn send(
    request: reqwest::RequestBuilder,
    api_key: &str,
) -> anyhow::Result<serde_json::Value> {
    let response = request
        .bearer_auth(api_key)
        .send()
        .await
        .context("reaching the server")?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        anyhow::bail!(
            "the server said {status}: {}",
            body["error"].as_str().unwrap_or("(no reason given)")
        );
    }
    Ok(body)
}

fn describe(rule: &serde_json::Value) -> String {
    let scope = &rule["scope"];
    let what = match scope["kind"].as_str() {
        Some("all") => "all calls".to_owned(),
        Some("tier") => format!("tier {}", scope["tier"].as_str().unwrap_or("?")),
        Some("company") => format!("company {}", scope["company"].as_str().unwrap_or("?")),
        Some("tracker") => format!(
            "tracker \"{}\" of {}",
            scope["tracker"].as_str().unwrap_or("?"),
            scope["company"].as_str().unwrap_or("?")
        ),
        _ => scope.to_string(),
    };
    format!(
        "#{} {}% of {what} until {}: {} (by {})",
        rule["id"],
        rule["percent"],
        rule["expires_at"].as_str().unwrap_or("?"),
        rule["reason"].as_str().unwrap_or(""),
        rule["created_by"].as_str().unwrap_or("?")
    )
}

pub async fn run(command: BackupCommand) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    match command {
        BackupCommand::Export(args) => export(args),
        BackupCommand::On(a) => {
            let body = serde_json::json!({
                "all": a.all,
                "company": a.company,
                "tracker": a.tracker,
                "tier": a.tier,
                "percent": a.percent,
                "reason": a.reason,
                "expires_in_s": a.duration_s,
                "created_by": std::env::var("USER").unwrap_or_else(|_| "cli".into()),
            });
            let url = format!("{}/api/v1/backup", a.server.url.trim_end_matches('/'));
            let out = send(client.post(url).json(&body), &a.server.api_key).await?;
            println!("backup routing on: {}", describe(&out["rule"]));
            Ok(())
        }
        BackupCommand::Off { id, server } => {
            let url = format!("{}/api/v1/backup/{id}", server.url.trim_end_matches('/'));
            send(client.delete(url), &server.api_key).await?;
            println!("backup rule #{id} ended");
            Ok(())
        }
        BackupCommand::Status { server } => {
            let url = format!("{}/api/v1/backup", server.url.trim_end_matches('/'));
            let out = send(client.get(url), &server.api_key).await?;
            let rules = out["rules"].as_array().cloned().unwrap_or_default();
            let policy = &out["call_log_policy"];
            match policy["state"].as_str() {
                Some("open") => println!(
                    "automatic backup policy OPEN since {}: the call log is failing, every call goes to backup routing (next try at {})",
                    policy["since"].as_str().unwrap_or("?"),
                    policy["until"].as_str().unwrap_or("?")
                ),
                Some("probing") => println!(
                    "automatic backup policy open since {}: one call is trying the call log again",
                    policy["since"].as_str().unwrap_or("?")
                ),
                _ => {}
            }
            if rules.is_empty() && policy["state"].as_str().is_none_or(|s| s == "closed") {
                println!("no backup routing rules: every call follows its flow");
            }
            for r in &rules {
                println!("{}", describe(r));
            }
            Ok(())
        }
    }
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

fn export(args: ExportArgs) -> anyhow::Result<()> {
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
