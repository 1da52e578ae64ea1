//! The TOML configuration: its shape, its defaults and its validation.
//!
//! Every key is documented in `config/jellyfin-pusher.example.toml`. Unknown keys are an error
//! that names the key (`deny_unknown_fields`), so a typo never silently falls back to a default.
//! Secrets are never in this file: it only names the files that hold them.

mod receiver;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

pub use receiver::{DeliveryOrder, MAX_CONCURRENCY, ReceiverKind};

/// What is wrong with a configuration: every problem found, each naming the key where there
/// is one. Displayed as one line per problem, each naming the file.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    /// Never empty.
    pub problems: Vec<String>,
}

impl ConfigError {
    fn new(path: &Path, problem: String) -> ConfigError {
        ConfigError {
            path: path.to_path_buf(),
            problems: vec![problem],
        }
    }

    /// One line per problem: `config <file>: <problem>`.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.problems
            .iter()
            .map(|p| format!("config {}: {p}", self.path.display()))
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.lines().collect::<Vec<_>>().join("\n"))
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was read from, for error messages.
    pub path: PathBuf,
    pub state_dir: PathBuf,
    pub log_level: Option<String>,
    pub jellyfin: JellyfinConfig,
    pub collect: CollectConfig,
    /// Static labels on every series, sorted by name.
    pub labels: Vec<(String, String)>,
    pub remote_write: Vec<RemoteWriteConfig>,
    pub buffer: BufferConfig,
    pub collectors: CollectorsConfig,
    pub privacy: PrivacyConfig,
}

#[derive(Debug, Clone)]
pub struct JellyfinConfig {
    /// The server's base URL, always ending in `/` so that API paths join below any base path.
    pub url: url::Url,
    pub token_file: PathBuf,
    pub timeout: Duration,
    pub max_response_size: u64,
    /// Allows http:// to a host other than loopback, which sends the API key in clear text.
    pub insecure_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectConfig {
    #[serde(with = "humantime_serde", default = "default_interval")]
    pub interval: Duration,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            interval: default_interval(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// Names the target in metrics (`remote` label), logs and the queue folder; never the URL.
    pub name: String,
    pub url: url::Url,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth_user: Option<String>,
    pub basic_auth_password_file: Option<PathBuf>,
    /// Extra PEM CA certificates to trust, on top of the system's.
    pub ca_file: Option<PathBuf>,
    #[serde(with = "humantime_serde", default = "default_remote_timeout")]
    pub timeout: Duration,
    /// An HTTP proxy for this remote only (`http://host:port`; https targets go through it
    /// with CONNECT). Jellyfin never goes through it. Credentials never go in the URL.
    pub proxy_url: Option<url::Url>,
    /// Basic auth for the proxy; the password is read from `proxy_password_file` at start.
    pub proxy_user: Option<String>,
    pub proxy_password_file: Option<PathBuf>,
    /// A client certificate (PEM) and its private key (PEM) for receivers that require one.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// The name the receiver's certificate is checked against (and sent as SNI) when `url`
    /// names the host otherwise, e.g. by its IP address.
    pub tls_server_name: Option<String>,
    /// Allows http:// with credentials to a host other than loopback (clear text).
    #[serde(default)]
    pub insecure_http: bool,
    /// What receives the samples; decides the defaults of the two below ([`receiver`]).
    #[serde(default)]
    pub kind: ReceiverKind,
    /// Requests in flight at once while a backlog drains (1 to [`MAX_CONCURRENCY`]).
    pub concurrency: Option<usize>,
    /// The newest block first after an outage, the backlog behind it.
    pub newest_first: Option<bool>,
}

impl RemoteWriteConfig {
    /// `concurrency` and `newest_first`, or the defaults of `kind`.
    pub fn delivery_order(&self) -> DeliveryOrder {
        DeliveryOrder {
            concurrency: self
                .concurrency
                .unwrap_or_else(|| self.kind.default_concurrency()),
            newest_first: self
                .newest_first
                .unwrap_or_else(|| self.kind.default_newest_first()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// Unsent data kept per remote; past it the oldest blocks are dropped (reason buffer_full).
    #[serde(default = "default_max_size")]
    pub max_size: ByteSize,
    /// Blocks older than this are dropped unsent (reason too_old).
    #[serde(with = "humantime_serde", default = "default_max_age")]
    pub max_age: Duration,
    /// Size at which a queue data file is closed and a new one started.
    #[serde(default = "default_segment_size")]
    pub segment_size: ByteSize,
    /// Blocks kept in memory while the disk refuses writes (ENOSPC, read-only), per remote.
    #[serde(default = "default_memory_fallback")]
    pub memory_fallback_size: ByteSize,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_size: default_max_size(),
            max_age: default_max_age(),
            segment_size: default_segment_size(),
            memory_fallback_size: default_memory_fallback(),
        }
    }
}

/// `[collectors.<name>]` tables. Each collector can be switched off and given its own interval.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorsConfig {
    #[serde(default)]
    pub system: CollectorToggle,
    #[serde(default)]
    pub sessions: SessionsCollector,
    #[serde(default)]
    pub users: CollectorToggle,
    #[serde(default)]
    pub library: CollectorToggle,
    #[serde(default)]
    pub inventory: InventoryConfig,
    #[serde(default)]
    pub tasks: CollectorToggle,
    #[serde(default)]
    pub activity: CollectorToggle,
    #[serde(default)]
    pub transcode_log: TranscodeLogConfig,
    #[serde(default)]
    pub process: ProcessConfig,
    #[serde(default)]
    pub host: CollectorToggle,
    #[serde(default)]
    pub playback_reporting: PlaybackReportingConfig,
}

impl CollectorsConfig {
    /// (name, enabled, interval) of every `[collectors.<name>]` table.
    pub fn toggles(&self) -> [(&'static str, bool, Option<Duration>); 11] {
        [
            ("system", self.system.enabled, self.system.interval),
            ("sessions", self.sessions.enabled, self.sessions.interval),
            ("users", self.users.enabled, self.users.interval),
            ("library", self.library.enabled, self.library.interval),
            ("inventory", self.inventory.enabled, self.inventory.interval),
            ("tasks", self.tasks.enabled, self.tasks.interval),
            ("activity", self.activity.enabled, self.activity.interval),
            (
                "transcode_log",
                self.transcode_log.enabled,
                self.transcode_log.interval,
            ),
            ("process", self.process.enabled, self.process.interval),
            ("host", self.host.enabled, self.host.interval),
            (
                "playback_reporting",
                self.playback_reporting.enabled,
                self.playback_reporting.interval,
            ),
        ]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorToggle {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Defaults to the collector's own default, or `collect.interval` for the fast tier.
    #[serde(with = "humantime_serde", default)]
    pub interval: Option<Duration>,
}

impl Default for CollectorToggle {
    fn default() -> Self {
        CollectorToggle {
            enabled: true,
            interval: None,
        }
    }
}

/// `[collectors.playback_reporting]`: exact watch time from the Playback Reporting plugin
/// (jellyfin-plugin-playbackreporting), off by default: only for servers that run the plugin.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybackReportingConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(with = "humantime_serde", default)]
    pub interval: Option<Duration>,
}

/// `[collectors.sessions]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionsCollector {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(with = "humantime_serde", default)]
    pub interval: Option<Duration>,
    /// Sessions count as active when the server saw them within this window
    /// (GET /Sessions?activeWithinSeconds=…, as Jellyfin's own dashboard asks).
    #[serde(with = "humantime_serde", default = "default_active_within")]
    pub active_within: Duration,
    /// A MaxMind Country database (.mmdb): sessions are then also counted per country.
    pub geoip_database: Option<PathBuf>,
}

impl Default for SessionsCollector {
    fn default() -> Self {
        SessionsCollector {
            enabled: true,
            interval: None,
            active_within: default_active_within(),
            geoip_database: None,
        }
    }
}

fn default_active_within() -> Duration {
    Duration::from_secs(960)
}

/// `[collectors.inventory]`: the paged walk of every library.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(with = "humantime_serde", default)]
    pub interval: Option<Duration>,
    /// Items per GET /Items request.
    #[serde(default = "default_page_size")]
    pub page_size: u64,
    /// How long one GET /Items page may take (in place of `jellyfin.timeout`): pages ask for
    /// MediaSources, which big or slow (10.11) servers take seconds to build.
    #[serde(with = "humantime_serde", default = "default_page_timeout")]
    pub page_timeout: Duration,
    /// A page that times out is asked again with half as many items, down to this many (or
    /// page_size, if smaller).
    #[serde(default = "default_min_page_size")]
    pub min_page_size: u64,
    /// How many of the newest items per library `jellyfin_library_recently_added` shows.
    #[serde(default = "default_recent")]
    pub recent: usize,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig {
            enabled: true,
            interval: None,
            page_size: default_page_size(),
            page_timeout: default_page_timeout(),
            min_page_size: default_min_page_size(),
            recent: default_recent(),
        }
    }
}

fn default_page_size() -> u64 {
    500
}

fn default_page_timeout() -> Duration {
    Duration::from_secs(60)
}

fn default_min_page_size() -> u64 {
    25
}

fn default_recent() -> usize {
    10
}

/// `[collectors.transcode_log]`: on when `dir` names Jellyfin's log folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscodeLogConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(with = "humantime_serde", default)]
    pub interval: Option<Duration>,
    pub dir: Option<PathBuf>,
}

impl Default for TranscodeLogConfig {
    fn default() -> Self {
        TranscodeLogConfig {
            enabled: true,
            interval: None,
            dir: None,
        }
    }
}

/// `[collectors.process]`: how to find Jellyfin's process. The first that is set wins:
/// `pid_file`, then `unit` (systemd unit in the process's cgroup), then `name` (its comm).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(with = "humantime_serde", default)]
    pub interval: Option<Duration>,
    pub pid_file: Option<PathBuf>,
    #[serde(default = "default_unit")]
    pub unit: Option<String>,
    #[serde(default = "default_process_name")]
    pub name: String,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            enabled: true,
            interval: None,
            pid_file: None,
            unit: default_unit(),
            name: default_process_name(),
        }
    }
}

fn default_unit() -> Option<String> {
    Some("jellyfin.service".into())
}

fn default_process_name() -> String {
    "jellyfin".into()
}

/// `[privacy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    /// What the `user` label says: hash (default), id, name or none.
    #[serde(default)]
    pub user_label: crate::privacy::UserLabel,
    /// How many items `jellyfin_item_plays_total` tracks; 0 turns it off.
    #[serde(default = "default_top_items")]
    pub top_items: usize,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        PrivacyConfig {
            user_label: Default::default(),
            top_items: default_top_items(),
        }
    }
}

fn default_top_items() -> usize {
    50
}

fn yes() -> bool {
    true
}
fn default_interval() -> Duration {
    Duration::from_secs(15)
}
fn default_remote_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_jellyfin_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_size() -> ByteSize {
    ByteSize::mib(512)
}
fn default_max_age() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn default_segment_size() -> ByteSize {
    ByteSize::mib(8)
}
fn default_memory_fallback() -> ByteSize {
    ByteSize::mib(16)
}
fn default_max_response_size() -> ByteSize {
    ByteSize::mib(32)
}

/// The file as written; [`Config::from_toml`] resolves defaults and validates it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<PathBuf>,
    log_level: Option<String>,
    jellyfin: RawJellyfin,
    #[serde(default)]
    collect: CollectConfig,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    remote_write: Vec<RemoteWriteConfig>,
    #[serde(default)]
    buffer: BufferConfig,
    #[serde(default)]
    collectors: CollectorsConfig,
    #[serde(default)]
    privacy: PrivacyConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJellyfin {
    url: url::Url,
    token_file: Option<PathBuf>,
    #[serde(with = "humantime_serde", default = "default_jellyfin_timeout")]
    timeout: Duration,
    #[serde(default = "default_max_response_size")]
    max_response_size: ByteSize,
    #[serde(default)]
    insecure_http: bool,
}

/// Where defaults that systemd provides come from; a trait object so tests need no real env.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads the process environment.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// `job` defaults to `jellyfin` and `instance` to the host name, the labels every dashboard
/// and alert selects on.
fn with_default_labels(
    mut labels: BTreeMap<String, String>,
    env: Env<'_>,
) -> Vec<(String, String)> {
    labels
        .entry("job".into())
        .or_insert_with(|| "jellyfin".into());
    let host = || {
        env("HOSTNAME").or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
    };
    if let (false, Some(host)) = (labels.contains_key("instance"), host()) {
        labels.insert("instance".into(), host);
    }
    labels.into_iter().collect()
}

/// For `status` and `check` run by hand next to the service: the folders the plain unit
/// (config/jellyfin-pusher.service) gives the agent stand in for the variables that only the
/// service's own environment has, so the same config file works from a root shell.
pub fn operator_env(key: &str) -> Option<String> {
    process_env(key).or_else(|| match key {
        "STATE_DIRECTORY" => Some("/var/lib/jellyfin-pusher".into()),
        "CREDENTIALS_DIRECTORY" => Some("/run/credentials/jellyfin-pusher.service".into()),
        _ => None,
    })
}

impl Config {
    /// Reads, resolves and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_with(path, &process_env)
    }

    /// Like [`Config::load`], with defaults from `env` (see [`operator_env`]).
    pub fn load_with(path: &Path, env: Env<'_>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path, format!("cannot read: {e}")))?;
        Config::from_toml(&text, path, env)
    }

    pub fn from_toml(text: &str, path: &Path, env: Env<'_>) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError::new(path, message);
        let raw: RawConfig = toml::from_str(text).map_err(|e| err(e.to_string()))?;

        let state_dir = match raw.state_dir {
            Some(dir) => dir,
            // systemd's StateDirectory= may list several folders, separated by colons.
            None => match env("STATE_DIRECTORY") {
                Some(dirs) => PathBuf::from(dirs.split(':').next().unwrap_or_default()),
                None => {
                    return Err(err(
                        "state_dir is not set and $STATE_DIRECTORY is not set either \
                                    (systemd sets it from StateDirectory=)"
                            .into(),
                    ));
                }
            },
        };
        let token_file = match raw.jellyfin.token_file {
            Some(file) => file,
            None => match env("CREDENTIALS_DIRECTORY") {
                Some(dir) => Path::new(&dir).join("jellyfin-token"),
                None => {
                    return Err(err(
                        "jellyfin.token_file is not set and $CREDENTIALS_DIRECTORY is \
                                    not set either (systemd sets it from LoadCredential=)"
                            .into(),
                    ));
                }
            },
        };
        let mut url = raw.jellyfin.url;
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        let config = Config {
            path: path.to_path_buf(),
            state_dir,
            log_level: raw.log_level,
            jellyfin: JellyfinConfig {
                url,
                token_file,
                timeout: raw.jellyfin.timeout,
                max_response_size: raw.jellyfin.max_response_size.as_u64(),
                insecure_http: raw.jellyfin.insecure_http,
            },
            collect: raw.collect,
            labels: with_default_labels(raw.labels, env),
            remote_write: raw.remote_write,
            buffer: raw.buffer,
            collectors: raw.collectors,
            privacy: raw.privacy,
        };
        let problems = validate::validate(&config);
        if !problems.is_empty() {
            return Err(ConfigError {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(config)
    }

    /// The tables whose credentials cross the network in clear text because they set
    /// `insecure_http = true`: worth a warning at every start.
    pub fn cleartext_credentials(&self) -> Vec<String> {
        let jellyfin =
            validate::leaves_in_clear(&self.jellyfin.url).then(|| "jellyfin".to_string());
        let remotes = self.remote_write.iter().filter(|rw| {
            let has_credentials = rw.bearer_token_file.is_some() || rw.basic_auth_user.is_some();
            let proxy_in_clear = rw.proxy_user.is_some()
                && rw.proxy_url.as_ref().is_some_and(validate::leaves_in_clear);
            (has_credentials && validate::leaves_in_clear(&rw.url)) || proxy_in_clear
        });
        jellyfin
            .into_iter()
            .chain(remotes.map(|rw| format!("remote_write {:?}", rw.name)))
            .collect()
    }

    /// The folder of one remote's queue.
    pub fn queue_dir(&self, remote: &str) -> PathBuf {
        self.state_dir.join("queue").join(remote)
    }
}
