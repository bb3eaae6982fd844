//! Stage two: validate every value and build typed settings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::Serialize;
use simian_core::Grouping;
use simian_monkey::{AppPolicy, Calendar, Exception, Policy};
use simian_providers::kubernetes::Selector;
use simian_providers::{
    AwsConfig, DockerAction, DockerConfig, KubernetesAction, KubernetesConfig, ProcessConfig,
};
use toml::Spanned;

use super::ConfigError;
use super::raw::{
    RawApp, RawConfig, RawDrills, RawMonkey, RawNotifier, RawOutage, RawProvider, RawSelector,
};

/// Everything `simian.toml` says, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file it came from.
    pub path: PathBuf,
    /// Its directory: relative paths in it are taken from here.
    pub base_dir: PathBuf,
    /// The monkey policy.
    pub policy: Policy,
    /// `[store] url`.
    pub store_url: String,
    /// `[outage]`, if any.
    pub outage: Option<OutageSettings>,
    /// `[providers.NAME]`.
    pub providers: BTreeMap<String, ProviderSettings>,
    /// `[drills]`: the defaults of `simian gorilla` and `simian kong`.
    pub drills: DrillSettings,
    /// `[[notifiers]]`, in config order.
    pub notifiers: Vec<NotifierSettings>,
    /// `[server]`: how `simian serve` listens.
    pub server: ServerSettings,
    /// `[monkey] resume_after`: how long a kill may stay recorded but unfinished by another
    /// process before a running daemon resumes it.
    pub resume_after: Duration,
}

/// `[server]`.
#[derive(Clone, Debug, Serialize)]
pub struct ServerSettings {
    /// Where the API listens (default `127.0.0.1:8080`).
    pub listen: std::net::SocketAddr,
    /// A file holding the API token (its first line), when `$SIMIAN_API_TOKEN` is not set.
    pub token_file: Option<PathBuf>,
    /// The API of an attached `simian proxy` (or Toxiproxy), whose proxies the dashboard
    /// shows.
    pub proxy_api: Option<String>,
}

/// Where a notifier posts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    /// Generic JSON (docs/notifications.md), optionally signed.
    Webhook,
    /// A Slack incoming webhook: `{"text": ...}`.
    Slack,
}

/// Every event a notifier can be told about.
pub const NOTIFIER_EVENTS: [&str; 6] = [
    "termination",
    "refusal",
    "schedule",
    "drill_started",
    "drill_ended",
    "kill_switch",
];

/// One `[[notifiers]]` entry. Its URL and secret are never printed or logged.
#[derive(Clone, Debug, Serialize)]
pub struct NotifierSettings {
    /// Webhook or Slack.
    pub kind: NotifierKind,
    /// Where to post (may hold a token, as Slack's do).
    #[serde(skip)]
    pub url: String,
    /// Where the URL came from, for messages: `url` or `url_env NAME`.
    pub url_from: String,
    /// The HMAC-SHA256 key (webhook only).
    #[serde(skip)]
    pub secret: Option<String>,
    /// Whether requests are signed.
    pub signed: bool,
    /// The events it is told about.
    pub events: BTreeSet<String>,
    /// Time limit of one delivery attempt.
    #[serde(with = "secs")]
    pub timeout: Duration,
}

/// `[drills]`.
#[derive(Debug, Clone, Serialize)]
pub struct DrillSettings {
    /// URLs checked before, during and after every drill (when no `--probe` is given).
    pub probes: Vec<String>,
    /// Abort below this share of successful checks (percent) over the last 10 s.
    pub abort_below: f64,
    /// How long one probe check may take.
    #[serde(with = "secs")]
    pub probe_timeout: Duration,
}

/// How to ask whether there is an outage.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutageSettings {
    /// Run a command; it prints `true` (outage) or `false`.
    Command {
        /// argv.
        argv: Vec<String>,
        /// Time limit.
        #[serde(with = "secs")]
        timeout: Duration,
    },
    /// GET a URL; 200 with body `true` or `false`.
    Http {
        /// The URL.
        url: String,
        /// Time limit.
        #[serde(with = "secs")]
        timeout: Duration,
    },
}

/// One configured provider.
#[derive(Debug, Clone)]
pub enum ProviderSettings {
    /// `kind = "process"`.
    Process(ProcessConfig),
    /// `kind = "static"`, with the inventory file.
    Static {
        /// Resolved inventory path.
        path: PathBuf,
    },
    /// `kind = "docker"`.
    Docker(DockerConfig),
    /// `kind = "kubernetes"`.
    Kubernetes(KubernetesConfig),
    /// `kind = "aws"`.
    Aws(AwsConfig),
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", d.as_secs_f64()))
    }
}

/// The provider kinds this build can run.
const KINDS: [&str; 5] = ["process", "static", "docker", "kubernetes", "aws"];
const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line(&self, span: std::ops::Range<usize>) -> usize {
        let end = span.start.min(self.text.len());
        self.text[..end].matches('\n').count() + 1
    }

    fn err<T>(
        &self,
        spanned: &Spanned<T>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        ConfigError::at(
            self.path,
            self.line(spanned.span()),
            message,
            Some(hint.into()),
        )
    }
}

/// Validates `text`, the contents of `path`.
pub fn resolve(path: &Path, text: &str) -> Result<Settings, ConfigError> {
    let ctx = Ctx { path, text };
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| ctx.line(s));
        let mut message = e.message().trim().replace("\n", " ");
        if let Some(source) = text
            .lines()
            .nth(line.saturating_sub(1))
            .filter(|_| line > 0)
        {
            message = format!("{message}\n  | {}", source.trim());
        }
        let hint = if message.contains("unknown field") {
            Some(match suggestion(&message) {
                Some(near) => format!("did you mean {near}? docs/config.md lists every key"),
                None => {
                    "remove the key or fix its spelling; docs/config.md lists every key".to_string()
                }
            })
        } else if message.contains("invalid type") {
            Some("check the value's type against docs/config.md (quotes make a string)".to_string())
        } else {
            None
        };
        ConfigError::at(path, line, message, hint)
    })?;
    let base_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);

    let calendar = calendar(&ctx, &raw.monkey)?;
    let max_kills_per_day = match &raw.monkey.max_kills_per_day {
        None => 100,
        Some(v) if *v.get_ref() >= 0 && *v.get_ref() <= i64::from(u32::MAX) => *v.get_ref() as u32,
        Some(v) => {
            return Err(ctx.err(
                v,
                format!(
                    "[monkey] max_kills_per_day = {} is out of range",
                    v.get_ref()
                ),
                "use a whole number from 0 (no kills) up",
            ));
        }
    };
    let seed = match &raw.monkey.seed {
        None => None,
        Some(v) if *v.get_ref() >= 0 => Some(*v.get_ref() as u64),
        Some(v) => {
            return Err(ctx.err(
                v,
                format!("[monkey] seed = {} is negative", v.get_ref()),
                "use a whole number >= 0",
            ));
        }
    };

    let mut providers = BTreeMap::new();
    for (name, p) in &raw.providers {
        providers.insert(name.get_ref().clone(), provider(&ctx, name, p, &base_dir)?);
    }

    let mut apps = Vec::new();
    let mut names = BTreeSet::new();
    for app in &raw.apps {
        let resolved = app_policy(&ctx, app, &providers)?;
        if !names.insert(resolved.name.clone()) {
            return Err(ctx.err(
                &app.get_ref().name,
                format!("app {:?} is configured twice", resolved.name),
                "merge the two [[apps]] entries",
            ));
        }
        // An aws provider lists only the groups of its configured apps.
        if let Some(ProviderSettings::Aws(a)) = providers.get_mut(&resolved.provider) {
            a.apps.insert(resolved.name.clone());
        }
        if let Some(allow) = &app.get_ref().allow_single_replica {
            match providers.get_mut(&resolved.provider) {
                Some(ProviderSettings::Kubernetes(k)) => {
                    if *allow.get_ref() {
                        k.single_replica_apps.insert(resolved.name.clone());
                    }
                }
                Some(ProviderSettings::Aws(a)) => {
                    if *allow.get_ref() {
                        a.single_instance_apps.insert(resolved.name.clone());
                    }
                }
                _ => {
                    return Err(ctx.err(
                        allow,
                        format!(
                            "app {:?}: allow_single_replica is a setting for apps of a kubernetes or aws provider",
                            resolved.name
                        ),
                        "remove allow_single_replica, or point the app at a provider of kind = \"kubernetes\" or \"aws\"",
                    ));
                }
            }
        }
        apps.push(resolved);
    }

    let store_url = match &raw.store.url {
        None => "sqlite://simian.db".to_string(),
        Some(url) => {
            let u = url.get_ref();
            if !(u.starts_with("sqlite://")
                || u == "sqlite::memory:"
                || u.starts_with("postgres://")
                || u.starts_with("postgresql://"))
            {
                return Err(ctx.err(
                    url,
                    format!(
                        "[store] url {:?} has an unsupported scheme",
                        simian_store::redact(u)
                    ),
                    "use sqlite://PATH or postgres://USER@HOST/DB",
                ));
            }
            u.clone()
        }
    };

    let outage = raw.outage.as_ref().map(|o| outage(&ctx, o)).transpose()?;
    let drills = drills(&ctx, &raw.drills)?;
    let server = ServerSettings {
        listen: match &raw.server.listen {
            None => std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(l) => l.get_ref().parse().map_err(|_| {
                ctx.err(
                    l,
                    format!("[server] listen = {:?} is not an address and port", l.get_ref()),
                    "write IP:PORT, e.g. \"127.0.0.1:8080\" (loopback) or \"0.0.0.0:8080\" (needs a token)",
                )
            })?,
        },
        token_file: raw.server.token_file.as_ref().map(|f| base_dir.join(f.get_ref())),
        proxy_api: match &raw.server.proxy_api {
            None => None,
            Some(u) => match probe_url_problem(u.get_ref()) {
                Some(problem) => {
                    return Err(ctx.err(
                        u,
                        format!("[server] proxy_api: {problem}"),
                        "give the proxy's API address, e.g. \"http://127.0.0.1:8474\"",
                    ));
                }
                None => Some(u.get_ref().trim_end_matches('/').to_string()),
            },
        },
    };
    let notifiers = raw
        .notifiers
        .iter()
        .map(|n| notifier(&ctx, n))
        .collect::<Result<Vec<_>, _>>()?;

    let resume_after =
        match &raw.monkey.resume_after {
            None => simian_monkey::RESUME_AFTER,
            Some(v) => {
                let d = duration(&ctx, v, "[monkey] resume_after")?;
                if d < Duration::from_secs(1) {
                    return Err(ctx.err(
                    v,
                    format!("[monkey] resume_after = {:?} is shorter than a second", v.get_ref()),
                    "give longer than any kill takes (its grace period and retries), e.g. \"10m\"",
                ));
                }
                d
            }
        };
    Ok(Settings {
        path: path.to_path_buf(),
        base_dir,
        policy: Policy {
            enabled: raw.monkey.enabled.unwrap_or(true),
            dry_run: raw.monkey.dry_run.unwrap_or(true),
            calendar,
            max_kills_per_day,
            seed,
            apps,
        },
        store_url,
        outage,
        providers,
        drills,
        notifiers,
        server,
        resume_after,
    })
}

/// The value of environment variable `name`, named in the error when it is not set.
fn from_env(ctx: &Ctx, key: &Spanned<String>, what: &str) -> Result<String, ConfigError> {
    let name = key.get_ref();
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        _ => Err(ctx.err(
            key,
            format!("{what} = {name:?}: the environment variable {name} is not set"),
            format!("export {name}=... in simian's environment, or remove the key"),
        )),
    }
}

fn notifier(ctx: &Ctx, n: &Spanned<RawNotifier>) -> Result<NotifierSettings, ConfigError> {
    let raw = n.get_ref();
    let kind = match raw.kind.get_ref().as_str() {
        "webhook" => NotifierKind::Webhook,
        "slack" => NotifierKind::Slack,
        other => {
            return Err(ctx.err(
                &raw.kind,
                format!("[[notifiers]] kind = {other:?} is not a notifier kind"),
                "use \"webhook\" (generic JSON) or \"slack\" (an incoming webhook)",
            ));
        }
    };
    let (url, url_from, at) = match (&raw.url, &raw.url_env) {
        (Some(u), None) => (u.get_ref().clone(), "url".to_string(), u),
        (None, Some(e)) => (
            from_env(ctx, e, "url_env")?,
            format!("url_env {}", e.get_ref()),
            e,
        ),
        (Some(u), Some(_)) => {
            return Err(ctx.err(
                u,
                "[[notifiers]] has both url and url_env",
                "keep one: url_env keeps a secret URL out of the file",
            ));
        }
        (None, None) => {
            return Err(ctx.err(n, "[[notifiers]] has neither url nor url_env", "add url = \"https://...\" or url_env = \"NAME\" (the URL in an environment variable)"));
        }
    };
    if probe_url_problem(&url).is_some() {
        // The problem quotes the URL, which may hold a token: only where it came from is said.
        return Err(ctx.err(
            at,
            format!("[[notifiers]] {url_from} is not an http:// or https:// URL with a host"),
            "give the full URL the service posts to, e.g. https://hooks.slack.com/services/...",
        ));
    }
    let secret = match &raw.secret_env {
        None => None,
        Some(e) if kind == NotifierKind::Slack => {
            return Err(ctx.err(
                e,
                "[[notifiers]] secret_env is for kind = \"webhook\"",
                "Slack incoming webhooks are not signed: remove secret_env",
            ));
        }
        Some(e) => Some(from_env(ctx, e, "secret_env")?),
    };
    let events = match &raw.events {
        None => NOTIFIER_EVENTS.iter().map(|e| e.to_string()).collect(),
        Some(list) => {
            let mut events = BTreeSet::new();
            for e in list {
                if !NOTIFIER_EVENTS.contains(&e.get_ref().as_str()) {
                    return Err(ctx.err(
                        e,
                        format!("[[notifiers]] events: {:?} is not an event", e.get_ref()),
                        format!("use any of {}", NOTIFIER_EVENTS.join(", ")),
                    ));
                }
                events.insert(e.get_ref().clone());
            }
            events
        }
    };
    let timeout = match &raw.timeout {
        None => Duration::from_secs(5),
        Some(t) => duration(ctx, t, "[[notifiers]] timeout")?,
    };
    Ok(NotifierSettings {
        kind,
        url,
        url_from,
        signed: secret.is_some(),
        secret,
        events,
        timeout,
    })
}

/// A probe URL: `http://` or `https://`, with a host.
pub fn probe_url_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        None => Some(format!("{url:?} is not an http:// or https:// URL")),
        Some(r) if r.is_empty() || r.starts_with('/') => Some(format!("{url:?} names no host")),
        Some(_) if url.chars().any(|c| c.is_control() || c.is_whitespace()) => {
            Some(format!("{url:?} holds a space or a control character"))
        }
        Some(_) => None,
    }
}

fn drills(ctx: &Ctx, raw: &RawDrills) -> Result<DrillSettings, ConfigError> {
    let mut probes = Vec::new();
    for url in raw.probes.iter().flatten() {
        if let Some(problem) = probe_url_problem(url.get_ref()) {
            return Err(ctx.err(
                url,
                format!("[drills] probes: {problem}"),
                "give URLs that answer 2xx while the service is healthy, e.g. \"http://127.0.0.1:8080/health\"",
            ));
        }
        probes.push(url.get_ref().clone());
    }
    let abort_below = match &raw.abort_below {
        None => 95.0,
        Some(v) if (0.0..=100.0).contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            return Err(ctx.err(
                v,
                format!("[drills] abort_below = {} is not a percentage", v.get_ref()),
                "write a number from 0 to 100, e.g. 95",
            ));
        }
    };
    let probe_timeout = match &raw.probe_timeout {
        None => Duration::from_secs(2),
        Some(t) => {
            let d = duration(ctx, t, "[drills] probe_timeout")?;
            if d.is_zero() {
                return Err(ctx.err(
                    t,
                    "[drills] probe_timeout is zero",
                    "write a duration such as \"2s\"",
                ));
            }
            d
        }
    };
    Ok(DrillSettings {
        probes,
        abort_below,
        probe_timeout,
    })
}

/// For "unknown field `x`, expected one of `a`, `b`": the expected key closest to `x`, if
/// it is close enough to be a typo.
fn suggestion(message: &str) -> Option<String> {
    let mut quoted = message.split('`').skip(1).step_by(2);
    let unknown = quoted.next()?;
    quoted
        .map(|k| (edit_distance(unknown, k), k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn hour(ctx: &Ctx, key: &str, v: &Option<Spanned<i64>>, default: u8) -> Result<u8, ConfigError> {
    match v {
        None => Ok(default),
        Some(h) if (0..=24).contains(h.get_ref()) => Ok(*h.get_ref() as u8),
        Some(h) => Err(ctx.err(
            h,
            format!("[monkey] {key} = {} is not an hour", h.get_ref()),
            "use a whole hour from 0 to 24",
        )),
    }
}

fn calendar(ctx: &Ctx, m: &RawMonkey) -> Result<Calendar, ConfigError> {
    let tz = match &m.time_zone {
        None => TimeZone::get("America/Los_Angeles").map_err(|e| {
            ConfigError::at(
                ctx.path,
                0,
                format!("the default time zone is unavailable: {e}"),
                None,
            )
        })?,
        Some(name) => TimeZone::get(name.get_ref()).map_err(|_| {
            ctx.err(
                name,
                format!(
                    "[monkey] time_zone {:?} is not a known time zone",
                    name.get_ref()
                ),
                "use an IANA name such as \"America/Los_Angeles\", \"Europe/Berlin\" or \"UTC\"",
            )
        })?,
    };
    let start = hour(ctx, "start_hour", &m.start_hour, 9)?;
    let end = hour(ctx, "end_hour", &m.end_hour, 15)?;
    if end <= start {
        let at = m.end_hour.as_ref().or(m.start_hour.as_ref());
        let line = at.map_or(0, |s| ctx.line(s.span()));
        return Err(ConfigError::at(
            ctx.path,
            line,
            format!("[monkey] end_hour ({end}) must be after start_hour ({start})"),
            Some("kills happen in [start_hour, end_hour) local time, for example start_hour = 9, end_hour = 15".into()),
        ));
    }
    let days = match &m.work_days {
        None => DAY_NAMES[..5].iter().map(|(_, d)| *d).collect(),
        Some(list) => {
            let mut days = Vec::new();
            for d in list.get_ref() {
                let name = d.get_ref().to_ascii_lowercase();
                let day = DAY_NAMES
                    .iter()
                    .find(|(n, _)| name == *n || name.starts_with(n) && weekday_full(n) == name);
                match day {
                    Some((_, w)) => days.push(*w),
                    None => {
                        return Err(ctx.err(
                            d,
                            format!("[monkey] work_days: {:?} is not a day", d.get_ref()),
                            "use mon, tue, wed, thu, fri, sat or sun",
                        ));
                    }
                }
            }
            if days.is_empty() {
                return Err(ctx.err(list, "[monkey] work_days is empty", "name at least one day, for example [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]"));
            }
            days
        }
    };
    let mut holidays = Vec::new();
    for h in m.holidays.iter().flatten() {
        let date: Date = h.get_ref().parse().map_err(|_| {
            ctx.err(
                h,
                format!("[monkey] holidays: {:?} is not a date", h.get_ref()),
                "write dates as \"YYYY-MM-DD\", for example \"2026-12-25\"",
            )
        })?;
        holidays.push(date);
    }
    Calendar::new(tz, start, end, &days, holidays)
        .map_err(|e| ConfigError::at(ctx.path, 0, format!("[monkey] {e}"), None))
}

fn weekday_full(short: &str) -> &'static str {
    match short {
        "mon" => "monday",
        "tue" => "tuesday",
        "wed" => "wednesday",
        "thu" => "thursday",
        "fri" => "friday",
        "sat" => "saturday",
        _ => "sunday",
    }
}

fn provider(
    ctx: &Ctx,
    name: &Spanned<String>,
    p: &Spanned<RawProvider>,
    base_dir: &Path,
) -> Result<ProviderSettings, ConfigError> {
    let raw = p.get_ref();
    let kind = raw.kind.get_ref().as_str();
    let section = format!("[providers.{}]", name.get_ref());
    let only = |key: &str,
                spanned: Option<std::ops::Range<usize>>,
                for_kind: &str|
     -> Result<(), ConfigError> {
        match spanned {
            Some(span) => Err(ConfigError::at(
                ctx.path,
                ctx.line(span),
                format!(
                    "{section}: {key} is a setting of kind = \"{for_kind}\", not of kind = \"{kind}\""
                ),
                Some(format!("remove {key}, or change the kind")),
            )),
            None => Ok(()),
        }
    };
    let span = |v: &Option<Spanned<String>>| v.as_ref().map(|s| s.span());
    if kind != "docker" {
        only("host", span(&raw.host), "docker")?;
        only("signal", span(&raw.signal), "docker")?;
        only("pause_for", span(&raw.pause_for), "docker")?;
    }
    if kind != "docker" && kind != "kubernetes" {
        only(
            "action",
            span(&raw.action),
            "docker\" or kind = \"kubernetes",
        )?;
    }
    if kind != "aws" {
        only("regions", raw.regions.as_ref().map(|s| s.span()), "aws")?;
        only("profile", span(&raw.profile), "aws")?;
        only("endpoint_url", span(&raw.endpoint_url), "aws")?;
        only("opt_in_tag", span(&raw.opt_in_tag), "aws")?;
    }
    if kind != "kubernetes" && kind != "aws" {
        only(
            "account",
            span(&raw.account),
            "kubernetes\" or kind = \"aws",
        )?;
    }
    if kind != "kubernetes" {
        only("kubeconfig", span(&raw.kubeconfig), "kubernetes")?;
        only("context", span(&raw.context), "kubernetes")?;
        only(
            "namespaces",
            raw.namespaces.as_ref().map(|s| s.span()),
            "kubernetes",
        )?;
        only("minimum_age", span(&raw.minimum_age), "kubernetes")?;
        only("app_label", span(&raw.app_label), "kubernetes")?;
    }
    // A table of labels; a selector string is Kubernetes syntax, for kind = "kubernetes".
    let labels = |raw: &RawProvider| -> Result<BTreeMap<String, String>, ConfigError> {
        match raw.selector.as_ref() {
            None => Ok(BTreeMap::new()),
            Some(s) => match s.get_ref() {
                RawSelector::Labels(l) => Ok(l.clone()),
                RawSelector::Text(_) => Err(ctx.err(
                    s,
                    format!("{section}: selector is a table of labels for kind = \"{kind}\""),
                    "write selector = { team = \"core\" } (a string selector is for kind = \"kubernetes\")",
                )),
            },
        }
    };
    match kind {
        "docker" => {
            only("path", span(&raw.path), "static")?;
            docker(ctx, &section, raw, labels(raw)?).map(ProviderSettings::Docker)
        }
        "kubernetes" => {
            only("path", span(&raw.path), "static")?;
            kubernetes(ctx, &section, raw, base_dir).map(ProviderSettings::Kubernetes)
        }
        "aws" => {
            only("path", span(&raw.path), "static")?;
            only(
                "grace_period",
                span(&raw.grace_period),
                "process\", \"docker\" or \"kubernetes",
            )?;
            only(
                "selector",
                raw.selector.as_ref().map(|s| s.span()),
                "process\", \"docker\" or \"kubernetes",
            )?;
            aws(ctx, &section, raw).map(ProviderSettings::Aws)
        }
        "process" => {
            only("path", raw.path.as_ref().map(|s| s.span()), "static")?;
            let mut config = ProcessConfig::default();
            if let Some(g) = &raw.grace_period {
                config.grace_period = duration(ctx, g, &format!("{section} grace_period"))?;
            }
            config.selector = labels(raw)?
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            Ok(ProviderSettings::Process(config))
        }
        "static" => {
            only(
                "grace_period",
                raw.grace_period.as_ref().map(|s| s.span()),
                "process\" or kind = \"docker",
            )?;
            only(
                "selector",
                raw.selector.as_ref().map(|s| s.span()),
                "process\" or kind = \"docker",
            )?;
            let Some(path) = &raw.path else {
                return Err(ctx.err(
                    &raw.kind,
                    format!("{section}: kind = \"static\" needs path, the inventory file"),
                    "add path = \"inventory.json\" (JSON or TOML, relative to this file)",
                ));
            };
            Ok(ProviderSettings::Static {
                path: base_dir.join(path.get_ref()),
            })
        }
        other => Err(ctx.err(
            &raw.kind,
            format!("{section}: unknown kind {other:?}"),
            format!("use one of {}", KINDS.join(", ")),
        )),
    }
}

/// `[providers.NAME]` of kind `kubernetes`.
fn kubernetes(
    ctx: &Ctx,
    section: &str,
    raw: &RawProvider,
    base_dir: &Path,
) -> Result<KubernetesConfig, ConfigError> {
    let mut config = KubernetesConfig::default();
    if let Some(k) = &raw.kubeconfig {
        let text = k.get_ref();
        let path = match text.strip_prefix("~/") {
            Some(rest) => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(rest))
                .unwrap_or_else(|| PathBuf::from(text)),
            None => base_dir.join(text),
        };
        config.kubeconfig = Some(path);
    }
    let text = |v: &Option<Spanned<String>>, key: &str| optional_text(ctx, section, v, key);
    config.context = text(&raw.context, "context")?;
    config.account = text(&raw.account, "account")?;
    if let Some(label) = text(&raw.app_label, "app_label")? {
        config.app_label = label;
    }
    if let Some(ns) = &raw.namespaces {
        if let Some(bad) = ns.get_ref().iter().find(|n| !is_dns_label(n)) {
            return Err(ctx.err(
                ns,
                format!("{section}: namespaces: {bad:?} is not a namespace name"),
                "use lowercase letters, digits and '-', at most 63 characters",
            ));
        }
        config.namespaces = ns.get_ref().clone();
    }
    if let Some(s) = &raw.selector {
        let text = match s.get_ref() {
            RawSelector::Text(t) => t.clone(),
            RawSelector::Labels(l) => l
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        };
        config.selector = Selector::parse(&text).map_err(|e| {
            ctx.err(
                s,
                format!("{section}: {e}"),
                "write a Kubernetes label selector, such as selector = \"tier=backend,env!=dev\"",
            )
        })?;
    }
    config.action = match raw.action.as_ref().map(|a| a.get_ref().as_str()) {
        None | Some("evict") => KubernetesAction::Evict,
        Some("delete") => KubernetesAction::Delete,
        Some(other) => {
            let spanned = raw.action.as_ref().unwrap_or(&raw.kind);
            return Err(ctx.err(
                spanned,
                format!("{section}: unknown action {other:?} for kind = \"kubernetes\""),
                "use evict (the Eviction API: PodDisruptionBudgets hold) or delete (no budget is consulted)",
            ));
        }
    };
    if let Some(g) = &raw.grace_period {
        config.grace_period = Some(duration(ctx, g, &format!("{section} grace_period"))?);
    }
    if let Some(m) = &raw.minimum_age {
        config.minimum_age = duration(ctx, m, &format!("{section} minimum_age"))?;
    }
    Ok(config)
}

/// `[providers.NAME]` of kind `aws`.
fn aws(ctx: &Ctx, section: &str, raw: &RawProvider) -> Result<AwsConfig, ConfigError> {
    let Some(account) = &raw.account else {
        return Err(ctx.err(
            &raw.kind,
            format!("{section}: kind = \"aws\" needs account, the account's name in history and exceptions"),
            "add account = \"prod\" (any name; exceptions match on it)",
        ));
    };
    if account.get_ref().trim().is_empty() {
        return Err(ctx.err(
            account,
            format!("{section}: account is empty"),
            "give the account a name, such as account = \"prod\"",
        ));
    }
    let Some(regions) = &raw.regions else {
        return Err(ctx.err(
            &raw.kind,
            format!("{section}: kind = \"aws\" needs regions, the regions to list"),
            "add regions = [\"us-east-1\"]",
        ));
    };
    if regions.get_ref().is_empty() {
        return Err(ctx.err(
            regions,
            format!("{section}: regions is empty"),
            "list at least one region, such as regions = [\"us-east-1\"]",
        ));
    }
    if let Some(bad) = regions.get_ref().iter().find(|r| !is_region_name(r)) {
        return Err(ctx.err(
            regions,
            format!("{section}: regions: {bad:?} is not an AWS region name"),
            "use region codes such as us-east-1 or eu-west-1",
        ));
    }
    let mut seen = BTreeSet::new();
    if let Some(twice) = regions.get_ref().iter().find(|r| !seen.insert(r.as_str())) {
        return Err(ctx.err(
            regions,
            format!("{section}: regions lists {twice:?} twice"),
            "list each region once",
        ));
    }
    let mut config = AwsConfig::new(account.get_ref(), &[]);
    config.regions = regions.get_ref().clone();
    let text = |v: &Option<Spanned<String>>, key: &str| optional_text(ctx, section, v, key);
    config.profile = text(&raw.profile, "profile")?;
    if let Some(url) = &raw.endpoint_url {
        let u = url.get_ref();
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            return Err(ctx.err(
                url,
                format!("{section}: endpoint_url {u:?} is not an http:// or https:// URL"),
                "write it as http://127.0.0.1:5000, or leave it out to use AWS's own endpoints",
            ));
        }
        config.endpoint_url = Some(u.trim_end_matches('/').to_string());
    }
    if let Some(tag) = text(&raw.opt_in_tag, "opt_in_tag")? {
        config.opt_in_tag = tag;
    }
    Ok(config)
}

/// An optional text setting `key` of `section`: present and blank is an error.
fn optional_text(
    ctx: &Ctx,
    section: &str,
    value: &Option<Spanned<String>>,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    match value {
        Some(s) if s.get_ref().trim().is_empty() => Err(ctx.err(
            s,
            format!("{section}: {key} is empty"),
            format!("give {key} a value, or leave it out"),
        )),
        Some(s) => Ok(Some(s.get_ref().clone())),
        None => Ok(None),
    }
}

/// An AWS region code: `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`.
fn is_region_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// A namespace name: a DNS label.
fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// `[providers.NAME]` of kind `docker`.
fn docker(
    ctx: &Ctx,
    section: &str,
    raw: &RawProvider,
    selector: BTreeMap<String, String>,
) -> Result<DockerConfig, ConfigError> {
    let mut config = DockerConfig {
        selector,
        ..DockerConfig::default()
    };
    if let Some(host) = &raw.host {
        let h = host.get_ref();
        if !(h.starts_with("unix:///") || h.starts_with("tcp://") || h.starts_with("http://")) {
            return Err(ctx.err(
                host,
                format!("{section}: host {h:?} is not a Docker engine address"),
                "use unix:///var/run/docker.sock or tcp://HOST:2375, or leave host out ($DOCKER_HOST, else the local socket)",
            ));
        }
        config.host = Some(h.clone());
    }
    if let Some(g) = &raw.grace_period {
        config.grace_period = duration(ctx, g, &format!("{section} grace_period"))?;
    }
    let action = raw.action.as_ref().map_or("stop", |a| a.get_ref().as_str());
    config.action = match action {
        "stop" => DockerAction::Stop,
        "restart" => DockerAction::Restart,
        "kill" => {
            let signal = raw
                .signal
                .as_ref()
                .map_or("SIGKILL", |s| s.get_ref().as_str());
            if !is_signal(signal) {
                let spanned = raw.signal.as_ref().unwrap_or(&raw.kind);
                return Err(ctx.err(
                    spanned,
                    format!("{section}: signal {signal:?} is not a signal"),
                    "use a name such as SIGKILL, SIGTERM or SIGINT, or a number from 1 to 64",
                ));
            }
            DockerAction::Kill {
                signal: signal.to_string(),
            }
        }
        "pause" => {
            let pause_for = match &raw.pause_for {
                Some(p) => duration(ctx, p, &format!("{section} pause_for"))?,
                None => Duration::from_secs(300),
            };
            if pause_for.is_zero() || pause_for > Duration::from_secs(7 * 24 * 3600) {
                let spanned = raw.pause_for.as_ref().unwrap_or(&raw.kind);
                return Err(ctx.err(
                    spanned,
                    format!("{section}: pause_for must be more than 0 and at most a week"),
                    "write a duration such as pause_for = \"5m\"",
                ));
            }
            DockerAction::Pause { pause_for }
        }
        other => {
            let spanned = raw.action.as_ref().unwrap_or(&raw.kind);
            return Err(ctx.err(
                spanned,
                format!("{section}: unknown action {other:?}"),
                "use stop (SIGTERM, the grace period, SIGKILL), kill (one signal), restart, or pause (for pause_for, always undone)",
            ));
        }
    };
    if let Some(signal) = &raw.signal
        && action != "kill"
    {
        return Err(ctx.err(
            signal,
            format!(
                "{section}: signal is a setting of action = \"kill\", not of action = \"{action}\""
            ),
            "remove signal, or set action = \"kill\"",
        ));
    }
    if let Some(p) = &raw.pause_for
        && action != "pause"
    {
        return Err(ctx.err(
            p,
            format!("{section}: pause_for is a setting of action = \"pause\", not of action = \"{action}\""),
            "remove pause_for, or set action = \"pause\"",
        ));
    }
    Ok(config)
}

/// `SIGKILL`, `KILL` or a number from 1 to 64.
fn is_signal(s: &str) -> bool {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u32>().is_ok_and(|n| (1..=64).contains(&n));
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    !name.is_empty()
        && name.len() <= 8
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'+' || b == b'-')
}

fn duration(ctx: &Ctx, v: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
    let parsed: Result<jiff::SignedDuration, _> = v.get_ref().parse();
    match parsed.ok().and_then(|d| Duration::try_from(d).ok()) {
        Some(d) => Ok(d),
        None => Err(ctx.err(
            v,
            format!("{key} = {:?} is not a duration", v.get_ref()),
            "write a duration such as \"10s\", \"500ms\" or \"2m\"",
        )),
    }
}

fn outage(ctx: &Ctx, o: &Spanned<RawOutage>) -> Result<OutageSettings, ConfigError> {
    let raw = o.get_ref();
    let timeout = match &raw.timeout {
        Some(t) => duration(ctx, t, "[outage] timeout")?,
        None => Duration::from_secs(10),
    };
    match (&raw.command, &raw.http) {
        (Some(cmd), None) => {
            if cmd.get_ref().is_empty() || cmd.get_ref()[0].is_empty() {
                return Err(ctx.err(cmd, "[outage] command is empty", "give the program and its arguments, for example [\"/usr/local/bin/is-outage\"]"));
            }
            Ok(OutageSettings::Command {
                argv: cmd.get_ref().clone(),
                timeout,
            })
        }
        (None, Some(url)) => {
            if !url.get_ref().starts_with("http://") {
                return Err(ctx.err(
                    url,
                    format!("[outage] http {:?} is not an http:// URL", url.get_ref()),
                    "use an http://HOST:PORT/PATH URL that answers 200 with true or false",
                ));
            }
            Ok(OutageSettings::Http {
                url: url.get_ref().clone(),
                timeout,
            })
        }
        (Some(_), Some(url)) => Err(ctx.err(
            url,
            "[outage] has both command and http",
            "keep one of the two",
        )),
        (None, None) => Err(ctx.err(
            o,
            "[outage] has neither command nor http",
            "add command = [\"...\"] or http = \"http://...\", or remove [outage]",
        )),
    }
}

fn app_policy(
    ctx: &Ctx,
    spanned: &Spanned<RawApp>,
    providers: &BTreeMap<String, ProviderSettings>,
) -> Result<AppPolicy, ConfigError> {
    let app = spanned.get_ref();
    let name = app.name.get_ref().clone();
    if name.is_empty() {
        return Err(ctx.err(
            &app.name,
            "[[apps]] name is empty",
            "name the app as its instances carry it (SIMIAN_APP for processes)",
        ));
    }
    let section = format!("[[apps]] {name:?}");
    let provider = app.provider.get_ref().clone();
    if !providers.contains_key(&provider) {
        let known: Vec<&str> = providers.keys().map(String::as_str).collect();
        let hint = if known.is_empty() {
            format!("add a [providers.{provider}] table with a kind")
        } else {
            format!(
                "configured providers: {}; or add [providers.{provider}]",
                known.join(", ")
            )
        };
        return Err(ctx.err(
            &app.provider,
            format!("{section}: provider {provider:?} is not configured"),
            hint,
        ));
    }
    let mean = match &app.mean_time_between_kills {
        None => 5.0,
        Some(m) if m.get_ref().is_finite() && *m.get_ref() > 0.0 => *m.get_ref(),
        Some(m) => {
            return Err(ctx.err(m, format!("{section}: mean_time_between_kills = {} must be greater than 0", m.get_ref()), "it is the mean number of work days between kills in a group; 1 kills every day, 5 about once a week"));
        }
    };
    let min = match &app.min_time_between_kills {
        None => 1,
        Some(m) if *m.get_ref() >= 0 && *m.get_ref() <= 3650 => *m.get_ref() as u32,
        Some(m) => {
            return Err(ctx.err(
                m,
                format!(
                    "{section}: min_time_between_kills = {} is out of range",
                    m.get_ref()
                ),
                "use a whole number of work days from 0 up",
            ));
        }
    };
    let grouping = match app.grouping.as_ref().map(|g| (g, g.get_ref().as_str())) {
        None => Grouping::Cluster,
        Some((_, "app")) => Grouping::App,
        Some((_, "stack")) => Grouping::Stack,
        Some((_, "cluster")) => Grouping::Cluster,
        Some((g, other)) => {
            return Err(ctx.err(
                g,
                format!("{section}: grouping {other:?} is not app, stack or cluster"),
                "use grouping = \"app\", \"stack\" or \"cluster\"",
            ));
        }
    };
    let mut exceptions = Vec::new();
    for e in &app.exceptions {
        let raw = e.get_ref();
        let field = |key: &str, v: &Option<String>| -> Result<String, ConfigError> {
            match v {
                Some(v) if !v.is_empty() || key == "stack" || key == "detail" => Ok(v.clone()),
                _ => Err(ctx.err(
                    e,
                    format!("{section}: an exception needs {key}"),
                    "give account, region, stack and detail; \"*\" matches anything",
                )),
            }
        };
        exceptions.push(Exception {
            account: field("account", &raw.account)?,
            region: field("region", &raw.region)?,
            stack: field("stack", &raw.stack)?,
            detail: field("detail", &raw.detail)?,
        });
    }
    Ok(AppPolicy {
        name,
        provider,
        enabled: app.enabled.unwrap_or(true),
        mean_time_between_kills: mean,
        min_time_between_kills: min,
        grouping,
        regions_independent: app.regions_independent.unwrap_or(false),
        exceptions,
    })
}

impl Settings {
    /// The resolved configuration as JSON, every default filled in.
    pub fn to_json(&self) -> serde_json::Value {
        let p = &self.policy;
        let c = &p.calendar;
        let work_days = c.work_days();
        let days: Vec<&str> = DAY_NAMES
            .iter()
            .filter(|(_, d)| work_days.contains(d))
            .map(|(n, _)| *n)
            .collect();
        let providers: serde_json::Map<String, serde_json::Value> = self
            .providers
            .iter()
            .map(|(name, p)| {
                let v = match p {
                    ProviderSettings::Process(c) => serde_json::json!({
                        "kind": "process",
                        "grace_period": format!("{}s", c.grace_period.as_secs_f64()),
                        "selector": c.selector,
                    }),
                    ProviderSettings::Static { path } => {
                        serde_json::json!({"kind": "static", "path": path})
                    }
                    ProviderSettings::Kubernetes(c) => serde_json::json!({
                        "kind": "kubernetes",
                        "kubeconfig": c.kubeconfig,
                        "context": c.context,
                        "account": c.account,
                        "namespaces": c.namespaces,
                        "selector": c.selector.as_str(),
                        "action": c.action.as_str(),
                        "grace_period": c.grace_period.map(|g| format!("{}s", g.as_secs_f64())),
                        "minimum_age": format!("{}s", c.minimum_age.as_secs_f64()),
                        "app_label": c.app_label,
                        "allow_single_replica": c.single_replica_apps,
                    }),
                    ProviderSettings::Aws(c) => serde_json::json!({
                        "kind": "aws",
                        "account": c.account,
                        "regions": c.regions,
                        "profile": c.profile,
                        "endpoint_url": c.endpoint_url,
                        "opt_in_tag": c.opt_in_tag,
                        "apps": c.apps,
                        "allow_single_replica": c.single_instance_apps,
                    }),
                    ProviderSettings::Docker(c) => serde_json::json!({
                        "kind": "docker",
                        "host": c.host,
                        "action": c.action.as_str(),
                        "signal": match &c.action {
                            DockerAction::Kill { signal } => Some(signal.as_str()),
                            _ => None,
                        },
                        "pause_for": match &c.action {
                            DockerAction::Pause { pause_for } => Some(format!("{}s", pause_for.as_secs_f64())),
                            _ => None,
                        },
                        "grace_period": format!("{}s", c.grace_period.as_secs_f64()),
                        "selector": c.selector,
                    }),
                };
                (name.clone(), v)
            })
            .collect();
        serde_json::json!({
            "config": self.path,
            "monkey": {
                "enabled": p.enabled,
                "dry_run": p.dry_run,
                "time_zone": c.time_zone().iana_name().unwrap_or("UTC"),
                "start_hour": c.start_hour(),
                "end_hour": c.end_hour(),
                "work_days": days,
                "holidays": c.holidays().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "max_kills_per_day": p.max_kills_per_day,
                "seed": p.seed,
                "resume_after": format!("{:?}", self.resume_after),
            },
            "store": { "url": simian_store::redact(&self.store_url) },
            "outage": self.outage,
            "drills": self.drills,
            "notifiers": self.notifiers,
            "server": self.server,
            "providers": providers,
            "apps": p.apps.iter().map(|a| serde_json::json!({
                "name": a.name,
                "provider": a.provider,
                "enabled": a.enabled,
                "mean_time_between_kills": a.mean_time_between_kills,
                "min_time_between_kills": a.min_time_between_kills,
                "grouping": a.grouping.as_str(),
                "regions_independent": a.regions_independent,
                "daily_kill_probability": a.daily_probability(),
                "exceptions": a.exceptions.iter().map(|e| serde_json::json!({
                    "account": e.account, "region": e.region, "stack": e.stack, "detail": e.detail,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        let m = "unknown field `mean_time_between_kill`, expected one of `name`, `mean_time_between_kills`, `min_time_between_kills`";
        assert_eq!(suggestion(m).as_deref(), Some("mean_time_between_kills"));
        assert_eq!(
            suggestion("unknown field `zzzzzz`, expected one of `name`, `provider`"),
            None
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
