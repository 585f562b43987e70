//! CallRail's API v3 (`/v3/…`), for the reporting scripts, CRM connectors and dashboards written
//! against CallRail: its paths (each ending in `.json`), its authentication
//! (`Authorization: Token token="KEY"`, quoted or not, or `Bearer KEY`), its field names, its
//! pagination and its errors (`{"error": "…"}`), so a client changes only its base URL.
//!
//! What CallRail clients expect of a server, learned from the clients themselves (the
//! `callrail-mcp` and `pycallrail` packages, exercised in `crates/dialtone/tests/callrail_v3.rs`):
//! a repeated query parameter takes its last value (pycallrail appends `page=` again and again),
//! unknown parameters are ignored, nothing redirects, every success is a JSON object, and a call
//! carries CallRail's default fields and nothing else unless `fields=` asks (pycallrail's models
//! refuse keys they do not know).

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use dialtone_core::config::Config;
use dialtone_store::ApiKey;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::AppState;

mod calls;
mod fields;
mod ids;
mod time;
mod update;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v3/a.json", get(list_accounts))
        .route("/v3/a/{account}", get(show_account))
        .route("/v3/a/{account}/calls.json", get(calls::list))
        .route(
            "/v3/a/{account}/calls/{call}",
            get(calls::show).put(update::update),
        )
}

/// An error as CallRail answers one: a status and `{"error": "…"}`.
#[derive(Debug)]
pub struct V3Error(StatusCode, String);

impl V3Error {
    fn bad(message: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, message.into())
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, message.into())
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "API v3 request failed");
        Self(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log".into(),
        )
    }
}

impl IntoResponse for V3Error {
    fn into_response(self) -> Response {
        let mut res = (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Token realm=\"Application\""),
            );
        }
        res
    }
}

/// The key a request was made with, checked against the stored key hashes.
pub struct TokenAuth(ApiKey);

impl FromRequestParts<Arc<AppState>> for TokenAuth {
    type Rejection = V3Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let denied = || {
            V3Error(
                StatusCode::UNAUTHORIZED,
                "HTTP Token: Access denied.".into(),
            )
        };
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(presented_key)
            .ok_or_else(denied)?;
        match state.store.api_key(key).await.map_err(V3Error::internal)? {
            Some(k) => Ok(TokenAuth(k)),
            None => Err(denied()),
        }
    }
}

/// The key in an `Authorization` header: `Token token="KEY"`, `Token token=KEY` (CallRail's
/// clients send both) or `Bearer KEY`.
fn presented_key(header: &str) -> Option<&str> {
    let key = if let Some(rest) = header.strip_prefix("Token ") {
        let value = rest.trim().strip_prefix("token=")?;
        let value = value.split(',').next()?.trim();
        value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
    } else {
        header.strip_prefix("Bearer ")?.trim()
    };
    (!key.is_empty()).then_some(key)
}

/// A query string read as CallRail reads one: when a parameter is repeated, its last value wins;
/// parameters this server does not know are ignored.
pub struct LastWins<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for LastWins<T> {
    type Rejection = V3Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // An empty value says nothing (`fields=` is no field, `page=` the first page).
        let mut pairs = last_values(parts.uri.query().unwrap_or(""));
        pairs.retain(|(_, v)| !v.is_empty());
        let text = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&pairs)
            .finish();
        serde_urlencoded::from_str(&text)
            .map(LastWins)
            .map_err(|e| V3Error::bad(format!("invalid query: {e}")))
    }
}

/// Each parameter of `query` once, with its last value, in the order first seen.
pub(super) fn last_values(query: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match pairs.iter_mut().find(|(name, _)| *name == k) {
            Some(pair) => pair.1 = v.into_owned(),
            None => pairs.push((k.into_owned(), v.into_owned())),
        }
    }
    pairs
}

/// The part of a path segment before `.json` (every v3 path ends so); anything else is not a
/// v3 resource.
fn json_name(segment: &str) -> Result<&str, V3Error> {
    segment
        .strip_suffix(".json")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| V3Error::not_found(format!("no resource `{segment}`")))
}

/// The account a path names, if the key may act on it: an account key on its own account, an
/// operator key on any.
fn account_for<'c>(
    config: &'c Config,
    key: &ApiKey,
    id: &str,
) -> Result<&'c dialtone_core::config::Account, V3Error> {
    let absent = || V3Error::not_found(format!("no account `{id}`"));
    let slug = ids::account_slug(id).ok_or_else(absent)?;
    if !key.operator && key.account != slug {
        return Err(absent());
    }
    config
        .accounts
        .iter()
        .find(|a| a.slug == slug)
        .ok_or_else(absent)
}

/// The accounts a key may see.
fn visible_accounts<'c>(
    config: &'c Config,
    key: &ApiKey,
) -> Vec<&'c dialtone_core::config::Account> {
    config
        .accounts
        .iter()
        .filter(|a| key.operator || a.slug == key.account)
        .collect()
}

/// An account as CallRail shows one.
#[derive(Debug, Serialize)]
struct AccountView {
    id: String,
    name: String,
    outbound_recording_enabled: bool,
    hipaa_account: bool,
}

impl AccountView {
    fn of(a: &dialtone_core::config::Account) -> Self {
        Self {
            id: ids::account(&a.slug),
            name: a.name.clone(),
            outbound_recording_enabled: false,
            hipaa_account: false,
        }
    }
}

/// An offset page of a listing: CallRail's envelope, the items under their plural name.
#[derive(Debug, Serialize)]
struct Page<T> {
    page: u32,
    per_page: u32,
    total_pages: u32,
    total_records: u64,
    #[serde(flatten)]
    items: T,
}

#[derive(Debug, Serialize)]
struct Accounts {
    accounts: Vec<AccountView>,
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    page: Option<u32>,
    per_page: Option<u32>,
}

async fn list_accounts(
    State(state): State<Arc<AppState>>,
    TokenAuth(key): TokenAuth,
    LastWins(q): LastWins<PageQuery>,
) -> Result<Response, V3Error> {
    let config = state.config.load();
    let all: Vec<AccountView> = visible_accounts(&config, &key)
        .into_iter()
        .map(AccountView::of)
        .collect();
    let (page, per_page) = calls::paging(q.page, q.per_page)?;
    let total = all.len() as u64;
    let accounts = all
        .into_iter()
        .skip(
            (u64::from(page - 1) * u64::from(per_page))
                .try_into()
                .unwrap_or(usize::MAX),
        )
        .take(per_page as usize)
        .collect();
    Ok(axum::Json(Page {
        page,
        per_page,
        total_pages: calls::pages(total, per_page),
        total_records: total,
        items: Accounts { accounts },
    })
    .into_response())
}

async fn show_account(
    State(state): State<Arc<AppState>>,
    TokenAuth(key): TokenAuth,
    axum::extract::Path(segment): axum::extract::Path<String>,
) -> Result<Response, V3Error> {
    let id = json_name(&segment)?;
    let config = state.config.load();
    let account = account_for(&config, &key, id)?;
    Ok(axum::Json(AccountView::of(account)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_from_every_form_clients_send() {
        assert_eq!(presented_key("Token token=\"abc\""), Some("abc"));
        assert_eq!(presented_key("Token token=abc"), Some("abc"));
        assert_eq!(presented_key("Bearer abc"), Some("abc"));
        assert_eq!(presented_key("Token token=\"\""), None);
        assert_eq!(presented_key("Token abc"), None);
        assert_eq!(presented_key("Basic YWJj"), None);
    }

    #[test]
    fn a_repeated_parameter_takes_its_last_value() {
        assert_eq!(
            last_values("fields=tags&page=2&page=3&per_page=5"),
            vec![
                ("fields".to_owned(), "tags".to_owned()),
                ("page".to_owned(), "3".to_owned()),
                ("per_page".to_owned(), "5".to_owned()),
            ]
        );
    }
}
