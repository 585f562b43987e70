//! dialtone carrier.
