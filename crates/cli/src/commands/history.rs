//! `simian history`: recorded terminations, and with `--refusals` the audit trail.

use jiff::Timestamp;
use jiff::civil::Date;
use simian_core::HistoryFilter;

use crate::args::{Global, HistoryArgs};
use crate::output::{dash, local, table};
use crate::wire;

pub fn run(g: &Global, a: HistoryArgs) -> anyhow::Result<u8> {
    let settings = super::settings(g)?;
    let tz = settings.policy.calendar.time_zone().clone();
    let since = match &a.since {
        None => None,
        Some(s) => Some(if let Ok(t) = s.parse::<Timestamp>() {
            t
        } else if let Ok(d) = s.parse::<Date>() {
            settings.policy.calendar.day_bounds(d).0
        } else {
            return Err(super::UsageError(format!(
                "--since {s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 instant (2026-03-02T09:00:00-08:00)"
            ))
            .into());
        }),
    };
    let filter = HistoryFilter {
        since,
        app: a.app.clone(),
        limit: Some(a.limit),
        before_id: None,
    };
    let store = wire::store(&settings)?;
    let terminations = store.terminations(&filter)?;
    let refusals = if a.refusals {
        store.refusals(&filter)?
    } else {
        Vec::new()
    };
    // Drills that touched the app (or every drill, without --app).
    let drills: Vec<simian_core::Drill> = store
        .drills(&filter)?
        .into_iter()
        .filter(|d| {
            a.app.as_ref().is_none_or(|app| {
                serde_json::from_str::<serde_json::Value>(&d.plan).is_ok_and(|plan| {
                    plan["apps"]
                        .as_array()
                        .is_some_and(|apps| apps.iter().any(|p| p["app"] == app.as_str()))
                })
            })
        })
        .collect();
    if g.json {
        super::print_json(&serde_json::json!({
            "terminations": terminations,
            "refusals": refusals,
            "drills": drills,
        }))?;
        return Ok(super::OK);
    }
    let rows: Vec<Vec<String>> = terminations
        .iter()
        .map(|t| {
            vec![
                t.id.to_string(),
                local(t.recorded_at, &tz),
                t.instance_id.clone(),
                t.app.clone(),
                t.account.clone(),
                t.region.clone(),
                t.cluster.clone(),
                if t.dry_run { "yes".into() } else { "no".into() },
                t.state.to_string(),
                t.origin.to_string(),
                dash(&t.detail),
            ]
        })
        .collect();
    out!(
        "{}",
        table(
            &[
                "ID", "RECORDED", "INSTANCE", "APP", "ACCOUNT", "REGION", "CLUSTER", "DRY RUN",
                "STATE", "ORIGIN", "DETAIL"
            ],
            &rows
        )
    )?;
    if !drills.is_empty() {
        outln!()?;
        out!(
            "{}",
            super::drill::drill_table(store.as_ref(), &drills, &tz)?
        )?;
    }
    if a.refusals {
        outln!()?;
        let rows: Vec<Vec<String>> = refusals
            .iter()
            .map(|r| {
                vec![
                    local(r.at, &tz),
                    r.app.clone(),
                    dash(&r.account),
                    dash(&r.cluster),
                    r.check.to_string(),
                    r.origin.to_string(),
                    r.reason.clone(),
                ]
            })
            .collect();
        out!(
            "{}",
            table(
                &[
                    "AT", "APP", "ACCOUNT", "CLUSTER", "CHECK", "ORIGIN", "REASON"
                ],
                &rows
            )
        )?;
    }
    Ok(super::OK)
}
