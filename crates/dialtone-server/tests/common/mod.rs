//! What the server's in-process tests share: carrier requests signed as the carrier signs them.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::Request;
use dialtone_core::demo;

/// The public URL the tests' routers are told they are reached at (and so what is signed).
pub const PUBLIC: &str = "https://dt.example";

/// The inbound-call webhook for `call_sid` to `to`, from the demo carrier account.
pub fn signed_voice(call_sid: &str, to: &str) -> Request<Body> {
    let params: Vec<(String, String)> = [
        ("AccountSid", demo::ACCOUNT_SID),
        ("CallSid", call_sid),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("From", "+17705550123"),
        ("To", to),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    signed(&format!("{PUBLIC}/twilio/voice"), &params)
}

/// A POST of `params` to `url` (one of [`PUBLIC`]'s), signed by the demo carrier account.
pub fn signed(url: &str, params: &[(String, String)]) -> Request<Body> {
    let signature = dialtone_twiml::compute_signature(demo::AUTH_TOKEN, url, params);
    Request::post(url.strip_prefix(PUBLIC).expect("one of our URLs"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(Body::from(dialtone_twiml::encode(params)))
        .unwrap()
}

/// Reads of a database that cannot be reached: every read fails as an unreachable one would
/// (keys are absent), for tests whose event log is the double.
pub struct UnreachableReads;

fn unreachable<T>() -> Result<T, dialtone_store::StoreError> {
    Err(dialtone_store::StoreError::Unavailable(
        "the test's database is unreachable".into(),
    ))
}

mod unreachable_reads {
    use std::collections::HashMap;

    use chrono::{DateTime, Utc};
    use dialtone_core::backup::BackupRule;
    use dialtone_store::{
        ApiKey, ApiKeys, BackupRules, Call, CallCursor, CallLog, CallPage, CallQuery, CallsAfter,
        DniLeases, StoreError, StoredSession, Traffic,
    };

    use super::{UnreachableReads, unreachable};

    #[async_trait::async_trait]
    impl CallLog for UnreachableReads {
        async fn calls(&self, _: CallQuery) -> Result<CallPage, StoreError> {
            unreachable()
        }
        async fn calls_after(
            &self,
            _: CallQuery,
            _: Option<CallCursor>,
        ) -> Result<CallsAfter, StoreError> {
            unreachable()
        }
        async fn call(&self, _: &str, _: &str) -> Result<Option<Call>, StoreError> {
            unreachable()
        }
        async fn traffic(
            &self,
            _: &[String],
            _: DateTime<Utc>,
        ) -> Result<Vec<Traffic>, StoreError> {
            unreachable()
        }
        async fn round_robin_turns(&self) -> Result<HashMap<String, u64>, StoreError> {
            Ok(HashMap::new())
        }
    }

    #[async_trait::async_trait]
    impl ApiKeys for UnreachableReads {
        async fn api_key(&self, _: &str) -> Result<Option<ApiKey>, StoreError> {
            Ok(None)
        }
        async fn create_api_key(
            &self,
            _: &str,
            _: &ApiKey,
            _: &str,
            _: DateTime<Utc>,
        ) -> Result<(), StoreError> {
            unreachable()
        }
        async fn has_accounts(&self) -> Result<bool, StoreError> {
            Ok(true)
        }
    }

    #[async_trait::async_trait]
    impl BackupRules for UnreachableReads {
        async fn backup_rules(&self, _: DateTime<Utc>) -> Result<Vec<BackupRule>, StoreError> {
            unreachable()
        }
        async fn add_backup_rule(&self, _: &BackupRule) -> Result<i64, StoreError> {
            unreachable()
        }
        async fn end_backup_rule(&self, _: i64, _: DateTime<Utc>) -> Result<bool, StoreError> {
            unreachable()
        }
    }

    #[async_trait::async_trait]
    impl DniLeases for UnreachableReads {
        async fn dni_sessions(
            &self,
            _: DateTime<Utc>,
        ) -> Result<(Vec<StoredSession>, u64), StoreError> {
            unreachable()
        }
        async fn dni_leases(
            &self,
            _: &str,
            _: DateTime<Utc>,
            _: DateTime<Utc>,
        ) -> Result<Vec<StoredSession>, StoreError> {
            unreachable()
        }
    }
}
