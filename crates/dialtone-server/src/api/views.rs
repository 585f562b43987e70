//! How the API shows what the store keeps: calls shaped after CallRail's call object, with
//! dialtone's routing fields beside them. The store's types stay backend data; the field names
//! clients read are here.

use chrono::{DateTime, SecondsFormat, Utc};
use dialtone_core::event::CallAttribution;
use dialtone_store::{Call, CallPage, Leg, StoredEvent};
use serde::Serialize;

/// Times as the API writes them: RFC 3339 in UTC, to the microsecond.
fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A page of an offset listing.
#[derive(Debug, Serialize)]
pub struct PageView {
    pub page: u32,
    pub per_page: u32,
    pub total_pages: u32,
    pub total_records: u64,
    pub calls: Vec<CallView>,
}

impl From<CallPage> for PageView {
    fn from(p: CallPage) -> Self {
        Self {
            page: p.page,
            per_page: p.per_page,
            total_pages: p.total_pages,
            total_records: p.total_records,
            calls: p.calls.into_iter().map(CallView::from).collect(),
        }
    }
}

/// A call as the API shows it, shaped after CallRail's call object.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CallView {
    pub id: String,
    pub answered: bool,
    pub direction: &'static str,
    pub duration: Option<u32>,
    pub start_time: String,
    pub end_time: Option<String>,
    pub tracking_phone_number: String,
    /// The destination that answered.
    pub business_phone_number: Option<String>,
    pub customer_phone_number: String,
    pub customer_name: Option<String>,
    pub forwarded_from: Option<String>,
    pub company_id: String,
    /// The tracker the call came through: its name is the marketing source.
    pub source: String,
    pub source_type: String,
    /// Where the caller came from, when a website visit is attributed (DNI).
    #[serde(flatten)]
    pub marketing: Marketing,
    /// Whether this was the caller's first call to the company (null when unknown).
    pub first_call: Option<bool>,
    pub voicemail: bool,
    pub voicemail_recording: Option<String>,
    pub recording: Option<String>,
    pub recording_duration: Option<u32>,
    pub recording_notice_played: bool,
    /// in_progress, answered, voicemail, missed, failed.
    pub outcome: &'static str,
    /// The carrier's last status for the call.
    pub status: Option<String>,
    /// normal, or backup when dialtone answered with its backup routing.
    pub routing: String,
    pub routing_reason: Option<String>,
    /// How the dial was shaped under the carrier's limit (primary_first, primary_only), when it
    /// was.
    pub degraded: Option<String>,
    pub flow: String,
    pub flow_path: Vec<String>,
    pub legs: Vec<LegView>,
    /// Every event of the call, oldest first (single-call view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<TimelineEntry>>,
}

impl From<Call> for CallView {
    fn from(c: Call) -> Self {
        Self {
            id: c.sid,
            answered: c.answered,
            direction: "inbound",
            duration: c.duration_s,
            start_time: time(c.started_at),
            end_time: c.ended_at.map(time),
            tracking_phone_number: c.tracking_number,
            business_phone_number: c.answered_by,
            customer_phone_number: c.caller,
            customer_name: c.caller_name,
            forwarded_from: c.forwarded_from,
            company_id: c.company,
            source: c.tracker,
            source_type: c.tracker_kind,
            marketing: Marketing::of(c.attribution),
            first_call: c.first_call,
            voicemail: c.voicemail,
            voicemail_recording: c.voicemail_url,
            recording: c.recording_url,
            recording_duration: c.recording_duration_s,
            recording_notice_played: c.notice_played,
            outcome: c.outcome.as_str(),
            status: c.status,
            routing: c.routing,
            routing_reason: c.routing_reason,
            degraded: c.dial_shape,
            flow: c.flow,
            flow_path: c.path,
            legs: c.legs.into_iter().map(LegView::from).collect(),
            timeline: c
                .events
                .map(|events| events.into_iter().map(TimelineEntry::from).collect()),
        }
    }
}

/// The marketing fields of a call attributed to a website visit; all null otherwise.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Marketing {
    /// Search keywords (utm_term or the ad platform's keyword parameter).
    pub keywords: Option<String>,
    pub utm_source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub utm_content: Option<String>,
    pub gclid: Option<String>,
    pub msclkid: Option<String>,
    pub fbclid: Option<String>,
    pub landing_page_url: Option<String>,
    pub referring_url: Option<String>,
    pub referrer_domain: Option<String>,
    pub attribution: Option<AttributionView>,
}

/// Which session a call was attributed to and how sure that is.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttributionView {
    pub session_id: u64,
    pub visitor_id: String,
    /// `certain`, or `shared` when the pool was exhausted and several visitors held the number.
    pub confidence: &'static str,
    pub shared_with: u32,
}

impl Marketing {
    fn of(a: Option<CallAttribution>) -> Self {
        let Some(a) = a else {
            return Self::default();
        };
        let v = a.visit;
        Self {
            keywords: v.keyword,
            utm_source: Some(v.source),
            medium: Some(v.medium),
            campaign: v.campaign,
            utm_content: v.content,
            gclid: v.gclid,
            msclkid: v.msclkid,
            fbclid: v.fbclid,
            landing_page_url: Some(v.landing_page),
            referring_url: v.referrer,
            referrer_domain: v.referrer_domain,
            attribution: Some(AttributionView {
                session_id: a.session,
                visitor_id: a.visitor,
                confidence: if a.shared_with > 1 {
                    "shared"
                } else {
                    "certain"
                },
                shared_with: a.shared_with,
            }),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LegView {
    pub sid: String,
    pub to: String,
    pub status: String,
    pub initiated_at: Option<String>,
    pub ringing_at: Option<String>,
    pub answered_at: Option<String>,
    pub completed_at: Option<String>,
    pub duration: Option<u32>,
}

impl From<Leg> for LegView {
    fn from(l: Leg) -> Self {
        Self {
            sid: l.sid,
            to: l.to,
            status: l.status,
            initiated_at: l.initiated_at.map(time),
            ringing_at: l.ringing_at.map(time),
            answered_at: l.answered_at.map(time),
            completed_at: l.completed_at.map(time),
            duration: l.duration_s,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TimelineEntry {
    pub at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub detail: serde_json::Value,
}

impl From<StoredEvent> for TimelineEntry {
    fn from(e: StoredEvent) -> Self {
        Self {
            at: time(e.at),
            kind: e.kind,
            detail: e.detail,
        }
    }
}
