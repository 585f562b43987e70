//! What is wrong with a configuration, each problem with its place in the file.

use std::fmt;
use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// Every problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match (e.line, e.column) {
                (Some(l), Some(c)) => write!(f, "{}:{}:{}: {}", self.file, l, c, e.message)?,
                (Some(l), None) => write!(f, "{}:{}: {}", self.file, l, e.message)?,
                _ => write!(f, "{}: {}", self.file, e.message)?,
            }
        }
        Ok(())
    }
}

pub(super) struct Reporter<'s> {
    pub(super) source: &'s str,
    pub(super) errors: Vec<ConfigError>,
}

impl Reporter<'_> {
    pub(super) fn at(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let (line, column) = match span {
            Some(s) => {
                let before = &self.source[..s.start.min(self.source.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        self.errors.push(ConfigError {
            line,
            column,
            message: message.into(),
        });
    }
}
