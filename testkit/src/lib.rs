//! Test set-up shared by the workspace's crates, so that no crate's tests keep their own
//! copy: free loopback ports and a minimal HTTP client ([`net`]), moto's S3/AWS
//! emulator as a child process ([`moto`]), and Apache Iceberg's REST catalog server as one
//! ([`iceberg_rest`]). A dev-dependency only; never published.

pub mod iceberg_rest;
pub mod moto;
pub mod net;

pub use iceberg_rest::IcebergRest;
pub use moto::Moto;
pub use net::{free_port, free_ports, http_get, http_request, http_send};
