//! Loading a file: reading every problem of its shape, then converting it to the model.

use std::ops::Range;

use super::convert::convert;
use super::error::Reporter;
use super::raw::*;
use super::*;

/// Where `auth_token_env` values come from; the binary passes the process environment, tests a map.
pub trait Environment {
    fn var(&self, name: &str) -> Option<String>;
}

impl<F: Fn(&str) -> Option<String>> Environment for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

pub(super) fn slug_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Parses and checks a configuration file. `file` names it in error messages.
pub fn load(file: &str, source: &str, env: &dyn Environment) -> Result<Config, ConfigErrors> {
    let mut r = Reporter {
        source,
        errors: Vec::new(),
    };
    let Some(raw) = read_raw(source, &mut r) else {
        return Err(ConfigErrors {
            file: file.to_owned(),
            errors: r.errors,
        });
    };
    if raw.carrier_accounts.is_empty() {
        // Without a carrier account every webhook is refused: no call would be routed, not even
        // to backup. An empty file is a mistake (a failed copy, a truncated write), never a wish.
        r.at(
            None,
            "no [[carrier_accounts]]: with none, every carrier webhook would be refused and no call routed (is the file empty?)",
        );
    }
    let config = convert(raw, &mut r, env);
    if r.errors.is_empty() {
        Ok(config)
    } else {
        let mut errors = r.errors;
        // In file order; problems without a place last.
        errors.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
        Err(ConfigErrors {
            file: file.to_owned(),
            errors,
        })
    }
}

/// The file as written, reporting every problem of its shape in one run. serde stops at the
/// first one (an unknown field, a value of the wrong type), so a problem on a `key = value` line
/// of its own is reported and the line set aside (blanked, offsets kept), and the file read
/// again, up to a bound; a problem elsewhere (a syntax error, a missing field) ends the reading.
/// `None` when the file could not be read whole; the problems are in `r` either way.
pub(super) fn read_raw(source: &str, r: &mut Reporter) -> Option<RawConfig> {
    const MOST: usize = 100;
    let mut text = source.to_owned();
    for _ in 0..MOST {
        let e = match toml::from_str::<RawConfig>(&text) {
            // (Without the lines set aside, if any: their problems are reported, and what the
            // rest says is checked too.)
            Ok(raw) => return Some(raw),
            Err(e) => e,
        };
        let message = match e.message().trim() {
            "" => "the file ends in the middle of a table or value (is it cut short?)".to_owned(),
            m => m.to_owned(),
        };
        r.at(e.span(), message);
        let line = e.span().and_then(|s| own_line(&text, s.start))?;
        // Blank the line, keeping every offset (and so every other line number) as it was.
        let blank: String = text[line.clone()]
            .chars()
            .map(|c| if c == '\n' { c } else { ' ' })
            .collect();
        text.replace_range(line, &blank);
    }
    None
}

/// The byte range of the line holding `at`, if it is a `key = value` line complete on its own
/// (setting it aside cannot break the lines around it).
pub(super) fn own_line(text: &str, at: usize) -> Option<Range<usize>> {
    let at = at.min(text.len());
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = &text[start..end];
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') || !trimmed.contains('=') {
        return None;
    }
    // A value that goes on over several lines is not on a line of its own.
    line.parse::<toml::Table>().ok()?;
    Some(start..end)
}
