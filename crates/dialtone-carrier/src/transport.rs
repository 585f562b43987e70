//! How the carrier reaches a voice app: over HTTP, or (for replay) in-process.

use std::future::Future;
use std::time::{Duration, Instant};

use dialtone_twiml::Method;

/// One webhook request, before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    pub method: Method,
    /// Without any `#` fragment: the fragment only carries the carrier's timeout overrides.
    pub url: String,
    pub params: Vec<(String, String)>,
    /// Read timeout (`#rt=`, default 15 s) and connect timeout (`#ct=`, default 5 s).
    pub read_timeout: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookReply {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: String,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("request failed: {0}")]
    Other(String),
}

impl TransportError {
    /// The carrier's error code: 11205 connection failure, 11200 retrieval failure.
    pub fn error_code(&self) -> u32 {
        match self {
            TransportError::Connect(_) => 11205,
            TransportError::Timeout(_) | TransportError::Other(_) => 11200,
        }
    }
}

impl WebhookRequest {
    /// A request to `url`, honouring the carrier's `#ct=` / `#rt=` fragment overrides (ms).
    pub fn new(method: Method, url: &str, params: Vec<(String, String)>) -> Self {
        let (url, fragment) = url.split_once('#').unwrap_or((url, ""));
        let mut read = Duration::from_secs(15);
        let mut connect = Duration::from_secs(5);
        for kv in fragment.split('&') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if let Ok(ms) = v.parse::<u64>() {
                match k {
                    "rt" => read = Duration::from_millis(ms.clamp(100, 15_000)),
                    "ct" => connect = Duration::from_millis(ms.clamp(100, 10_000)),
                    _ => {}
                }
            }
        }
        Self {
            method,
            url: url.to_owned(),
            params,
            read_timeout: read,
            connect_timeout: connect,
        }
    }

    /// The URL actually requested: for GET the parameters go in the query string.
    pub fn full_url(&self) -> String {
        match self.method {
            Method::Post => self.url.clone(),
            Method::Get if self.params.is_empty() => self.url.clone(),
            Method::Get => {
                let sep = if self.url.contains('?') { '&' } else { '?' };
                format!("{}{sep}{}", self.url, dialtone_twiml::encode(&self.params))
            }
        }
    }

    /// `X-Twilio-Signature` for this request: POST signs URL and parameters, GET the full URL.
    pub fn signature(&self, auth_token: &str) -> String {
        match self.method {
            Method::Post => dialtone_twiml::compute_signature(auth_token, &self.url, &self.params),
            Method::Get => dialtone_twiml::compute_signature(auth_token, &self.full_url(), &[]),
        }
    }
}

/// Sends one signed webhook request.
pub trait Transport: Sync {
    fn send(
        &self,
        request: &WebhookRequest,
        signature: &str,
    ) -> impl Future<Output = Result<WebhookReply, TransportError>> + Send;
}

/// The real thing: HTTP with reqwest.
#[derive(Clone, Default)]
pub struct HttpTransport {
    client: reqwest::Client,
}

impl HttpTransport {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Transport for HttpTransport {
    async fn send(
        &self,
        request: &WebhookRequest,
        signature: &str,
    ) -> Result<WebhookReply, TransportError> {
        let started = Instant::now();
        let url = request.full_url();
        let builder = match request.method {
            Method::Post => self
                .client
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(dialtone_twiml::encode(&request.params)),
            Method::Get => self.client.get(&url),
        };
        let builder = builder
            .header("x-twilio-signature", signature)
            .header(
                "user-agent",
                "dialtone-carrier/0.1 (TwilioProxy compatible)",
            )
            .timeout(request.read_timeout + request.connect_timeout);
        let res = builder.send().await.map_err(|e| {
            if e.is_timeout() {
                TransportError::Timeout(request.read_timeout)
            } else if e.is_connect() {
                TransportError::Connect(e.to_string())
            } else {
                TransportError::Other(e.to_string())
            }
        })?;
        let status = res.status().as_u16();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.text().await.map_err(|e| {
            if e.is_timeout() {
                TransportError::Timeout(request.read_timeout)
            } else {
                TransportError::Other(e.to_string())
            }
        })?;
        Ok(WebhookReply {
            status,
            content_type,
            body,
            elapsed: started.elapsed(),
        })
    }
}
