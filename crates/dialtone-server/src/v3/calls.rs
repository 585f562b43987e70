//! `GET /v3/a/{account}/calls.json` and `GET /v3/a/{account}/calls/{call}.json`: the call log
//! as CallRail lists it, by offset pages (`page`, `per_page`, with the totals) or relative ones
//! (`relative_pagination=true`: `has_next_page` and a `next_page` URL, each page as cheap as the
//! first however deep), both with a `Link: <…>; rel="next"` header.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono_tz::Tz;
use dialtone_core::config::Config;
use dialtone_core::event::Outcome;
use dialtone_store::{Call, CallQuery};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{Selection, call_object};
use super::time::{self, Span};
use super::{LastWins, TokenAuth, V3Error, account_for, ids, json_name};
use crate::AppState;

/// The query of a calls listing. Filters CallRail has and dialtone cannot apply yet are
/// refused by name, never ignored: a script must not take an unfiltered list for a filtered one.
#[derive(Debug, Deserialize)]
pub struct CallsQuery {
    page: Option<u32>,
    per_page: Option<u32>,
    relative_pagination: Option<bool>,
    /// Relative pagination: the page to start at, counted from 0.
    offset: Option<u32>,
    /// Relative pagination: where the next page starts (in `next_page`).
    cursor: Option<String>,
    fields: Option<String>,
    date_range: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
    time_zone: Option<String>,
    company_id: Option<String>,
    tracker_id: Option<String>,
    answer_status: Option<String>,
    direction: Option<String>,
    call_type: Option<String>,
    sort: Option<String>,
    order: Option<String>,
    search: Option<String>,
    device: Option<String>,
    lead_status: Option<String>,
    tags: Option<String>,
    #[serde(rename = "tags[]")]
    tags_list: Option<String>,
    min_duration: Option<String>,
    max_duration: Option<String>,
}

/// `page` and `per_page` as asked (1 and 100 unless given; at most 250 a page).
pub(super) fn paging(page: Option<u32>, per_page: Option<u32>) -> Result<(u32, u32), V3Error> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(100);
    if page == 0 {
        return Err(V3Error::bad("page starts at 1"));
    }
    if !(1..=250).contains(&per_page) {
        return Err(V3Error::bad("per_page must be from 1 to 250"));
    }
    Ok((page, per_page))
}

/// Pages of `per_page` that `total` records fill: at least one, so a client that pages until
/// `page == total_pages` stops on an empty list too.
pub(super) fn pages(total: u64, per_page: u32) -> u32 {
    u32::try_from(total.div_ceil(u64::from(per_page.max(1))))
        .unwrap_or(u32::MAX)
        .max(1)
}

/// The time zone days are counted and times written in: `time_zone`, else the one all the
/// account's companies share, else UTC.
pub(super) fn zone(time_zone: Option<&str>, config: &Config, account: &str) -> Result<Tz, V3Error> {
    if let Some(z) = time_zone {
        return z
            .parse()
            .map_err(|_| V3Error::bad(format!("time_zone `{z}` is not an IANA time zone")));
    }
    let mut zones = config
        .companies
        .iter()
        .filter(|c| c.account == account)
        .map(|c| c.time_zone);
    Ok(match zones.next() {
        Some(z) if zones.all(|other| other == z) => z,
        _ => Tz::UTC,
    })
}

/// What a listing asks of the store, or that it asks for nothing any call could match.
enum Wanted {
    Calls(Box<CallQuery>),
    Nothing,
}

impl CallsQuery {
    fn refuse_unsupported(&self) -> Result<(), V3Error> {
        let unsupported = [
            ("search", &self.search),
            ("device", &self.device),
            ("lead_status", &self.lead_status),
            ("tags", &self.tags),
            ("tags[]", &self.tags_list),
            ("min_duration", &self.min_duration),
            ("max_duration", &self.max_duration),
        ];
        for (name, value) in unsupported {
            if value.is_some() {
                return Err(V3Error::bad(format!(
                    "dialtone cannot filter calls by `{name}` yet"
                )));
            }
        }
        match (self.sort.as_deref(), self.order.as_deref()) {
            (None | Some("start_time"), None | Some("desc")) => Ok(()),
            (None | Some("start_time"), Some(order)) => Err(V3Error::bad(format!(
                "calls are listed newest first; order `{order}` is not supported yet"
            ))),
            (Some(sort), _) => Err(V3Error::bad(format!(
                "calls are listed by start_time; sorting by `{sort}` is not supported yet"
            ))),
        }
    }

    fn span(&self, zone: Tz, now: chrono::DateTime<chrono::Utc>) -> Result<Span, V3Error> {
        match (&self.date_range, &self.start_date, &self.end_date) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(V3Error::bad(
                "give date_range or start_date/end_date, not both",
            )),
            (None, None, None) | (Some(_), None, None) => {
                time::date_range(self.date_range.as_deref(), zone, now)
            }
            (None, start, end) => time::dates(start.as_deref(), end.as_deref(), zone),
        }
    }

    /// The outcomes asked for by `answer_status` and `call_type` together (CallRail's missed
    /// calls include those that went to voicemail); `None` when no call can match.
    fn outcomes(&self) -> Result<Option<Vec<Outcome>>, V3Error> {
        use Outcome::*;
        let all = vec![InProgress, Answered, Voicemail, Missed, Failed];
        let by_status = match self.answer_status.as_deref() {
            None | Some("all") => all.clone(),
            Some("answered") => vec![Answered],
            Some("missed") => vec![Missed, Failed, Voicemail],
            Some("voicemail") => vec![Voicemail],
            Some(other) => {
                return Err(V3Error::bad(format!(
                    "answer_status `{other}` is not answered, missed or voicemail"
                )));
            }
        };
        let by_type = match self.call_type.as_deref() {
            None | Some("inbound") => all.clone(),
            Some("outbound") => vec![],
            Some("missed") => vec![Missed, Failed],
            Some("voicemails") => vec![Voicemail],
            Some("first_call") => {
                return Err(V3Error::bad(
                    "dialtone cannot filter calls by `call_type=first_call` yet",
                ));
            }
            Some(other) => {
                return Err(V3Error::bad(format!(
                    "call_type `{other}` is not first_call, missed, voicemails, inbound or outbound"
                )));
            }
        };
        let inbound = match self.direction.as_deref() {
            None | Some("all") | Some("inbound") => true,
            Some("outbound") => false,
            Some(other) => {
                return Err(V3Error::bad(format!(
                    "direction `{other}` is not inbound or outbound"
                )));
            }
        };
        let both: Vec<Outcome> = by_status
            .into_iter()
            .filter(|o| by_type.contains(o) && inbound)
            .collect();
        Ok(match both.len() {
            0 => None,
            n if n == all.len() => Some(vec![]),
            _ => Some(both),
        })
    }

    /// The store query for `account`'s calls.
    fn wanted(
        &self,
        config: &Config,
        account: &str,
        span: Span,
        page: u32,
        per_page: u32,
    ) -> Result<Wanted, V3Error> {
        self.refuse_unsupported()?;
        let Some(outcomes) = self.outcomes()? else {
            return Ok(Wanted::Nothing);
        };
        let mut company = match &self.company_id {
            None => None,
            Some(id) => Some(
                ids::company_slug(id)
                    .ok_or_else(|| V3Error::bad(format!("company_id `{id}` is not a company id")))?
                    .to_owned(),
            ),
        };
        let mut tracker = None;
        if let Some(id) = &self.tracker_id {
            let (c, t) = config
                .companies
                .iter()
                .filter(|c| c.account == account)
                .flat_map(|c| c.trackers.iter().map(move |t| (c, t)))
                .find(|(c, t)| ids::tracker(&c.slug, &t.name) == *id)
                .ok_or_else(|| V3Error::bad(format!("no tracker `{id}` in this account")))?;
            if company.as_ref().is_some_and(|slug| *slug != c.slug) {
                return Ok(Wanted::Nothing);
            }
            company = Some(c.slug.clone());
            tracker = Some(t.name.clone());
        }
        Ok(Wanted::Calls(Box::new(CallQuery {
            account: account.to_owned(),
            company,
            tracker,
            outcomes,
            from: span.from,
            until: span.until,
            page,
            per_page,
        })))
    }
}

/// An offset page of calls.
#[derive(Debug, Serialize)]
struct OffsetPage {
    page: u32,
    per_page: u32,
    total_pages: u32,
    total_records: u64,
    calls: Vec<Value>,
}

/// A relative page of calls.
#[derive(Debug, Serialize)]
struct RelativePage {
    per_page: u32,
    has_next_page: bool,
    next_page: Option<String>,
    calls: Vec<Value>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    TokenAuth(key): TokenAuth,
    Path(account): Path<String>,
    uri: axum::http::Uri,
    LastWins(q): LastWins<CallsQuery>,
) -> Result<Response, V3Error> {
    let config = state.config.load();
    let account = account_for(&config, &key, &account)?.slug.clone();
    let fields = Selection::parse(q.fields.as_deref())?;
    let zone = zone(q.time_zone.as_deref(), &config, &account)?;
    let span = q.span(zone, state.clock.now())?;
    let relative = q.relative_pagination.unwrap_or(false);
    let (page, per_page) = if relative {
        let first = q.offset.unwrap_or(0).saturating_add(1);
        (first, paging(None, q.per_page)?.1)
    } else {
        paging(q.page, q.per_page)?
    };
    let wanted = q.wanted(&config, &account, span, page, per_page)?;
    let listed = if relative {
        relative_page(&state, wanted, q.cursor.as_deref(), page).await?
    } else {
        offset_page(&state, wanted, page, per_page).await?
    };
    let calls: Vec<Value> = listed
        .calls
        .iter()
        .map(|c| call_object(c, config.company(&c.company), zone, &fields))
        .collect();
    // The next page: this request's parameters, with where it starts.
    let next_page = listed.next.map(|(name, value)| {
        let mut params: Vec<(String, String)> = super::last_values(uri.query().unwrap_or(""))
            .into_iter()
            .filter(|(k, _)| !["page", "cursor", "offset"].contains(&k.as_str()))
            .collect();
        params.push((name.to_owned(), value));
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&params)
            .finish();
        format!("{}{}?{query}", state.links.base(), uri.path())
    });
    let body = match listed.total {
        None => Json(RelativePage {
            per_page,
            has_next_page: next_page.is_some(),
            next_page: next_page.clone(),
            calls,
        })
        .into_response(),
        Some(total) => Json(OffsetPage {
            page,
            per_page,
            total_pages: pages(total, per_page),
            total_records: total,
            calls,
        })
        .into_response(),
    };
    Ok(with_next_link(body, next_page))
}

/// A page of calls read from the store: the calls, the parameter that asks for the next page
/// (if there is one), and the count of all matches (offset pages only).
struct Listed {
    calls: Vec<Call>,
    next: Option<(&'static str, String)>,
    total: Option<u64>,
}

async fn offset_page(
    state: &AppState,
    wanted: Wanted,
    page: u32,
    per_page: u32,
) -> Result<Listed, V3Error> {
    let (calls, total) = match wanted {
        Wanted::Nothing => (vec![], 0),
        Wanted::Calls(query) => {
            let p = state.store.calls(*query).await.map_err(V3Error::internal)?;
            (p.calls, p.total_records)
        }
    };
    let next = (page < pages(total, per_page)).then(|| ("page", (page + 1).to_string()));
    Ok(Listed {
        calls,
        next,
        total: Some(total),
    })
}

/// A relative page: after `cursor`, or (asked for by number, `offset=`) read by offset, and
/// from there on by keyset.
async fn relative_page(
    state: &AppState,
    wanted: Wanted,
    cursor: Option<&str>,
    page: u32,
) -> Result<Listed, V3Error> {
    let (calls, next) = match wanted {
        Wanted::Nothing => (vec![], None),
        Wanted::Calls(query) if cursor.is_none() && page > 1 => {
            let p = state.store.calls(*query).await.map_err(V3Error::internal)?;
            let next = (p.page < p.total_pages)
                .then(|| p.calls.last().map(crate::cursor::after))
                .flatten();
            (p.calls, next)
        }
        Wanted::Calls(query) => {
            let after = match cursor {
                None => None,
                Some(c) => Some(crate::cursor::decode(c).ok_or_else(|| {
                    V3Error::bad(format!("cursor `{c}` is not one this server gave out"))
                })?),
            };
            let p = state
                .store
                .calls_after(*query, after)
                .await
                .map_err(V3Error::internal)?;
            (p.calls, p.next)
        }
    };
    Ok(Listed {
        calls,
        next: next.map(|c| ("cursor", crate::cursor::encode(&c))),
        total: None,
    })
}

/// `Link: <next>; rel="next"`, which some clients page by (Airbyte's CallRail connector).
fn with_next_link(mut res: Response, next: Option<String>) -> Response {
    if let Some(value) =
        next.and_then(|n| HeaderValue::from_str(&format!("<{n}>; rel=\"next\"")).ok())
    {
        res.headers_mut().insert(header::LINK, value);
    }
    res
}

#[derive(Debug, Deserialize)]
pub struct ShowQuery {
    fields: Option<String>,
    time_zone: Option<String>,
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    TokenAuth(key): TokenAuth,
    Path((account, segment)): Path<(String, String)>,
    LastWins(q): LastWins<ShowQuery>,
) -> Result<Response, V3Error> {
    let config = state.config.load();
    let account = account_for(&config, &key, &account)?.slug.clone();
    let id = json_name(&segment)?;
    let fields = Selection::parse(q.fields.as_deref())?;
    let zone = zone(q.time_zone.as_deref(), &config, &account)?;
    let absent = || V3Error::not_found(format!("no call `{id}`"));
    let sid = ids::call_sid(id).ok_or_else(absent)?;
    // Another account's call is as absent as one that never existed.
    let call = state
        .store
        .call(&account, &sid)
        .await
        .map_err(V3Error::internal)?
        // A call marked as spam is hidden, as on CallRail.
        .filter(|c| !c.spam)
        .ok_or_else(absent)?;
    let object = call_object(&call, config.company(&call.company), zone, &fields);
    Ok(Json(object).into_response())
}
