//! Call detail records as the carrier's REST API shows them: the Calls and Recordings resources
//! (Twilio's 2010-04-01 API), one JSON object a line on disk.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::emulator::CallRun;
use crate::transcript::CallOutcome;

pub const API_VERSION: &str = "2010-04-01";

/// One call or leg: the Calls resource, every field the carrier's API description names, in its
/// order. Times are RFC 2822, durations and counts strings, as the carrier writes them. Fields the
/// emulator does not model are there, null, as the carrier shows them when they do not apply.
/// Records written before a field was added read with it empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub sid: String,
    pub date_created: String,
    pub date_updated: String,
    pub parent_call_sid: Option<String>,
    pub account_sid: String,
    pub to: String,
    #[serde(default)]
    pub to_formatted: String,
    pub from: String,
    #[serde(default)]
    pub from_formatted: String,
    /// For an inbound call, the IncomingPhoneNumber that received it.
    #[serde(default)]
    pub phone_number_sid: Option<String>,
    /// queued, ringing, in-progress, canceled, completed, failed, busy or no-answer.
    pub status: String,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    /// Seconds, as a string.
    pub duration: String,
    /// Not billed: null, as the carrier shows a price not yet known.
    #[serde(default)]
    pub price: Option<String>,
    #[serde(default)]
    pub price_unit: Option<String>,
    /// inbound, outbound-api or outbound-dial.
    pub direction: String,
    /// Set by answering-machine detection only, which the emulator does not do: always null.
    pub answered_by: Option<String>,
    pub api_version: String,
    pub forwarded_from: Option<String>,
    #[serde(default)]
    pub group_sid: Option<String>,
    pub caller_name: Option<String>,
    /// Milliseconds the call waited in the carrier's queue before it was set up, as a string.
    pub queue_time: String,
    #[serde(default)]
    pub trunk_sid: Option<String>,
    pub uri: String,
    /// The subresources the emulator serves, by name.
    #[serde(default)]
    pub subresource_uris: BTreeMap<String, String>,
}

/// A recording: what the carrier keeps of it, shown as its Recording resource
/// ([`RecordingResource::account_view`]) or as one of a call's recordings
/// ([`RecordingResource::call_view`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingResource {
    pub sid: String,
    pub account_sid: String,
    /// Always the parent call: the carrier files a recorded `<Dial>`'s recording under the call
    /// that dialed, not under the leg it dialed.
    pub call_sid: String,
    pub status: String,
    /// Seconds.
    pub duration: u32,
    pub channels: u32,
    /// RecordVerb or DialVerb.
    pub source: String,
    pub start_time: String,
    pub date_created: String,
    pub date_updated: String,
    /// Where the audio is (WAV unless another extension is asked for).
    pub media_url: String,
}

/// The account's Recording resource (`/Recordings/{Sid}.json`), every field the description
/// names, in its order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingView<'a> {
    pub account_sid: &'a str,
    pub api_version: &'static str,
    pub call_sid: &'a str,
    pub conference_sid: Option<&'a str>,
    pub date_created: &'a str,
    pub date_updated: &'a str,
    pub start_time: &'a str,
    pub duration: String,
    pub sid: &'a str,
    pub price: Option<&'a str>,
    pub price_unit: &'static str,
    pub status: &'a str,
    pub channels: u32,
    pub source: &'a str,
    pub error_code: Option<u32>,
    pub uri: String,
    pub encryption_details: Option<()>,
    pub subresource_uris: BTreeMap<&'static str, String>,
    pub media_url: &'a str,
}

/// A call's recording (`/Calls/{CallSid}/Recordings/{Sid}.json`): the description gives it
/// `track` and no `media_url` or `subresource_uris`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecordingView<'a> {
    pub account_sid: &'a str,
    pub api_version: &'static str,
    pub call_sid: &'a str,
    pub conference_sid: Option<&'a str>,
    pub date_created: &'a str,
    pub date_updated: &'a str,
    pub start_time: &'a str,
    pub duration: String,
    pub sid: &'a str,
    pub price: Option<&'a str>,
    pub uri: String,
    pub encryption_details: Option<()>,
    pub price_unit: &'static str,
    pub status: &'a str,
    pub channels: u32,
    pub source: &'a str,
    pub error_code: Option<u32>,
    pub track: &'static str,
}

impl RecordingResource {
    pub fn account_view(&self) -> RecordingView<'_> {
        RecordingView {
            account_sid: &self.account_sid,
            api_version: API_VERSION,
            call_sid: &self.call_sid,
            conference_sid: None,
            date_created: &self.date_created,
            date_updated: &self.date_updated,
            start_time: &self.start_time,
            duration: self.duration.to_string(),
            sid: &self.sid,
            price: None,
            price_unit: "USD",
            status: &self.status,
            channels: self.channels,
            source: &self.source,
            error_code: None,
            uri: format!(
                "/{API_VERSION}/Accounts/{}/Recordings/{}.json",
                self.account_sid, self.sid
            ),
            encryption_details: None,
            // The emulator serves no add-on results or transcriptions.
            subresource_uris: BTreeMap::new(),
            media_url: &self.media_url,
        }
    }

    pub fn call_view(&self) -> CallRecordingView<'_> {
        CallRecordingView {
            account_sid: &self.account_sid,
            api_version: API_VERSION,
            call_sid: &self.call_sid,
            conference_sid: None,
            date_created: &self.date_created,
            date_updated: &self.date_updated,
            start_time: &self.start_time,
            duration: self.duration.to_string(),
            sid: &self.sid,
            price: None,
            uri: format!(
                "/{API_VERSION}/Accounts/{}/Calls/{}/Recordings/{}.json",
                self.account_sid, self.call_sid, self.sid
            ),
            encryption_details: None,
            price_unit: "USD",
            status: &self.status,
            channels: self.channels,
            source: &self.source,
            error_code: None,
            track: "both",
        }
    }
}

/// A call's records: the inbound call, then each leg it dialed; and its recordings.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecords {
    /// Seconds since the run started when the call arrived (for ordering).
    pub arrived_at_s: f64,
    pub calls: Vec<CallRecord>,
    pub recordings: Vec<RecordingResource>,
}

/// A time as the carrier's API writes it: RFC 2822, in UTC.
pub fn rfc2822(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

/// A number as the carrier formats it for display: North American numbers as `(404) 555-0100`,
/// others in E.164.
pub fn formatted(number: &str) -> String {
    match number.strip_prefix("+1") {
        Some(n) if n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("({}) {}-{}", &n[..3], &n[3..6], &n[6..])
        }
        _ => number.to_owned(),
    }
}

/// The IncomingPhoneNumber sid the emulator gives `number` (E.164): the same number, the same
/// sid, in every run.
pub fn phone_number_sid(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    format!("PN{:0>32}", digits.get(..32).unwrap_or(&digits))
}

/// The records of `run`, a call that arrived on `account_sid` with the run started at `start`.
pub fn records(run: &CallRun, account_sid: &str, start: DateTime<Utc>) -> CallRecords {
    let at = |s: f64| rfc2822(start + TimeDelta::microseconds((s * 1e6) as i64));
    let uri = |sid: &str| format!("/{API_VERSION}/Accounts/{account_sid}/Calls/{sid}.json");
    let subresources = |sid: &str| {
        BTreeMap::from([(
            "recordings".to_owned(),
            format!("/{API_VERSION}/Accounts/{account_sid}/Calls/{sid}/Recordings.json"),
        )])
    };
    let t = &run.transcript;
    let arrived = run.arrived_at;
    let status = match t.outcome {
        CallOutcome::Rejected => "busy",
        _ => "completed",
    };
    let call = |sid: &str, parent: Option<&str>, from: &str, to: &str| CallRecord {
        sid: sid.to_owned(),
        date_created: String::new(),
        date_updated: String::new(),
        parent_call_sid: parent.map(str::to_owned),
        account_sid: account_sid.to_owned(),
        to: to.to_owned(),
        to_formatted: formatted(to),
        from: from.to_owned(),
        from_formatted: formatted(from),
        phone_number_sid: None,
        status: String::new(),
        start_time: None,
        end_time: None,
        duration: String::new(),
        price: None,
        price_unit: Some("USD".into()),
        direction: String::new(),
        answered_by: None,
        api_version: API_VERSION.into(),
        forwarded_from: None,
        group_sid: None,
        caller_name: None,
        queue_time: "0".into(),
        trunk_sid: None,
        uri: uri(sid),
        subresource_uris: subresources(sid),
    };
    let mut calls = vec![CallRecord {
        date_created: at(arrived),
        date_updated: at(arrived + t.duration_s),
        phone_number_sid: Some(phone_number_sid(&run.to)),
        status: status.into(),
        start_time: Some(at(arrived)),
        end_time: Some(at(arrived + t.duration_s)),
        duration: format!("{}", t.duration_s.round() as u64),
        direction: "inbound".into(),
        ..call(&t.call_sid, None, &run.from, &run.to)
    }];
    for leg in &t.legs {
        let started = leg.started_at_s;
        calls.push(CallRecord {
            date_created: at(arrived + leg.requested_at_s),
            date_updated: at(arrived + leg.ended_at_s),
            status: leg.status.into(),
            // A leg dropped from the dial queue never started.
            start_time: started.map(|s| at(arrived + s)),
            end_time: started.map(|_| at(arrived + leg.ended_at_s)),
            duration: format!("{}", leg.talk_s.round() as u64),
            direction: "outbound-dial".into(),
            queue_time: format!("{}", (leg.queue_s() * 1000.0).round() as u64),
            ..call(&leg.sid, Some(&t.call_sid), &leg.from, &leg.to)
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
            duration: r.duration_s,
            channels: r.channels,
            source: if r.voicemail {
                "RecordVerb"
            } else {
                "DialVerb"
            }
            .into(),
            start_time: at(arrived + r.started_at_s),
            date_created: at(arrived + r.started_at_s),
            date_updated: at(arrived + r.started_at_s + f64::from(r.duration_s)),
            media_url: r.url.clone(),
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
