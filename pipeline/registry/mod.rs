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
