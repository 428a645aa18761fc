//! Where a poison message goes. A record that cannot be decoded or mapped to an event is copied,
//! key and value bytes untouched, to its source's dead-letter topic with provenance headers
//! ([`headers`]) and a stable error class ([`ErrorClass`]). The engine stages it with the batch's
//! outputs and produces them together ([`send`]); the input offset is committed only with it.

pub mod class;
pub mod headers;
pub mod send;

pub use class::ErrorClass;
pub use headers::DeadLetter;
