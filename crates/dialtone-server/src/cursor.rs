//! Keyset cursors as the APIs give them out: opaque to clients, the last call's start and sid,
//! base64url-encoded.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dialtone_store::{Call, CallCursor};

/// Where the page after `last` starts.
pub fn after(last: &Call) -> CallCursor {
    CallCursor {
        started_at: last.started_at,
        sid: last.sid.clone(),
    }
}

pub fn encode(c: &CallCursor) -> String {
    let at = c
        .started_at
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    URL_SAFE_NO_PAD.encode(format!("{at}\n{}", c.sid))
}

/// A cursor this server gave out; `None` for anything else.
pub fn decode(s: &str) -> Option<CallCursor> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    let (started_at, sid) = text.split_once('\n')?;
    let started_at = chrono::DateTime::parse_from_rfc3339(started_at).ok()?;
    (!sid.is_empty()).then(|| CallCursor {
        started_at: started_at.with_timezone(&chrono::Utc),
        sid: sid.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_nothing_else_does() {
        let c = CallCursor {
            started_at: chrono::DateTime::parse_from_rfc3339("2026-12-03T10:00:00.123456Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
            sid: "CA1".into(),
        };
        assert_eq!(decode(&encode(&c)), Some(c));
        for bad in ["", "!!", "bm90aGluZw", "MjAyNi0xMi0wM1QxMDowMDowMFoK"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
