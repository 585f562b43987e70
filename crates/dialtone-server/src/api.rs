//! The REST API (`/api/v1`), `/healthz` and `/metrics`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use dialtone_core::backup::Scope;
use dialtone_core::event::Outcome;
use dialtone_store::{ApiKey, CallCursor, CallQuery};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::cluster::Message;
use crate::reload::ReloadError;
use crate::{AppState, telemetry};

mod views;
use views::{CallView, PageView};

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/calls", get(list_calls))
        .route("/api/v1/calls/{id}", get(get_call))
        .route("/api/v1/config/reload", post(reload))
        .route("/api/v1/admission", get(admission))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/backup", get(list_backup).post(add_backup))
        .route("/api/v1/backup/{id}", axum::routing::delete(end_backup))
        .route("/api/v1/dni/pools", get(dni_pools))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        res
    }
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "API request failed");
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server log".into(),
    )
}

/// `Authorization: Bearer KEY`, checked against the stored key hashes.
pub struct Auth(ApiKey);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let unauthorized = |m: &str| ApiError(StatusCode::UNAUTHORIZED, m.to_owned());
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing Authorization: Bearer <API key>"))?;
        let key = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| unauthorized("Authorization must be `Bearer <API key>`"))?;
        match state.store.api_key(key).await.map_err(internal)? {
            Some(k) => Ok(Auth(k)),
            None => Err(unauthorized("unknown API key")),
        }
    }
}

/// `/metrics` is open unless the server was given a metrics token (`serve --metrics-token`);
/// then it takes `Authorization: Bearer TOKEN`, or an operator API key.
async fn metrics_access(state: &AppState, parts: &Parts) -> Result<(), ApiError> {
    let Some(token) = &state.metrics_token else {
        return Ok(());
    };
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNAUTHORIZED,
                "missing Authorization: Bearer <metrics token>".into(),
            )
        })?;
    if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        return Ok(());
    }
    match state.store.api_key(presented).await.map_err(internal)? {
        Some(key) if key.operator => Ok(()),
        _ => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "not the metrics token nor an operator API key".into(),
        )),
    }
}

fn date(params: &HashMap<String, String>, name: &str) -> Result<Option<NaiveDate>, ApiError> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            // A full timestamp is accepted for its date.
            NaiveDate::parse_from_str(v.get(..10).unwrap_or(v), "%Y-%m-%d").map_err(|_| {
                bad(format!(
                    "`{name}` must be a date like 2026-11-23, not `{v}`"
                ))
            })
        })
        .transpose()
}

fn number(
    params: &HashMap<String, String>,
    name: &str,
    default: u32,
    max: u32,
) -> Result<u32, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad(format!(
                "`{name}` must be a whole number from 1 to {max}, not `{v}`"
            ))),
        },
    }
}

async fn list_calls(
    State(state): State<Arc<AppState>>,
    Auth(key): Auth,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let outcome = match params.get("outcome").filter(|v| !v.is_empty()) {
        None => None,
        Some(o) => Some(Outcome::parse(o).ok_or_else(|| {
            bad(format!(
                "`outcome` must be one of in_progress, answered, voicemail, missed, failed, not `{o}`"
            ))
        })?),
    };
    let relative = match params.get("relative_pagination").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(bad(format!(
                "`relative_pagination` must be true or false, not `{v}`"
            )));
        }
    };
    if relative && params.contains_key("page") {
        return Err(bad(
            "`page` is for offset pagination; with relative_pagination=true follow `next_page`",
        ));
    }
    if !relative && params.contains_key("cursor") {
        return Err(bad("`cursor` needs relative_pagination=true"));
    }
    let (start_date, end_date) = (date(&params, "start_date")?, date(&params, "end_date")?);
    if let (Some(s), Some(e)) = (start_date, end_date)
        && e < s
    {
        return Err(bad("`end_date` is before `start_date`"));
    }
    // Dates are UTC days here; the end date is included whole.
    let midnight = |d: NaiveDate| d.and_time(chrono::NaiveTime::MIN).and_utc();
    let query = CallQuery {
        account: key.account,
        company: params.get("company").filter(|v| !v.is_empty()).cloned(),
        tracker: params.get("tracker").filter(|v| !v.is_empty()).cloned(),
        outcomes: outcome.into_iter().collect(),
        from: start_date.map(midnight),
        until: end_date.map(|d| midnight(d.succ_opt().unwrap_or(d))),
        page: number(&params, "page", 1, u32::MAX)?,
        per_page: number(&params, "per_page", 100, 250)?,
    };
    if relative {
        let after = params.get("cursor").map(|c| decode_cursor(c)).transpose()?;
        let per_page = query.per_page;
        let page = state
            .store
            .calls_after(query, after)
            .await
            .map_err(internal)?;
        let next_page = page.next.as_ref().map(|c| {
            let mut url = form_urlencoded::Serializer::new(String::new());
            let mut names: Vec<&String> = params.keys().filter(|k| *k != "cursor").collect();
            names.sort();
            for name in names {
                url.append_pair(name, &params[name]);
            }
            url.append_pair("cursor", &crate::cursor::encode(c));
            format!("{}/api/v1/calls?{}", state.links.base(), url.finish())
        });
        return Ok(Json(json!({
            "per_page": per_page,
            "has_next_page": next_page.is_some(),
            "next_page": next_page,
            "calls": page.calls.into_iter().map(CallView::from).collect::<Vec<_>>(),
        }))
        .into_response());
    }
    let page = state.store.calls(query).await.map_err(internal)?;
    Ok(Json(PageView::from(page)).into_response())
}

fn decode_cursor(s: &str) -> Result<CallCursor, ApiError> {
    crate::cursor::decode(s)
        .ok_or_else(|| bad(format!("`cursor` `{s}` is not one this server gave out")))
}

async fn get_call(
    State(state): State<Arc<AppState>>,
    Auth(key): Auth,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    match state
        .store
        .call(&key.account, &id)
        .await
        .map_err(internal)?
    {
        Some(call) => Ok(Json(CallView::from(call)).into_response()),
        // Another account's call is as absent as one that never existed.
        None => Err(ApiError(StatusCode::NOT_FOUND, format!("no call `{id}`"))),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadQuery {
    /// Drop carrier accounts and tracking numbers that took calls in the last day.
    #[serde(default)]
    allow_removals: bool,
}

async fn reload(
    State(state): State<Arc<AppState>>,
    Auth(key): Auth,
    query: Result<Query<ReloadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    operator_only(
        &key,
        "reloading the configuration (it holds every account's)",
    )?;
    let Query(query) = query.map_err(|e| bad(e.body_text()))?;
    match state.reload(query.allow_removals).await {
        Ok(summary) => {
            state.cluster.send(&Message::Reload {
                allow_removals: query.allow_removals,
            });
            Ok(Json(json!({ "status": "reloaded", "companies": summary.companies, "tracking_numbers": summary.tracking_numbers, "removed": summary.removed })).into_response())
        }
        Err(ReloadError::Invalid(errors)) => {
            tracing::warn!(%errors, "configuration reload refused; the running configuration stays");
            let lines: Vec<String> = errors.to_string().lines().map(str::to_owned).collect();
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(json!({ "error": "configuration refused; the running configuration stays", "errors": lines })),
            )
                .into_response())
        }
        Err(ReloadError::Removals(removals)) => {
            tracing::warn!(removals = ?removals, "configuration reload refused: it drops what takes calls");
            Ok((
                StatusCode::CONFLICT,
                Json(json!({
                    "error": "the new configuration drops carrier accounts or tracking numbers that took calls in the last 24 hours; the running configuration stays. Reload with allow_removals=true if that is what you want.",
                    "removals": removals,
                })),
            )
                .into_response())
        }
        Err(e @ ReloadError::Store(_)) => Err(internal(e)),
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let config = state.config.load();
    let writer = state.store.stats();
    let cluster = state.cluster.shared().then(|| state.cluster.stats());
    let apart = cluster.is_some_and(|c| !c.connected);
    let status = if writer.spooled > 0 || apart {
        "degraded"
    } else {
        "ok"
    };
    let mut body = json!({
        "status": status,
        "companies": config.companies.len(),
        "tracking_numbers": config.tracking_numbers(),
        "call_log": writer,
        "connections": {
            "open": state.connections.open(),
            "refused": state.connections.refused(),
        },
    });
    if let Some(cluster) = cluster {
        body["cluster"] = json!(cluster);
    }
    Json(body).into_response()
}

/// What dialtone knows about each carrier account's dial limit (operators: any admin key).
async fn admission(
    State(state): State<Arc<AppState>>,
    Auth(key): Auth,
) -> Result<Response, ApiError> {
    operator_only(&key, "carrier limits (they are shared by accounts)")?;
    let config = state.config.load();
    let accounts: Vec<serde_json::Value> = state
        .admission
        .status(state.clock.now())
        .into_iter()
        .map(|a| {
            let name = config
                .carrier_by_sid(&a.account_sid)
                .map(|c| c.name.clone());
            json!({ "carrier_account": name, "status": a })
        })
        .collect();
    Ok(Json(json!({
        "degrade": config.admission.degrade,
        "budget_s": config.admission.budget_s,
        "tiers": config.admission.tiers,
        "degraded_calls": state.admission.degraded_calls(),
        "carrier_accounts": accounts,
    }))
    .into_response())
}

fn admin_only(key: &ApiKey, what: &str) -> Result<(), ApiError> {
    if key.admin {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("{what} needs an admin API key"),
        ))
    }
}

/// Actions on the whole installation take an operator key (`dialtone keys create --operator`).
fn operator_only(key: &ApiKey, what: &str) -> Result<(), ApiError> {
    if key.operator {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::FORBIDDEN,
            format!("{what} needs an operator API key (`dialtone keys create --operator`)"),
        ))
    }
}

/// Whether `key` may see and change `rule`: an operator any; an account's admin key only rules
/// on its own companies.
fn rule_visible(key: &ApiKey, config: &dialtone_core::config::Config, rule: &Scope) -> bool {
    if key.operator {
        return true;
    }
    match rule {
        Scope::Company { company } | Scope::Tracker { company, .. } => config
            .company(company)
            .is_some_and(|c| c.account == key.account),
        Scope::All | Scope::Tier { .. } => false,
    }
}

fn store_error(e: dialtone_store::StoreError) -> ApiError {
    tracing::error!("backup rules: {e}");
    ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("store: {e}"))
}

/// Live backup routing rules.
async fn list_backup(
    State(state): State<Arc<AppState>>,
    Auth(key): Auth,
) -> Result<Response, ApiError> {
    admin_only(&key, "backup routing")?;
    let config = state.config.load();
    let rules: Vec<_> = state
        .store
        .backup_rules(state.clock.now())
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|r| rule_visible(&key, &config, &r.scope))
        .collect();
    let policy = state
        .call_log_breaker
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .state();
    Ok(Json(json!({ "rules": rules, "call_log_policy": policy })).into_response())
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRule {
    #[serde(default)]
    all: bool,
    company: Option<String>,
    tracker: Option<String>,
    tier: Option<String>,
    percent: Option<u32>,
    reason: String,
    expires_in_s: u64,
    created_by: Option<String>,
}

/// Sends some calls to backup routing, with a reason and an expiry (at most a week).
async fn add_backup(
    State(state): State<Arc<AppState>>,
    Auth(key): Auth,
    body: Result<Json<NewRule>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    admin_only(&key, "backup routing")?;
    let Json(new) = body.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    use dialtone_core::backup::BackupRule;
    let scope = match (new.all, new.company, new.tracker, new.tier) {
        (true, None, None, None) => Scope::All,
        (false, Some(company), None, None) => Scope::Company { company },
        (false, Some(company), Some(tracker), None) => Scope::Tracker { company, tracker },
        (false, None, None, Some(tier)) => Scope::Tier { tier },
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "say which calls, one of: \"company\", \"company\" with \"tracker\", \"tier\", or \"all\": true".into(),
            ));
        }
    };
    if !(1..=7 * 24 * 3600).contains(&new.expires_in_s) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "expires_in_s must be 1 s to a week".into(),
        ));
    }
    let now = state.clock.now();
    let mut rule = BackupRule {
        id: 0,
        scope,
        percent: u8::try_from(new.percent.unwrap_or(100)).unwrap_or(0),
        reason: new.reason,
        created_at: now,
        expires_at: now + chrono::TimeDelta::seconds(new.expires_in_s as i64),
        created_by: new.created_by.unwrap_or_else(|| "api".into()),
    };
    if let Some(p) = new.percent.filter(|p| *p > 100) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("percent must be 1 to 100, not {p}"),
        ));
    }
    let config = state.config.load();
    match &rule.scope {
        Scope::All | Scope::Tier { .. } => operator_only(&key, "backup routing across accounts")?,
        // Another account's company is as unknown as one that does not exist.
        Scope::Company { company } | Scope::Tracker { company, .. }
            if !rule_visible(&key, &config, &rule.scope) =>
        {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("no company `{company}`"),
            ));
        }
        _ => {}
    }
    rule.check(&config, now)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))?;
    rule.id = state
        .store
        .add_backup_rule(&rule)
        .await
        .map_err(store_error)?;
    state.refresh_backup_rules().await.map_err(store_error)?;
    state.cluster.send(&Message::BackupRules);
    tracing::warn!(id = rule.id, scope = ?rule.scope, percent = rule.percent, reason = %rule.reason, "backup routing on");
    Ok((StatusCode::CREATED, Json(json!({ "rule": rule }))).into_response())
}

async fn end_backup(
    State(state): State<Arc<AppState>>,
    Auth(key): Auth,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    admin_only(&key, "backup routing")?;
    let now = state.clock.now();
    let config = state.config.load();
    let visible = state
        .store
        .backup_rules(now)
        .await
        .map_err(store_error)?
        .iter()
        .any(|r| r.id == id && rule_visible(&key, &config, &r.scope));
    if !visible {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no live backup rule {id}"),
        ));
    }
    let ended = state
        .store
        .end_backup_rule(id, state.clock.now())
        .await
        .map_err(store_error)?;
    if !ended {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no live backup rule {id}"),
        ));
    }
    state.refresh_backup_rules().await.map_err(store_error)?;
    state.cluster.send(&Message::BackupRules);
    tracing::warn!(id, "backup routing off");
    Ok(Json(json!({ "ended": id })).into_response())
}

/// Alerts raised since the server started, newest first (admin key).
async fn alerts(State(state): State<Arc<AppState>>, Auth(key): Auth) -> Result<Response, ApiError> {
    operator_only(&key, "carrier alerts (they are shared by accounts)")?;
    let config = state.config.load();
    let alerts: Vec<serde_json::Value> = state
        .admission
        .alerts
        .list()
        .into_iter()
        .rev()
        .map(|a| {
            let name = config
                .carrier_by_sid(&a.carrier_account_sid)
                .map(|c| c.name.clone());
            json!({
                "kind": a.kind,
                "carrier_account": name,
                "at": a.at,
                "message": a.message,
                "value": a.value,
            })
        })
        .collect();
    Ok(Json(json!({ "alerts": alerts })).into_response())
}

/// `GET /api/v1/dni/pools`: each DNI pool's use, peak and recommended size (the key's account).
async fn dni_pools(State(state): State<Arc<AppState>>, Auth(key): Auth) -> Response {
    let config = state.config.load();
    let pools = state.dni.health(
        &config,
        (!key.operator).then_some(key.account.as_str()),
        state.clock.now(),
    );
    Json(json!({ "pools": pools })).into_response()
}

async fn metrics(State(state): State<Arc<AppState>>, parts: Parts) -> Response {
    if let Err(refused) = metrics_access(&state, &parts).await {
        return refused.into_response();
    }
    let Some(handle) = &state.metrics else {
        return (
            StatusCode::NOT_FOUND,
            "metrics are not enabled in this process\n",
        )
            .into_response();
    };
    let w = state.store.stats();
    metrics::counter!(telemetry::LOG_EVENTS).absolute(w.events);
    metrics::counter!(telemetry::LOG_COMMITS).absolute(w.commits);
    metrics::counter!(telemetry::LOG_FAILED_COMMITS).absolute(w.failed_commits);
    metrics::gauge!(telemetry::LOG_SPOOLED).set(w.spooled as f64);
    metrics::gauge!(telemetry::LOG_UNMERGED_SIDS).set(w.unmerged_sids as f64);
    metrics::counter!(telemetry::LOG_WAL_RESETS).absolute(w.wal_resets);
    metrics::counter!(telemetry::LOG_WAL_RESTARTS).absolute(w.wal_restarts);
    metrics::gauge!(telemetry::HTTP_CONNECTIONS).set(state.connections.open() as f64);
    metrics::counter!(telemetry::HTTP_CONNECTIONS_REFUSED).absolute(state.connections.refused());
    let config = state.config.load();
    metrics::gauge!(telemetry::TRACKING_NUMBERS).set(config.tracking_numbers() as f64);
    metrics::counter!(telemetry::DEGRADED_CALLS).absolute(state.admission.degraded_calls());
    if state.cluster.shared() {
        let c = state.cluster.stats();
        metrics::gauge!(telemetry::CLUSTER_CONNECTED).set(if c.connected { 1.0 } else { 0.0 });
        metrics::counter!(telemetry::CLUSTER_MESSAGES, "direction" => "sent").absolute(c.sent);
        metrics::counter!(telemetry::CLUSTER_MESSAGES, "direction" => "received")
            .absolute(c.received);
        metrics::counter!(telemetry::CLUSTER_DROPPED).absolute(c.dropped);
    }
    for a in state.admission.status(state.clock.now()) {
        let Some(carrier) = config.carrier_by_sid(&a.account_sid) else {
            continue;
        };
        let name = carrier.name.clone();
        metrics::gauge!(telemetry::DIAL_OFFERED, "carrier_account" => name.clone())
            .set(a.offered_legs_per_s);
        metrics::gauge!(telemetry::DIAL_PREDICTED_QUEUE, "carrier_account" => name.clone())
            .set(a.predicted_queue_s);
        if let Some(q) = a.observed_queue_s {
            metrics::gauge!(telemetry::DIAL_OBSERVED_QUEUE, "carrier_account" => name.clone())
                .set(q);
        }
        metrics::gauge!(telemetry::DIAL_ACTIVE_LEGS, "carrier_account" => name.clone())
            .set(a.active_legs as f64);
        if let Some(cap) = a.concurrent_limit {
            metrics::gauge!(telemetry::DIAL_CONCURRENT_LIMIT, "carrier_account" => name.clone())
                .set(f64::from(cap));
        }
        if let Some(c) = a.connect_ratio {
            metrics::gauge!(telemetry::CONNECT_RATIO, "carrier_account" => name.clone()).set(c);
        }
        if let Some(r) = a.abandoned_ratio {
            metrics::gauge!(telemetry::ABANDONED_RATIO, "carrier_account" => name.clone()).set(r);
        }
        if let Some(u) = a.utilisation {
            metrics::gauge!(telemetry::DIAL_UTILISATION, "carrier_account" => name.clone()).set(u);
        }
        for (source, limit) in [
            ("configured", a.configured_limit_per_s),
            ("estimated", a.estimated_limit_per_s),
        ] {
            if let Some(l) = limit {
                metrics::gauge!(telemetry::DIAL_LIMIT, "carrier_account" => name.clone(), "source" => source)
                    .set(l);
            }
        }
    }
    for p in state.dni.health(&config, None, state.clock.now()) {
        let labels = [
            ("company", telemetry::customer_label(&p.company)),
            (
                "tracker",
                telemetry::customer_label(&format!("{}/{}", p.company, p.tracker)),
            ),
        ];
        metrics::gauge!(telemetry::DNI_POOL_SIZE, &labels).set(p.pool_size as f64);
        metrics::gauge!(telemetry::DNI_POOL_LIVE, &labels).set(p.live_sessions as f64);
        metrics::gauge!(telemetry::DNI_POOL_UTILISATION, &labels).set(p.utilisation);
        metrics::gauge!(telemetry::DNI_POOL_PEAK, &labels).set(p.peak_concurrent_sessions as f64);
        metrics::gauge!(telemetry::DNI_POOL_RECOMMENDED, &labels)
            .set(p.recommended_pool_size as f64);
        metrics::counter!(telemetry::DNI_SHARED_ALLOCATIONS, &labels)
            .absolute(p.shared_allocations);
        metrics::counter!(telemetry::DNI_ATTRIBUTED_CALLS, &labels).absolute(p.attributed_calls);
        metrics::counter!(telemetry::DNI_SHARED_ATTRIBUTIONS, &labels)
            .absolute(p.shared_attributions);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}
