//! The runtime configuration: one TOML file, every key overridable from the environment.
//!
//! Loading is two passes. [`schema`] walks the raw TOML against the key table and collects
//! *every* problem (unknown key, wrong type, missing required key, missing file) so that
//! `sightline check` can report them all at once, each with file, key and reason. Only a clean
//! document is then deserialised into [`Config`]. Secrets are [`secret::Secret`]s: they print as
//! `***` and never reach a log line or an error message.

pub mod schema;
pub mod secret;

use secret::Secret;
use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// One configuration problem: where (file or environment variable), which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: key `{}`: {}", self.file, self.key, self.reason)
        }
    }
}

/// All problems found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        write!(
            f,
            "Fix these and run `sightline check --config <file>` again."
        )
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    #[serde(default)]
    pub registry: Option<RegistryConfig>,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub outputs: OutputsConfig,
    #[serde(default)]
    pub topologies: TopologiesConfig,
    #[serde(default)]
    pub schemas: SchemasConfig,
    #[serde(default)]
    pub engine: EngineConfig,
    #[serde(default)]
    pub lag: LagConfig,
    #[serde(default)]
    pub replay: ReplayConfig,
    #[serde(default)]
    pub dead_letters: DeadLettersConfig,
    /// Directory of the config file; relative paths in the file are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_librdkafka(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "plaintext",
            SecurityProtocol::Ssl => "ssl",
            SecurityProtocol::SaslPlaintext => "sasl_plaintext",
            SecurityProtocol::SaslSsl => "sasl_ssl",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    #[serde(default = "default_group")]
    pub group_id: String,
    #[serde(default = "default_group")]
    pub client_id: String,
    #[serde(default)]
    pub security_protocol: SecurityProtocol,
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// librdkafka properties passed through as-is (applied last).
    #[serde(default)]
    pub overrides: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub topics: TopicDefaults,
    #[serde(default = "default_commit_interval")]
    pub commit_interval_ms: u64,
    #[serde(default)]
    pub processing_guarantee: Guarantee,
    /// Stable name of this instance (transactional.id suffix); empty: $HOSTNAME, else "0".
    #[serde(default)]
    pub instance_id: String,
    /// How the producers pick a partition for a key; must match the upstream producers' so that
    /// re-keyed (repartitioned) events land on the partition number their key's other events use.
    #[serde(default = "default_partitioner")]
    pub partitioner: String,
    /// Exactly-once: how long the broker lets a transaction stay open before aborting it (a
    /// killed instance's open transaction blocks read_committed readers until then).
    #[serde(default = "default_transaction_timeout")]
    pub transaction_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    #[default]
    ExactlyOnce,
    AtLeastOnce,
}

impl KafkaConfig {
    /// This instance's stable name.
    pub fn instance(&self) -> String {
        if !self.instance_id.is_empty() {
            return self.instance_id.clone();
        }
        std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "0".into())
    }

    /// The transactional.id of this instance's producer.
    pub fn transactional_id(&self) -> String {
        format!("{}.{}", self.group_id, self.instance())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaslConfig {
    pub mechanism: String,
    pub username: String,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub key_password: Option<Secret>,
    #[serde(default = "default_true")]
    pub verify_hostname: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDefaults {
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// -1: the broker's `default.replication.factor`.
    #[serde(default = "default_replication")]
    pub replication_factor: i32,
}

impl Default for TopicDefaults {
    fn default() -> Self {
        TopicDefaults {
            partitions: default_partitions(),
            replication_factor: default_replication(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    pub url: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_registry_timeout")]
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    #[serde(default = "default_state_dir")]
    pub dir: PathBuf,
    /// RocksDB's block cache (shared by every column family), MiB; memtables are charged to it.
    #[serde(default = "default_block_cache_mb")]
    pub block_cache_mb: u64,
    /// Memtables (write buffers) of all column families together, MiB; counted in the cache.
    #[serde(default = "default_write_buffer_mb")]
    pub write_buffer_mb: u64,
    /// Committed workflow instances kept decoded in memory (0: none).
    #[serde(default = "default_instance_cache")]
    pub instance_cache: u64,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            dir: default_state_dir(),
            block_cache_mb: default_block_cache_mb(),
            write_buffer_mb: default_write_buffer_mb(),
            instance_cache: default_instance_cache(),
        }
    }
}

fn default_block_cache_mb() -> u64 {
    256
}

fn default_write_buffer_mb() -> u64 {
    64
}

fn default_instance_cache() -> u64 {
    50_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_bind")]
    pub bind: SocketAddr,
    #[serde(default = "default_http_connections")]
    pub max_connections: u64,
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_ms: u64,
    #[serde(default = "default_http_idle")]
    pub idle_timeout_ms: u64,
}

fn default_http_connections() -> u64 {
    256
}

fn default_header_timeout() -> u64 {
    10_000
}

fn default_http_idle() -> u64 {
    60_000
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: default_bind(),
            max_connections: default_http_connections(),
            header_read_timeout_ms: default_header_timeout(),
            idle_timeout_ms: default_http_idle(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputsConfig {
    #[serde(default = "default_alerts")]
    pub alerts: String,
    #[serde(default = "default_sla")]
    pub sla: String,
    #[serde(default = "default_drift")]
    pub drift: String,
    #[serde(default = "default_lag")]
    pub lag: String,
    #[serde(default = "default_dlq_suffix")]
    pub dead_letter_suffix: String,
}

impl Default for OutputsConfig {
    fn default() -> Self {
        OutputsConfig {
            alerts: default_alerts(),
            sla: default_sla(),
            drift: default_drift(),
            lag: default_lag(),
            dead_letter_suffix: default_dlq_suffix(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopologiesConfig {
    #[serde(default = "default_topologies")]
    pub paths: Vec<PathBuf>,
}

impl Default for TopologiesConfig {
    fn default() -> Self {
        TopologiesConfig {
            paths: default_topologies(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemasConfig {
    #[serde(default = "default_schemas")]
    pub dir: PathBuf,
}

impl Default for SchemasConfig {
    fn default() -> Self {
        SchemasConfig {
            dir: default_schemas(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeMode {
    #[default]
    Event,
    Wall,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    #[serde(default)]
    pub time: TimeMode,
    #[serde(default = "default_lateness")]
    pub allowed_lateness_ms: u64,
    #[serde(default = "default_tick")]
    pub timer_tick_ms: u64,
    #[serde(default = "default_idle")]
    pub idle_timeout_ms: u64,
    #[serde(default = "default_read_ahead")]
    pub max_read_ahead_ms: u64,
    #[serde(default = "default_skew")]
    pub max_event_time_skew_ms: u64,
    #[serde(default)]
    pub max_event_age_ms: u64,
    #[serde(default = "default_max_key")]
    pub max_key_bytes: u64,
}

fn default_max_key() -> u64 {
    512
}

fn default_skew() -> u64 {
    86_400_000
}

fn default_read_ahead() -> u64 {
    900_000
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            time: TimeMode::Event,
            allowed_lateness_ms: default_lateness(),
            timer_tick_ms: default_tick(),
            idle_timeout_ms: default_idle(),
            max_read_ahead_ms: default_read_ahead(),
            max_event_time_skew_ms: default_skew(),
            max_event_age_ms: 0,
            max_key_bytes: default_max_key(),
        }
    }
}

/// Which dead-letter topics `run` watches (its own always), and how often.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default)]
    pub topics_regex: String,
    #[serde(default = "default_dlq_interval")]
    pub interval_ms: u64,
}

impl Default for DeadLettersConfig {
    fn default() -> Self {
        DeadLettersConfig {
            enabled: true,
            topics: Vec::new(),
            topics_regex: String::new(),
            interval_ms: default_dlq_interval(),
        }
    }
}

fn default_dlq_interval() -> u64 {
    10_000
}

/// `sightline replay`: where its ledger and audit trail live, and its safety limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    #[serde(default = "default_replay_ledger")]
    pub ledger_topic: String,
    #[serde(default = "default_replay_audit")]
    pub audit_topic: String,
    #[serde(default = "default_replay_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub operator: String,
    /// Header names of another dead-letter convention: topic, partition, offset, error_class.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            ledger_topic: default_replay_ledger(),
            audit_topic: default_replay_audit(),
            max_attempts: default_replay_attempts(),
            operator: String::new(),
            headers: Default::default(),
        }
    }
}

fn default_replay_ledger() -> String {
    "sightline.replay-ledger".into()
}

fn default_replay_audit() -> String {
    "sightline.replay-audit".into()
}

fn default_replay_attempts() -> u32 {
    3
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LagConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub groups_regex: String,
    #[serde(default)]
    pub topics: Vec<String>,
    #[serde(default = "default_lag_interval")]
    pub interval_ms: u64,
    #[serde(default = "default_lag_window")]
    pub window: usize,
    #[serde(default = "default_lag_request_timeout")]
    pub request_timeout_ms: u64,
    #[serde(default = "default_lag_read_timeout")]
    pub read_timeout_ms: u64,
}

impl Default for LagConfig {
    fn default() -> Self {
        LagConfig {
            enabled: true,
            groups: Vec::new(),
            groups_regex: String::new(),
            topics: Vec::new(),
            interval_ms: default_lag_interval(),
            window: default_lag_window(),
            request_timeout_ms: default_lag_request_timeout(),
            read_timeout_ms: default_lag_read_timeout(),
        }
    }
}

fn default_lag_interval() -> u64 {
    5000
}
fn default_lag_window() -> usize {
    10
}
fn default_lag_request_timeout() -> u64 {
    5000
}
fn default_lag_read_timeout() -> u64 {
    2000
}

fn default_lateness() -> u64 {
    60_000
}
fn default_tick() -> u64 {
    200
}
fn default_idle() -> u64 {
    30_000
}

fn default_group() -> String {
    "sightline".into()
}
fn default_partitioner() -> String {
    "murmur2_random".into()
}

fn default_transaction_timeout() -> u64 {
    10_000
}

fn default_commit_interval() -> u64 {
    100
}
fn default_true() -> bool {
    true
}
fn default_partitions() -> i32 {
    12
}
fn default_replication() -> i32 {
    -1
}
fn default_registry_timeout() -> u64 {
    5000
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}
fn default_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9464))
}
fn default_alerts() -> String {
    "sightline.alerts".into()
}
fn default_sla() -> String {
    "sightline.sla".into()
}
fn default_drift() -> String {
    "sightline.drift".into()
}
fn default_lag() -> String {
    "sightline.lag".into()
}
fn default_dlq_suffix() -> String {
    ".dlq".into()
}
fn default_topologies() -> Vec<PathBuf> {
    vec![PathBuf::from("topologies")]
}
fn default_schemas() -> PathBuf {
    PathBuf::from("schemas")
}

impl Config {
    /// Reads, overrides from the environment, validates and deserialises `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_with_env(path, &env)
    }

    /// As [`Config::load`], with the environment given (tests pass their own).
    pub fn load_with_env(path: &Path, env: &[(String, String)]) -> Result<Config, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.clone(),
                key: String::new(),
                reason: format!("cannot read the config file: {e}"),
            }])
        })?;
        let base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Self::from_str_with_env(&text, &file, &base_dir, env)
    }

    pub fn from_str_with_env(
        text: &str,
        file: &str,
        base_dir: &Path,
        env: &[(String, String)],
    ) -> Result<Config, ConfigErrors> {
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.to_string(),
                key: String::new(),
                reason: format!("not valid TOML: {}", e.message().trim()),
            }
            .with_line(text, e.span())])
        })?;
        let mut errors = schema::apply_env(&mut doc, env);
        errors.extend(schema::validate(&doc, file, base_dir));
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        let mut config: Config =
            toml::Value::Table(doc)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    ConfigErrors(vec![ConfigError {
                        file: file.to_string(),
                        key: String::new(),
                        reason: e.message().trim().to_string(),
                    }])
                })?;
        config.base_dir = base_dir.to_path_buf();
        Ok(config)
    }

    /// A path from the file, resolved against the config file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The SASL password, from the value or the file.
    pub fn sasl_password(&self) -> std::io::Result<Option<Secret>> {
        match &self.kafka.sasl {
            Some(s) => read_secret(s.password.as_ref(), s.password_file.as_deref(), self),
            None => Ok(None),
        }
    }

    /// The registry password, from the value or the file.
    pub fn registry_password(&self) -> std::io::Result<Option<Secret>> {
        match &self.registry {
            Some(r) => read_secret(r.password.as_ref(), r.password_file.as_deref(), self),
            None => Ok(None),
        }
    }
}

fn read_secret(
    value: Option<&Secret>,
    file: Option<&Path>,
    config: &Config,
) -> std::io::Result<Option<Secret>> {
    if let Some(v) = value {
        return Ok(Some(v.clone()));
    }
    match file {
        Some(f) => {
            let text = std::fs::read_to_string(config.resolve(f))?;
            Ok(Some(Secret::new(
                text.trim_end_matches(['\n', '\r']).to_string(),
            )))
        }
        None => Ok(None),
    }
}

impl ConfigError {
    fn with_line(mut self, text: &str, span: Option<std::ops::Range<usize>>) -> Self {
        if let Some(span) = span {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            self.file = format!("{}:{}", self.file, line);
        }
        self
    }
}
