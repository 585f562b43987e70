//! The Recordings resource: the account's list, a call's list, one recording (as JSON, or its
//! audio), and deleting one. A deleted recording is kept as `deleted`, shown only when
//! `IncludeSoftDeleted=true` is asked for, and its audio is gone, as at the carrier.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;

use super::{Answer, CallLog, DateFilter, error, not_found, page, split_extension};
use crate::cdr::{API_VERSION, RecordingResource, wav};

const DELETED: &str = "deleted";

fn shown(r: &RecordingResource, params: &HashMap<String, String>) -> bool {
    r.status != DELETED
        || params
            .get("IncludeSoftDeleted")
            .is_some_and(|v| v == "true")
}

pub(super) async fn list(
    State(log): State<Arc<CallLog>>,
    Path(account): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    let call = params.get("CallSid").cloned();
    listing(
        &log,
        &account,
        Listing::Account(call.as_deref()),
        &params,
        &headers,
    )
}

pub(super) async fn list_of_call(
    State(log): State<Arc<CallLog>>,
    Path((account, call)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    listing(&log, &account, Listing::Call(&call), &params, &headers)
}

#[derive(Clone, Copy)]
enum Listing<'a> {
    /// `/Recordings.json`, with its `CallSid` filter if any.
    Account(Option<&'a str>),
    /// `/Calls/{CallSid}/Recordings.json`, in the description's call-recording shape.
    Call(&'a str),
}

fn listing(
    log: &CallLog,
    account: &str,
    listing: Listing<'_>,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Answer {
    log.authorize(account, headers)?;
    let created = DateFilter::parse(params, "DateCreated")?;
    let entries = log.read()?;
    let call = match listing {
        Listing::Account(call) => call,
        Listing::Call(call) => Some(call),
    };
    let matching = entries
        .recordings
        .iter()
        .rev()
        .map(|(_, r)| r)
        .filter(|r| call.is_none_or(|c| r.call_sid == c))
        .filter(|r| shown(r, params) && created.admits(Some(&r.date_created)));
    let mut filters: Vec<String> = DateFilter::names("DateCreated").into();
    if let Listing::Call(c) = listing {
        let path = format!("/{API_VERSION}/Accounts/{account}/Calls/{c}/Recordings.json");
        let items: Vec<_> = matching.map(|r| (r.sid.as_str(), r.call_view())).collect();
        let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
        page("recordings", &path, &items, params, &filters)
    } else {
        filters.extend(["CallSid".to_owned(), "IncludeSoftDeleted".to_owned()]);
        let path = format!("/{API_VERSION}/Accounts/{account}/Recordings.json");
        let items: Vec<_> = matching
            .map(|r| (r.sid.as_str(), r.account_view()))
            .collect();
        let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
        page("recordings", &path, &items, params, &filters)
    }
}

pub(super) async fn fetch_of_call(
    State(log): State<Arc<CallLog>>,
    Path((account, call, file)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Answer {
    log.authorize(&account, &headers)?;
    let entries = log.read()?;
    let path = format!("/{API_VERSION}/Accounts/{account}/Calls/{call}/Recordings/{file}");
    let (sid, extension) = split_extension(&file);
    if extension != Some("json") {
        return Err(not_found(&path));
    }
    match entries
        .recordings
        .iter()
        .find(|(_, r)| r.sid == sid && r.call_sid == call && r.status != DELETED)
    {
        Some((_, r)) => Ok(axum::Json(r.call_view()).into_response()),
        None => Err(not_found(&path)),
    }
}

/// `RE….json` is the resource (credentials wanted); `RE…` and `RE….wav` the audio, which the
/// carrier serves without credentials unless told otherwise.
pub(super) async fn fetch(
    State(log): State<Arc<CallLog>>,
    Path((account, file)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    let (sid, extension) = split_extension(&file);
    if extension == Some("json") {
        log.authorize(&account, &headers)?;
    } else if account != log.account_sid {
        return Err(not_found(&format!("/{API_VERSION}/Accounts/{account}")));
    }
    let entries = log.read()?;
    let missing = || {
        not_found(&format!(
            "/{API_VERSION}/Accounts/{account}/Recordings/{file}"
        ))
    };
    let Some((_, r)) = entries.recordings.iter().find(|(_, r)| r.sid == sid) else {
        return Err(missing());
    };
    match extension {
        Some("json") if shown(r, &params) => Ok(axum::Json(r.account_view()).into_response()),
        Some("json") => Err(missing()),
        _ if r.status == DELETED => Err(missing()),
        None | Some("wav") => {
            let seconds = r.duration;
            drop(entries);
            Ok(([(header::CONTENT_TYPE, "audio/x-wav")], wav(seconds)).into_response())
        }
        Some(other) => Err(error(
            StatusCode::NOT_FOUND,
            20404,
            &format!("recordings are emulated as .wav only, not .{other}"),
        )),
    }
}

pub(super) async fn delete(
    State(log): State<Arc<CallLog>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    log.authorize(&account, &headers)?;
    let mut entries = log.write()?;
    let (sid, extension) = split_extension(&file);
    let found = entries
        .recordings
        .iter_mut()
        .find(|(_, r)| r.sid == sid && r.status != DELETED);
    match (found, extension) {
        (Some((_, r)), Some("json")) => {
            r.status = DELETED.into();
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        _ => Err(not_found(&format!(
            "/{API_VERSION}/Accounts/{account}/Recordings/{file}"
        ))),
    }
}
