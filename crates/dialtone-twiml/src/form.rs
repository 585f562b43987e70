//! `application/x-www-form-urlencoded` bodies, every pair kept in order (names may repeat).

/// A required parameter that was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("missing required parameter `{0}`")]
pub struct MissingParameter(pub &'static str);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    /// Never fails: bytes that are not UTF-8 after percent-decoding are replaced, as a browser does.
    pub fn parse(body: &[u8]) -> Self {
        Self {
            pairs: form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Self { pairs }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn require(&self, name: &'static str) -> Result<&str, MissingParameter> {
        self.get(name).ok_or(MissingParameter(name))
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }
}

/// Encodes pairs as a form body.
pub fn encode(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_repeats_and_decodes() {
        let f = Form::parse(b"To=%2B1404&A=1&A=2&Say=hello+world");
        assert_eq!(f.get("To"), Some("+1404"));
        assert_eq!(f.get("A"), Some("1"));
        assert_eq!(f.pairs().len(), 4);
        assert_eq!(f.get("Say"), Some("hello world"));
        assert_eq!(
            f.require("CallSid").unwrap_err().to_string(),
            "missing required parameter `CallSid`"
        );
    }

    proptest! {
        #[test]
        fn encode_then_parse_is_identity(pairs in prop::collection::vec(("\\PC{0,12}", "\\PC{0,24}"), 0..8)) {
            let pairs: Vec<(String, String)> = pairs;
            let parsed = Form::parse(encode(&pairs).as_bytes());
            prop_assert_eq!(parsed.pairs(), &pairs[..]);
        }
    }
}
