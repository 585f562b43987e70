//! CallRail's ids for dialtone's things. CallRail's clients check an id's prefix (`CAL` for a
//! call, `COM` a company, `TRK` a tracker; `ACC` an account), so each id is dialtone's own name
//! for the thing behind its prefix, and read back by taking the prefix off.

use sha2::{Digest, Sha256};

pub fn account(slug: &str) -> String {
    format!("ACC{slug}")
}

pub fn account_slug(id: &str) -> Option<&str> {
    id.strip_prefix("ACC").filter(|s| !s.is_empty())
}

pub fn company(slug: &str) -> String {
    format!("COM{slug}")
}

pub fn company_slug(id: &str) -> Option<&str> {
    id.strip_prefix("COM").filter(|s| !s.is_empty())
}

/// A tracker's id: its company and name hashed (names hold spaces and any character); read
/// back by looking among the configured trackers.
pub fn tracker(company: &str, name: &str) -> String {
    let digest = Sha256::new()
        .chain_update(company.as_bytes())
        .chain_update([0])
        .chain_update(name.as_bytes())
        .finalize();
    format!("TRK{}", hex::encode(&digest[..16]))
}

/// A call's id: a carrier call sid `CA…` becomes `CAL…`; a sid of another shape (or one that
/// starts `CA_`) is kept whole behind `CAL_`.
pub fn call(sid: &str) -> String {
    match sid.strip_prefix("CA") {
        Some(rest) if !rest.starts_with('_') => format!("CAL{rest}"),
        _ => format!("CAL_{sid}"),
    }
}

pub fn call_sid(id: &str) -> Option<String> {
    if let Some(sid) = id.strip_prefix("CAL_") {
        return (!sid.is_empty()).then(|| sid.to_owned());
    }
    id.strip_prefix("CAL").map(|rest| format!("CA{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_read_back_to_their_sid() {
        for sid in [
            "CA0123456789abcdef0123456789abcdef",
            "CA",
            "CA_x",
            "XY12",
            "CAL9",
        ] {
            let id = call(sid);
            assert!(id.starts_with("CAL"), "{id}");
            assert_eq!(call_sid(&id).as_deref(), Some(sid), "{id}");
        }
        assert_eq!(call_sid("COM1"), None);
        assert_eq!(call_sid("CAL_"), None);
    }

    #[test]
    fn tracker_ids_tell_trackers_apart() {
        let a = tracker("acme", "Billboard");
        assert!(a.starts_with("TRK") && a.len() == 35, "{a}");
        assert_ne!(a, tracker("acme", "Billboard 2"));
        assert_ne!(a, tracker("acm", "eBillboard"));
    }
}
