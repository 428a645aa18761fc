//! Where a poison message goes. A record that cannot be decoded or mapped to an event is copied,
//! key and value bytes untouched, to its source's dead-letter topic with provenance headers
//! ([`headers`]) and a stable error class ([`ErrorClass`]). The engine produces it and waits for
//! the broker's acknowledgement before the input offset may be committed.

pub mod class;
pub mod headers;
pub mod send;

pub use class::ErrorClass;
pub use headers::DeadLetter;
