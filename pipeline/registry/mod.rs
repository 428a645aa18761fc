//! The schema registry client (Confluent REST API; Apicurio serves it under
//! `/apis/ccompat/v7`). Decoding goes through schema_registry_converter with its schema cache;
//! this module builds its settings from the config, registers Sightline's own output contracts,
//! and answers "is the registry reachable" for /readyz.

use crate::config::Config;
use anyhow::Context;
use schema_registry_converter::async_impl::schema_registry::{post_schema, SrSettings};
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use std::time::Duration;

/// Settings for schema_registry_converter, with auth, timeout and CA from the config.
pub fn settings(cfg: &Config) -> anyhow::Result<Option<SrSettings>> {
    let Some(r) = &cfg.registry else {
        return Ok(None);
    };
    let mut b = SrSettings::new_builder(r.url.trim_end_matches('/').to_string());
    b.set_timeout(Duration::from_millis(r.timeout_ms))
        .no_proxy();
    if let Some(user) = &r.username {
        let password = cfg
            .registry_password()
            .context("reading registry.password_file")?;
        b.set_basic_authorization(user, password.as_ref().map(|p| p.expose()));
    }
    let mut client = reqwest::Client::builder();
    if let Some(ca) = &r.ca_file {
        let path = cfg.resolve(ca);
        let pem = std::fs::read(&path)
            .with_context(|| format!("reading registry.ca_file {}", path.display()))?;
        let cert = reqwest::Certificate::from_pem(&pem).with_context(|| {
            format!(
                "registry.ca_file {} is not a PEM certificate",
                path.display()
            )
        })?;
        client = client.add_root_certificate(cert);
    }
    let settings = b
        .build_with(client)
        .map_err(|e| anyhow::anyhow!("building the registry client: {}", e.error))?;
    Ok(Some(settings))
}

/// Registers an Avro schema under `subject`; returns its id. Registering the same schema again
/// returns the same id.
pub async fn register_avro(
    settings: &SrSettings,
    subject: &str,
    schema: &str,
) -> anyhow::Result<u32> {
    let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.to_string());
    let registered = post_schema(settings, subject.to_string(), supplied)
        .await
        .map_err(|e| anyhow::anyhow!("registering subject `{subject}`: {}", e.error))?;
    Ok(registered.id)
}

/// True when the registry answers its subjects listing.
pub async fn reachable(cfg: &Config) -> bool {
    let Some(r) = &cfg.registry else {
        return true;
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(r.timeout_ms))
        .no_proxy()
        .build();
    let Ok(client) = client else { return false };
    let mut req = client.get(format!("{}/subjects", r.url.trim_end_matches('/')));
    if let Some(user) = &r.username {
        if let Ok(p) = cfg.registry_password() {
            req = req.basic_auth(user, p.as_ref().map(|p| p.expose().to_string()));
        }
    }
    matches!(req.send().await, Ok(resp) if resp.status().is_success())
}

/// What the registry says of a schema id the decoder could not fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaVerdict {
    /// The registry says the id does not exist (404 with error code 40403, as Confluent and
    /// Apicurio's compatible API answer): the record is bad.
    Missing(String),
    /// The registry returned a schema that is not Avro: the record cannot be read.
    Unparsable(String),
    /// Anything else (5xx, 429, 401/403, timeouts, refused connections, a 404 that is not
    /// "schema not found", a schema that reads fine now): hold and retry. The status, then
    /// what to tell the operator.
    Transient(String, String),
}

/// Looks up which subject and version a schema id is registered under
/// (`GET /schemas/ids/{id}/versions`); used when a drift event names a writer schema. The
/// decoder's lookup by id does not return them.
pub struct Lookup {
    url: String,
    client: reqwest::Client,
    auth: Option<(String, Option<String>)>,
}

#[derive(serde::Deserialize)]
struct SubjectVersion {
    subject: String,
    version: u32,
}

impl Lookup {
    pub fn new(cfg: &Config) -> anyhow::Result<Option<Lookup>> {
        let Some(r) = &cfg.registry else {
            return Ok(None);
        };
        let mut client = reqwest::Client::builder()
            .timeout(Duration::from_millis(r.timeout_ms))
            .no_proxy();
        if let Some(ca) = &r.ca_file {
            let path = cfg.resolve(ca);
            let pem = std::fs::read(&path)
                .with_context(|| format!("reading registry.ca_file {}", path.display()))?;
            client = client.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        let auth = match &r.username {
            Some(user) => Some((
                user.clone(),
                cfg.registry_password()
                    .context("reading registry.password_file")?
                    .map(|p| p.expose().to_string()),
            )),
            None => None,
        };
        Ok(Some(Lookup {
            url: r.url.trim_end_matches('/').to_string(),
            client: client.build()?,
            auth,
        }))
    }

    /// Asks the registry itself about schema `id`, to tell a missing or broken schema (bad
    /// input) from an outage, rate limiting or a credential problem (transient). The decoder's
    /// own error does not say: it once dead-lettered every record on a 500, 429, 401 or 403.
    pub async fn classify(&self, id: u32) -> SchemaVerdict {
        let mut req = self.client.get(format!("{}/schemas/ids/{id}", self.url));
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, password.clone());
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return SchemaVerdict::Transient(
                    "timeout".into(),
                    format!("the registry did not answer in time: {e}"),
                )
            }
            Err(e) => {
                return SchemaVerdict::Transient(
                    "connect".into(),
                    format!("the registry cannot be reached: {e}"),
                )
            }
        };
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let code = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error_code"].as_i64());
        match status.as_u16() {
            404 if code == Some(40403) => {
                SchemaVerdict::Missing(format!("the registry has no schema with id {id}"))
            }
            200 => {
                let schema = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["schema"].as_str().map(str::to_string));
                match schema.map(|s| apache_avro::Schema::parse_str(&s)) {
                    Some(Ok(_)) => SchemaVerdict::Transient(
                        "recovered".into(),
                        format!("schema {id} reads fine now; retrying"),
                    ),
                    Some(Err(e)) => SchemaVerdict::Unparsable(format!(
                        "the registry's schema {id} is not a valid Avro schema: {e}"
                    )),
                    None => SchemaVerdict::Transient(
                        "http_200_malformed".into(),
                        format!("the registry answered schema {id} with a body that is not a schema ({} bytes); retrying", body.len()),
                    ),
                }
            }
            401 | 403 => SchemaVerdict::Transient(
                format!("http_{}", status.as_u16()),
                format!(
                    "the registry refused the credentials ({status}); check registry.username and registry.password (or registry.password_file)"
                ),
            ),
            s => SchemaVerdict::Transient(
                format!("http_{s}"),
                format!(
                    "the registry answered {status}{}",
                    if s == 404 { " without error code 40403 (is registry.url right?)" } else { "" }
                ),
            ),
        }
    }

    /// The (subject, version) of schema `id`, preferring subject `<topic>-value`; None when the
    /// registry does not say.
    pub async fn subject_version(&self, id: u32, topic: &str) -> Option<(String, u32)> {
        let mut req = self
            .client
            .get(format!("{}/schemas/ids/{id}/versions", self.url));
        if let Some((user, password)) = &self.auth {
            req = req.basic_auth(user, password.clone());
        }
        let list: Vec<SubjectVersion> = req
            .send()
            .await
            .ok()?
            .error_for_status()
            .ok()?
            .json()
            .await
            .ok()?;
        let preferred = format!("{topic}-value");
        list.iter()
            .find(|sv| sv.subject == preferred)
            .or_else(|| list.first())
            .map(|sv| (sv.subject.clone(), sv.version))
    }
}
