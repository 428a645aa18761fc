//! Why the engine stops or starts over, as types. A transaction that fails is either
//! abortable (abort, read again from the last commit) or fatal (the producer is unusable;
//! fenced by a newer instance with the same `transactional.id`, or otherwise): decided from
//! librdkafka's error, once, here. The engine's control flow matches on these, never on text.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use thiserror::Error;

/// A Kafka transaction step that failed.
#[derive(Debug, Error)]
pub enum TxnError {
    /// Another producer with the same `transactional.id` took over (an instance restarted
    /// elsewhere with the same `kafka.instance_id`): this one must stop.
    #[error("{what}: fenced by a newer producer with the same transactional.id: {source}")]
    Fenced { what: String, source: KafkaError },
    /// The producer can no longer be used.
    #[error("{what}: {source}")]
    Fatal { what: String, source: KafkaError },
    /// The transaction can be aborted and the batch read again.
    #[error("{what}: {why}")]
    Abortable { what: String, why: String },
}

impl TxnError {
    /// `what` failed with `e`.
    pub fn of(what: impl Into<String>, e: KafkaError) -> TxnError {
        let what = what.into();
        // librdkafka says which errors leave the producer unusable; fencing is one of them.
        let fatal = matches!(&e, KafkaError::Transaction(r) if r.is_fatal());
        let fenced = fatal
            && matches!(
                e.rdkafka_error_code(),
                Some(
                    RDKafkaErrorCode::Fenced
                        | RDKafkaErrorCode::ProducerFenced
                        | RDKafkaErrorCode::InvalidProducerEpoch
                )
            );
        match (fenced, fatal) {
            (true, _) => TxnError::Fenced { what, source: e },
            (false, true) => TxnError::Fatal { what, source: e },
            (false, false) => TxnError::Abortable {
                what,
                why: e.to_string(),
            },
        }
    }

    /// A step that failed without a Kafka error (a delivery cancelled, a task that died).
    pub fn abortable(what: impl Into<String>, why: impl Into<String>) -> TxnError {
        TxnError::Abortable {
            what: what.into(),
            why: why.into(),
        }
    }

    /// Whether the producer can still abort and go on.
    pub fn is_abortable(&self) -> bool {
        matches!(self, TxnError::Abortable { .. })
    }
}

/// Why the engine stops for good (the process exits with this error).
#[derive(Debug, Error)]
pub enum Stop {
    #[error("the state store failed: {0}")]
    Store(#[from] crate::state::StateError),
    #[error(
        "Kafka transaction failed fatally ({0}). Another instance with the same transactional.id \
         (kafka.instance_id) may have taken over; Sightline stops."
    )]
    Transaction(TxnError),
    #[error("{0}")]
    Restore(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_librdkafka_calls_fatal_stops_the_engine() {
        // A fatal error can only come from librdkafka itself (tests/fatal_producer.rs makes
        // one); anything else, fencing codes in produce errors included, is abortable.
        for code in [
            RDKafkaErrorCode::OperationTimedOut,
            RDKafkaErrorCode::ProducerFenced,
        ] {
            assert!(TxnError::of("producing", KafkaError::MessageProduction(code)).is_abortable());
        }
    }
}
