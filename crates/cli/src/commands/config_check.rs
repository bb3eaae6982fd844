//! `simian config check`: validate everything the config names and print the resolved values.

use simian_store::Reachable;

use crate::args::{CheckArgs, Global};
use crate::output::{self, table};
use crate::wire;
use simian_config::ProviderSettings;

pub fn run(g: &Global, a: CheckArgs) -> anyhow::Result<u8> {
    let settings = super::settings(g)?;
    // Building the providers validates inventory files too.
    wire::providers(&settings)?;
    let store = if a.offline {
        "not checked (--offline)"
    } else {
        match simian_store::check(&settings.store_url, &settings.base_dir)
            .map_err(|e| wire::store_error(&settings, e))?
        {
            Reachable::Ready => "reachable, schema up to date",
            Reachable::WillBeCreated => "a new SQLite file, created on first use",
        }
    };
    if settings.policy.apps.is_empty() {
        eprintln!(
            "warning: {} configures no [[apps]]: nothing will ever be scheduled or killed (docs/config.md shows one)",
            settings.path.display()
        );
    }
    if g.json {
        let mut json = settings.to_json();
        json["store"]["status"] = store.into();
        super::print_json(&json)?;
        return Ok(super::OK);
    }
    let p = &settings.policy;
    let c = &p.calendar;
    let days: Vec<String> = c
        .work_days()
        .iter()
        .map(|d| format!("{d:?}")[..3].to_ascii_lowercase())
        .collect();
    outln!("config    {} (valid)", settings.path.display())?;
    outln!(
        "monkey    {}, {}",
        if p.enabled {
            "enabled"
        } else {
            "DISABLED (kill switch off)"
        },
        if p.dry_run {
            "dry run (records kills, never acts)"
        } else {
            "REAL KILLS (dry_run = false)"
        }
    )?;
    outln!(
        "calendar  {} {:02}:00-{:02}:00 on {}; {} holiday(s)",
        c.time_zone().iana_name().unwrap_or("UTC"),
        c.start_hour(),
        c.end_hour(),
        days.join(" "),
        c.holidays().len()
    )?;
    outln!(
        "limits    max_kills_per_day = {}; seed = {}",
        p.max_kills_per_day,
        p.seed
            .map_or("random each day".to_string(), |s| s.to_string())
    )?;
    outln!(
        "store     {} ({store})",
        simian_store::redact(&settings.store_url)
    )?;
    outln!(
        "outage    {}",
        settings
            .outage
            .as_ref()
            .map_or("none (always clear)".to_string(), |o| {
                serde_json::to_string(o).unwrap_or_default()
            })
    )?;
    let d = &settings.drills;
    outln!(
        "drills    {}; abort below {}%; probe timeout {:?}",
        if d.probes.is_empty() {
            "no default probes".to_string()
        } else {
            format!("probes {}", output::safe(&d.probes.join(", ")))
        },
        d.abort_below,
        d.probe_timeout
    )?;
    if settings.notifiers.is_empty() {
        outln!("notify    log only")?;
    }
    for n in &settings.notifiers {
        let events: Vec<&str> = n.events.iter().map(String::as_str).collect();
        outln!(
            "notify    {} ({}{}; events {})",
            match n.kind {
                simian_config::NotifierKind::Webhook => "webhook",
                simian_config::NotifierKind::Slack => "slack",
            },
            output::safe(&n.url_from),
            if n.signed { ", signed" } else { "" },
            events.join(" ")
        )?;
    }
    outln!()?;
    let providers: Vec<Vec<String>> = settings
        .providers
        .iter()
        .map(|(name, s)| match s {
            ProviderSettings::Process(c) => vec![
                name.clone(),
                "process".into(),
                format!(
                    "grace_period {:?}{}",
                    c.grace_period,
                    if c.selector.is_empty() {
                        String::new()
                    } else {
                        format!(", selector {:?}", c.selector)
                    }
                ),
            ],
            ProviderSettings::Docker(c) => vec![
                name.clone(),
                "docker".into(),
                format!(
                    "{} ({}), grace_period {:?}, host {}{}",
                    c.action.as_str(),
                    match &c.action {
                        simian_providers::DockerAction::Kill { signal } => signal.clone(),
                        simian_providers::DockerAction::Pause { pause_for } => {
                            format!("for {pause_for:?}, always undone")
                        }
                        _ => "SIGTERM, then SIGKILL".to_string(),
                    },
                    c.grace_period,
                    c.host
                        .as_deref()
                        .unwrap_or("$DOCKER_HOST or the local socket"),
                    if c.selector.is_empty() {
                        String::new()
                    } else {
                        format!(", selector {:?}", c.selector)
                    }
                ),
            ],
            ProviderSettings::Static { path } => {
                vec![name.clone(), "static".into(), path.display().to_string()]
            }
            ProviderSettings::Aws(c) => vec![
                name.clone(),
                "aws".into(),
                format!(
                    "account {}, regions {}, credentials {}{}, groups tagged {} or named after an app",
                    c.account,
                    c.regions.join(", "),
                    c.profile
                        .as_deref()
                        .map_or("from the standard chain".to_string(), |p| format!("of profile {p}")),
                    c.endpoint_url
                        .as_deref()
                        .map_or(String::new(), |u| format!(", endpoint {u}")),
                    c.opt_in_tag
                ),
            ],
            ProviderSettings::Kubernetes(c) => vec![
                name.clone(),
                "kubernetes".into(),
                format!(
                    "{}, grace_period {}, minimum_age {:?}, namespaces {}, context {}{}",
                    c.action.as_str(),
                    c.grace_period
                        .map_or("the pod's own".to_string(), |g| format!("{g:?}")),
                    c.minimum_age,
                    if c.namespaces.is_empty() {
                        "all but kube-system".to_string()
                    } else {
                        c.namespaces.join(", ")
                    },
                    c.context.as_deref().unwrap_or("the current one"),
                    if c.selector.as_str().is_empty() {
                        String::new()
                    } else {
                        format!(", selector {:?}", c.selector.as_str())
                    }
                ),
            ],
        })
        .collect();
    out!("{}", table(&["PROVIDER", "KIND", "SETTINGS"], &providers))?;
    outln!()?;
    let apps: Vec<Vec<String>> = p
        .apps
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.provider.clone(),
                if a.enabled { "yes".into() } else { "no".into() },
                format!("{}", a.mean_time_between_kills),
                a.min_time_between_kills.to_string(),
                a.grouping.to_string(),
                if a.regions_independent {
                    "independent".into()
                } else {
                    "together".into()
                },
                format!("{:.3}", a.daily_probability()),
                a.exceptions.len().to_string(),
            ]
        })
        .collect();
    out!(
        "{}",
        table(
            &[
                "APP",
                "PROVIDER",
                "ENABLED",
                "MEAN",
                "MIN",
                "GROUPING",
                "REGIONS",
                "P(KILL)/DAY",
                "EXCEPTIONS"
            ],
            &apps
        )
    )?;
    Ok(super::OK)
}
