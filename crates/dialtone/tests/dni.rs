//! DNI end to end: the snippet in a real headless Chromium on a landing page served on another
//! loopback port, then a call to the number the page showed, attributed in the call log. And the
//! session API's edges: CORS, bots, rate limits, bad input, keepalive and release, restarts,
//! concurrent allocation.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use dialtone_carrier::{Answer, HttpTransport, Script, run_call};
use dialtone_core::demo;
use serde_json::{Value, json};

const POOL: [&str; 4] = [
    "+14045550201",
    "+14045550202",
    "+14045550203",
    "+14045550204",
];
const ADS_QUERY: &str = "utm_source=google&utm_medium=cpc&utm_term=emergency+plumber&gclid=X";

/// The landing page a customer would build: the demo company's number written five ways and in
/// a `tel:` link, one more added after load, and the snippet from dialtone.
fn landing_page(dialtone: &str) -> String {
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Acme Plumbing</title></head><body>
<header>Call now: <b id="formatted">(404) 555-0199</b></header>
<p id="dashes">Emergencies: 404-555-0199</p>
<p id="dots">Office 404.555.0199 (weekdays)</p>
<p id="intl">From abroad +1 404 555 0199.</p>
<p id="digits">4045550199</p>
<p id="typeset">Call 404–555–0199 or 404/555-0199</p>
<p id="other">Our fax, 404-555-0198, and order 140455501999 stay as they are.</p>
<a id="tel" href="tel:+14045550199">Tap to call</a>
<p id="split">Text us: <a href="tel:4045550199"><b>(404)</b> <span class="big">555</span>-0199</a></p>
<div id="lines"><p>Suite 404</p><p>555-0199 is our ticket number</p></div>
<p id="later"></p>
<p id="later-split"></p>
<script>setTimeout(function () {{
  document.getElementById("later").textContent = "Chat: (404) 555-0199";
  document.getElementById("later-split").innerHTML = "Or <i>404</i>-555-<i>0199</i>";
}}, 400);</script>
<script src="{dialtone}/dni/v1/swap.js?company=acme-plumbing" async></script>
</body></html>"#
    )
}

/// Serves the landing page on its own loopback port (another origin than dialtone's).
async fn landing_server(dialtone: &str) -> String {
    let page = landing_page(dialtone);
    let app = axum::Router::new().route(
        "/landing",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/landing")
}

/// The page as Chromium shows it once its scripts ran (virtual time lets timers and requests
/// finish before the DOM is dumped). `profile` keeps the visitor's cookies between visits.
async fn browse(profile: &Path, url: &str, user_agent: Option<&str>) -> String {
    let ua = user_agent.map(|ua| format!("--user-agent={ua}"));
    browse_with(profile, url, ua.as_slice()).await
}

async fn browse_with(profile: &Path, url: &str, extra: &[String]) -> String {
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--virtual-time-budget=10000",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra);
    // Headless Chromium says so in its user agent, and dialtone treats headless browsers as bots;
    // the visitors these tests play use a desktop browser's.
    if !extra.iter().any(|a| a.starts_with("--user-agent=")) {
        cmd.arg(format!("--user-agent={BROWSER}"));
    }
    cmd.arg(url);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .unwrap_or_else(|e| {
            panic!("cannot run chromium ({e}); `bash scripts/test-deps.sh` installs it")
        });
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text (or, for the link, the href) of the element with `id`.
fn shown(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in\n{dom}"));
    let rest = &dom[start..];
    if id == "tel" {
        let href = &rest[rest.find("href=\"").expect("href") + 6..];
        return href[..href.find('"').expect("quote")].to_owned();
    }
    let text = &rest[rest.find('>').expect(">") + 1..];
    text[..text.find('<').expect("<")].to_owned()
}

/// The text of the element with `id`, tags removed, up to its closing `</p>` or `</div>`.
fn text_of(dom: &str, id: &str) -> String {
    text_until(dom, id, &["</p>\n", "</div>"])
}

/// The text from the element with `id` to the first of `ends`, tags removed.
fn text_until(dom: &str, id: &str, ends: &[&str]) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in\n{dom}"));
    let rest = &dom[start..];
    let rest = &rest[rest.find('>').expect(">") + 1..];
    let end = ends.iter().filter_map(|e| rest.find(e)).min().expect("end");
    let mut text = String::new();
    let mut in_tag = false;
    for c in rest[..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
}

/// The national digits a page shows in each place, asserting each keeps its written shape.
fn number_on(dom: &str) -> String {
    let formatted = shown(dom, "formatted");
    let national = formatted.replace(['(', ')', ' ', '-'], "");
    assert_eq!(national.len(), 10, "{formatted}");
    let (a, b, c) = (&national[..3], &national[3..6], &national[6..]);
    assert_eq!(formatted, format!("({a}) {b}-{c}"));
    assert_eq!(shown(dom, "dashes"), format!("Emergencies: {a}-{b}-{c}"));
    assert_eq!(shown(dom, "dots"), format!("Office {a}.{b}.{c} (weekdays)"));
    assert_eq!(shown(dom, "intl"), format!("From abroad +1 {a} {b} {c}."));
    assert_eq!(shown(dom, "digits"), national);
    assert_eq!(
        shown(dom, "typeset"),
        format!("Call {a}–{b}–{c} or {a}/{b}-{c}")
    );
    assert_eq!(shown(dom, "tel"), format!("tel:+1{national}"));
    assert_eq!(
        shown(dom, "later"),
        format!("Chat: ({a}) {b}-{c}"),
        "content added after load"
    );
    assert_eq!(
        shown(dom, "other"),
        "Our fax, 404-555-0198, and order 140455501999 stay as they are."
    );
    // Split across inline elements, the number is swapped digit by digit and the markup stays.
    assert_eq!(text_of(dom, "split"), format!("Text us: ({a}) {b}-{c}"));
    assert!(
        dom.contains(&format!(
            "<b>({a})</b> <span class=\"big\">{b}</span>-{c}</a>"
        )),
        "{dom}"
    );
    assert_eq!(
        text_of(dom, "later-split"),
        format!("Or {a}-{b}-{c}"),
        "split content added after load"
    );
    // Digits in two paragraphs are not one number.
    assert_eq!(
        text_of(dom, "lines"),
        "Suite 404555-0199 is our ticket number"
    );
    format!("+1{national}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snippet_swaps_numbers_in_chromium_and_the_call_is_attributed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--demo"]);
    let landing = landing_server(&server.url).await;
    let from_ads = format!("{landing}?{ADS_QUERY}");

    // A visitor from a Google Ads click sees one of the pool's numbers everywhere.
    let alice = dir.path().join("alice");
    let dom = browse(&alice, &from_ads, None).await;
    let shown_to_alice = number_on(&dom);
    assert!(POOL.contains(&shown_to_alice.as_str()), "{shown_to_alice}");

    // She calls it.
    let call = call_and_read(&server, &shown_to_alice, 0xd41).await;
    assert_eq!(call["source"], "Google Ads", "{call:#}");
    assert_eq!(call["keywords"], "emergency plumber");
    assert_eq!(call["gclid"], "X");
    assert_eq!(call["medium"], "cpc");
    assert_eq!(call["utm_source"], "google");
    assert_eq!(call["landing_page_url"], from_ads);
    assert_eq!(call["attribution"]["confidence"], "certain");
    assert_eq!(call["first_call"], true);
    assert_eq!(call["answered"], true);

    // A second visitor from the same ad gets another number.
    let bob = dir.path().join("bob");
    let shown_to_bob = number_on(&browse(&bob, &from_ads, None).await);
    assert!(POOL.contains(&shown_to_bob.as_str()));
    assert_ne!(shown_to_bob, shown_to_alice);

    // Alice on another page of the site, without the ad's parameters, keeps her number.
    let again = number_on(&browse(&alice, &landing, None).await);
    assert_eq!(again, shown_to_alice);

    // A visitor without a tracked source, and a crawler from the ad, see the website number.
    let carol = dir.path().join("carol");
    assert_eq!(
        number_on(&browse(&carol, &landing, None).await),
        "+14045550199"
    );
    let crawler = dir.path().join("crawler");
    let dom = browse(
        &crawler,
        &from_ads,
        Some("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    )
    .await;
    assert_eq!(number_on(&dom), "+14045550199");

    // The pool reports what happened.
    let (status, pools) = server.api("/api/v1/dni/pools", Some(demo::API_KEY)).await;
    assert_eq!(status, 200);
    let pool = &pools["pools"][0];
    assert_eq!(pool["tracker"], "Google Ads");
    assert_eq!(pool["live_sessions"], 2, "{pools}");
    assert_eq!(pool["attributed_calls"], 1);
    assert_eq!(pool["peak_concurrent_sessions"], 2);
}

/// The landing page `serve --demo` offers a person to watch the swap (README): from an ad every
/// written form changes to a pool number; arriving directly, nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_landing_page_shows_the_swap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--demo"]);
    let page = format!("{}/dni/demo?company=acme-plumbing", server.url);

    let dom = browse(
        &dir.path().join("from-ad"),
        &format!("{page}&{ADS_QUERY}"),
        None,
    )
    .await;
    let formatted = shown(&dom, "formatted");
    let national: String = formatted.chars().filter(char::is_ascii_digit).collect();
    assert!(
        POOL.contains(&format!("+1{national}").as_str()),
        "{formatted}"
    );
    let (a, b, c) = (&national[..3], &national[3..6], &national[6..]);
    assert_eq!(formatted, format!("({a}) {b}-{c}"));
    assert_eq!(shown(&dom, "typeset"), format!("{a}–{b}–{c}"));
    assert_eq!(
        text_until(&dom, "split", &["</span>"]),
        format!("({a}) {b}-{c}")
    );
    assert_eq!(shown(&dom, "tel"), format!("tel:+1{national}"));
    assert_eq!(
        shown(&dom, "later"),
        format!("Added after load: {a}-{b}-{c}")
    );
    assert!(dom.contains("id=\"status\">swapped — Google Ads"), "{dom}");

    let dom = browse(&dir.path().join("direct"), &page, None).await;
    assert_eq!(shown(&dom, "formatted"), "(404) 555-0199");
    assert_eq!(text_until(&dom, "split", &["</span>"]), "(404) 555-0199");
    assert!(dom.contains("id=\"status\">kept"), "{dom}");
}

/// `cookie_domain` shares the visitor across the company's subdomains: a visitor who came to
/// www from an ad keeps their number on shop, another host of the same site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_keeps_their_number_across_subdomains_with_a_cookie_domain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = demo::CONFIG.replace(
        r#"origins = ["http://127.0.0.1:*", "http://localhost:*"]"#,
        r#"origins = ["http://www.acme.test:*", "http://shop.acme.test:*"]
cookie_domain = "acme.test""#,
    );
    assert_ne!(config, demo::CONFIG);
    let server = Server::with_config(dir.path(), &config, MONDAY_MORNING);
    let landing = landing_server(&server.url).await;
    let port = landing
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/landing");
    // Both hosts are this machine's loopback, as DNS would make them the company's web server.
    let hosts = ["--host-resolver-rules=MAP *.acme.test 127.0.0.1".to_owned()];
    let visitor = dir.path().join("visitor");

    let www = format!("http://www.acme.test:{port}/landing?{ADS_QUERY}");
    let on_www = number_on(&browse_with(&visitor, &www, &hosts).await);
    assert!(POOL.contains(&on_www.as_str()), "{on_www}");

    let shop = format!("http://shop.acme.test:{port}/landing");
    assert_eq!(
        number_on(&browse_with(&visitor, &shop, &hosts).await),
        on_www,
        "the same visitor on another subdomain"
    );

    // Someone else arriving on shop without an ad keeps the website number.
    let other = dir.path().join("other");
    assert_eq!(
        number_on(&browse_with(&other, &shop, &hosts).await),
        "+14045550199"
    );
}

/// Calls `to` (the mobile answers) and reads the call back from the API.
async fn call_and_read(server: &Server, to: &str, n: u64) -> Value {
    let setup = server.demo_call(to, sid("CA", n));
    let script = Script {
        answer: Answer::Numbers(vec!["+14045550112".into()]),
        ..Script::default()
    };
    let transcript = run_call(&HttpTransport::new(), &setup, &script).await;
    assert!(transcript.errors().is_empty(), "{transcript}");
    server.call(&setup.call_sid).await
}

/// What `amp-call-tracking` asks: the page's URL and a visitor id filled in by AMP (no referrer,
/// as when the visitor came straight to the page or from another page of the site), from a page
/// served at `origin` on behalf of `source`. Answers the status, the CORS headers AMP checks and
/// the body.
async fn amp_number(
    server: &Server,
    origin: &str,
    source: Option<&str>,
    page: &str,
    visitor: &str,
) -> (u16, [Option<String>; 3], Value) {
    let mut query = vec![
        ("company", "acme-plumbing"),
        ("url", page),
        ("vid", visitor),
    ];
    if let Some(s) = source {
        query.push(("__amp_source_origin", s));
    }
    let res = reqwest::Client::new()
        .get(format!("{}/dni/v1/amp", server.url))
        .query(&query)
        .header("origin", origin)
        .header("user-agent", BROWSER)
        .send()
        .await
        .expect("AMP request");
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let headers = [
        header("access-control-allow-origin"),
        header("access-control-allow-credentials"),
        header("amp-access-control-allow-source-origin"),
    ];
    let status = res.status().as_u16();
    (status, headers, res.json().await.unwrap_or(Value::Null))
}

/// AMP pages run no custom scripts; `amp-call-tracking` asks `/dni/v1/amp` under AMP's CORS
/// protocol, and the call to the number it shows is attributed as for the snippet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amp_pages_get_a_pool_number_and_the_call_is_attributed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), &["--demo"]);
    let publisher = "http://127.0.0.1:4000";
    let cache = "https://127-0-0-1-4000.cdn.ampproject.org";
    let page = format!("{publisher}/amp/plumbing?{ADS_QUERY}");

    // Served from an AMP cache on behalf of the company's site.
    let (status, headers, body) =
        amp_number(&server, cache, Some(publisher), &page, "amp-visitor-1").await;
    assert_eq!(status, 200, "{body}");
    let number = body["phoneNumber"]
        .as_str()
        .expect("phoneNumber")
        .to_owned();
    assert!(POOL.contains(&number.as_str()), "{body}");
    assert_eq!(
        body["formattedPhoneNumber"],
        format!("(404) 555-{}", &number[8..])
    );
    assert_eq!(
        headers,
        [
            Some(cache.to_owned()),
            Some("true".to_owned()),
            Some(publisher.to_owned())
        ]
    );

    // The same visitor on the site itself keeps the number: AMP keeps no session cookie, so
    // the visitor id finds the live session (no second number for one visitor).
    let (_, _, again) = amp_number(&server, publisher, None, &page, "amp-visitor-1").await;
    assert_eq!(again["phoneNumber"], number.as_str());
    let next_page = format!("{publisher}/amp/drains");
    let (_, _, again) = amp_number(&server, publisher, None, &next_page, "amp-visitor-1").await;
    assert_eq!(again["phoneNumber"], number.as_str());

    let call = call_and_read(&server, &number, 0xa3b).await;
    assert_eq!(call["source"], "Google Ads", "{call:#}");
    assert_eq!(call["keywords"], "emergency plumber");
    assert_eq!(call["landing_page_url"], page);

    // Back from another ad, the visitor starts a new session (its keyword is the new one) and,
    // the old lease still running, gets another number.
    let other_ad =
        format!("{publisher}/amp/plumbing?utm_source=google&utm_medium=cpc&utm_term=leak&gclid=Y");
    let (_, _, body) = amp_number(&server, publisher, None, &other_ad, "amp-visitor-1").await;
    let second = body["phoneNumber"].as_str().expect("phoneNumber");
    assert!(POOL.contains(&second) && second != number, "{body}");

    // Without a tracked source the page keeps the website number.
    let direct = format!("{publisher}/amp/plumbing");
    let (status, _, body) = amp_number(&server, cache, Some(publisher), &direct, "amp-2").await;
    assert_eq!(
        (status, &body["phoneNumber"]),
        (200, &json!("+14045550199"))
    );

    // Refused: a cache that does not say whose page it serves, a publisher the company does not
    // have, another site; and a config attribute AMP did not fill in.
    for (origin, source, url, want) in [
        (cache, None, page.as_str(), 403),
        (cache, Some("https://evil.example"), page.as_str(), 403),
        ("https://evil.example", None, page.as_str(), 403),
        (cache, Some(publisher), "SOURCE_URL", 400),
    ] {
        let (status, _, body) = amp_number(&server, origin, source, url, "amp-3").await;
        assert_eq!(status, want, "{origin} {source:?} {url}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
}

fn ad_visit(visitor: Option<&str>) -> Value {
    json!({
        "company": "acme-plumbing",
        "visitor_id": visitor,
        "landing_url": format!("https://acme.example/?{ADS_QUERY}"),
        "referrer": "https://www.google.com/",
    })
}

#[tokio::test]
async fn the_session_api_refuses_what_it_should_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(dir.path(), &["--demo"]);
    let allowed = [("origin", "http://127.0.0.1:4000")];

    // CORS: the company's origins only, and the answer names the origin.
    let (status, body) = server
        .dni_session(ad_visit(None), &[("origin", "https://evil.example")])
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or("")
            .contains("evil.example")
    );
    let res = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/dni/v1/sessions", server.url),
        )
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );

    // Bad input gets a reason.
    for (body, want) in [
        (json!({"company": "acme-plumbing"}), 400),
        (
            json!({"company": "nope", "landing_url": "https://a.example/"}),
            404,
        ),
        (
            json!({"company": "acme-plumbing", "landing_url": "javascript:alert(1)"}),
            400,
        ),
        (
            json!({"company": "acme-plumbing", "landing_url": format!("https://a.example/?q={}", "x".repeat(5000))}),
            400,
        ),
    ] {
        let (status, res) = server.dni_session(body.clone(), &allowed).await;
        assert_eq!(status, want, "{body} -> {res}");
        assert!(res["error"].is_string(), "{res}");
    }

    // A session: the number, the lease, a keepalive, a resume from the next page.
    let (status, first) = server
        .dni_session(ad_visit(Some("visitor-alice-1")), &allowed)
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["swap"], true);
    assert_eq!(first["lease_s"], 1200);
    assert_eq!(first["visitor_id"], "visitor-alice-1");
    let session = first["session_id"].as_str().expect("session id").to_owned();
    let number = first["number"].as_str().expect("number").to_owned();
    let keepalive = reqwest::Client::new()
        .post(format!(
            "{}/dni/v1/sessions/{session}/keepalive",
            server.url
        ))
        .header("origin", "http://127.0.0.1:4000")
        .send()
        .await
        .expect("keepalive");
    assert_eq!(keepalive.status().as_u16(), 200);
    let forged = format!(
        "{}.{}",
        session.split('.').next().unwrap_or(""),
        "0".repeat(32)
    );
    let res = reqwest::Client::new()
        .post(format!("{}/dni/v1/sessions/{forged}/keepalive", server.url))
        .send()
        .await
        .expect("keepalive");
    assert_eq!(
        res.status().as_u16(),
        404,
        "a session id without its secret is refused"
    );

    // The lease is durable: after a kill -9 the page resumes with the same number, and nobody
    // else is given it.
    server.kill9();
    let server = Server::start(dir.path(), &["--demo"]);
    let next_page = json!({
        "company": "acme-plumbing",
        "visitor_id": "visitor-alice-1",
        "session_id": session,
        "landing_url": "https://acme.example/contact",
    });
    let (status, resumed) = server.dni_session(next_page, &allowed).await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["number"], number.as_str());
    // (Each from an address of its own: one address holds at most half a pool.)
    for i in 0..3 {
        let (_, other) = server
            .dni_session_from(
                &format!("127.0.0.{}", 10 + i),
                ad_visit(Some(&format!("visitor-other-{i}"))),
                &allowed,
            )
            .await;
        assert_ne!(other["number"], number.as_str(), "{other}");
        assert_eq!(other["shared"], false);
    }
    // The pool is now exhausted: the next visitor shares, and says so.
    let (_, shared) = server
        .dni_session_from("127.0.0.20", ad_visit(Some("visitor-fifth")), &allowed)
        .await;
    assert_eq!(shared["shared"], true, "{shared}");
    // Five visitors on four numbers: the pool says it needs more.
    let (_, pools) = server.api("/api/v1/dni/pools", Some(demo::API_KEY)).await;
    let pool = &pools["pools"][0];
    assert_eq!(pool["peak_concurrent_sessions"], 5, "{pools}");
    assert_eq!(pool["recommended_pool_size"], 7, "{pools}");
    assert_eq!(pool["shared_allocations"], 1, "{pools}");

    // Release ends the lease.
    let res = reqwest::Client::new()
        .post(format!("{}/dni/v1/sessions/{session}/release", server.url))
        .send()
        .await
        .expect("release");
    assert_eq!(res.status().as_u16(), 204);
    let res = reqwest::Client::new()
        .post(format!(
            "{}/dni/v1/sessions/{session}/keepalive",
            server.url
        ))
        .send()
        .await
        .expect("keepalive");
    assert_eq!(res.status().as_u16(), 404);

    // One address cannot drain a pool: after the burst (10 by default) it is told to wait.
    let mut limited = None;
    for i in 0..20 {
        let (status, body) = server
            .dni_session(ad_visit(Some(&format!("flood-{i:04}"))), &allowed)
            .await;
        if status == 429 {
            limited = Some((i, body));
            break;
        }
    }
    let (at, body) = limited.expect("rate limited within 20 sessions");
    assert!(at <= 10, "limited only after {at}");
    assert!(body["retry_after_s"].as_i64().unwrap_or(0) >= 1, "{body}");
}

#[tokio::test]
async fn concurrent_visitors_never_share_a_pool_that_has_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The demo with a 40-number pool and no rate limit worth the name.
    let pool: Vec<String> = (0..40)
        .map(|i| format!("\"+1404555{:04}\"", 3000 + i))
        .collect();
    let config = demo::CONFIG
        .replace(
            r#"pool = ["+14045550201", "+14045550202", "+14045550203", "+14045550204"]"#,
            &format!("pool = [{}]", pool.join(", ")),
        )
        .replace(
            "[[carrier_accounts]]",
            "[dni]\nsessions_per_minute_per_address = 100000\nburst = 1000\n\n[[carrier_accounts]]",
        );
    let file = dir.path().join("dialtone.toml");
    std::fs::write(&file, config).expect("write config");
    let server = Server::start(dir.path(), &["--config", file.to_str().expect("utf-8")]);
    let server = std::sync::Arc::new(server);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let (status, body) = server
                .dni_session_from(
                    &format!("127.0.1.{i}"),
                    ad_visit(Some(&format!("concurrent-{i:03}"))),
                    &[],
                )
                .await;
            assert_eq!(status, 200, "{body}");
            body["number"].as_str().expect("number").to_owned()
        }));
    }
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.expect("task"));
    }
    numbers.sort();
    let before = numbers.len();
    numbers.dedup();
    assert_eq!(
        numbers.len(),
        before,
        "two visitors got the same number while others were free"
    );
}
