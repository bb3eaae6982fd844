//! `simian config check`: validate everything the config names and print the resolved values.

use crate::args::Global;
use crate::config::ProviderSettings;
use crate::output::table;
use crate::wire;

pub fn run(g: &Global) -> anyhow::Result<u8> {
    let settings = super::settings(g)?;
    // Building the providers validates inventory files too.
    wire::providers(&settings)?;
    if g.json {
        super::print_json(&settings.to_json())?;
        return Ok(super::OK);
    }
    let p = &settings.policy;
    let c = &p.calendar;
    let days: Vec<String> = c
        .work_days()
        .iter()
        .map(|d| format!("{d:?}")[..3].to_ascii_lowercase())
        .collect();
    println!("config    {} (valid)", settings.path.display());
    println!(
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
    );
    println!(
        "calendar  {} {:02}:00-{:02}:00 on {}; {} holiday(s)",
        c.time_zone().iana_name().unwrap_or("UTC"),
        c.start_hour(),
        c.end_hour(),
        days.join(" "),
        c.holidays().len()
    );
    println!(
        "limits    max_kills_per_day = {}; seed = {}",
        p.max_kills_per_day,
        p.seed
            .map_or("random each day".to_string(), |s| s.to_string())
    );
    println!("store     {}", simian_store::redact(&settings.store_url));
    println!(
        "outage    {}",
        settings
            .outage
            .as_ref()
            .map_or("none (always clear)".to_string(), |o| {
                serde_json::to_string(o).unwrap_or_default()
            })
    );
    println!();
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
            ProviderSettings::Static { path } => {
                vec![name.clone(), "static".into(), path.display().to_string()]
            }
        })
        .collect();
    print!("{}", table(&["PROVIDER", "KIND", "SETTINGS"], &providers));
    println!();
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
    print!(
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
    );
    Ok(super::OK)
}
