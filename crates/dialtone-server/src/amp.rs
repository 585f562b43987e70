//! DNI on AMP pages. AMP runs no custom scripts, so the snippet cannot run there; AMP's own
//! `amp-call-tracking` element asks a JSON endpoint for the number instead:
//!
//! ```html
//! <amp-call-tracking config="https://calls.example.com/dni/v1/amp?company=acme-plumbing&url=SOURCE_URL&ref=DOCUMENT_REFERRER&vid=CLIENT_ID(dialtone_vid)">
//!   <a href="tel:+14045550199">(404) 555-0199</a>
//! </amp-call-tracking>
//! ```
//!
//! AMP fills in the page's URL, its referrer and a stable visitor id; the answer is
//! `{"phoneNumber", "formattedPhoneNumber"}`: a pool number for a visitor from a tracked source,
//! the website number otherwise. The request follows AMP's CORS protocol: pages are served from
//! the publisher's origin or from an AMP cache, and name their publisher in
//! `__amp_source_origin`, which must be one of the company's website origins.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dialtone_core::config::Company;
use serde_json::json;

use crate::AppState;
use crate::dni::{DniError, Started, Visiting};
use crate::snippet::{MAX_URL, client, count_swap, error, non_empty, url_ok};
use crate::telemetry::DNI_SESSIONS;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/dni/v1/amp", get(amp_number))
}

/// The AMP caches that serve publishers' pages from their own origins
/// (`https://www-acme-example.cdn.ampproject.org`, ...).
const AMP_CACHES: [&str; 2] = [".cdn.ampproject.org", ".bing-amp.com"];

fn is_amp_cache(origin: &str) -> bool {
    origin.strip_prefix("https://").is_some_and(|host| {
        AMP_CACHES
            .iter()
            .any(|cache| host.len() > cache.len() && host.ends_with(cache))
    })
}

/// The response headers AMP's CORS protocol asks for, or why the request is refused (403).
fn amp_cors(
    headers: &HeaderMap,
    params: &HashMap<String, String>,
    company: &Company,
) -> Result<Vec<(header::HeaderName, HeaderValue)>, String> {
    let allowed = |o: &str| company.website.origins.iter().any(|p| p.allows(o));
    let refuse = |what: String| {
        Err(format!(
            "{what} may not ask for {}'s numbers (add it to [companies.website] origins)",
            company.slug
        ))
    };
    let source = params.get("__amp_source_origin");
    if let Some(s) = source.filter(|s| !allowed(s)) {
        return refuse(format!("source origin {s}"));
    }
    let mut out = vec![(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("AMP-Access-Control-Allow-Source-Origin"),
    )];
    if let Some(origin) = headers.get(header::ORIGIN) {
        let o = origin.to_str().unwrap_or("");
        // A cache serves anyone's pages: it must say whose page this is.
        let ok = allowed(o) || (is_amp_cache(o) && source.is_some());
        if !ok {
            return refuse(format!("origin {o}"));
        }
        out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
        out.push((
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
    }
    if let Some(s) = source.and_then(|s| HeaderValue::from_str(s).ok()) {
        out.push((
            header::HeaderName::from_static("amp-access-control-allow-source-origin"),
            s,
        ));
    }
    Ok(out)
}

/// A value AMP left as written (the page was not served by AMP) is no value.
fn substituted(v: Option<&String>) -> Option<String> {
    non_empty(v.cloned()).filter(|v| !v.contains("CLIENT_ID(") && !v.contains("SOURCE_URL"))
}

async fn amp_number(
    State(state): State<Arc<AppState>>,
    extensions: axum::http::Extensions,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let config = state.config.load();
    let Some(company) = params.get("company").and_then(|c| config.company(c)) else {
        return error(
            StatusCode::NOT_FOUND,
            format!(
                "no company `{}`",
                params.get("company").map_or("", String::as_str)
            ),
        );
    };
    let cors = match amp_cors(&headers, &params, company) {
        Ok(h) => h,
        Err(refused) => return error(StatusCode::FORBIDDEN, refused),
    };
    let with_cors = |mut res: Response| {
        let h = res.headers_mut();
        for (name, value) in &cors {
            h.insert(name.clone(), value.clone());
        }
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    };
    let Some(landing_url) =
        substituted(params.get("url")).filter(|u| u.len() <= MAX_URL && url_ok(u))
    else {
        return with_cors(error(
            StatusCode::BAD_REQUEST,
            format!(
                "`url` must be the page's http(s) URL of at most {MAX_URL} bytes (url=SOURCE_URL in the config attribute)"
            ),
        ));
    };
    let referrer = non_empty(params.get("ref").cloned()).filter(|r| r.len() <= MAX_URL);
    let visitor = substituted(params.get("vid")).filter(|v| v.len() <= 256);
    let website = |reason: &str| {
        Json(json!({
            "phoneNumber": company.website_number.as_ref().map(|n| n.as_str()),
            "formattedPhoneNumber": company.website_number.as_ref().map(|n| n.formatted()),
            "reason": reason,
        }))
        .into_response()
    };
    let now = state.clock.now();
    let started = crate::sessions::start(
        &state,
        &config,
        Visiting {
            company,
            visitor: visitor.as_deref(),
            session: None,
            landing_url: &landing_url,
            referrer: referrer.as_deref(),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            client: client(&config, &headers, &extensions),
        },
        now,
    )
    .await;
    let res = match started {
        Err(DniError::RateLimited(what, _)) => {
            metrics::counter!(DNI_SESSIONS, "result" => "rate_limited").increment(1);
            website(&format!("too many new sessions from this {what}"))
        }
        Err(e) => error(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Started::Keep { reason, .. }) => {
            metrics::counter!(DNI_SESSIONS, "result" => "kept").increment(1);
            website(reason)
        }
        Ok(Started::Swap {
            session,
            number,
            sharing,
            resumed,
            writes,
            ..
        }) => {
            // As for the snippet: the lease is durable before the page shows the number.
            if let Err(e) = crate::sessions::durable(&state, writes).await {
                tracing::error!(error = %e, "DNI session for an AMP page could not be saved; it keeps the website number");
                if !resumed {
                    state.dni.abandon(&config, session, now);
                }
                metrics::counter!(DNI_SESSIONS, "result" => "failed").increment(1);
                return with_cors(website("unavailable"));
            }
            count_swap(resumed, sharing);
            Json(json!({
                "phoneNumber": number.as_str(),
                "formattedPhoneNumber": number.formatted(),
            }))
            .into_response()
        }
    };
    with_cors(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amp_caches_are_https_subdomains_of_the_known_caches() {
        assert!(is_amp_cache("https://www-acme-example.cdn.ampproject.org"));
        assert!(is_amp_cache("https://acme-example.bing-amp.com"));
        assert!(!is_amp_cache("https://cdn.ampproject.org"));
        assert!(!is_amp_cache("http://www-acme-example.cdn.ampproject.org"));
        assert!(!is_amp_cache("https://evil-cdn.ampproject.org.example"));
        assert!(!is_amp_cache("https://evilcdn.ampproject.org"));
    }
}
