//! Shared by the integration tests: the real `dialtone` binary on a random port with a temporary
//! database, and a carrier to talk to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use dialtone_core::demo;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_dialtone");
/// Monday 23 November 2026, 10:00 in New York: the demo menu flow's business hours.
pub const MONDAY_MORNING: &str = "2026-11-23T10:00:00-05:00";
pub const SATURDAY: &str = "2026-11-28T10:00:00-05:00";
pub const CALLER: &str = "+17705550123";
/// A browser's user agent (DNI gives crawlers the website number).
pub const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";

pub struct Server {
    child: Child,
    pub url: String,
    pub db: PathBuf,
}

impl Server {
    /// `dialtone serve --demo` on a random port, with the clock at `clock_start`.
    pub fn demo(dir: &Path, clock_start: &str) -> Server {
        Self::start(dir, &["--demo", "--clock-start", clock_start])
    }

    /// `dialtone serve --demo` with the configuration `config` (written to `dir`), the clock at
    /// `clock_start`.
    pub fn with_config(dir: &Path, config: &str, clock_start: &str) -> Server {
        let file = dir.join("dialtone.toml");
        std::fs::write(&file, config).expect("write the configuration");
        let file = file.to_str().expect("a UTF-8 path").to_owned();
        Self::start(
            dir,
            &["--demo", "--config", &file, "--clock-start", clock_start],
        )
    }

    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        let db = dir.join("dialtone.db");
        Self::start_on(&format!("sqlite://{}", db.display()), db, extra)
    }

    /// `dialtone serve` on the database `url` (`db`: its file, for SQLite).
    pub fn start_on(url: &str, db: PathBuf, extra: &[&str]) -> Server {
        Self::listening(url, db, "127.0.0.1:0", extra)
    }

    /// `dialtone serve` on the database `url`, listening on `listen`.
    pub fn listening(url: &str, db: PathBuf, listen: &str, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", listen, "--database", url])
            .args(extra)
            .env("RUST_LOG", "warn")
            // On PostgreSQL, the node's spool beside the test's files, not in the checkout.
            .env("DIALTONE_SPOOL_DIR", db.with_file_name("spool"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn dialtone serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("dialtone serve did not start within 30 s");
            }
        };
        Server { child, url, db }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// A carrier request signed with the demo token, as the carrier would send it.
    pub async fn post_signed(
        &self,
        path_and_query: &str,
        params: &[(&str, &str)],
    ) -> (u16, String) {
        self.post_signed_with(demo::AUTH_TOKEN, path_and_query, params)
            .await
    }

    pub async fn post_signed_with(
        &self,
        token: &str,
        path_and_query: &str,
        params: &[(&str, &str)],
    ) -> (u16, String) {
        let url = format!("{}{}", self.url, path_and_query);
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let signature = dialtone_twiml::compute_signature(token, &url, &params);
        post_raw(
            &url,
            Some(&signature),
            dialtone_twiml::encode(&params).into_bytes(),
        )
        .await
    }

    /// An inbound call `call_sid` to `to` from the carrier; the TwiML answered (asserted 200).
    pub async fn voice(&self, call_sid: &str, to: &str) -> String {
        let p = inbound(call_sid, to);
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, twiml) = self.post_signed("/twilio/voice", &p).await;
        assert_eq!(code, 200, "{twiml}");
        twiml
    }

    /// A leg's status callback for the demo company, as the carrier sends it; asserted 200.
    pub async fn leg(&self, parent: &str, leg: &str, to: &str, status: &str, event: &str) {
        let p = [
            ("AccountSid", demo::ACCOUNT_SID),
            ("CallSid", leg),
            ("ParentCallSid", parent),
            ("CallStatus", status),
            ("StatusCallbackEvent", event),
            ("Direction", "outbound-dial"),
            ("From", CALLER),
            ("To", to),
        ];
        let (code, body) = self
            .post_signed("/twilio/leg?company=acme-plumbing", &p)
            .await;
        assert_eq!(code, 200, "{body}");
    }

    /// How many numbers an inbound call to `to` rings at once.
    pub async fn numbers_dialed(&self, call_sid: &str, to: &str) -> usize {
        self.voice(call_sid, to).await.matches("<Number").count()
    }

    /// A DNI session request as the snippet sends it (text/plain JSON, a browser's user agent),
    /// with `headers` added.
    pub async fn dni_session(&self, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
        self.dni_session_from("127.0.0.1", body, headers).await
    }

    /// [`Server::dni_session`] from the loopback address `from` (127.0.0.0/8): another client, as
    /// dialtone counts clients (a few numbers of a pool per address).
    pub async fn dni_session_from(
        &self,
        from: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let client = reqwest::Client::builder()
            .local_address(from.parse::<std::net::IpAddr>().expect("an address"))
            .build()
            .expect("a client");
        let mut req = client
            .post(format!("{}/dni/v1/sessions", self.url))
            .header("content-type", "text/plain;charset=UTF-8")
            .header("user-agent", BROWSER)
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The pool number a new demo-company visitor landing on `landing_url` is shown.
    pub async fn pool_number_for(&self, landing_url: &str) -> String {
        let (_, session) = self
            .dni_session(
                serde_json::json!({ "company": "acme-plumbing", "landing_url": landing_url }),
                &[],
            )
            .await;
        session["number"]
            .as_str()
            .unwrap_or_else(|| panic!("no pool number for {landing_url}: {session}"))
            .to_owned()
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text")
    }

    pub async fn api(&self, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut req = reqwest::Client::new().get(format!("{}{}", self.url, path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let res = req.send().await.expect("API request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn api_post(&self, path: &str, key: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(format!("{}{}", self.url, path))
            .bearer_auth(key)
            .send()
            .await
            .expect("API request");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn calls(&self) -> Vec<Value> {
        let (status, body) = self
            .api("/api/v1/calls?per_page=250", Some(demo::API_KEY))
            .await;
        assert_eq!(status, 200, "{body}");
        body["calls"].as_array().cloned().unwrap_or_default()
    }

    /// The carrier's side of a demo-account call from `CALLER` to `to`, with this server's
    /// voice and status URLs.
    pub fn demo_call(&self, to: &str, call_sid: String) -> dialtone_carrier::CallSetup {
        dialtone_carrier::CallSetup {
            account_sid: demo::ACCOUNT_SID.into(),
            auth_token: demo::AUTH_TOKEN.into(),
            voice_url: format!("{}/twilio/voice", self.url),
            status_callback: Some(format!("{}/twilio/status", self.url)),
            fallback_url: None,
            from: CALLER.into(),
            to: to.into(),
            call_sid,
            api_base_url: None,
            arrived_at: chrono::Utc::now(),
        }
    }

    pub async fn call(&self, sid: &str) -> Value {
        let (status, body) = self
            .api(&format!("/api/v1/calls/{sid}"), Some(demo::API_KEY))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn post_raw(url: &str, signature: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(s) = signature {
        req = req.header("x-twilio-signature", s);
    }
    let res = req.send().await.expect("request");
    (res.status().as_u16(), res.text().await.unwrap_or_default())
}

/// The parameters of an inbound call to `to`.
pub fn inbound(call_sid: &str, to: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AccountSid", demo::ACCOUNT_SID.to_owned()),
        ("ApiVersion", "2010-04-01".to_owned()),
        ("CallSid", call_sid.to_owned()),
        ("CallStatus", "ringing".to_owned()),
        ("Direction", "inbound".to_owned()),
        ("From", CALLER.to_owned()),
        ("To", to.to_owned()),
    ]
}

pub fn sid(prefix: &str, n: u64) -> String {
    format!("{prefix}{n:032x}")
}

/// Runs `dialtone` with arguments and returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run dialtone");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub const OTHER_SID: &str = "AC00000000000000000000000000000002";
pub const OTHER_TOKEN: &str = "other-carrier-token";
pub const BOBS_NUMBER: &str = "+13125550100";

/// The demo configuration plus a second account (`other`) with its own company (`bobs-hvac`,
/// round robin between two phones) and number, on the demo carrier account or, with
/// `own_carrier`, on a carrier account of its own.
pub fn with_second_account(own_carrier: bool) -> String {
    let (carrier_block, carrier) = if own_carrier {
        (
            format!(
                "[[carrier_accounts]]\nname = \"other-carrier\"\naccount_sid = \"{OTHER_SID}\"\nauth_token = \"{OTHER_TOKEN}\"\n"
            ),
            "other-carrier",
        )
    } else {
        (String::new(), "demo-carrier")
    };
    format!(
        r#"{demo}
{carrier_block}
[[accounts]]
slug = "other"
name = "Other Agency"

[[companies]]
slug = "bobs-hvac"
name = "Bob's HVAC"
account = "other"
carrier_account = "{carrier}"
time_zone = "America/Chicago"
primary_number = "+13125550111"

[[companies.trackers]]
name = "Radio"
type = "source"
number = "{BOBS_NUMBER}"
flow = "simple"

[companies.flows.simple]
start = "ring"

[companies.flows.simple.steps.ring]
type = "dial"
strategy = "round_robin"
to = ["+13125550111", "+13125550112"]
"#,
        demo = demo::CONFIG
    )
}

/// A fresh, empty database `name` (with this process's id) on the tests' PostgreSQL server
/// (`scripts/postgres.sh database`, which starts it if needed): its URL.
pub fn fresh_database(name: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres.sh");
    let name = format!("{name}_{}", std::process::id());
    let out = Command::new("bash")
        .args([script, "database", &name])
        .output()
        .expect("scripts/postgres.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("a URL")
        .trim()
        .to_owned()
}

/// A PostgreSQL cluster of the test's own (scripts/postgres.sh with its own directory and
/// port), for tests that stop it; stopped and removed when dropped.
pub struct OwnPostgres {
    port: u16,
    dir: PathBuf,
}

impl OwnPostgres {
    pub fn start(port: u16) -> OwnPostgres {
        let dir =
            std::env::temp_dir().join(format!("dialtone-postgres-{}-{port}", std::process::id()));
        let pg = OwnPostgres { port, dir };
        pg.script(&["start"]);
        pg
    }

    /// Runs scripts/postgres.sh with `args` on this cluster: its output.
    pub fn script(&self, args: &[&str]) -> String {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/postgres.sh");
        let out = Command::new("bash")
            .arg(script)
            .args(args)
            .env("DIALTONE_PG_DIR", &self.dir)
            .env("DIALTONE_PG_PORT", self.port.to_string())
            // This cluster, not the one the other tests share.
            .env_remove("DIALTONE_TEST_POSTGRES")
            .output()
            .expect("scripts/postgres.sh");
        assert!(
            out.status.success(),
            "scripts/postgres.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// A fresh, empty database `name` on it: its URL.
    pub fn database(&self, name: &str) -> String {
        self.script(&["database", name])
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.script(&["stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The demo configuration with, optionally, a dial limit on the carrier account, and the first
/// tracking number ringing the office straight away: no speech before the dial, one leg.
pub fn direct_config(dial_limit_per_s: Option<u32>) -> String {
    let limit = dial_limit_per_s
        .map(|n| format!("dial_limit = {{ count = {n}, period_s = 1 }}\n"))
        .unwrap_or_default();
    let mut text = dialtone_core::demo::CONFIG
        .replace(
            "auth_token = \"demo-auth-token\"\n",
            &format!("auth_token = \"demo-auth-token\"\n{limit}"),
        )
        .replacen(
            "number = \"+14045550100\"\nflow = \"main\"",
            "number = \"+14045550100\"\nflow = \"direct\"",
            1,
        );
    text.push_str(
        "\n[companies.flows.direct]\nstart = \"ring\"\n\n[companies.flows.direct.steps.ring]\n\
         type = \"dial\"\nstrategy = \"simulcall\"\nto = [\"office\"]\nring_timeout_s = 20\n",
    );
    text
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `url` answers 200 (a balancer up, a node back).
pub async fn until_up(url: &str) {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client
            .get(url)
            .timeout(Duration::from_millis(500))
            .send()
            .await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not come up");
}
