//! Phone numbers: IncomingPhoneNumbers (the account's own: buy, list, fetch, update, release)
//! and AvailablePhoneNumbers (for sale: local and toll-free, in the US and Canada).
//!
//! The numbers for sale are fictional: exchange 555, lines 0100–0199 (`+1 404 555 0123`), in any
//! area code asked for, so an emulated purchase never names a real subscriber. What a number is
//! set to (its Voice URL, fallback and status callback) is stored and shown; the emulator's calls
//! still go to `dialtone carrier --voice-url`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde::Serialize;

use super::{Answer, ApiError, CallLog, Entries, error, invalid, not_found, page, split_extension};
use crate::cdr::{API_VERSION, formatted, phone_number_sid, rfc2822};

/// What an account sets on a number it owns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NumberSettings {
    pub friendly_name: Option<String>,
    pub voice_url: Option<String>,
    pub voice_method: Option<String>,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: Option<String>,
    pub status_callback: Option<String>,
    pub status_callback_method: Option<String>,
    pub voice_caller_id_lookup: Option<bool>,
}

/// A number the account owns.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingNumber {
    pub sid: String,
    pub phone_number: String,
    pub friendly_name: String,
    pub voice_url: Option<String>,
    pub voice_method: String,
    pub voice_fallback_url: Option<String>,
    pub voice_fallback_method: String,
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    pub voice_caller_id_lookup: bool,
    pub date_created: String,
    pub date_updated: String,
}

impl IncomingNumber {
    fn apply(&mut self, s: NumberSettings) {
        let NumberSettings {
            friendly_name,
            voice_url,
            voice_method,
            voice_fallback_url,
            voice_fallback_method,
            status_callback,
            status_callback_method,
            voice_caller_id_lookup,
        } = s;
        if let Some(v) = friendly_name {
            self.friendly_name = v;
        }
        // An empty URL clears it, as at the carrier.
        let url = |v: String| (!v.is_empty()).then_some(v);
        if let Some(v) = voice_url {
            self.voice_url = url(v);
        }
        if let Some(v) = voice_fallback_url {
            self.voice_fallback_url = url(v);
        }
        if let Some(v) = status_callback {
            self.status_callback = url(v);
        }
        if let Some(v) = voice_method {
            self.voice_method = v;
        }
        if let Some(v) = voice_fallback_method {
            self.voice_fallback_method = v;
        }
        if let Some(v) = status_callback_method {
            self.status_callback_method = v;
        }
        if let Some(v) = voice_caller_id_lookup {
            self.voice_caller_id_lookup = v;
        }
    }

    fn view<'a>(&'a self, account_sid: &'a str) -> NumberView<'a> {
        NumberView {
            account_sid,
            address_sid: None,
            address_requirements: "none",
            api_version: API_VERSION,
            beta: false,
            capabilities: CAPABILITIES,
            date_created: &self.date_created,
            date_updated: &self.date_updated,
            friendly_name: &self.friendly_name,
            identity_sid: None,
            phone_number: &self.phone_number,
            origin: "twilio",
            sid: &self.sid,
            sms_application_sid: None,
            sms_fallback_method: "POST",
            sms_fallback_url: None,
            sms_method: "POST",
            sms_url: None,
            status_callback: self.status_callback.as_deref(),
            status_callback_method: &self.status_callback_method,
            trunk_sid: None,
            uri: format!(
                "/{API_VERSION}/Accounts/{account_sid}/IncomingPhoneNumbers/{}.json",
                self.sid
            ),
            voice_receive_mode: "voice",
            voice_application_sid: None,
            voice_caller_id_lookup: self.voice_caller_id_lookup,
            voice_fallback_method: &self.voice_fallback_method,
            voice_fallback_url: self.voice_fallback_url.as_deref(),
            voice_method: &self.voice_method,
            voice_url: self.voice_url.as_deref(),
            emergency_status: "Inactive",
            emergency_address_sid: None,
            emergency_address_status: "unregistered",
            bundle_sid: None,
            status: "in-use",
            r#type: if toll_free(&self.phone_number) {
                "toll-free"
            } else {
                "local"
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Capabilities {
    voice: bool,
    sms: bool,
    mms: bool,
    fax: bool,
}

/// The emulator answers voice only, but sells numbers as the carrier's US numbers come.
const CAPABILITIES: Capabilities = Capabilities {
    voice: true,
    sms: true,
    mms: true,
    fax: false,
};

/// The IncomingPhoneNumber resource, every field the description names, in its order.
#[derive(Debug, Serialize)]
struct NumberView<'a> {
    account_sid: &'a str,
    address_sid: Option<&'a str>,
    address_requirements: &'static str,
    api_version: &'static str,
    beta: bool,
    capabilities: Capabilities,
    date_created: &'a str,
    date_updated: &'a str,
    friendly_name: &'a str,
    identity_sid: Option<&'a str>,
    phone_number: &'a str,
    origin: &'static str,
    sid: &'a str,
    sms_application_sid: Option<&'a str>,
    sms_fallback_method: &'static str,
    sms_fallback_url: Option<&'a str>,
    sms_method: &'static str,
    sms_url: Option<&'a str>,
    status_callback: Option<&'a str>,
    status_callback_method: &'a str,
    trunk_sid: Option<&'a str>,
    uri: String,
    voice_receive_mode: &'static str,
    voice_application_sid: Option<&'a str>,
    voice_caller_id_lookup: bool,
    voice_fallback_method: &'a str,
    voice_fallback_url: Option<&'a str>,
    voice_method: &'a str,
    voice_url: Option<&'a str>,
    emergency_status: &'static str,
    emergency_address_sid: Option<&'a str>,
    emergency_address_status: &'static str,
    bundle_sid: Option<&'a str>,
    status: &'static str,
    r#type: &'static str,
}

/// A number for sale, every field the description names, in its order.
#[derive(Debug, Serialize)]
struct AvailableView {
    friendly_name: String,
    phone_number: String,
    lata: Option<&'static str>,
    locality: Option<&'static str>,
    rate_center: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    region: Option<&'static str>,
    postal_code: Option<&'static str>,
    iso_country: &'static str,
    address_requirements: &'static str,
    beta: bool,
    capabilities: Capabilities,
}

const TOLL_FREE: [&str; 7] = ["800", "833", "844", "855", "866", "877", "888"];

fn toll_free(number: &str) -> bool {
    number
        .strip_prefix("+1")
        .and_then(|n| n.get(..3))
        .is_some_and(|a| TOLL_FREE.contains(&a))
}

/// Where a few area codes are: (area code, country, locality, region, latitude, longitude).
const PLACES: [(&str, &str, &str, &str, f64, f64); 10] = [
    ("404", "US", "Atlanta", "GA", 33.749, -84.388),
    ("470", "US", "Atlanta", "GA", 33.749, -84.388),
    ("678", "US", "Atlanta", "GA", 33.749, -84.388),
    ("770", "US", "Marietta", "GA", 33.953, -84.550),
    ("212", "US", "New York", "NY", 40.713, -74.006),
    ("312", "US", "Chicago", "IL", 41.878, -87.630),
    ("415", "US", "San Francisco", "CA", 37.775, -122.419),
    ("512", "US", "Austin", "TX", 30.267, -97.743),
    ("416", "CA", "Toronto", "ON", 43.653, -79.383),
    ("604", "CA", "Vancouver", "BC", 49.283, -123.121),
];

/// The area codes searched when none is asked for.
fn default_area_codes(country: &str, toll: bool) -> Vec<&'static str> {
    if toll {
        return TOLL_FREE.to_vec();
    }
    PLACES
        .iter()
        .filter(|p| p.1 == country)
        .map(|p| p.0)
        .collect()
}

/// Whether `number` (E.164) matches a carrier pattern: digits, letters (as on a keypad) and `*`
/// (any one digit), anywhere in the number.
fn matches_pattern(number: &str, pattern: &str) -> bool {
    let keypad = |c: char| match c.to_ascii_uppercase() {
        'A'..='C' => '2',
        'D'..='F' => '3',
        'G'..='I' => '4',
        'J'..='L' => '5',
        'M'..='O' => '6',
        'P'..='S' => '7',
        'T'..='V' => '8',
        'W'..='Z' => '9',
        other => other,
    };
    let want: Vec<char> = pattern.chars().filter(|c| *c != '+').map(keypad).collect();
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    want.is_empty()
        || digits
            .windows(want.len())
            .any(|w| w.iter().zip(&want).all(|(d, p)| *p == '*' || d == p))
}

/// A valid E.164 number: `+`, then 8 to 15 digits.
fn e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

/// The numbers for sale in `area` (a 3-digit area code), not already owned.
fn for_sale<'a>(area: &'a str, owned: &'a [IncomingNumber]) -> impl Iterator<Item = String> + 'a {
    (100..200)
        .map(move |line| format!("+1{area}5550{line}"))
        .filter(move |n| owned.iter().all(|o| &o.phone_number != n))
}

fn available_view(number: String, country: &'static str) -> AvailableView {
    let place = PLACES.iter().find(|p| number.get(2..5) == Some(p.0));
    AvailableView {
        friendly_name: formatted(&number),
        phone_number: number,
        lata: None,
        locality: place.map(|p| p.2),
        rate_center: place.map(|p| p.2.to_uppercase()),
        latitude: place.map(|p| p.4),
        longitude: place.map(|p| p.5),
        region: place.map(|p| p.3),
        postal_code: None,
        iso_country: country,
        address_requirements: "none",
        beta: false,
        capabilities: CAPABILITIES,
    }
}

pub(super) async fn available(
    State(log): State<Arc<CallLog>>,
    Path((account, country, kind)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    log.authorize(&account, &headers)?;
    let path = format!("/{API_VERSION}/Accounts/{account}/AvailablePhoneNumbers/{country}/{kind}");
    let country: &'static str = match country.as_str() {
        "US" => "US",
        "CA" => "CA",
        _ => return Err(not_found(&path)),
    };
    let toll = match kind.as_str() {
        "Local.json" => false,
        "TollFree.json" => true,
        _ => return Err(not_found(&path)),
    };
    let areas = match params.get("AreaCode") {
        Some(a) if a.len() == 3 && a.bytes().all(|b| b.is_ascii_digit()) => {
            if toll != TOLL_FREE.contains(&a.as_str()) {
                return Err(invalid(&format!(
                    "AreaCode {a} is not a {} area code",
                    if toll { "toll-free" } else { "local" }
                )));
            }
            vec![a.clone()]
        }
        Some(a) => return Err(invalid(&format!("AreaCode must be 3 digits, not {a}"))),
        None => default_area_codes(country, toll)
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    let contains = params.get("Contains").cloned().unwrap_or_default();
    let entries = log.read()?;
    let numbers: Vec<String> = areas
        .iter()
        .flat_map(|a| for_sale(a, &entries.numbers))
        .filter(|n| matches_pattern(n, &contains))
        .collect();
    drop(entries);
    let items: Vec<(&str, AvailableView)> = numbers
        .iter()
        .map(|n| (n.as_str(), available_view(n.clone(), country)))
        .collect();
    page(
        "available_phone_numbers",
        &path,
        &items,
        &params,
        &["AreaCode", "Contains"],
    )
}

pub(super) fn provision(
    e: &mut Entries,
    number: &str,
    settings: NumberSettings,
    now: &str,
) -> Option<IncomingNumber> {
    if e.numbers.iter().any(|n| n.phone_number == number) {
        return None;
    }
    let mut n = IncomingNumber {
        sid: phone_number_sid(number),
        phone_number: number.to_owned(),
        friendly_name: formatted(number),
        voice_url: None,
        voice_method: "POST".into(),
        voice_fallback_url: None,
        voice_fallback_method: "POST".into(),
        status_callback: None,
        status_callback_method: "POST".into(),
        voice_caller_id_lookup: false,
        date_created: now.to_owned(),
        date_updated: now.to_owned(),
    };
    n.apply(settings);
    e.numbers.push(n.clone());
    Some(n)
}

fn now() -> String {
    rfc2822(chrono::Utc::now())
}

/// The settings in a form body, checked; unknown names are ignored, as the carrier does, but
/// the documented ones the emulator does not model are refused rather than dropped.
fn settings(form: &HashMap<String, String>) -> Result<NumberSettings, ApiError> {
    const UNMODELLED: [&str; 14] = [
        "AccountSid",
        "ApiVersion",
        "SmsApplicationSid",
        "SmsFallbackMethod",
        "SmsFallbackUrl",
        "SmsMethod",
        "SmsUrl",
        "VoiceApplicationSid",
        "EmergencyStatus",
        "EmergencyAddressSid",
        "TrunkSid",
        "IdentitySid",
        "AddressSid",
        "BundleSid",
    ];
    if let Some(name) = UNMODELLED.iter().find(|n| form.contains_key(**n)) {
        return Err(invalid(&format!("{name} is not emulated")));
    }
    if form.get("VoiceReceiveMode").is_some_and(|m| m != "voice") {
        return Err(invalid("VoiceReceiveMode: only voice is emulated"));
    }
    let url = |name: &str| -> Result<Option<String>, ApiError> {
        match form.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(Some(String::new())),
            Some(v) => match url::Url::parse(v) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(Some(v.clone())),
                _ => Err(invalid(&format!("{name} {v} is not an http or https URL"))),
            },
        }
    };
    let method = |name: &str| -> Result<Option<String>, ApiError> {
        match form.get(name).map(|m| m.to_ascii_uppercase()) {
            None => Ok(None),
            Some(m) if m == "GET" || m == "POST" => Ok(Some(m)),
            Some(m) => Err(invalid(&format!("{name} must be GET or POST, not {m}"))),
        }
    };
    let lookup = match form.get("VoiceCallerIdLookup").map(String::as_str) {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(v) => {
            return Err(invalid(&format!(
                "VoiceCallerIdLookup must be true or false, not {v}"
            )));
        }
    };
    Ok(NumberSettings {
        friendly_name: form.get("FriendlyName").cloned(),
        voice_url: url("VoiceUrl")?,
        voice_method: method("VoiceMethod")?,
        voice_fallback_url: url("VoiceFallbackUrl")?,
        voice_fallback_method: method("VoiceFallbackMethod")?,
        status_callback: url("StatusCallback")?,
        status_callback_method: method("StatusCallbackMethod")?,
        voice_caller_id_lookup: lookup,
    })
}

fn form(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub(super) async fn buy(
    State(log): State<Arc<CallLog>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    log.authorize(&account, &headers)?;
    let form = form(&body);
    let settings = settings(&form)?;
    let mut entries = log.write()?;
    let number = match (form.get("PhoneNumber"), form.get("AreaCode")) {
        (Some(n), _) if !e164(n) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                21421,
                &format!("PhoneNumber {n} is invalid"),
            ));
        }
        (Some(n), _) => {
            let area = n.get(2..5).unwrap_or_default();
            if !n.starts_with("+1") || !for_sale(area, &entries.numbers).any(|s| &s == n) {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    21422,
                    &format!("PhoneNumber {n} is not available"),
                ));
            }
            n.clone()
        }
        (None, Some(area)) => match for_sale(area, &entries.numbers).next() {
            Some(n) if area.len() == 3 && area.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    21452,
                    &format!("No phone numbers found in area code {area}"),
                ));
            }
        },
        (None, None) => return Err(invalid("PhoneNumber or AreaCode is required")),
    };
    match provision(&mut entries, &number, settings, &now()) {
        Some(n) => Ok((StatusCode::CREATED, axum::Json(n.view(&log.account_sid))).into_response()),
        None => Err(error(
            StatusCode::BAD_REQUEST,
            21422,
            &format!("PhoneNumber {number} is not available"),
        )),
    }
}

pub(super) async fn list(
    State(log): State<Arc<CallLog>>,
    Path(account): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    log.authorize(&account, &headers)?;
    let entries = log.read()?;
    let wanted = |n: &IncomingNumber| {
        params
            .get("PhoneNumber")
            .is_none_or(|p| matches_pattern(&n.phone_number, p))
            && params
                .get("FriendlyName")
                .is_none_or(|f| *f == n.friendly_name)
            && params.get("Beta").is_none_or(|b| b == "false")
            && params.get("Origin").is_none_or(|o| o == "twilio")
    };
    let items: Vec<_> = entries
        .numbers
        .iter()
        .filter(|n| wanted(n))
        .map(|n| (n.sid.as_str(), n.view(&log.account_sid)))
        .collect();
    let path = format!("/{API_VERSION}/Accounts/{account}/IncomingPhoneNumbers.json");
    page(
        "incoming_phone_numbers",
        &path,
        &items,
        &params,
        &["PhoneNumber", "FriendlyName", "Beta", "Origin"],
    )
}

/// The owned number a `PN….json` path segment names.
fn owned<'a>(entries: &'a mut Entries, file: &str) -> Option<&'a mut IncomingNumber> {
    match split_extension(file) {
        (sid, Some("json")) => entries.numbers.iter_mut().find(|n| n.sid == sid),
        _ => None,
    }
}

fn missing(account: &str, file: &str) -> ApiError {
    not_found(&format!(
        "/{API_VERSION}/Accounts/{account}/IncomingPhoneNumbers/{file}"
    ))
}

pub(super) async fn fetch(
    State(log): State<Arc<CallLog>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    log.authorize(&account, &headers)?;
    let mut entries = log.write()?;
    match owned(&mut entries, &file) {
        Some(n) => Ok(axum::Json(n.view(&log.account_sid)).into_response()),
        None => Err(missing(&account, &file)),
    }
}

pub(super) async fn update(
    State(log): State<Arc<CallLog>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    log.authorize(&account, &headers)?;
    let settings = settings(&form(&body))?;
    let mut entries = log.write()?;
    match owned(&mut entries, &file) {
        Some(n) => {
            n.apply(settings);
            n.date_updated = now();
            Ok(axum::Json(n.view(&log.account_sid)).into_response())
        }
        None => Err(missing(&account, &file)),
    }
}

pub(super) async fn release(
    State(log): State<Arc<CallLog>>,
    Path((account, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    log.authorize(&account, &headers)?;
    let mut entries = log.write()?;
    let Some(sid) = owned(&mut entries, &file).map(|n| n.sid.clone()) else {
        return Err(missing(&account, &file));
    };
    entries.numbers.retain(|n| n.sid != sid);
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_digits_letters_and_wildcards_anywhere() {
        assert!(matches_pattern("+14045550123", "555"));
        assert!(matches_pattern("+14045550123", "404*5"));
        assert!(matches_pattern("+14045550123", "+1404"));
        assert!(matches_pattern("+14045550123", "JKL")); // 5 5 5
        assert!(!matches_pattern("+14045550123", "999"));
        assert!(matches_pattern("+14045550123", ""));
    }

    #[test]
    fn numbers_for_sale_are_fictional_and_not_owned() {
        let owned = vec![IncomingNumber {
            sid: phone_number_sid("+14045550100"),
            phone_number: "+14045550100".into(),
            friendly_name: String::new(),
            voice_url: None,
            voice_method: "POST".into(),
            voice_fallback_url: None,
            voice_fallback_method: "POST".into(),
            status_callback: None,
            status_callback_method: "POST".into(),
            voice_caller_id_lookup: false,
            date_created: String::new(),
            date_updated: String::new(),
        }];
        let first: Vec<String> = for_sale("404", &owned).take(2).collect();
        assert_eq!(first, ["+14045550101", "+14045550102"]);
        assert_eq!(for_sale("404", &[]).count(), 100);
        assert!(toll_free("+18005550100") && !toll_free("+14045550100"));
    }
}
