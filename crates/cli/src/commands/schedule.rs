//! `simian schedule`: preview planned kills. Reads the config and the inventory; writes nothing.

use jiff::Timestamp;
use simian_monkey::schedule::{collect_fleet, plan};

use crate::args::{Global, ScheduleArgs};
use crate::output::{dash, local, rfc3339, table};
use crate::wire;

pub fn run(g: &Global, a: ScheduleArgs) -> anyhow::Result<u8> {
    let settings = super::settings(g)?;
    let providers = wire::providers(&settings)?;
    let policy = &settings.policy;
    let tz = policy.calendar.time_zone().clone();
    let now = Timestamp::now();
    let first = a.date.unwrap_or_else(|| policy.calendar.local_date(now));
    let seed = a.seed.or(policy.seed).unwrap_or_else(rand::random);

    let fleet = collect_fleet(policy, &providers)?;

    let mut rows = Vec::new();
    let mut json = Vec::new();
    let mut day = first;
    for _ in 0..a.days {
        let schedule = plan(policy, &fleet, day, seed, None, now);
        for k in &schedule.kills {
            let gr = &k.group;
            json.push(serde_json::json!({
                "time": rfc3339(k.time, &tz),
                "date": day.to_string(),
                "app": gr.app,
                "account": gr.account,
                "region": gr.region,
                "stack": gr.stack,
                "cluster": gr.cluster,
                "group": gr.key(),
                "seed": seed,
            }));
            if !g.json {
                rows.push(vec![
                    local(k.time, &tz),
                    gr.app.clone(),
                    gr.account.clone(),
                    dash(gr.region.as_deref().unwrap_or("")),
                    dash(gr.stack.as_deref().unwrap_or("")),
                    dash(gr.cluster.as_deref().unwrap_or("")),
                ]);
            }
        }
        day = match day.tomorrow() {
            Ok(d) => d,
            Err(_) => break,
        };
    }
    // The process ends right after printing: freeing a million-instance fleet one string at
    // a time would only delay the exit (about 5% of the run), so the memory goes back to the
    // system with the process instead.
    std::mem::forget(fleet);
    std::mem::forget(providers);
    if g.json {
        super::print_json(&json)?;
    } else {
        out!(
            "{}",
            table(
                &["TIME", "APP", "ACCOUNT", "REGION", "STACK", "CLUSTER"],
                &rows
            )
        )?;
        eprintln!(
            "{} planned kill(s) over {} day(s) from {first}; seed {seed} (pass --seed {seed} to replay)",
            json.len(),
            a.days
        );
    }
    Ok(super::OK)
}
