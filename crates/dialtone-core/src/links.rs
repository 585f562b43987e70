//! The callback URLs dialtone hands the carrier, and reading them back.
//!
//! Where a call is in its flow travels in the URL of the next callback (the carrier signs the
//! whole URL, so nobody can alter it): no per-call state has to be looked up on the hot path.

use std::fmt::Write;

use crate::admission::DialShape;

/// Which callback a URL is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Callback {
    /// `<Gather>` result of a menu.
    Gather,
    /// `<Dial>` ended.
    Dial,
    /// `<Record>` of a voicemail ended.
    Voicemail,
    /// Whisper TwiML for the agent who answered.
    Whisper,
}

impl Callback {
    pub fn path(self) -> &'static str {
        match self {
            Callback::Gather => "/twilio/gather",
            Callback::Dial => "/twilio/dial",
            Callback::Voicemail => "/twilio/voicemail",
            Callback::Whisper => "/twilio/whisper",
        }
    }
}

/// A position in a flow, as carried by a callback URL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resume {
    pub company: String,
    pub flow: String,
    pub step: String,
    /// The call is being recorded (a `record` step was passed).
    pub recording: bool,
    /// Menu: how many times the menu has been offered. Dial: position in the dialing order.
    pub n: u32,
    /// Round robin: where this call's rotation started.
    pub rotation: u32,
    /// The dial's shape under the carrier's limit (`ds`, absent = full).
    pub shape: DialShape,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("callback URL query is missing or has an invalid `{0}`")]
pub struct BadResume(pub &'static str);

impl Resume {
    /// Reads the query string written by [`Links::flow`]. Slugs and step names are restricted to
    /// URL-safe characters at configuration load, so no percent-decoding is needed.
    pub fn parse(query: &str) -> Result<Self, BadResume> {
        let mut r = Resume::default();
        let (mut has_company, mut has_flow, mut has_step) = (false, false, false);
        for pair in query.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "company" => (r.company, has_company) = (v.to_owned(), true),
                "flow" => (r.flow, has_flow) = (v.to_owned(), true),
                "step" => (r.step, has_step) = (v.to_owned(), true),
                "rec" => r.recording = v == "1",
                "n" => r.n = v.parse().map_err(|_| BadResume("n"))?,
                "rr" => r.rotation = v.parse().map_err(|_| BadResume("rr"))?,
                "ds" => {
                    r.shape = v
                        .parse()
                        .ok()
                        .and_then(DialShape::from_code)
                        .ok_or(BadResume("ds"))?
                }
                _ => {}
            }
        }
        match () {
            _ if !has_company || r.company.is_empty() => Err(BadResume("company")),
            _ if !has_flow || r.flow.is_empty() => Err(BadResume("flow")),
            _ if !has_step || r.step.is_empty() => Err(BadResume("step")),
            _ => Ok(r),
        }
    }
}

/// Builds callback URLs under the public base URL the carrier reaches dialtone at.
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
}

impl Links {
    pub fn new(public_url: &str) -> Self {
        Self {
            base: public_url.trim_end_matches('/').to_owned(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn flow(&self, kind: Callback, at: &Resume) -> String {
        let mut s = String::with_capacity(self.base.len() + 80);
        s.push_str(&self.base);
        s.push_str(kind.path());
        let _ = write!(
            s,
            "?company={}&flow={}&step={}&rec={}&n={}&rr={}",
            at.company,
            at.flow,
            at.step,
            u8::from(at.recording),
            at.n,
            at.rotation
        );
        if at.shape != DialShape::Full {
            let _ = write!(s, "&ds={}", at.shape.code());
        }
        s
    }

    /// Status callbacks of the outbound legs.
    pub fn leg_status(&self, company: &str) -> String {
        format!("{}/twilio/leg?company={company}", self.base)
    }

    /// Recording status callbacks.
    pub fn recording(&self, company: &str, voicemail: bool) -> String {
        format!(
            "{}/twilio/recording?company={company}&voicemail={}",
            self.base,
            u8::from(voicemail)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_link_reads_back_as_written(
            company in "[a-z0-9_-]{1,20}", flow in "[a-z0-9_-]{1,20}", step in "[a-z0-9_-]{1,20}",
            recording: bool, n: u32, rotation: u32, shape in 0u8..3,
        ) {
            let shape = DialShape::from_code(shape).unwrap_or_default();
            let at = Resume { company, flow, step, recording, n, rotation, shape };
            let url = Links::new("https://calls.example.com/").flow(Callback::Dial, &at);
            let query = url.split_once('?').unwrap().1;
            prop_assert!(url.starts_with("https://calls.example.com/twilio/dial?"));
            prop_assert_eq!(Resume::parse(query).unwrap(), at);
        }
    }

    #[test]
    fn missing_parts_are_named() {
        assert_eq!(Resume::parse("flow=a&step=b"), Err(BadResume("company")));
        assert_eq!(
            Resume::parse("company=a&flow=b&step=c&n=x"),
            Err(BadResume("n"))
        );
    }
}
