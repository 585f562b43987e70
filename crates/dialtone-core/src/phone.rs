//! Phone numbers in E.164, parsed once at the edge so the rest of the code can trust them.

use std::fmt;

/// An E.164 number: `+`, a country code that does not start with 0, 8 to 15 digits in all.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an E.164 phone number (expected + and 8 to 15 digits, like +14045550100)")]
pub struct InvalidPhoneNumber(pub String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, InvalidPhoneNumber> {
        let digits = raw
            .strip_prefix('+')
            .ok_or_else(|| InvalidPhoneNumber(raw.to_owned()))?;
        let valid = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidPhoneNumber(raw.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The way people write the number: `(404) 555-0199` in the North American plan, E.164 otherwise.
    pub fn formatted(&self) -> String {
        match self.0.strip_prefix("+1") {
            Some(n) if n.len() == 10 => format!("({}) {}-{}", &n[..3], &n[3..6], &n[6..]),
            _ => self.0.clone(),
        }
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_e164_and_formats_nanp() {
        let n = PhoneNumber::parse("+14045550199").unwrap();
        assert_eq!(n.formatted(), "(404) 555-0199");
        assert_eq!(
            PhoneNumber::parse("+442071838750").unwrap().formatted(),
            "+442071838750"
        );
    }

    #[test]
    fn refuses_what_is_not_e164() {
        for bad in [
            "",
            "+",
            "4045550199",
            "+0123456789",
            "+1404555019x",
            "+1234567",
            "+1234567890123456",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad} accepted");
        }
    }
}
