//! The emulated carrier's REST API, the part of it a call-tracking app reads: the Calls and
//! Recordings resources with the carrier's paging, and recordings as audio files.
//!
//! Lists are newest first, as the carrier lists them. `PageToken` is the carrier's cursor
//! (`PA<sid>`: the page after that record, `PB<sid>`: the page before it), so paging through a
//! list that grows while it is read neither repeats nor skips a record.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::cdr::{API_VERSION, CallRecord, CallRecords, RecordingResource, wav};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// Every call and recording the emulator finished, shared between the running calls and the API.
pub struct CallLog {
    account_sid: String,
    auth_token: String,
    inner: RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Newest first: (seconds into the run it was created, record).
    calls: Vec<(f64, CallRecord)>,
    recordings: Vec<(f64, RecordingResource)>,
}

/// Inserts keeping newest-first order; ties keep arrival order.
fn insert_newest_first<T>(list: &mut Vec<(f64, T)>, at: f64, item: T) {
    let i = list.partition_point(|(t, _)| *t >= at);
    list.insert(i, (at, item));
}

impl CallLog {
    pub fn new(account_sid: &str, auth_token: &str) -> Arc<Self> {
        Arc::new(Self {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            inner: RwLock::new(Entries::default()),
        })
    }

    pub fn add(&self, records: &CallRecords) {
        let Ok(mut e) = self.inner.write() else {
            return;
        };
        for (i, c) in records.calls.iter().enumerate() {
            // Legs sort just after their call was created, in the order they were dialed.
            let at = records.arrived_at_s + i as f64 * 1e-6;
            insert_newest_first(&mut e.calls, at, c.clone());
        }
        for r in &records.recordings {
            insert_newest_first(&mut e.recordings, records.arrived_at_s, r.clone());
        }
    }

    pub fn calls(&self) -> usize {
        self.inner.read().map_or(0, |e| e.calls.len())
    }
}

/// The API for `log`'s account, authenticated with its sid and auth token (HTTP Basic).
pub fn router(log: Arc<CallLog>) -> Router {
    let base = "/2010-04-01/Accounts/{account}";
    Router::new()
        .route(&format!("{base}/Calls.json"), get(list_calls))
        .route(&format!("{base}/Calls/{{call}}"), get(fetch_call))
        .route(
            &format!("{base}/Calls/{{call}}/Recordings.json"),
            get(list_call_recordings),
        )
        .route(&format!("{base}/Recordings.json"), get(list_recordings))
        .route(&format!("{base}/Recordings/{{recording}}"), get(recording))
        .with_state(log)
}

/// The carrier's error document.
fn error(status: StatusCode, code: u32, message: &str) -> Response {
    let body = json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    (status, axum::Json(body)).into_response()
}

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        20404,
        &format!("The requested resource {what} was not found"),
    )
}

/// Checks the account in the path and the Basic credentials: the refusal, if any.
fn refusal(log: &CallLog, account: &str, headers: &HeaderMap) -> Option<Response> {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            20003,
            "Authenticate with HTTP Basic: the account SID and its auth token",
        ));
    };
    let token_ok: bool = password.as_bytes().ct_eq(log.auth_token.as_bytes()).into();
    if user != log.account_sid || !token_ok {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            20003,
            "Authentication Error - invalid username or password",
        ));
    }
    if account != log.account_sid {
        return Some(not_found(&format!("/{API_VERSION}/Accounts/{account}")));
    }
    None
}

/// The filters each list honours; they are kept in the paging URIs.
const CALL_FILTERS: [&str; 4] = ["To", "From", "Status", "ParentCallSid"];

/// One page of `items` (already filtered, newest first) in the carrier's envelope.
fn page<T: Serialize>(
    key: &str,
    path: &str,
    items: &[(&str, &T)],
    params: &HashMap<String, String>,
    filters: &[&str],
) -> Response {
    let page_size = match params.get("PageSize").map(|s| s.parse::<usize>()) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                20001,
                &format!("PageSize must be a whole number from 1 to {MAX_PAGE_SIZE}"),
            );
        }
    };
    let page_number = match params.get("Page").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                20001,
                "Page must be a whole number",
            );
        }
    };
    let position = |sid: &str| items.iter().position(|(s, _)| *s == sid);
    let start = match params.get("PageToken") {
        None => page_number.saturating_mul(page_size),
        Some(token) => {
            let found = match (token.get(..2), token.get(2..)) {
                (Some("PA"), Some(sid)) => position(sid).map(|i| i + 1),
                (Some("PB"), Some(sid)) => position(sid).map(|i| i.saturating_sub(page_size)),
                _ => None,
            };
            match found {
                Some(i) => i,
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        20001,
                        &format!("PageToken {token} does not name a record of this list"),
                    );
                }
            }
        }
    };
    let start = start.min(items.len());
    let end = (start + page_size).min(items.len());
    let shown = &items[start..end];
    let kept: String = filters
        .iter()
        .filter_map(|f| params.get(*f).map(|v| (*f, v)))
        .map(|(f, v)| {
            format!(
                "&{f}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    let uri = |page: usize, token: Option<String>| {
        let token = token.map(|t| format!("&PageToken={t}")).unwrap_or_default();
        format!("{path}?PageSize={page_size}&Page={page}{kept}{token}")
    };
    let next = (end < items.len())
        .then(|| {
            shown
                .last()
                .map(|(sid, _)| uri(page_number + 1, Some(format!("PA{sid}"))))
        })
        .flatten();
    let previous = (start > 0 && page_number > 0)
        .then(|| {
            shown
                .first()
                .map(|(sid, _)| uri(page_number - 1, Some(format!("PB{sid}"))))
        })
        .flatten();
    let records: Vec<&T> = shown.iter().map(|(_, r)| *r).collect();
    let body = json!({
        key: records,
        "start": start,
        "end": end.saturating_sub(1).max(start),
        "page": page_number,
        "page_size": page_size,
        "uri": uri(page_number, params.get("PageToken").cloned()),
        "first_page_uri": uri(0, None),
        "next_page_uri": next,
        "previous_page_uri": previous,
    });
    axum::Json(body).into_response()
}

async fn list_calls(
    State(log): State<Arc<CallLog>>,
    Path(account): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = refusal(&log, &account, &headers) {
        return denied;
    }
    let Ok(entries) = log.inner.read() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            20500,
            "call log unavailable",
        );
    };
    let wanted = |c: &CallRecord| {
        let is = |key: &str, value: Option<&str>| {
            params.get(key).is_none_or(|v| Some(v.as_str()) == value)
        };
        is("To", Some(&c.to))
            && is("From", Some(&c.from))
            && is("Status", Some(&c.status))
            && is("ParentCallSid", c.parent_call_sid.as_deref())
    };
    let items: Vec<(&str, &CallRecord)> = entries
        .calls
        .iter()
        .map(|(_, c)| c)
        .filter(|c| wanted(c))
        .map(|c| (c.sid.as_str(), c))
        .collect();
    let path = format!("/{API_VERSION}/Accounts/{account}/Calls.json");
    page("calls", &path, &items, &params, &CALL_FILTERS)
}

async fn fetch_call(
    State(log): State<Arc<CallLog>>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = refusal(&log, &account, &headers) {
        return denied;
    }
    let sid = call.strip_suffix(".json").unwrap_or(&call);
    let Ok(entries) = log.inner.read() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            20500,
            "call log unavailable",
        );
    };
    match entries.calls.iter().find(|(_, c)| c.sid == sid) {
        Some((_, c)) => axum::Json(c).into_response(),
        None => not_found(&format!(
            "/{API_VERSION}/Accounts/{account}/Calls/{sid}.json"
        )),
    }
}

async fn list_recordings(
    State(log): State<Arc<CallLog>>,
    Path(account): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    recordings_of(&log, &account, None, &params, &headers)
}

async fn list_call_recordings(
    State(log): State<Arc<CallLog>>,
    Path((account, call)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    recordings_of(&log, &account, Some(&call), &params, &headers)
}

fn recordings_of(
    log: &CallLog,
    account: &str,
    call: Option<&str>,
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    if let Some(denied) = refusal(log, account, headers) {
        return denied;
    }
    let Ok(entries) = log.inner.read() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            20500,
            "call log unavailable",
        );
    };
    let call = call.or(params.get("CallSid").map(String::as_str));
    let items: Vec<(&str, &RecordingResource)> = entries
        .recordings
        .iter()
        .map(|(_, r)| r)
        .filter(|r| call.is_none_or(|c| r.call_sid == c))
        .map(|r| (r.sid.as_str(), r))
        .collect();
    let path = match call {
        Some(c) => format!("/{API_VERSION}/Accounts/{account}/Calls/{c}/Recordings.json"),
        None => format!("/{API_VERSION}/Accounts/{account}/Recordings.json"),
    };
    page("recordings", &path, &items, params, &[])
}

/// `RE….json` is the resource; `RE…` and `RE….wav` the audio, which the carrier serves without
/// credentials unless told otherwise.
async fn recording(
    State(log): State<Arc<CallLog>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (sid, extension) = file.split_once('.').unwrap_or((&file, "wav"));
    if extension == "json" {
        if let Some(denied) = refusal(&log, &account, &headers) {
            return denied;
        }
    } else if account != log.account_sid {
        return not_found(&format!("/{API_VERSION}/Accounts/{account}"));
    }
    let Ok(entries) = log.inner.read() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            20500,
            "call log unavailable",
        );
    };
    let Some((_, r)) = entries.recordings.iter().find(|(_, r)| r.sid == sid) else {
        return not_found(&format!(
            "/{API_VERSION}/Accounts/{account}/Recordings/{sid}"
        ));
    };
    match extension {
        "json" => axum::Json(r).into_response(),
        "wav" => {
            let seconds = r.duration.parse().unwrap_or(0);
            drop(entries);
            ([(header::CONTENT_TYPE, "audio/x-wav")], wav(seconds)).into_response()
        }
        other => error(
            StatusCode::NOT_FOUND,
            20404,
            &format!("recordings are emulated as .wav only, not .{other}"),
        ),
    }
}
