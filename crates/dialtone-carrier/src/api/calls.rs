//! The Calls resource: the list, with the carrier's filters, and one call.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;

use super::{Answer, CallLog, DateFilter, invalid, not_found, page, split_extension};
use crate::cdr::{API_VERSION, CallRecord};

/// The statuses a call can have (the description's `call_enum_status`).
const STATUSES: [&str; 8] = [
    "queued",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
];

pub(super) async fn list(
    State(log): State<Arc<CallLog>>,
    Path(account): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    log.authorize(&account, &headers)?;
    if let Some(s) = params
        .get("Status")
        .filter(|s| !STATUSES.contains(&s.as_str()))
    {
        return Err(invalid(&format!(
            "Status {s} is not one of {}",
            STATUSES.join(", ")
        )));
    }
    let started = DateFilter::parse(&params, "StartTime")?;
    let ended = DateFilter::parse(&params, "EndTime")?;
    let entries = log.read()?;
    let wanted = |c: &CallRecord| {
        let is = |key: &str, value: Option<&str>| {
            params.get(key).is_none_or(|v| Some(v.as_str()) == value)
        };
        is("To", Some(&c.to))
            && is("From", Some(&c.from))
            && is("Status", Some(&c.status))
            && is("ParentCallSid", c.parent_call_sid.as_deref())
            && started.admits(c.start_time.as_deref())
            && ended.admits(c.end_time.as_deref())
    };
    let items: Vec<(&str, &CallRecord)> = entries
        .calls
        .iter()
        .rev()
        .map(|(_, c)| c)
        .filter(|c| wanted(c))
        .map(|c| (c.sid.as_str(), c))
        .collect();
    let mut filters = vec![
        "To".to_owned(),
        "From".into(),
        "Status".into(),
        "ParentCallSid".into(),
    ];
    filters.extend(DateFilter::names("StartTime"));
    filters.extend(DateFilter::names("EndTime"));
    let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
    let path = format!("/{API_VERSION}/Accounts/{account}/Calls.json");
    page("calls", &path, &items, &params, &filters)
}

pub(super) async fn fetch(
    State(log): State<Arc<CallLog>>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    log.authorize(&account, &headers)?;
    let entries = log.read()?;
    let found = match split_extension(&call) {
        (sid, Some("json")) => entries.calls.iter().find(|(_, c)| c.sid == sid),
        _ => None,
    };
    match found {
        Some((_, c)) => Ok(axum::Json(c).into_response()),
        None => Err(not_found(&format!(
            "/{API_VERSION}/Accounts/{account}/Calls/{call}"
        ))),
    }
}
