//! librdkafka settings from the runtime config: brokers, identity, TLS and SASL, then the
//! user's pass-through overrides. The config is never logged (it may hold a password).

use crate::config::Config;
use anyhow::Context;
use rdkafka::ClientConfig;

pub fn client_config(cfg: &Config) -> anyhow::Result<ClientConfig> {
    let k = &cfg.kafka;
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.bootstrap_servers)
        .set("client.id", &k.client_id)
        .set("security.protocol", k.security_protocol.as_librdkafka());
    if let Some(sasl) = &k.sasl {
        c.set("sasl.mechanisms", &sasl.mechanism)
            .set("sasl.username", &sasl.username);
        let password = cfg
            .sasl_password()
            .with_context(|| "reading kafka.sasl.password_file".to_string())?
            .context("kafka.sasl needs a password (password, password_file or SIGHTLINE_KAFKA__SASL__PASSWORD)")?;
        c.set("sasl.password", password.expose());
    }
    if let Some(tls) = &k.tls {
        if let Some(ca) = &tls.ca_file {
            c.set("ssl.ca.location", cfg.resolve(ca).display().to_string());
        }
        if let Some(cert) = &tls.cert_file {
            c.set(
                "ssl.certificate.location",
                cfg.resolve(cert).display().to_string(),
            );
        }
        if let Some(key) = &tls.key_file {
            c.set("ssl.key.location", cfg.resolve(key).display().to_string());
        }
        if let Some(p) = &tls.key_password {
            c.set("ssl.key.password", p.expose());
        }
        c.set(
            "ssl.endpoint.identification.algorithm",
            if tls.verify_hostname { "https" } else { "none" },
        );
    }
    for (key, value) in &k.overrides {
        c.set(key, value);
    }
    Ok(c)
}

/// Settings of a consumer that only reads assigned partitions: it never subscribes, commits or
/// stores offsets, so it joins no group (the lag reader, the changelog restore).
pub fn reader_config(base: &ClientConfig, group_id: &str) -> ClientConfig {
    let mut c = base.clone();
    c.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    c
}

/// The context of readers that read to the end of partitions (`enable.partition.eof`):
/// reaching the end is how they finish, not an error worth a log line.
pub struct EofIsNormal;

impl rdkafka::ClientContext for EofIsNormal {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let eof = matches!(error, rdkafka::error::KafkaError::PartitionEOF(_))
            || error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF);
        if !eof {
            tracing::warn!(error = %error, reason, "kafka client error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EofIsNormal {}
