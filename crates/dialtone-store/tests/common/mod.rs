//! What the store's tests share: calls and their events, and appending them.
#![allow(dead_code)]

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use dialtone_core::event::{
    Answer, CallReceived, CallStatusUpdate, Event, EventBody, LegUpdate, Routing,
};
use dialtone_store::{Batch, Store};

pub fn sid(n: u32) -> String {
    // Spread over the key space as real sids are, so merges interleave with existing keys.
    format!(
        "CA{:032x}",
        u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    )
}

pub fn received(n: u32) -> Event {
    received_at(n, 1_700_000_000 + i64::from(n))
}

/// Call `n` received at `unix_s` (calls may share a second).
pub fn received_at(n: u32, unix_s: i64) -> Event {
    Event {
        call_sid: sid(n),
        at: Utc.timestamp_opt(unix_s, 0).unwrap(),
        body: EventBody::CallReceived(CallReceived {
            account: "demo".into(),
            company: "acme-plumbing".into(),
            tracker: "Billboard".into(),
            tracker_kind: "source".into(),
            carrier_account_sid: "AC1".into(),
            tracking_number: "+14045550150".into(),
            caller: "+17705550123".into(),
            forwarded_from: None,
            caller_name: None,
            flow: "main".into(),
            answer: Answer {
                routing: Some(Routing::Normal),
                ..Answer::default()
            },
            attribution: None,
            first_call: None,
        }),
    }
}

pub fn ended(n: u32, status: &str) -> Event {
    Event {
        call_sid: sid(n),
        at: Utc.timestamp_opt(1_700_000_100 + i64::from(n), 0).unwrap(),
        body: EventBody::CallStatus(CallStatusUpdate {
            status: status.into(),
            duration_s: Some(n % 60),
        }),
    }
}

pub fn leg(n: u32, leg: &str, status: &str) -> Event {
    Event {
        call_sid: sid(n),
        at: Utc.timestamp_opt(1_700_000_050 + i64::from(n), 0).unwrap(),
        body: EventBody::Leg(LegUpdate {
            leg_sid: leg.into(),
            to: "+14045550111".into(),
            status: status.into(),
            event: None,
            duration_s: None,
        }),
    }
}

pub async fn append(store: &Arc<dyn Store>, events: Vec<Event>) {
    store
        .append(Batch {
            events,
            turns: vec![],
            ..Default::default()
        })
        .await
        .expect("append");
}

pub fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("log.db").display())
}
