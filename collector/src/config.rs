//! Configuration: defaults that run as is, then a TOML file (`--config`), then environment
//! variables (tokens and base URLs, so tests point the forwarders at a local mock; the collect
//! path and cookie domain), then flags. Every problem is reported with the key that caused it (the flag or the
//! environment variable when the value came from there); `main` exits with code 2.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::store::Synchronous;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";
pub const DEFAULT_DB: &str = "./tandem.db";
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// Kept for compatibility with the tag's default `endpoint`; ad blockers' lists block it, so a
/// production site picks a neutral path of its own (`collect_path`).
pub const DEFAULT_COLLECT_PATH: &str = "/collect";
/// Long enough for any sensible route, short enough to keep request lines small.
pub const MAX_COLLECT_PATH_LENGTH: usize = 128;
/// The collector's other routes, which the collect path must not shadow.
const RESERVED_PATHS: &[&str] = &["/events", "/healthz"];
/// The demo shop (`node www/server.mjs`, port 8080) under both of its usual names.
pub const DEFAULT_ALLOWED_ORIGINS: &[&str] = &["http://localhost:8080", "http://127.0.0.1:8080"];

pub const USAGE: &str = "\
tandem-collector: Tandem's first-party endpoint (stores each event once, forwards it to Meta, TikTok, GA4)

USAGE: tandem-collector [--config FILE] [--listen ADDR] [--db PATH] [--collect-path PATH] [--max-body BYTES]
                        [--cookie-domain DOMAIN] [--allowed-origin ORIGIN]...

  --config FILE           TOML config file (see collector/tandem-collector.toml)
  --listen ADDR           address to listen on (default 127.0.0.1:8081; port 0 picks a free one)
  --db PATH               SQLite database (default ./tandem.db, created if absent)
  --collect-path PATH     path the tag posts its events to (default /collect, which ad blockers block:
                          pick a neutral one like /t/e; letters, digits, / - . _ ~)
  --max-body BYTES        largest accepted POST body on the collect path (default 65536)
  --cookie-domain DOMAIN  Domain= of the refreshed _tandem_cid/_fbp/_fbc cookies, for requests to that
                          domain or a subdomain (default none: host-only; \"\" sets none again)
  --allowed-origin ORIGIN site origin allowed to post cross-origin (repeatable; replaces the file's list)
  -h, --help              this text
  -V, --version           the version

Environment: TANDEM_COLLECT_PATH, TANDEM_COOKIE_DOMAIN, TANDEM_META_PIXEL_ID, TANDEM_META_TOKEN,
TANDEM_META_BASE_URL, TANDEM_META_API_VERSION, TANDEM_TIKTOK_PIXEL_ID, TANDEM_TIKTOK_TOKEN,
TANDEM_TIKTOK_BASE_URL, TANDEM_GA4_MEASUREMENT_ID, TANDEM_GA4_API_SECRET, TANDEM_GA4_BASE_URL,
TANDEM_GA4_EVENTS (each overrides the file's key of the same meaning; a flag overrides both).
";

/// A configuration problem, naming the key (or flag) at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "config error: `{}`: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

fn error(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_owned(), message: message.into() }
}

/// Whose `X-Forwarded-For` / `-Proto` / `-Host` to believe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustForwarded {
    /// Only from a peer on a loopback address (a reverse proxy on the same host, like the demo server).
    Loopback,
    Always,
    Never,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub db: PathBuf,
    /// Where `POST` (and its CORS preflight) is served; `load` guarantees a plain path that is
    /// not `/events` or `/healthz` (see `check_collect_path`).
    pub collect_path: String,
    pub max_body_bytes: usize,
    pub allowed_origins: Vec<String>,
    pub synchronous: Synchronous,
    pub trust_forwarded: TrustForwarded,
    /// `Domain=` for the cookies the collect response refreshes, lowercase, without a leading dot;
    /// `None`: host-only. Applied only to requests for that domain or a subdomain of it (see
    /// `cookies::cookie_domain_for`).
    pub cookie_domain: Option<String>,
    /// How long a client may take to send its body before getting a 408.
    pub body_timeout_ms: u64,
    pub outbox: OutboxConfig,
    pub meta: Option<MetaConfig>,
    pub tiktok: Option<TikTokConfig>,
    pub ga4: Option<Ga4Config>,
}

#[derive(Debug, Clone)]
pub struct OutboxConfig {
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    pub max_attempts: u32,
    pub request_timeout_ms: u64,
    pub max_in_flight: usize,
    pub poll_interval_ms: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self { retry_base_ms: 1_000, retry_max_ms: 600_000, max_attempts: 15, request_timeout_ms: 10_000, max_in_flight: 16, poll_interval_ms: 1_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaConfig {
    pub pixel_id: String,
    pub access_token: String,
    pub base_url: String,
    pub api_version: String,
    pub test_event_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TikTokConfig {
    pub pixel_id: String,
    pub access_token: String,
    pub base_url: String,
    pub test_event_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ga4Config {
    pub measurement_id: String,
    pub api_secret: String,
    pub base_url: String,
    /// `events = "all"`: every event, for a site without gtag on its pages. By default
    /// (`"purchase"`) only purchases: GA4 deduplicates a purchase by transaction_id, nothing
    /// else, so a server copy of any other event gtag sent would be counted twice.
    pub all_events: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8081))),
            db: PathBuf::from(DEFAULT_DB),
            collect_path: DEFAULT_COLLECT_PATH.to_owned(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allowed_origins: DEFAULT_ALLOWED_ORIGINS.iter().map(|origin| (*origin).to_owned()).collect(),
            synchronous: Synchronous::Normal,
            trust_forwarded: TrustForwarded::Loopback,
            cookie_domain: None,
            body_timeout_ms: 10_000,
            outbox: OutboxConfig::default(),
            meta: None,
            tiktok: None,
            ga4: None,
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

// ---- the file ----------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    db: Option<PathBuf>,
    collect_path: Option<String>,
    max_body_bytes: Option<usize>,
    allowed_origins: Option<Vec<String>>,
    synchronous: Option<String>,
    trust_forwarded: Option<String>,
    cookie_domain: Option<String>,
    body_timeout_ms: Option<u64>,
    outbox: Option<FileOutbox>,
    meta: Option<FileMeta>,
    tiktok: Option<FileTikTok>,
    ga4: Option<FileGa4>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOutbox {
    retry_base_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    max_attempts: Option<u32>,
    request_timeout_ms: Option<u64>,
    max_in_flight: Option<usize>,
    poll_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMeta {
    pixel_id: Option<String>,
    access_token: Option<String>,
    base_url: Option<String>,
    api_version: Option<String>,
    test_event_code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTikTok {
    pixel_id: Option<String>,
    access_token: Option<String>,
    base_url: Option<String>,
    test_event_code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGa4 {
    measurement_id: Option<String>,
    api_secret: Option<String>,
    base_url: Option<String>,
    events: Option<String>,
}

// ---- loading -----------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Flags {
    config: Option<PathBuf>,
    listen: Option<String>,
    db: Option<PathBuf>,
    collect_path: Option<String>,
    max_body: Option<String>,
    cookie_domain: Option<String>,
    allowed_origins: Vec<String>,
}

/// Parses the arguments (without the program name), reads the file they name, applies `env`.
pub fn load(args: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Command, ConfigError> {
    let mut flags = Flags::default();
    let mut remaining = args.iter();
    while let Some(argument) = remaining.next() {
        let (name, inline) = match argument.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (argument.as_str(), None),
        };
        let mut value = |flag: &str| -> Result<String, ConfigError> {
            match inline.clone().or_else(|| remaining.next().cloned()) {
                Some(value) => Ok(value),
                None => Err(error(flag, "needs a value")),
            }
        };
        match name {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--config" => flags.config = Some(PathBuf::from(value("--config")?)),
            "--listen" => flags.listen = Some(value("--listen")?),
            "--db" => flags.db = Some(PathBuf::from(value("--db")?)),
            "--collect-path" => flags.collect_path = Some(value("--collect-path")?),
            "--max-body" => flags.max_body = Some(value("--max-body")?),
            "--cookie-domain" => flags.cookie_domain = Some(value("--cookie-domain")?),
            "--allowed-origin" => flags.allowed_origins.push(value("--allowed-origin")?),
            other => return Err(error(other, "unknown flag (see --help)")),
        }
    }
    let file = match &flags.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|cause| error("--config", format!("cannot read {}: {cause}", path.display())))?;
            parse_file(&text)?
        }
        None => FileConfig::default(),
    };
    build(file, &flags, env).map(|config| Command::Run(Box::new(config)))
}

fn parse_file(text: &str) -> Result<FileConfig, ConfigError> {
    toml::from_str(text).map_err(|cause| {
        let key = cause
            .span()
            .and_then(|span| key_at(text, span.start))
            .or_else(|| cause.message().split('`').nth(1).map(str::to_owned))
            .unwrap_or_else(|| "(config file)".to_owned());
        error(&key, cause.message().trim().replace('\n', " "))
    })
}

/// The dotted key (`meta.pixel_id`) of the `key = value` line holding byte `offset` of a TOML text.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let line_start = before.rfind('\n').map_or(0, |index| index + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let section = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|candidate| candidate.starts_with('[') && candidate.ends_with(']'))
        .map(|header| header.trim_matches(|character| character == '[' || character == ']').trim().to_owned());
    Some(match section {
        Some(section) => format!("{section}.{key}"),
        None => key.to_owned(),
    })
}

fn build(file: FileConfig, flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
    let defaults = Config::default();
    let env = |name: &str| env(name).filter(|value| !value.is_empty());

    let (listen_key, listen_text) = match (&flags.listen, &file.listen) {
        (Some(flag), _) => ("--listen", Some(flag.clone())),
        (None, Some(key)) => ("listen", Some(key.clone())),
        (None, None) => ("listen", None),
    };
    let listen = match listen_text {
        Some(text) => text
            .parse::<SocketAddr>()
            .map_err(|_| error(listen_key, format!("{text:?} is not an IP:port address (e.g. 127.0.0.1:8081)")))?,
        None => defaults.listen,
    };

    let db = flags.db.clone().or(file.db).unwrap_or(defaults.db);
    if db.as_os_str().is_empty() {
        return Err(error(if flags.db.is_some() { "--db" } else { "db" }, "must not be empty"));
    }

    let collect_path = match first_layer([
        ("--collect-path", flags.collect_path.clone()),
        ("TANDEM_COLLECT_PATH", env("TANDEM_COLLECT_PATH")),
        ("collect_path", file.collect_path),
    ]) {
        Some((key, path)) => check_collect_path(&path).map_err(|message| error(key, message))?,
        None => defaults.collect_path,
    };

    let max_body_bytes = match (&flags.max_body, file.max_body_bytes) {
        (Some(text), _) => text.parse::<usize>().map_err(|_| error("--max-body", format!("{text:?} is not a number of bytes")))?,
        (None, Some(bytes)) => bytes,
        (None, None) => defaults.max_body_bytes,
    };
    if !(1024..=16 * 1024 * 1024).contains(&max_body_bytes) {
        let key = if flags.max_body.is_some() { "--max-body" } else { "max_body_bytes" };
        return Err(error(key, format!("must be between 1024 and 16777216 bytes, got {max_body_bytes}")));
    }

    let (origins_key, allowed_origins) = if !flags.allowed_origins.is_empty() {
        ("--allowed-origin", flags.allowed_origins.clone())
    } else {
        ("allowed_origins", file.allowed_origins.unwrap_or(defaults.allowed_origins))
    };
    for origin in &allowed_origins {
        check_origin(origin).map_err(|message| error(origins_key, message))?;
    }

    let synchronous = match file.synchronous.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("normal") => Synchronous::Normal,
        Some("full") => Synchronous::Full,
        Some(other) => return Err(error("synchronous", format!("must be \"normal\" or \"full\", got {other:?}"))),
    };
    let trust_forwarded = match file.trust_forwarded.as_deref() {
        None | Some("loopback") => TrustForwarded::Loopback,
        Some("always") => TrustForwarded::Always,
        Some("never") => TrustForwarded::Never,
        Some(other) => return Err(error("trust_forwarded", format!("must be \"loopback\", \"always\" or \"never\", got {other:?}"))),
    };
    let cookie_domain = match first_layer([
        ("--cookie-domain", flags.cookie_domain.clone()),
        ("TANDEM_COOKIE_DOMAIN", env("TANDEM_COOKIE_DOMAIN")),
        ("cookie_domain", file.cookie_domain),
    ]) {
        Some((key, domain)) => check_cookie_domain(&domain).map_err(|message| error(key, message))?,
        None => defaults.cookie_domain,
    };
    let body_timeout_ms = positive("body_timeout_ms", file.body_timeout_ms.unwrap_or(defaults.body_timeout_ms))?;

    let file_outbox = file.outbox.unwrap_or_default();
    let outbox_defaults = OutboxConfig::default();
    let outbox = OutboxConfig {
        retry_base_ms: positive("outbox.retry_base_ms", file_outbox.retry_base_ms.unwrap_or(outbox_defaults.retry_base_ms))?,
        retry_max_ms: positive("outbox.retry_max_ms", file_outbox.retry_max_ms.unwrap_or(outbox_defaults.retry_max_ms))?,
        max_attempts: positive("outbox.max_attempts", u64::from(file_outbox.max_attempts.unwrap_or(outbox_defaults.max_attempts)))? as u32,
        request_timeout_ms: positive("outbox.request_timeout_ms", file_outbox.request_timeout_ms.unwrap_or(outbox_defaults.request_timeout_ms))?,
        max_in_flight: positive("outbox.max_in_flight", file_outbox.max_in_flight.unwrap_or(outbox_defaults.max_in_flight) as u64)? as usize,
        poll_interval_ms: positive("outbox.poll_interval_ms", file_outbox.poll_interval_ms.unwrap_or(outbox_defaults.poll_interval_ms))?,
    };
    if outbox.retry_max_ms < outbox.retry_base_ms {
        return Err(error("outbox.retry_max_ms", "must be at least outbox.retry_base_ms"));
    }

    let meta_file = file.meta.unwrap_or_default();
    let meta = match env("TANDEM_META_PIXEL_ID").or(meta_file.pixel_id) {
        None => None,
        Some(pixel_id) => Some(MetaConfig {
            pixel_id: identifier("meta.pixel_id", pixel_id)?,
            access_token: required("meta.access_token", "TANDEM_META_TOKEN", env("TANDEM_META_TOKEN").or(meta_file.access_token))?,
            base_url: base_url("meta.base_url", env("TANDEM_META_BASE_URL").or(meta_file.base_url), "https://graph.facebook.com")?,
            api_version: {
                let version = env("TANDEM_META_API_VERSION").or(meta_file.api_version).unwrap_or_else(|| "v21.0".to_owned());
                if !version.starts_with('v') || version[1..].parse::<f32>().is_err() {
                    return Err(error("meta.api_version", format!("must look like v21.0, got {version:?}")));
                }
                version
            },
            test_event_code: meta_file.test_event_code.filter(|code| !code.is_empty()),
        }),
    };
    let tiktok_file = file.tiktok.unwrap_or_default();
    let tiktok = match env("TANDEM_TIKTOK_PIXEL_ID").or(tiktok_file.pixel_id) {
        None => None,
        Some(pixel_id) => Some(TikTokConfig {
            pixel_id: identifier("tiktok.pixel_id", pixel_id)?,
            access_token: required("tiktok.access_token", "TANDEM_TIKTOK_TOKEN", env("TANDEM_TIKTOK_TOKEN").or(tiktok_file.access_token))?,
            base_url: base_url("tiktok.base_url", env("TANDEM_TIKTOK_BASE_URL").or(tiktok_file.base_url), "https://business-api.tiktok.com")?,
            test_event_code: tiktok_file.test_event_code.filter(|code| !code.is_empty()),
        }),
    };
    let ga4_file = file.ga4.unwrap_or_default();
    let ga4 = match env("TANDEM_GA4_MEASUREMENT_ID").or(ga4_file.measurement_id) {
        None => None,
        Some(measurement_id) => {
            if !measurement_id.starts_with("G-") {
                return Err(error("ga4.measurement_id", format!("must look like G-XXXXXXX, got {measurement_id:?}")));
            }
            Some(Ga4Config {
                measurement_id: identifier("ga4.measurement_id", measurement_id)?,
                api_secret: required("ga4.api_secret", "TANDEM_GA4_API_SECRET", env("TANDEM_GA4_API_SECRET").or(ga4_file.api_secret))?,
                base_url: base_url("ga4.base_url", env("TANDEM_GA4_BASE_URL").or(ga4_file.base_url), "https://www.google-analytics.com")?,
                all_events: match env("TANDEM_GA4_EVENTS").or(ga4_file.events).as_deref() {
                    None | Some("purchase") => false,
                    Some("all") => true,
                    Some(other) => {
                        return Err(error("ga4.events", format!("must be \"purchase\" (the default: the only event GA4 deduplicates against gtag's copy) or \"all\" (for pages without gtag), got {other:?}")));
                    }
                },
            })
        }
    };

    Ok(Config { listen, db, collect_path, max_body_bytes, allowed_origins, synchronous, trust_forwarded, cookie_domain, body_timeout_ms, outbox, meta, tiktok, ga4 })
}

/// The value of the highest layer that sets a key (flags first, then the environment, then the
/// file), with the name an error about it should give: where the user has to look to fix it.
fn first_layer(layers: [(&'static str, Option<String>); 3]) -> Option<(&'static str, String)> {
    layers.into_iter().find_map(|(name, value)| value.map(|value| (name, value)))
}

/// The collect path becomes an axum route and must be reached by what a browser sends, so only
/// plain path characters are taken: `:`, `*`, `{`, `}` would be route syntax (captures, or a panic
/// at start-up), `%` escapes and `.`/`..` or empty segments are rewritten by browsers and proxies
/// before they arrive, so such a route would never match.
fn check_collect_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("must start with '/', got {path:?}"));
    }
    if path.contains(['?', '#']) {
        return Err(format!("must be a path alone, without '?' or '#', got {path:?}"));
    }
    if path.len() > MAX_COLLECT_PATH_LENGTH {
        return Err(format!("must be at most {MAX_COLLECT_PATH_LENGTH} characters, got {}", path.len()));
    }
    if let Some(character) = path.chars().find(|character| !(character.is_ascii_alphanumeric() || matches!(character, '/' | '-' | '.' | '_' | '~'))) {
        return Err(format!("may hold only letters, digits, '/', '-', '.', '_' and '~', got {character:?} in {path:?}"));
    }
    if path.contains("//") || path.split('/').any(|segment| segment == "." || segment == "..") {
        return Err(format!("must not hold empty, '.' or '..' segments (browsers and proxies rewrite them), got {path:?}"));
    }
    if RESERVED_PATHS.contains(&path) {
        return Err(format!("{path} is already the collector's {path} endpoint; pick another path"));
    }
    Ok(path.to_owned())
}

/// The cookie domain as browsers compare it: one leading dot dropped (the old `Domain=.x` form
/// means the same), lowercase. An empty value means none (host-only), so a flag can undo the
/// file's. Refused: IP addresses and single labels (browsers never take `Domain=` for those: a
/// top-level domain, or `localhost` where host-only is the same thing), and anything but
/// dot-separated labels of letters, digits and inner hyphens. Public suffixes (`co.uk`) are not
/// checked, as no list is shipped: browsers refuse those cookies themselves.
fn check_cookie_domain(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let domain = text.strip_prefix('.').unwrap_or(text).to_ascii_lowercase();
    if domain.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok() {
        return Err(format!("must be a domain name, not an IP address, got {text:?}"));
    }
    if domain.len() > 253 {
        return Err(format!("must be at most 253 characters, got {}", domain.len()));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let bad_label = labels.iter().find(|label| {
        label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
    });
    if let Some(label) = bad_label {
        return Err(format!(
            "must be a domain name like \"shop.example\" (labels of letters, digits and inner '-', 1 to 63 each), got {text:?} (label {label:?})"
        ));
    }
    if labels.len() < 2 {
        return Err(format!("must have at least two labels, like \"shop.example\"; browsers refuse Domain={domain}, got {text:?}"));
    }
    if labels.last().is_some_and(|top| top.bytes().all(|byte| byte.is_ascii_digit())) {
        return Err(format!("must be a domain name, not an IP address, got {text:?}"));
    }
    Ok(Some(domain))
}

fn positive(key: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        Err(error(key, "must be greater than 0"))
    } else {
        Ok(value)
    }
}

fn identifier(key: &str, value: String) -> Result<String, ConfigError> {
    if value.is_empty() || !value.chars().all(|character| character.is_ascii_alphanumeric() || character == '-' || character == '_') {
        return Err(error(key, format!("must be letters, digits, '-' or '_', got {value:?}")));
    }
    Ok(value)
}

fn required(key: &str, env_name: &str, value: Option<String>) -> Result<String, ConfigError> {
    value
        .filter(|value| !value.is_empty())
        .ok_or_else(|| error(key, format!("is required when the platform is configured (set it in the file or in {env_name})")))
}

fn base_url(key: &str, value: Option<String>, default: &str) -> Result<String, ConfigError> {
    let url = value.unwrap_or_else(|| default.to_owned());
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains('?') && !host.contains('#') => Ok(url.trim_end_matches('/').to_owned()),
        _ => Err(error(key, format!("must be an http:// or https:// URL without query, got {url:?}"))),
    }
}

/// An origin is `scheme://host[:port]`, nothing after. `*` is refused: the collector sends
/// credentials (cookies) and browsers reject `*` with credentials anyway.
fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("{origin:?} must start with http:// or https://"))?;
    if rest.is_empty() || rest.contains('/') || rest.contains('?') || rest.contains('#') || rest.contains('*') {
        return Err(format!("{origin:?} must be scheme://host[:port] with no path, like http://localhost:8080"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        // One file per call: tests run in parallel, and two files named after their length alone
        // (as before) could be overwritten by another test between writing and reading.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let mut args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
        let directory = std::env::temp_dir().join(format!("tandem-config-test-{}", std::process::id()));
        if let Some(text) = file {
            let _ = std::fs::create_dir_all(&directory);
            let path = directory.join(format!("{}.toml", CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
            std::fs::write(&path, text).expect("write temp config");
            args.push("--config".to_owned());
            args.push(path.display().to_string());
        }
        let env: Vec<(String, String)> = env.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        let lookup = move |name: &str| env.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        match load(&args, &lookup)? {
            Command::Run(config) => Ok(*config),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn key_of(result: Result<Config, ConfigError>) -> String {
        result.expect_err("should fail").key
    }

    #[test]
    fn defaults_run_as_is() {
        let config = run(&[], None, &[]).expect("defaults");
        assert_eq!(config.listen.to_string(), "127.0.0.1:8081");
        assert_eq!(config.db, PathBuf::from("./tandem.db"));
        assert_eq!(config.max_body_bytes, 65536);
        assert!(config.meta.is_none() && config.tiktok.is_none() && config.ga4.is_none());
    }

    #[test]
    fn flags_override_file_and_env_fills_secrets() {
        let config = run(
            &["--listen", "127.0.0.1:0", "--allowed-origin", "https://shop.example", "--max-body=2048"],
            Some("listen = \"0.0.0.0:9000\"\n[meta]\npixel_id = \"123\"\n[ga4]\nmeasurement_id = \"G-ABC\"\napi_secret = \"s\"\n"),
            &[("TANDEM_META_TOKEN", "tok"), ("TANDEM_META_BASE_URL", "http://127.0.0.1:9/")],
        )
        .expect("valid");
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.allowed_origins, vec!["https://shop.example"]);
        assert_eq!(config.max_body_bytes, 2048);
        let meta = config.meta.expect("meta on");
        assert_eq!((meta.access_token.as_str(), meta.base_url.as_str(), meta.api_version.as_str()), ("tok", "http://127.0.0.1:9", "v21.0"));
        assert_eq!(config.ga4.expect("ga4 on").base_url, "https://www.google-analytics.com");
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(key_of(run(&["--listen", "nowhere"], None, &[])), "--listen");
        assert_eq!(key_of(run(&["--max-body", "12"], None, &[])), "--max-body");
        assert_eq!(key_of(run(&["--allowed-origin", "shop.example"], None, &[])), "--allowed-origin");
        assert_eq!(key_of(run(&["--bogus"], None, &[])), "--bogus");
        assert_eq!(key_of(run(&[], Some("lissten = \"x\""), &[])), "lissten");
        assert_eq!(key_of(run(&[], Some("max_body_bytes = \"big\""), &[])), "max_body_bytes");
        assert_eq!(key_of(run(&[], Some("[meta]\npixel_id = \"1\""), &[])), "meta.access_token");
        assert_eq!(key_of(run(&[], Some("[tiktok]\npixel_id = \"C1\"\naccess_token = \"t\"\nbase_url = \"ftp://x\""), &[])), "tiktok.base_url");
        assert_eq!(key_of(run(&[], Some("[ga4]\nmeasurement_id = \"UA-1\""), &[])), "ga4.measurement_id");
        assert_eq!(key_of(run(&[], Some("synchronous = \"off\""), &[])), "synchronous");
        assert_eq!(key_of(run(&[], Some("[outbox]\nretry_base_ms = 0"), &[])), "outbox.retry_base_ms");
    }

    #[test]
    fn collect_path_layers_file_then_env_then_flag() {
        assert_eq!(run(&[], None, &[]).expect("defaults").collect_path, "/collect");
        let file = Some("collect_path = \"/from-file\"\n");
        assert_eq!(run(&[], file, &[]).expect("file").collect_path, "/from-file");
        let env = [("TANDEM_COLLECT_PATH", "/from-env")];
        assert_eq!(run(&[], file, &env).expect("env over file").collect_path, "/from-env");
        assert_eq!(run(&["--collect-path", "/t/e"], file, &env).expect("flag over env").collect_path, "/t/e");
        assert_eq!(run(&["--collect-path=/t/e"], None, &[]).expect("inline flag").collect_path, "/t/e");
        // An empty variable is unset, as for every other variable.
        assert_eq!(run(&[], file, &[("TANDEM_COLLECT_PATH", "")]).expect("empty env").collect_path, "/from-file");
        for plain in ["/", "/t/", "/a-b_c.d~e/F9", "/collect2"] {
            assert_eq!(run(&["--collect-path", plain], None, &[]).expect(plain).collect_path, plain);
        }
    }

    #[test]
    fn an_invalid_collect_path_is_named_where_it_was_set() {
        let too_long = format!("/{}", "a".repeat(MAX_COLLECT_PATH_LENGTH));
        let invalid = [
            "", "collect", "t/e", "/t?e", "/t#e", "/t e", "/t%20e", "/:id", "/*rest", "/{id}", "/t//e", "/t/../e", "/./t",
            "/events", "/healthz", "/é", too_long.as_str(),
        ];
        for path in invalid {
            let error = run(&["--collect-path", path], None, &[]).expect_err(path);
            assert_eq!(error.key, "--collect-path", "{path:?}: {error}");
            if !path.is_empty() {
                assert_eq!(key_of(run(&[], None, &[("TANDEM_COLLECT_PATH", path)])), "TANDEM_COLLECT_PATH", "{path:?}");
            }
            let file = format!("collect_path = {}\n", serde_json::to_string(path).expect("a JSON string is a TOML basic string"));
            assert_eq!(key_of(run(&[], Some(&file), &[])), "collect_path", "{path:?}");
        }
        let error = run(&["--collect-path", "/events"], None, &[]).expect_err("reserved");
        assert!(error.message.contains("/events endpoint"), "{error}");
        assert_eq!(key_of(run(&["--collect-path"], None, &[])), "--collect-path", "a flag without its value");
        assert_eq!(key_of(run(&[], Some("collect_path = 7\n"), &[])), "collect_path");
    }

    #[test]
    fn cookie_domain_layers_file_then_env_then_flag() {
        assert_eq!(run(&[], None, &[]).expect("defaults").cookie_domain, None, "host-only by default");
        let file = Some("cookie_domain = \".Shop.Example\"\n");
        assert_eq!(run(&[], file, &[]).expect("file").cookie_domain.as_deref(), Some("shop.example"), "leading dot dropped, lowercased");
        let env = [("TANDEM_COOKIE_DOMAIN", "env.example")];
        assert_eq!(run(&[], file, &env).expect("env over file").cookie_domain.as_deref(), Some("env.example"));
        let flagged = run(&["--cookie-domain", "flag.example.co.uk"], file, &env).expect("flag over env");
        assert_eq!(flagged.cookie_domain.as_deref(), Some("flag.example.co.uk"));
        assert_eq!(run(&["--cookie-domain", ""], file, &env).expect("empty flag").cookie_domain, None, "an empty flag undoes the others");
        assert_eq!(run(&[], Some("cookie_domain = \"\"\n"), &[]).expect("empty key").cookie_domain, None);
        assert_eq!(run(&[], file, &[("TANDEM_COOKIE_DOMAIN", "")]).expect("empty env").cookie_domain.as_deref(), Some("shop.example"), "an empty variable is unset");
        assert_eq!(run(&["--cookie-domain=xn--bcher-kva.example"], None, &[]).expect("punycode").cookie_domain.as_deref(), Some("xn--bcher-kva.example"));
    }

    #[test]
    fn an_invalid_cookie_domain_is_named_where_it_was_set() {
        let long_label = format!("{}.example", "a".repeat(64));
        let too_long = format!("{}example", "abcdefghi.".repeat(25));
        let invalid = [
            "192.168.0.1", "::1", "[::1]", "shop.123", "localhost", "example", ".", "..shop.example", "shop..example", "shop.example.",
            "-shop.example", "shop-.example", "shop_x.example", "shop.example:8080", "*.shop.example", "https://shop.example", "shop example",
            "bücher.example", long_label.as_str(), too_long.as_str(),
        ];
        for domain in invalid {
            let error = run(&["--cookie-domain", domain], None, &[]).expect_err(domain);
            assert_eq!(error.key, "--cookie-domain", "{domain:?}: {error}");
            assert_eq!(key_of(run(&[], None, &[("TANDEM_COOKIE_DOMAIN", domain)])), "TANDEM_COOKIE_DOMAIN", "{domain:?}");
            let file = format!("cookie_domain = {}\n", serde_json::to_string(domain).expect("a JSON string is a TOML basic string"));
            assert_eq!(key_of(run(&[], Some(&file), &[])), "cookie_domain", "{domain:?}");
        }
        assert!(run(&["--cookie-domain", "10.0.0.1"], None, &[]).expect_err("IP").message.contains("not an IP address"));
        assert_eq!(key_of(run(&["--cookie-domain"], None, &[])), "--cookie-domain", "a flag without its value");
    }
}
