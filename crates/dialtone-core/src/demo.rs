//! The demo data `dialtone serve --demo` runs with. Tests and documentation rely on these values.

/// The demo configuration file.
pub const CONFIG: &str = include_str!("demo.toml");
/// What the configuration calls it in error messages.
pub const CONFIG_NAME: &str = "<built-in demo configuration>";
pub const ACCOUNT: &str = "demo";
pub const API_KEY: &str = "demo-api-key";
/// The demo installation's operator key: configuration reloads, backup routing across accounts,
/// carrier limits and alerts.
pub const OPERATOR_KEY: &str = "demo-operator-key";
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
pub const AUTH_TOKEN: &str = "demo-auth-token";
