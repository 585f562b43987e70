//! Call detail records as the carrier's REST API shows them: the Calls and Recordings resources
//! (Twilio's 2010-04-01 API), one JSON object a line on disk.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::emulator::CallRun;
use crate::transcript::CallOutcome;

pub const API_VERSION: &str = "2010-04-01";

/// One call or leg, with the Calls resource's field names. Times are RFC 2822, durations and
/// counts strings, as the carrier writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub sid: String,
    pub parent_call_sid: Option<String>,
    pub account_sid: String,
    pub from: String,
    pub to: String,
    /// queued, ringing, in-progress, canceled, completed, failed, busy or no-answer.
    pub status: String,
    /// inbound, outbound-api or outbound-dial.
    pub direction: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// Seconds, as a string.
    pub duration: String,
    /// Milliseconds the call waited in the carrier's queue before it was set up, as a string.
    pub queue_time: String,
    pub answered_by: Option<String>,
    pub forwarded_from: Option<String>,
    pub caller_name: Option<String>,
    pub date_created: String,
    pub date_updated: String,
    pub api_version: String,
    pub uri: String,
}

/// A recording, with the Recordings resource's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingResource {
    pub sid: String,
    pub account_sid: String,
    pub call_sid: String,
    pub status: String,
    /// Seconds, as a string.
    pub duration: String,
    pub channels: u32,
    /// RecordVerb or DialVerb.
    pub source: String,
    pub start_time: String,
    pub date_created: String,
    pub api_version: String,
    pub uri: String,
    /// Where the audio is: the recording's URL plus `.wav`.
    pub media_url: String,
}

/// A call's records: the inbound call, then each leg it dialed; and its recordings.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecords {
    /// Seconds since the run started when the call arrived (for ordering).
    pub arrived_at_s: f64,
    pub calls: Vec<CallRecord>,
    pub recordings: Vec<RecordingResource>,
}

fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// The records of `run`, a call that arrived on `account_sid` with the run started at `start`.
pub fn records(run: &CallRun, account_sid: &str, start: DateTime<Utc>) -> CallRecords {
    let at = |s: f64| rfc2822(start + TimeDelta::microseconds((s * 1e6) as i64));
    let uri = |sid: &str| format!("/{API_VERSION}/Accounts/{account_sid}/Calls/{sid}.json");
    let t = &run.transcript;
    let arrived = run.arrived_at;
    let status = match t.outcome {
        CallOutcome::Rejected => "busy",
        _ => "completed",
    };
    let mut calls = vec![CallRecord {
        sid: t.call_sid.clone(),
        parent_call_sid: None,
        account_sid: account_sid.to_owned(),
        from: run.from.clone(),
        to: run.to.clone(),
        status: status.into(),
        direction: "inbound".into(),
        start_time: Some(at(arrived)),
        end_time: Some(at(arrived + t.duration_s)),
        duration: format!("{}", t.duration_s.round() as u64),
        queue_time: "0".into(),
        answered_by: None,
        forwarded_from: None,
        caller_name: None,
        date_created: at(arrived),
        date_updated: at(arrived + t.duration_s),
        api_version: API_VERSION.into(),
        uri: uri(&t.call_sid),
    }];
    for leg in &t.legs {
        let started = leg.started_at_s;
        calls.push(CallRecord {
            sid: leg.sid.clone(),
            parent_call_sid: Some(t.call_sid.clone()),
            account_sid: account_sid.to_owned(),
            from: leg.from.clone(),
            to: leg.to.clone(),
            status: leg.status.into(),
            direction: "outbound-dial".into(),
            // A leg dropped from the dial queue never started.
            start_time: started.map(|s| at(arrived + s)),
            end_time: started.map(|_| at(arrived + leg.ended_at_s)),
            duration: format!("{}", leg.talk_s.round() as u64),
            queue_time: format!("{}", (leg.queue_s() * 1000.0).round() as u64),
            answered_by: leg.answered_at_s.map(|_| "human".into()),
            forwarded_from: None,
            caller_name: None,
            date_created: at(arrived + leg.requested_at_s),
            date_updated: at(arrived + leg.ended_at_s),
            api_version: API_VERSION.into(),
            uri: uri(&leg.sid),
        });
    }
    let recordings = t
        .recordings
        .iter()
        .map(|r| RecordingResource {
            sid: r.sid.clone(),
            account_sid: account_sid.to_owned(),
            call_sid: r.call_sid.clone(),
            status: "completed".into(),
            duration: r.duration_s.to_string(),
            channels: if r.voicemail { 1 } else { 2 },
            source: if r.voicemail {
                "RecordVerb"
            } else {
                "DialVerb"
            }
            .into(),
            start_time: at(arrived + r.started_at_s),
            date_created: at(arrived + r.started_at_s),
            api_version: API_VERSION.into(),
            uri: format!(
                "/{API_VERSION}/Accounts/{account_sid}/Recordings/{}.json",
                r.sid
            ),
            media_url: format!("{}.wav", r.url),
        })
        .collect();
    CallRecords {
        arrived_at_s: arrived,
        calls,
        recordings,
    }
}

/// Writes `records` as JSON lines: each call, then its legs.
pub fn write_jsonl(
    out: &mut impl std::io::Write,
    records: &CallRecords,
) -> Result<(), std::io::Error> {
    for c in &records.calls {
        serde_json::to_writer(&mut *out, c)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// A WAV file (8 kHz, 16-bit mono) of `duration_s` seconds: a quiet tone, so that a player shows
/// something is there.
pub fn wav(duration_s: u32) -> Vec<u8> {
    const RATE: u32 = 8000;
    let samples = RATE * duration_s;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&RATE.to_le_bytes());
    out.extend_from_slice(&(RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        let phase = f64::from(i) * 440.0 * std::f64::consts::TAU / f64::from(RATE);
        let sample = (phase.sin() * 1500.0) as i16;
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_header_matches_its_length() {
        let w = wav(3);
        assert_eq!(&w[0..4], b"RIFF");
        assert_eq!(
            u32::from_le_bytes([w[4], w[5], w[6], w[7]]) as usize,
            w.len() - 8
        );
        assert_eq!(&w[36..40], b"data");
        assert_eq!(
            u32::from_le_bytes([w[40], w[41], w[42], w[43]]),
            3 * 8000 * 2
        );
        assert_eq!(w.len(), 44 + 3 * 8000 * 2);
    }

    #[test]
    fn times_are_rfc_2822_in_utc() {
        let t = DateTime::parse_from_rfc3339("2026-05-14T13:00:05.7Z")
            .map(|t| t.with_timezone(&Utc))
            .ok();
        assert_eq!(
            t.map(rfc2822).as_deref(),
            Some("Thu, 14 May 2026 13:00:05 +0000")
        );
    }
}
