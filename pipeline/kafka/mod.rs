//! Kafka plumbing shared by every command: client settings from the config ([`client`]), the
//! group consumer with its rebalance hooks ([`consumer`]), the producer ([`producer`]) and topic
//! creation ([`admin`]), and co-location of co-partitioned topics ([`copartition`]).

pub mod admin;
pub mod client;
pub mod consumer;
pub mod copartition;
pub mod offsets;
pub mod producer;

pub use client::client_config;
pub use consumer::{create_consumer, PipelineConsumer};
pub use producer::create_producer;
