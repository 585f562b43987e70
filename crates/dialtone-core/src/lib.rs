//! dialtone's domain: configuration, call flows and the flow engine, the call log's events.
//!
//! Pure by rule: nothing here reads the clock, the disk or the network. Time, configuration text,
//! environment lookups and round-robin counters are all parameters.

pub mod admission;
pub mod backup;
pub mod config;
pub mod demo;
pub mod detect;
pub mod dni;
pub mod engine;
pub mod event;
pub mod flow;
pub mod links;
pub mod monitor;
pub mod phone;
pub mod schedule;

pub use config::{Company, Config, ConfigErrors, Tracker, TrackerKind, TrackerRef};
pub use phone::PhoneNumber;
