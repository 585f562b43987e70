//! DNI over HTTP: the website snippet (`/dni/v1/swap.js`), the session API it calls, and a demo
//! landing page.
//!
//! The session API is called cross-origin by customers' websites: it answers CORS only to the
//! company's configured origins. It takes JSON whatever the content type, because the snippet
//! sends `text/plain` to avoid a preflight round trip before the number can show.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dialtone_core::config::{Company, Config, TrackerKind};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::dni::{DniError, Started, Visiting};
use crate::telemetry::DNI_SESSIONS;

const SNIPPET: &str = include_str!("swap.js");

/// The snippet as served: without its comment lines and indentation, which are a third of it and
/// are read by people in the source, not by browsers. Line breaks stay (the script relies on them
/// nowhere, but keeping them cannot change its meaning).
fn served_snippet() -> &'static str {
    static SERVED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SERVED.get_or_init(|| compact_js(SNIPPET))
}

fn compact_js(js: &str) -> String {
    js.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .fold(String::with_capacity(js.len()), |mut out, l| {
            out.push_str(l);
            out.push('\n');
            out
        })
}
const MAX_BODY: usize = 8 * 1024;
pub(crate) const MAX_URL: usize = 4096;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/dni/v1/swap.js", get(swap_js))
        .route("/dni/v1/sessions", post(start).options(preflight))
        .route(
            "/dni/v1/sessions/{id}/keepalive",
            post(keepalive).options(preflight),
        )
        .route(
            "/dni/v1/sessions/{id}/release",
            post(release).options(preflight),
        )
        .route("/dni/demo", get(demo_page))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

#[derive(Deserialize)]
struct CompanyParam {
    company: Option<String>,
}

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The snippet for one company, with its settings written in as JSON.
async fn swap_js(State(state): State<Arc<AppState>>, Query(q): Query<CompanyParam>) -> Response {
    let config = state.config.load();
    let Some(company) = q.company.as_deref().and_then(|c| config.company(c)) else {
        let msg = match q.company {
            None => "/* dialtone: swap.js needs ?company=SLUG */".to_owned(),
            Some(c) => format!(
                "/* dialtone: no company {} */",
                serde_json::to_string(&c)
                    .unwrap_or_default()
                    .replace("*/", "")
            ),
        };
        return (
            StatusCode::NOT_FOUND,
            [(
                header::CONTENT_TYPE,
                "application/javascript; charset=utf-8",
            )],
            msg,
        )
            .into_response();
    };
    let settings = json!({
        "api": state.links.base(),
        "company": company.slug,
        "website_number": company.website_number.as_ref().map(|n| n.as_str()),
        "cookie_domain": company.website.cookie_domain,
    });
    let body = format!("{}({settings});\n", served_snippet().trim_end());
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/javascript; charset=utf-8"),
            ),
            // Short: a configuration change reaches pages within minutes.
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The `Access-Control-Allow-Origin` answer for a request from `origin` to `company`'s API:
/// `Ok(None)` without an `Origin` (not a browser), `Err` for an origin the company does not allow.
/// A request refused before any work: its status and reason.
struct Refused(StatusCode, String);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

fn cors(headers: &HeaderMap, company: &Company) -> Result<Option<HeaderValue>, Refused> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(None);
    };
    let allowed = origin
        .to_str()
        .ok()
        .filter(|o| company.website.origins.iter().any(|p| p.allows(o)));
    match allowed {
        Some(_) => Ok(Some(origin.clone())),
        None => Err(Refused(
            StatusCode::FORBIDDEN,
            format!(
                "origin {} may not ask for {}'s numbers (add it to [companies.website] origins)",
                origin.to_str().unwrap_or("?"),
                company.slug
            ),
        )),
    }
}

fn with_cors(mut res: Response, origin: Option<HeaderValue>) -> Response {
    let h = res.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(o) = origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
    res
}

/// Preflight: allowed when some company takes the origin (the request itself is checked
/// against its own company).
async fn preflight(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let config = state.config.load();
    let origin = headers
        .get(header::ORIGIN)
        .filter(|o| {
            o.to_str().is_ok_and(|o| {
                config
                    .companies
                    .iter()
                    .any(|c| c.website.origins.iter().any(|p| p.allows(o)))
            })
        })
        .cloned();
    let Some(origin) = origin else {
        return error(StatusCode::FORBIDDEN, "origin not allowed");
    };
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    res
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    company: String,
    #[serde(default)]
    visitor_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
    landing_url: String,
    #[serde(default)]
    referrer: Option<String>,
}

/// The client's address: the peer, or what trusted proxies say in `X-Forwarded-For`, read from
/// the right (`dni::client_address`).
pub(crate) fn client(
    config: &Config,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Option<String> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(p)| p.ip())?;
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    let forwarded = (!forwarded.is_empty()).then_some(forwarded.as_str());
    Some(dialtone_core::dni::client_address(peer, forwarded, &config.dni.proxies).to_string())
}

pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|x| !x.trim().is_empty())
}

async fn start(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req: StartBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body must be JSON with company and landing_url: {e}"),
            );
        }
    };
    let config = state.config.load();
    let Some(company) = config.company(&req.company) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("no company `{}`", req.company),
        );
    };
    let origin = match cors(&headers, company) {
        Ok(o) => o,
        Err(refused) => return refused.into_response(),
    };
    let landing_ok = req.landing_url.len() <= MAX_URL
        && url_ok(&req.landing_url)
        && req.referrer.as_ref().is_none_or(|r| r.len() <= MAX_URL);
    if !landing_ok {
        return with_cors(
            error(
                StatusCode::BAD_REQUEST,
                format!(
                    "landing_url must be an http(s) URL of at most {MAX_URL} bytes (and referrer too)"
                ),
            ),
            origin,
        );
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let now = state.clock.now();
    let visitor = non_empty(req.visitor_id);
    let session = non_empty(req.session_id);
    let referrer = non_empty(req.referrer);
    let started = crate::sessions::start(
        &state,
        &config,
        Visiting {
            company,
            visitor: visitor.as_deref(),
            session: session.as_deref(),
            landing_url: &req.landing_url,
            referrer: referrer.as_deref(),
            user_agent,
            client: client(&config, &headers, &extensions),
        },
        now,
    )
    .await;
    let res = match started {
        Err(DniError::RateLimited(what, wait_s)) => {
            metrics::counter!(DNI_SESSIONS, "result" => "rate_limited").increment(1);
            let mut res = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({
                    "swap": false,
                    "reason": format!("too many new sessions from this {what}"),
                    "retry_after_s": wait_s,
                })),
            )
                .into_response();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait_s.max(1)));
            res
        }
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Started::Keep { visitor, reason }) => {
            metrics::counter!(DNI_SESSIONS, "result" => "kept").increment(1);
            Json(json!({
                "swap": false,
                "reason": reason,
                "visitor_id": visitor,
                "website_number": company.website_number.as_ref().map(|n| n.as_str()),
            }))
            .into_response()
        }
        Ok(Started::Swap {
            session,
            secret,
            visitor,
            tracker,
            number,
            expires_at,
            lease_s,
            sharing,
            resumed,
            writes,
        }) => {
            // The lease is durable before the page shows the number: after a crash the number
            // is not given to someone else while this visitor can still call it.
            if let Err(e) = crate::sessions::durable(&state, writes).await {
                tracing::error!(error = %e, "DNI session could not be saved; the visitor keeps the website number");
                if !resumed {
                    state.dni.abandon(&config, session, now);
                }
                metrics::counter!(DNI_SESSIONS, "result" => "failed").increment(1);
                return with_cors(
                    Json(json!({
                        "swap": false,
                        "reason": "unavailable",
                        "visitor_id": visitor,
                    }))
                    .into_response(),
                    origin,
                );
            }
            count_swap(resumed, sharing);
            Json(Swapped {
                swap: true,
                session_id: format!("{session}.{secret}"),
                visitor_id: &visitor,
                tracker: &tracker,
                number: number.as_str(),
                formatted: number.formatted(),
                website_number: company.website_number.as_ref().map(|n| n.as_str()),
                expires_at: dialtone_store::timestamp(expires_at),
                lease_s,
                keepalive_s: keepalive_s(lease_s),
                shared: sharing > 1,
                resumed,
            })
            .into_response()
        }
    };
    with_cors(res, origin)
}

/// Counts a session that shows a pool number, by how it came about.
pub(crate) fn count_swap(resumed: bool, sharing: u32) {
    let result = match (resumed, sharing > 1) {
        (true, _) => "resumed",
        (false, true) => "shared",
        (false, false) => "created",
    };
    metrics::counter!(DNI_SESSIONS, "result" => result).increment(1);
}

/// What a page is told when it shows a pool number.
#[derive(serde::Serialize)]
struct Swapped<'a> {
    swap: bool,
    /// `id.secret`: the page's proof that the session is its own.
    session_id: String,
    visitor_id: &'a str,
    tracker: &'a str,
    number: &'a str,
    formatted: String,
    website_number: Option<&'a str>,
    expires_at: String,
    lease_s: u32,
    keepalive_s: u32,
    shared: bool,
    resumed: bool,
}

/// How often an open page renews its lease: a quarter of the lease, between 15 s and 5 min.
fn keepalive_s(lease_s: u32) -> u32 {
    (lease_s / 4).clamp(15, 300)
}

pub(crate) fn url_ok(s: &str) -> bool {
    (s.starts_with("http://") || s.starts_with("https://")) && !s.contains(char::is_whitespace)
}

/// The configuration, and the origin check for a session's own endpoints: against the company
/// the session belongs to.
fn session_cors(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<(Arc<Config>, Option<HeaderValue>), Refused> {
    let config = state.config.load_full();
    let origin = match state.dni.company_of(id).and_then(|c| config.company(&c)) {
        Some(company) => cors(headers, company)?,
        None => {
            return Err(Refused(
                StatusCode::NOT_FOUND,
                "no such live session".into(),
            ));
        }
    };
    Ok((config, origin))
}

async fn keepalive(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (config, origin) = match session_cors(&state, &headers, &id) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let now = state.clock.now();
    let res = match state.dni.keepalive(&config, &id, now) {
        Ok((expires_at, write)) => match crate::sessions::durable(&state, vec![write]).await {
            Ok(()) => {
                let lease_s = (expires_at - now).num_seconds().max(0);
                Json(json!({
                    "expires_at": dialtone_store::timestamp(expires_at),
                    "lease_s": lease_s,
                }))
                .into_response()
            }
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        },
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    };
    with_cors(res, origin)
}

async fn release(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (config, origin) = match session_cors(&state, &headers, &id) {
        Ok(found) => found,
        Err(refused) => return refused.into_response(),
    };
    let res = match state.dni.release(&config, &id, state.clock.now()) {
        Ok(write) => match crate::sessions::durable(&state, vec![write]).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e),
        },
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
    };
    with_cors(res, origin)
}

/// A landing page for trying the snippet: the company's number written several ways, and links
/// that arrive as a tracked visitor would.
async fn demo_page(State(state): State<Arc<AppState>>, Query(q): Query<CompanyParam>) -> Response {
    let config = state.config.load();
    let company = match q.company.as_deref() {
        Some(slug) => config.company(slug),
        None => config.companies.iter().find(|c| {
            c.website_number.is_some() && c.trackers.iter().any(|t| t.kind == TrackerKind::Session)
        }),
    };
    let Some(company) = company else {
        return error(
            StatusCode::NOT_FOUND,
            "no company with a website number and a session tracker",
        );
    };
    let Some(number) = company.website_number.as_ref() else {
        return error(StatusCode::NOT_FOUND, "the company has no website_number");
    };
    let digits = number.as_str().trim_start_matches("+1");
    let (a, b, c) = if digits.len() == 10 {
        (&digits[..3], &digits[3..6], &digits[6..])
    } else {
        (digits, "", "")
    };
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let slug = esc(&company.slug);
    let name = esc(&company.name);
    let mut pools = String::new();
    for t in company
        .trackers
        .iter()
        .filter(|t| t.kind == TrackerKind::Session)
    {
        pools.push_str(&format!(
            "<li>{}: {}</li>",
            esc(&t.name),
            t.numbers
                .iter()
                .map(|n| n.formatted())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let page = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{name} — dialtone DNI demo</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem}}
.n{{font-weight:600}} code{{background:#f3f3f3;padding:0 .2em}}</style></head>
<body>
<h1>{name}</h1>
<p>Call us: <span class="n" id="formatted">({a}) {b}-{c}</span></p>
<p>Dashes <span id="dashes">{a}-{b}-{c}</span>, dots <span id="dots">{a}.{b}.{c}</span>,
international <span id="intl">+1 {a} {b} {c}</span>, digits <span id="digits">{a}{b}{c}</span>,
typeset <span id="typeset">{a}–{b}–{c}</span>, styled in pieces
<span id="split"><b>({a})</b> <i>{b}</i>-{c}</span>, and a link: <a id="tel" href="tel:{e164}">tap to call</a>.</p>
<p id="later"></p>
<hr>
<p>This page carries dialtone's snippet. Arrive as a visitor from Google Ads and watch every number
above change to one of the pool's; arrive without a source and it stays as it is.</p>
<ul>
<li><a href="?company={slug}&amp;utm_source=google&amp;utm_medium=cpc&amp;utm_term=emergency+plumber&amp;gclid=demo">arrive from a Google Ads click</a></li>
<li><a href="?company={slug}">arrive directly</a></li>
</ul>
<p>Pools:</p><ul>{pools}</ul><p>Snippet: <code id="status">loading</code></p>
<script>
setTimeout(function () {{
  document.getElementById("later").textContent = "Added after load: {a}-{b}-{c}";
}}, 300);
setInterval(function () {{
  var d = window.dialtone || {{}};
  document.getElementById("status").textContent = (d.status || "loading") + (d.reason ? " (" + d.reason + ")" : "") + (d.tracker ? " — " + d.tracker : "");
}}, 200);
</script>
<script src="/dni/v1/swap.js?company={slug}" async></script>
</body></html>
"#,
        e164 = esc(number.as_str()),
    );
    let mut res = Html(page).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_served_snippet_drops_comment_lines_and_indentation_only() {
        let js = "(function () {\n  // why\n  var a = \"http://x\"; // trailing\n\n    return a; /* kept */\n})";
        assert_eq!(
            compact_js(js),
            "(function () {\nvar a = \"http://x\"; // trailing\nreturn a; /* kept */\n})\n"
        );
        let served = served_snippet();
        assert!(served.len() * 10 < SNIPPET.len() * 8, "{}", served.len());
        assert!(served.starts_with("(function (config) {"));
        assert!(served.trim_end().ends_with("})"));
    }
}
