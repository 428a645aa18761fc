//! What Sightline serves over HTTP: `/metrics`, the health probes, and the read-only JSON API
//! over the state store and what was emitted ([`read`]).

pub mod http;
pub mod read;
