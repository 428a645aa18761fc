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

/// `base` with `defaults` for the keys it does not set: what the user set (in `base`, from
/// `kafka.overrides`) wins. (Not by copying `base.config_map()` over the defaults: that view
/// is sanitised, and would replace the SASL password with a placeholder.)
pub fn with_defaults(base: &ClientConfig, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut c = base.clone();
    for (k, v) in defaults {
        if base.get(k).is_none() {
            c.set(*k, *v);
        }
    }
    c
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

/// Remembers the client's last error (librdkafka reports authentication and TLS failures
/// through the error callback, not through the call that waited for them).
#[derive(Default)]
struct LastError(std::sync::Mutex<Option<String>>);

impl rdkafka::ClientContext for LastError {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        let mut last = self.0.lock().expect("last error lock");
        // An authentication or TLS failure says more than the "all brokers down" that follows.
        let keep = last.as_deref().is_some_and(|l| {
            (l.contains("uthentication") || l.contains("SSL")) && !reason.contains("uthentication")
        });
        if !keep {
            *last = Some(format!("{error}: {reason}"));
        }
    }
}

impl rdkafka::consumer::ConsumerContext for LastError {}

/// [`check_connection`] on a blocking thread, for async callers (`run`, `replay`).
pub async fn check_connection_async(
    cfg: &Config,
    timeout: std::time::Duration,
) -> anyhow::Result<()> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || check_connection(&cfg, timeout))
        .await
        .context("the Kafka connection check")?
}

/// Connects once and fetches cluster metadata, so that a wrong address, certificate or password
/// fails at start with what was tried (listener, protocol, mechanism, user; never the
/// password) and what to check, instead of as retries in the log.
pub fn check_connection(cfg: &Config, timeout: std::time::Duration) -> anyhow::Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let k = &cfg.kafka;
    let consumer: BaseConsumer<LastError> = client_config(cfg)?
        .create_with_context(LastError::default())
        .context("creating the Kafka client")?;
    let Err(e) = consumer.fetch_metadata(None, timeout) else {
        return Ok(());
    };
    // Errors reach the context when the client is polled.
    for _ in 0..5 {
        let _ = consumer.poll(std::time::Duration::from_millis(50));
    }
    let last = consumer
        .context()
        .0
        .lock()
        .expect("last error lock")
        .clone();
    let how = match &k.sasl {
        Some(s) => format!(
            "security_protocol {}, SASL mechanism {}, user `{}`",
            k.security_protocol.as_librdkafka(),
            s.mechanism,
            s.username
        ),
        None => format!("security_protocol {}", k.security_protocol.as_librdkafka()),
    };
    let reason = last.unwrap_or_else(|| e.to_string());
    let hint = if reason.contains("uthentication") {
        "check kafka.sasl.username, kafka.sasl.mechanism and the password (kafka.sasl.password_file or SIGHTLINE_KAFKA__SASL__PASSWORD)"
    } else if reason.contains("SSL") || reason.contains("certificate") {
        "check kafka.tls.ca_file (the CA that signed the brokers' certificates) and kafka.security_protocol"
    } else {
        "check kafka.bootstrap_servers and kafka.security_protocol, and that the listener is reachable from here"
    };
    anyhow::bail!(
        "cannot connect to Kafka at {} ({how}) within {} s: {reason}; {hint}",
        k.bootstrap_servers,
        timeout.as_secs()
    )
}
