//! `X-Twilio-Signature`: HMAC-SHA1 over the URL and the sorted parameters, base64.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

fn mac_for(auth_token: &str) -> HmacSha1 {
    // HMAC accepts keys of any length; this cannot fail.
    HmacSha1::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"))
}

/// Parameters in the order the carrier signs them: by name, then by value for repeated names.
fn sorted(params: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    v.sort_unstable();
    v
}

/// Keying HMAC hashes the key; cloning a keyed one per URL variant skips doing that twice.
fn digest(keyed: &HmacSha1, url: &str, sorted: &[(&str, &str)]) -> [u8; 20] {
    let mut mac = keyed.clone();
    mac.update(url.as_bytes());
    for (k, v) in sorted {
        mac.update(k.as_bytes());
        mac.update(v.as_bytes());
    }
    mac.finalize().into_bytes().into()
}

/// The signature the carrier sends for a request to `url` with form `params`.
pub fn compute_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    base64::engine::general_purpose::STANDARD.encode(digest(
        &mac_for(auth_token),
        url,
        &sorted(params),
    ))
}

/// The URL with the scheme's default port written out, or removed; `None` when there is no
/// such variant (another port, or no recognisable scheme).
fn port_variant(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    let default = match parsed.scheme() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    // `url` reports no port when the default one is written, so read the text around the host.
    if parsed.port().is_some() {
        return None;
    }
    let host = parsed.host_str()?;
    let authority = url.find("://")? + 3;
    let userinfo = url[authority..]
        .find('@')
        .filter(|at| !url[authority..authority + at].contains('/'));
    let host_at = authority + userinfo.map_or(0, |at| at + 1);
    let host_end = host_at + url[host_at..].to_ascii_lowercase().find(host)? + host.len();
    let suffix = format!(":{default}");
    Some(if url[host_end..].starts_with(&suffix) {
        format!("{}{}", &url[..host_end], &url[host_end + suffix.len()..])
    } else {
        format!("{}{suffix}{}", &url[..host_end], &url[host_end..])
    })
}

/// Whether `signature` is the carrier's for this request. Like the official validator, accepts
/// the URL as given and with the default port added or removed, since the carrier's own signing
/// is inconsistent about it. Compared in constant time.
pub fn validate_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    if expected.len() != 20 {
        return false;
    }
    let sorted = sorted(params);
    let mac = mac_for(auth_token);
    let as_given = digest(&mac, url, &sorted);
    let mut ok = as_given.ct_eq(&expected[..]);
    if let Some(variant) = port_variant(url) {
        ok |= digest(&mac, &variant, &sorted).ct_eq(&expected[..]);
    }
    ok.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_documented_example() {
        // The carrier's documentation example.
        let params = p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature("12345", url, &params),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(validate_signature(
            "12345",
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
        assert!(!validate_signature(
            "12346",
            url,
            &params,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn default_port_variants() {
        assert_eq!(
            port_variant("https://a.example/x?y=1").as_deref(),
            Some("https://a.example:443/x?y=1")
        );
        assert_eq!(
            port_variant("https://a.example:443/x").as_deref(),
            Some("https://a.example/x")
        );
        assert_eq!(
            port_variant("http://a.example").as_deref(),
            Some("http://a.example:80")
        );
        assert_eq!(port_variant("http://a.example:8080/x"), None);
        assert_eq!(
            port_variant("http://u:pw@a.example/x").as_deref(),
            Some("http://u:pw@a.example:80/x")
        );
        let params = p(&[("A", "1")]);
        let sig = compute_signature("t", "https://a.example:443/x", &params);
        assert!(validate_signature(
            "t",
            "https://a.example/x",
            &params,
            &sig
        ));
        assert!(!validate_signature(
            "t",
            "https://a.example:8443/x",
            &params,
            &sig
        ));
    }

    #[test]
    fn garbage_signatures_are_refused() {
        let params = p(&[("A", "1")]);
        for bad in ["", "not base64!", "AAAA", "QUJD"] {
            assert!(!validate_signature("t", "https://a.example/", &params, bad));
        }
    }
}
