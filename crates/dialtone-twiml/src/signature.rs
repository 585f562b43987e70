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
/// Identical pairs count once, as in the official validator (`sorted(set(values))`).
fn sorted(params: &[(String, String)]) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    v.sort_unstable();
    v.dedup();
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

/// The two URLs the official validator checks: without any port, and with the scheme's default
/// port added when none is written. One of them is always the URL as given.
fn port_variants(url: &str) -> (String, Option<String>) {
    let Some(authority) = url.find("://").map(|i| i + 3) else {
        return (url.to_owned(), None);
    };
    let end = url[authority..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority + i);
    let netloc = &url[authority..end];
    // Where a port would be: after the last ':' that follows the host (IPv6 hosts are bracketed).
    let host_start = netloc.rfind('@').map_or(0, |i| i + 1);
    let port_colon = netloc[host_start..]
        .rfind(':')
        .map(|i| host_start + i)
        .filter(|&i| !netloc[i..].contains(']'));
    match port_colon {
        Some(colon) if netloc[colon + 1..].parse::<u16>().is_ok() => {
            let without = format!("{}{}{}", &url[..authority], &netloc[..colon], &url[end..]);
            (without, Some(url.to_owned()))
        }
        _ => {
            let default = match url[..authority].to_ascii_lowercase().as_str() {
                "https://" => "443",
                _ => "80",
            };
            (
                url.to_owned(),
                Some(format!(
                    "{}{netloc}:{default}{}",
                    &url[..authority],
                    &url[end..]
                )),
            )
        }
    }
}

/// Whether `signature` is the carrier's for this request. Like the official validator, accepts
/// the URL without its port or with the default port, since the carrier's own signing is
/// inconsistent about it. Compared in constant time.
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
    let (without_port, with_port) = port_variants(url);
    let mut ok = digest(&mac, &without_port, &sorted).ct_eq(&expected[..]);
    if let Some(with_port) = with_port {
        ok |= digest(&mac, &with_port, &sorted).ct_eq(&expected[..]);
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
        let v = |u: &str| port_variants(u);
        assert_eq!(
            v("https://a.example/x?y=1"),
            (
                "https://a.example/x?y=1".into(),
                Some("https://a.example:443/x?y=1".into())
            )
        );
        assert_eq!(
            v("https://a.example:443/x"),
            (
                "https://a.example/x".into(),
                Some("https://a.example:443/x".into())
            )
        );
        assert_eq!(
            v("http://a.example:8080/x"),
            (
                "http://a.example/x".into(),
                Some("http://a.example:8080/x".into())
            )
        );
        assert_eq!(v("http://[::1]/x").1.as_deref(), Some("http://[::1]:80/x"));
        assert_eq!(v("http://[::1]:8080/x").0, "http://[::1]/x");
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
