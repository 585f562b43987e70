//! `PUT /v3/a/{account}/calls/{call}.json`: what a person (or their CRM) says of a call — its
//! tags, a note, its value, whether it was a lead, the caller's name, spam — as CallRail takes
//! it: a field left out is left alone, a field sent as `null` or `""` is cleared. Each update is
//! a `call_modified` event in the call's timeline.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dialtone_core::event::{CallChange, CallModified, Event, EventBody, LeadStatus};
use dialtone_store::{Batch, Call};
use serde::{Deserialize, Deserializer};

use super::fields::{Selection, call_object};
use super::{LastWins, TokenAuth, V3Error, account_for, calls, ids, json_name};
use crate::AppState;

/// A field that may be absent (`None`: leave it), `null` (`Some(None)`: clear it) or set.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An amount as clients send one: `"$1.00"`, `"1.00"` or `1`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Amount {
    Text(String),
    Number(serde_json::Number),
}

/// The body of a call update; keys CallRail does not take are ignored, as CallRail does.
#[derive(Debug, Default, Deserialize)]
pub struct CallUpdate {
    #[serde(default, deserialize_with = "present")]
    tags: Option<Option<Vec<String>>>,
    #[serde(default)]
    append_tags: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    note: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    value: Option<Option<Amount>>,
    #[serde(default, deserialize_with = "present")]
    lead_status: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    customer_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    spam: Option<Option<bool>>,
}

const MOST_TAGS: usize = 100;
const LONGEST_TAG: usize = 100;
const LONGEST_NOTE: usize = 10_000;

/// What `update` changes of `call` (pure): every problem refuses the whole update.
pub fn changes(update: &CallUpdate, call: &Call) -> Result<Vec<CallChange>, V3Error> {
    let mut changes = Vec::new();
    if let Some(tags) = &update.tags {
        let mut all: Vec<String> = if update.append_tags.unwrap_or(false) {
            call.tags.clone()
        } else {
            Vec::new()
        };
        for tag in tags.iter().flatten().map(|t| t.trim()) {
            if tag.chars().count() > LONGEST_TAG {
                return Err(V3Error::bad(format!(
                    "a tag is at most {LONGEST_TAG} characters"
                )));
            }
            if !tag.is_empty() && !all.iter().any(|t| t == tag) {
                all.push(tag.to_owned());
            }
        }
        if all.len() > MOST_TAGS {
            return Err(V3Error::bad(format!("a call has at most {MOST_TAGS} tags")));
        }
        changes.push(CallChange::Tags(all));
    }
    if let Some(note) = &update.note {
        let note = cleared(note);
        if note
            .as_ref()
            .is_some_and(|n| n.chars().count() > LONGEST_NOTE)
        {
            return Err(V3Error::bad(format!(
                "a note is at most {LONGEST_NOTE} characters"
            )));
        }
        changes.push(CallChange::Note(note));
    }
    if let Some(value) = &update.value {
        let value = match value {
            None => None,
            Some(Amount::Text(t)) if t.trim().is_empty() => None,
            Some(Amount::Text(t)) => Some(amount(t)?),
            Some(Amount::Number(n)) => Some(amount(&n.to_string())?),
        };
        changes.push(CallChange::Value(value));
    }
    if let Some(lead) = &update.lead_status {
        let lead = match cleared(lead) {
            None => None,
            Some(l) => Some(LeadStatus::parse(&l).ok_or_else(|| {
                V3Error::bad(format!(
                    "lead_status `{l}` is not good_lead, not_a_lead or null"
                ))
            })?),
        };
        changes.push(CallChange::LeadStatus(lead));
    }
    if let Some(name) = &update.customer_name {
        changes.push(CallChange::CustomerName(cleared(name)));
    }
    if update.spam == Some(Some(true)) {
        changes.push(CallChange::Spam);
    }
    Ok(changes)
}

/// A text field as sent: blank clears it.
fn cleared(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// An amount of money, kept as a decimal with two places: `$1,250.5` is `1250.50`.
fn amount(text: &str) -> Result<String, V3Error> {
    let refused = || {
        V3Error::bad(format!(
            "value `{text}` is not an amount (like 125.00 or \"$125.00\")"
        ))
    };
    let digits: String = text
        .trim()
        .trim_start_matches('$')
        .chars()
        .filter(|c| *c != ',')
        .collect();
    let (whole, cents) = digits.split_once('.').unwrap_or((&digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty()
        || whole.len() > 12
        || cents.len() > 2
        || !all_digits(whole)
        || !all_digits(cents)
    {
        return Err(refused());
    }
    let whole = whole.trim_start_matches('0');
    Ok(format!(
        "{}.{cents:0<2}",
        if whole.is_empty() { "0" } else { whole }
    ))
}

#[derive(Debug, Deserialize)]
pub struct UpdateQuery {
    fields: Option<String>,
    time_zone: Option<String>,
}

pub async fn update(
    State(state): State<Arc<AppState>>,
    TokenAuth(key): TokenAuth,
    Path((account, segment)): Path<(String, String)>,
    LastWins(q): LastWins<UpdateQuery>,
    body: Bytes,
) -> Result<Response, V3Error> {
    // Extract and verify.
    let config = state.config.load();
    let account = account_for(&config, &key, &account)?.slug.clone();
    if !key.admin && !key.operator {
        return Err(V3Error(
            StatusCode::FORBIDDEN,
            "You do not have permission to perform the requested action".into(),
        ));
    }
    let id = json_name(&segment)?;
    let update: CallUpdate = serde_json::from_slice(&body)
        .map_err(|e| V3Error::bad(format!("the body is not a call update: {e}")))?;
    let fields = Selection::parse(q.fields.as_deref())?;
    let zone = calls::zone(q.time_zone.as_deref(), &config, &account)?;
    let absent = || V3Error::not_found(format!("no call `{id}`"));
    let sid = ids::call_sid(id).ok_or_else(absent)?;
    let read = |sid: String| {
        let state = state.clone();
        let account = account.clone();
        async move {
            state
                .store
                .call(&account, &sid)
                .await
                .map_err(V3Error::internal)
        }
    };
    let call = read(sid.clone())
        .await?
        .filter(|c| !c.spam)
        .ok_or_else(absent)?;
    // Decide.
    let changes = changes(&update, &call)?;
    // Make it durable.
    if !changes.is_empty() {
        let by = if key.operator {
            "operator"
        } else {
            &key.account
        };
        let event = Event {
            call_sid: call.sid.clone(),
            at: state.clock.now(),
            body: EventBody::CallModified(CallModified {
                by: by.to_owned(),
                changes,
            }),
        };
        state
            .store
            .append(Batch {
                events: vec![event],
                ..Batch::default()
            })
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "a call update could not be written");
                V3Error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the call log cannot take the update now; try again".into(),
                )
            })?;
    }
    // Answer: the call as it is now, with what was updated and what `fields=` asks for.
    let call = read(sid).await?.ok_or_else(absent)?;
    let fields = fields.with(&[
        ("tags", update.tags.is_some()),
        ("note", update.note.is_some()),
        ("value", update.value.is_some()),
        ("lead_status", update.lead_status.is_some()),
    ]);
    let object = call_object(&call, config.company(&call.company), zone, &fields);
    Ok(Json(object).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_kept_with_two_places() {
        for (given, kept) in [
            ("$1.00", "1.00"),
            ("1", "1.00"),
            ("1,250.5", "1250.50"),
            ("007.10", "7.10"),
            ("0", "0.00"),
        ] {
            assert_eq!(amount(given).unwrap(), kept, "{given}");
        }
        for bad in ["", "$", "1.234", "-5", "1e3", "12a", "1234567890123"] {
            assert!(amount(bad).is_err(), "{bad}");
        }
    }
}
