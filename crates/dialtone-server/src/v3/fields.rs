//! A call as CallRail's API v3 shows it: CallRail's sixteen default fields, and any of its
//! optional fields (or dialtone's own, such as `routing` and `legs`) that `fields=` asks for.
//! Nothing else: pycallrail's models refuse a key they do not know.

use chrono_tz::Tz;
use dialtone_core::config::Company;
use dialtone_core::event::Outcome;
use dialtone_store::Call;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{V3Error, ids, time};

/// CallRail's default fields, in its names and types (`recording_duration` is a string).
#[derive(Debug, Serialize)]
struct Defaults {
    answered: bool,
    business_phone_number: Option<String>,
    customer_city: String,
    customer_country: String,
    customer_name: String,
    customer_phone_number: String,
    customer_state: String,
    direction: &'static str,
    duration: Option<u32>,
    id: String,
    recording: Option<String>,
    recording_duration: Option<String>,
    recording_player: Option<String>,
    start_time: String,
    tracking_phone_number: String,
    voicemail: bool,
}

/// CallRail's optional call fields. Those dialtone has no data for (conversation intelligence,
/// lead scoring, agents, the caller's location) are `null`, as CallRail shows a field an
/// account's plan does not fill.
const CALLRAIL: &[&str] = &[
    "agent_email",
    "call_highlights",
    "call_summary",
    "call_type",
    "campaign",
    "company_id",
    "company_name",
    "company_time_zone",
    "conversational_transcript",
    "created_at",
    "custom",
    "device_type",
    "fbclid",
    "first_call",
    "formatted_business_phone_number",
    "formatted_call_type",
    "formatted_customer_location",
    "formatted_customer_name",
    "formatted_customer_name_or_phone_number",
    "formatted_customer_phone_number",
    "formatted_duration",
    "formatted_tracking_phone_number",
    "formatted_tracking_source",
    "formatted_value",
    "ga",
    "gclid",
    "good_lead_call_id",
    "good_lead_call_time",
    "integration_data",
    "keypad_entries",
    "keywords",
    "keywords_spotted",
    "landing_page_url",
    "last_requested_url",
    "lead_explanation",
    "lead_score",
    "lead_status",
    "medium",
    "milestones",
    "msclkid",
    "note",
    "person_id",
    "prior_calls",
    "referrer_domain",
    "referring_url",
    "sentiment",
    "session_uuid",
    "source",
    "source_name",
    "speaker_percent",
    "tags",
    "timeline_url",
    "total_calls",
    "tracker_id",
    "transcription",
    "utm_campaign",
    "utm_content",
    "utm_medium",
    "utm_source",
    "utm_term",
    "utma",
    "utmb",
    "utmc",
    "utmv",
    "utmz",
    "value",
    "voice_assist_message",
    "waveforms",
    "zip_code",
];

/// dialtone's own fields, given only when asked for.
const DIALTONE: &[&str] = &[
    "attribution",
    "degraded",
    "end_time",
    "flow",
    "flow_path",
    "forwarded_from",
    "legs",
    "outcome",
    "recording_notice_played",
    "routing",
    "routing_reason",
    "status",
];

/// The optional fields a request asks for (`fields=a,b,c`), each known.
#[derive(Debug, Clone, Default)]
pub struct Selection(Vec<&'static str>);

impl Selection {
    pub fn parse(fields: Option<&str>) -> Result<Self, V3Error> {
        let mut chosen = Vec::new();
        for name in fields.unwrap_or("").split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            let known = CALLRAIL
                .iter()
                .chain(DIALTONE)
                .find(|f| **f == name)
                .ok_or_else(|| V3Error::bad(format!("`{name}` is not a call field")))?;
            if !chosen.contains(known) {
                chosen.push(*known);
            }
        }
        Ok(Self(chosen))
    }

    /// This selection and each of `more` whose flag is set.
    pub fn with(mut self, more: &[(&'static str, bool)]) -> Self {
        for (name, wanted) in more {
            if *wanted && !self.0.contains(name) {
                self.0.push(name);
            }
        }
        self
    }
}

/// `call` as CallRail shows it, times in `zone`; `company` is its company's configuration, if
/// it still has one.
pub fn call_object(call: &Call, company: Option<&Company>, zone: Tz, fields: &Selection) -> Value {
    let defaults = Defaults {
        answered: call.answered,
        business_phone_number: call.answered_by.clone(),
        customer_city: String::new(),
        customer_country: String::new(),
        customer_name: call.caller_name.clone().unwrap_or_default(),
        customer_phone_number: call.caller.clone(),
        customer_state: String::new(),
        direction: "inbound",
        duration: call.duration_s,
        id: ids::call(&call.sid),
        recording: call.recording_url.clone(),
        recording_duration: call.recording_duration_s.map(|s| s.to_string()),
        recording_player: None,
        start_time: time::local(call.started_at, zone),
        tracking_phone_number: call.tracking_number.clone(),
        voicemail: call.voicemail,
    };
    let mut object = match serde_json::to_value(defaults) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for name in &fields.0 {
        object.insert((*name).to_owned(), optional(name, call, company, zone));
    }
    Value::Object(object)
}

fn optional(name: &str, call: &Call, company: Option<&Company>, zone: Tz) -> Value {
    let visit = call.attribution.as_ref().map(|a| &a.visit);
    let from_visit = |f: fn(&dialtone_core::dni::Visit) -> Option<String>| json!(visit.and_then(f));
    match name {
        "call_type" => json!(call_type(call.outcome)),
        "campaign" | "utm_campaign" => from_visit(|v| v.campaign.clone()),
        "company_id" => json!(ids::company(&call.company)),
        "company_name" => json!(company.map_or(call.company.as_str(), |c| c.name.as_str())),
        "company_time_zone" => json!(company.map(|c| c.time_zone.name())),
        "created_at" => json!(time::local(call.started_at, zone)),
        "fbclid" => from_visit(|v| v.fbclid.clone()),
        "first_call" => json!(call.first_call),
        "formatted_business_phone_number" => json!(call.answered_by.as_deref().map(phone)),
        "formatted_customer_location" => json!(""),
        "formatted_customer_name" => json!(call.caller_name.clone().unwrap_or_default()),
        "formatted_customer_name_or_phone_number" => json!(
            call.caller_name
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| phone(&call.caller))
        ),
        "formatted_customer_phone_number" => json!(phone(&call.caller)),
        "formatted_duration" => json!(call.duration_s.map(duration)),
        "formatted_tracking_phone_number" => json!(phone(&call.tracking_number)),
        "formatted_tracking_source" | "source" | "source_name" => json!(call.tracker),
        "formatted_value" => json!(
            call.value
                .as_ref()
                .map_or("--".to_owned(), |v| format!("${v}"))
        ),
        "gclid" => from_visit(|v| v.gclid.clone()),
        "keywords" | "utm_term" => from_visit(|v| v.keyword.clone()),
        "landing_page_url" => from_visit(|v| Some(v.landing_page.clone())),
        "medium" | "utm_medium" => from_visit(|v| Some(v.medium.clone())),
        "msclkid" => from_visit(|v| v.msclkid.clone()),
        "referrer_domain" => from_visit(|v| v.referrer_domain.clone()),
        "referring_url" => from_visit(|v| v.referrer.clone()),
        "tags" => json!(call.tags),
        "note" => json!(call.note),
        "value" => json!(call.value),
        "lead_status" => json!(call.lead_status.map(|l| l.as_str())),
        "tracker_id" => json!(ids::tracker(&call.company, &call.tracker)),
        "utm_content" => from_visit(|v| v.content.clone()),
        "utm_source" => from_visit(|v| Some(v.source.clone())),
        // dialtone's own.
        "attribution" => json!(call.attribution.as_ref().map(|a| json!({
            "session_id": a.session,
            "visitor_id": a.visitor,
            "confidence": if a.shared_with > 1 { "shared" } else { "certain" },
            "shared_with": a.shared_with,
        }))),
        "degraded" => json!(call.dial_shape),
        "end_time" => json!(call.ended_at.map(|t| time::local(t, zone))),
        "flow" => json!(call.flow),
        "flow_path" => json!(call.path),
        "forwarded_from" => json!(call.forwarded_from),
        "legs" => json!(
            call.legs
                .iter()
                .map(|l| json!({
                    "sid": l.sid,
                    "to": l.to,
                    "status": l.status,
                    "duration": l.duration_s,
                    "answered_at": l.answered_at.map(|t| time::local(t, zone)),
                }))
                .collect::<Vec<_>>()
        ),
        "outcome" => json!(call.outcome.as_str()),
        "recording_notice_played" => json!(call.notice_played),
        "routing" => json!(call.routing),
        "routing_reason" => json!(call.routing_reason),
        "status" => json!(call.status),
        _ => Value::Null,
    }
}

/// CallRail's `call_type` of an outcome.
fn call_type(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::InProgress => "in_progress",
        Outcome::Answered => "answered",
        Outcome::Voicemail => "voicemail",
        Outcome::Missed | Outcome::Failed => "missed",
    }
}

/// A number as CallRail formats one: `404-555-8514` in the North American plan, as given
/// otherwise.
fn phone(number: &str) -> String {
    match number.strip_prefix("+1") {
        Some(n) if n.len() == 10 && n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{}-{}-{}", &n[..3], &n[3..6], &n[6..])
        }
        _ => number.to_owned(),
    }
}

/// A duration as CallRail formats one: `13s`, `2m 59s`, `1h 0m 5s`.
fn duration(s: u32) -> String {
    let (h, m, s) = (s / 3600, s % 3600 / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_callrails() {
        assert_eq!(phone("+14045558514"), "404-555-8514");
        assert_eq!(phone("+442071838750"), "+442071838750");
        assert_eq!(duration(13), "13s");
        assert_eq!(duration(179), "2m 59s");
        assert_eq!(duration(3605), "1h 0m 5s");
    }

    #[test]
    fn fields_are_known_or_refused() {
        let s = Selection::parse(Some("tags, first_call,routing,tags")).unwrap();
        assert_eq!(s.0, vec!["tags", "first_call", "routing"]);
        assert!(Selection::parse(Some("customer_secret")).is_err());
        assert!(Selection::parse(None).unwrap().0.is_empty());
    }
}
