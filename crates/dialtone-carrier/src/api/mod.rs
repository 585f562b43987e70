//! The emulated carrier's REST API, the part of it a call-tracking app uses: Calls and Recordings
//! (with recordings' audio), IncomingPhoneNumbers and AvailablePhoneNumbers, with the carrier's
//! paging, errors and field names. `tests/openapi.rs` checks every operation against the
//! carrier's published API description (`tests/spec/`).
//!
//! Lists are newest first, as the carrier lists them. `PageToken` is the carrier's cursor
//! (`PA<sid>`: the page after that record, `PB<sid>`: the page before it), so paging through a
//! list that grows while it is read neither repeats nor skips a record.

mod calls;
mod numbers;
mod recordings;

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use serde::Serialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::cdr::{API_VERSION, CallRecord, CallRecords, RecordingResource};
pub use numbers::{IncomingNumber, NumberSettings};

const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// The account's calls, recordings and phone numbers, shared between the running calls and the
/// API.
pub struct CallLog {
    account_sid: String,
    auth_token: String,
    inner: RwLock<Entries>,
}

#[derive(Default)]
struct Entries {
    /// Oldest first (lists read them backwards): (seconds into the run it was created,
    /// record). Calls end roughly in the order they arrived, so a new one goes in near the end
    /// and moves little: inserting at the front made an hour at 200 calls/s quadratic.
    calls: Vec<(f64, CallRecord)>,
    recordings: Vec<(f64, RecordingResource)>,
    /// In the order they were bought.
    numbers: Vec<IncomingNumber>,
}

/// Inserts keeping oldest-first order; of equal times the one added first is read first
/// backwards.
fn insert_by_time<T>(list: &mut Vec<(f64, T)>, at: f64, item: T) {
    let i = list.partition_point(|(t, _)| *t < at);
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
            insert_by_time(&mut e.calls, at, c.clone());
        }
        for r in &records.recordings {
            insert_by_time(&mut e.recordings, records.arrived_at_s, r.clone());
        }
    }

    pub fn calls(&self) -> usize {
        self.inner.read().map_or(0, |e| e.calls.len())
    }

    /// The account's numbers, as `GET IncomingPhoneNumbers.json` lists them.
    pub fn numbers(&self) -> Vec<IncomingNumber> {
        self.inner.read().map_or(Vec::new(), |e| e.numbers.clone())
    }

    /// Gives the account `number` (E.164) with `settings`, as if bought at `now` (RFC 2822);
    /// `None` if the account has it already.
    pub fn provision(
        &self,
        number: &str,
        settings: NumberSettings,
        now: &str,
    ) -> Option<IncomingNumber> {
        let mut e = self.inner.write().ok()?;
        numbers::provision(&mut e, number, settings, now)
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Entries>, ApiError> {
        self.inner.read().map_err(|_| unavailable())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Entries>, ApiError> {
        self.inner.write().map_err(|_| unavailable())
    }

    /// Checks the account in the path and the Basic credentials.
    fn authorize(&self, account: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        let credentials = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                20003,
                "Authenticate with HTTP Basic: the account SID and its auth token",
            ));
        };
        let token_ok: bool = password.as_bytes().ct_eq(self.auth_token.as_bytes()).into();
        if user != self.account_sid || !token_ok {
            return Err(error(
                StatusCode::UNAUTHORIZED,
                20003,
                "Authentication Error - invalid username or password",
            ));
        }
        if account != self.account_sid {
            return Err(not_found(&format!("/{API_VERSION}/Accounts/{account}")));
        }
        Ok(())
    }
}

/// The API for `log`'s account, authenticated with its sid and auth token (HTTP Basic).
pub fn router(log: Arc<CallLog>) -> Router {
    let base = "/2010-04-01/Accounts/{account}";
    Router::new()
        .route(&format!("{base}/Calls.json"), get(calls::list))
        .route(&format!("{base}/Calls/{{call}}"), get(calls::fetch))
        .route(
            &format!("{base}/Calls/{{call}}/Recordings.json"),
            get(recordings::list_of_call),
        )
        .route(
            &format!("{base}/Calls/{{call}}/Recordings/{{recording}}"),
            get(recordings::fetch_of_call),
        )
        .route(&format!("{base}/Recordings.json"), get(recordings::list))
        .route(
            &format!("{base}/Recordings/{{recording}}"),
            get(recordings::fetch).delete(recordings::delete),
        )
        .route(
            &format!("{base}/IncomingPhoneNumbers.json"),
            get(numbers::list).post(numbers::buy),
        )
        .route(
            &format!("{base}/IncomingPhoneNumbers/{{number}}"),
            get(numbers::fetch)
                .post(numbers::update)
                .delete(numbers::release),
        )
        .route(
            &format!("{base}/AvailablePhoneNumbers/{{country}}/{{kind}}"),
            get(numbers::available),
        )
        .fallback(|| async { not_found("at this path") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, 20004, "Method not allowed")
        })
        .with_state(log)
}

/// A refusal, answered with the carrier's error document.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.code;
        let body = json!({
            "code": code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": self.status.as_u16(),
        });
        (self.status, axum::Json(body)).into_response()
    }
}

/// What a handler answers: the resource, or the carrier's error.
type Answer = Result<Response, ApiError>;

fn error(status: StatusCode, code: u32, message: &str) -> ApiError {
    ApiError {
        status,
        code,
        message: message.to_owned(),
    }
}

fn not_found(what: &str) -> ApiError {
    error(
        StatusCode::NOT_FOUND,
        20404,
        &format!("The requested resource {what} was not found"),
    )
}

/// A parameter the carrier would refuse (20001: invalid parameter).
fn invalid(message: &str) -> ApiError {
    error(StatusCode::BAD_REQUEST, 20001, message)
}

fn unavailable() -> ApiError {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        20500,
        "call log unavailable",
    )
}

/// `RE….json` → (`RE…`, Some("json")); `RE…` → (`RE…`, None).
fn split_extension(file: &str) -> (&str, Option<&str>) {
    match file.split_once('.') {
        Some((sid, ext)) => (sid, Some(ext)),
        None => (file, None),
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// One page of `items` (already filtered, newest first) in the carrier's envelope; `filters`
/// are the query parameters kept in the paging URIs.
fn page<T: Serialize>(
    key: &str,
    path: &str,
    items: &[(&str, T)],
    params: &HashMap<String, String>,
    filters: &[&str],
) -> Answer {
    let page_size = match params.get("PageSize").map(|s| s.parse::<usize>()) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => {
            return Err(invalid(&format!(
                "PageSize must be a whole number from 1 to {MAX_PAGE_SIZE}"
            )));
        }
    };
    let page_number = match params.get("Page").map(|s| s.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(invalid("Page must be a whole number")),
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
                    return Err(invalid(&format!(
                        "PageToken {token} does not name a record of this list"
                    )));
                }
            }
        }
    };
    let start = start.min(items.len());
    let end = (start + page_size).min(items.len());
    let shown = &items[start..end];
    let kept: String = filters
        .iter()
        .filter_map(|f| {
            params
                .get(*f)
                .map(|v| format!("&{}={}", encode(f), encode(v)))
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
    let records: Vec<&T> = shown.iter().map(|(_, r)| r).collect();
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
    Ok(axum::Json(body).into_response())
}

/// The carrier's date filters on one field: `Name` (that day, UTC), `Name<` (before) and `Name>`
/// (on or after), each a date (`2026-05-14`) or a time (`2026-05-14T13:00:00Z`).
#[derive(Default)]
struct DateFilter {
    on: Option<chrono::NaiveDate>,
    before: Option<chrono::DateTime<chrono::Utc>>,
    from: Option<chrono::DateTime<chrono::Utc>>,
}

impl DateFilter {
    /// The parameter names, as kept in paging URIs.
    fn names(name: &str) -> [String; 3] {
        [name.to_owned(), format!("{name}<"), format!("{name}>")]
    }

    fn parse(params: &HashMap<String, String>, name: &str) -> Result<Self, ApiError> {
        use chrono::{DateTime, NaiveDate, Utc};
        let instant = |key: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
            let Some(v) = params.get(key) else {
                return Ok(None);
            };
            if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
                return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()));
            }
            DateTime::parse_from_rfc3339(v)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|_| {
                    invalid(&format!(
                        "{key} must be a date (YYYY-MM-DD) or a time (RFC 3339), not {v}"
                    ))
                })
        };
        Ok(Self {
            on: instant(name)?.map(|t| t.date_naive()),
            before: instant(&format!("{name}<"))?,
            from: instant(&format!("{name}>"))?,
        })
    }

    /// Whether a record whose field is `value` (RFC 2822, or none) passes.
    fn admits(&self, value: Option<&str>) -> bool {
        if self.on.is_none() && self.before.is_none() && self.from.is_none() {
            return true;
        }
        let Some(t) = value.and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok()) else {
            return false;
        };
        let t = t.with_timezone(&chrono::Utc);
        self.on.is_none_or(|d| t.date_naive() == d)
            && self.before.is_none_or(|b| t < b)
            && self.from.is_none_or(|f| t >= f)
    }
}
