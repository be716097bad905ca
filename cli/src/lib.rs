//! Command-line tools for Sluice, shared by two binaries: `sluice` (`sluice evidence`)
//! and `kubectl-sluice` (the kubectl plugin, `kubectl sluice evidence <feed>`). The
//! evidence report itself is defined in `sluice_schema::evidence`; this crate asks a
//! broker for it and prints it.

pub mod broker_http;
pub mod command;
pub mod feed_target;
pub mod render;
pub mod time;
