//! `dialtone call`: play the carrier for one call against a running server.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::bail;
use clap::Args;
use dialtone_carrier::{
    Answer, CallSetup, HttpTransport, Script, StepKind, run_call_observed, sid,
};

#[derive(Args, Debug)]
pub struct CallArgs {
    /// The dialtone server (its Voice URL is SERVER/twilio/voice, status callback SERVER/twilio/status).
    #[arg(long, env = "DIALTONE_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Call this Voice URL instead (any TwiML app).
    #[arg(long)]
    voice_url: Option<String>,
    /// The number's Fallback URL.
    #[arg(long)]
    fallback_url: Option<String>,
    /// The tracking number called.
    #[arg(long)]
    to: String,
    /// The caller's number.
    #[arg(long, default_value = "+14045559876")]
    from: String,
    #[arg(
        long,
        env = "DIALTONE_ACCOUNT_SID",
        default_value = "AC00000000000000000000000000000001"
    )]
    account_sid: String,
    #[arg(
        long,
        env = "DIALTONE_AUTH_TOKEN",
        default_value = "demo-auth-token",
        hide_default_value = true
    )]
    auth_token: String,
    /// Keys the caller presses at menus, in order.
    #[arg(long, default_value = "")]
    digits: String,
    /// A destination that answers (repeatable); `any` answers the first leg. Without it nobody answers.
    #[arg(long)]
    answer: Vec<String>,
    #[arg(long, default_value_t = 4.0)]
    ring_seconds: f64,
    #[arg(long, default_value_t = 30.0)]
    talk_seconds: f64,
    /// Length of the voicemail the caller leaves (0: hangs up at the beep).
    #[arg(long, default_value_t = 12)]
    voicemail_seconds: u32,
    /// Use this CallSid (default: a new random one).
    #[arg(long)]
    call_sid: Option<String>,
    /// Print the transcript as JSON instead of step by step.
    #[arg(long)]
    json: bool,
}

fn random_sid() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // Spread the bits so consecutive calls do not share a long prefix.
    sid(
        "CA",
        (nanos ^ (u128::from(std::process::id()) << 64))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
    )
}

pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    let server = args.server.trim_end_matches('/');
    let setup = CallSetup {
        account_sid: args.account_sid,
        auth_token: args.auth_token,
        voice_url: args
            .voice_url
            .clone()
            .unwrap_or_else(|| format!("{server}/twilio/voice")),
        status_callback: args
            .voice_url
            .is_none()
            .then(|| format!("{server}/twilio/status")),
        fallback_url: args.fallback_url,
        from: args.from,
        to: args.to,
        call_sid: args.call_sid.unwrap_or_else(random_sid),
        api_base_url: None,
        arrived_at: chrono::Utc::now(),
    };
    let answer = match args.answer.as_slice() {
        [] => Answer::Nobody,
        [a] if a == "any" => Answer::Anyone,
        numbers => Answer::Numbers(numbers.to_vec()),
    };
    let script = Script {
        digits: args.digits,
        answer,
        ring_s: args.ring_seconds,
        talk_s: args.talk_seconds,
        voicemail_s: args.voicemail_seconds,
    };
    let json = args.json;
    if !json {
        println!(
            "calling {} from {} ({})",
            setup.to, setup.from, setup.call_sid
        );
    }
    let transcript = run_call_observed(&HttpTransport::new(), &setup, &script, &mut |step| {
        if !json {
            println!("{step}");
            let _ = std::io::stdout().flush();
        }
    })
    .await;
    if json {
        println!("{}", serde_json::to_string_pretty(&transcript)?);
    } else {
        println!(
            "{:?}{} after {:.0} s ({})",
            transcript.outcome,
            transcript
                .answered_by()
                .map(|n| format!(" by {n}"))
                .unwrap_or_default(),
            transcript.duration_s,
            transcript.call_sid
        );
    }
    // The very first request not reaching the server is a usage error, not a call outcome.
    let first = transcript.steps.iter().find_map(|s| match &s.kind {
        StepKind::Request { status, url, .. } => Some((status, url)),
        _ => None,
    });
    if let Some((None, url)) = first {
        bail!("could not reach {url}: is `dialtone serve` running there?");
    }
    Ok(())
}
