//! `simian eligible`: the instances a kill of APP could draw from now.

use simian_monkey::{Target, eligibility};

use crate::args::{Global, TargetArgs};
use crate::output::{dash, table};
use crate::wire;

/// The target named by the arguments.
pub fn target(a: &TargetArgs) -> Target {
    Target {
        app: a.app.clone(),
        account: a.account.clone(),
        region: a.region.clone(),
        stack: a.stack.clone(),
        cluster: a.cluster.clone(),
    }
}

pub fn run(g: &Global, a: TargetArgs) -> anyhow::Result<u8> {
    let settings = super::settings(g)?;
    let Some(app) = settings.policy.app(&a.app) else {
        return Err(super::UsageError(format!(
            "app {:?} is not configured in {}: add an [[apps]] entry for it",
            a.app,
            settings.path.display()
        ))
        .into());
    };
    let providers = wire::providers(&settings)?;
    let provider = providers.get(&app.provider).ok_or_else(|| {
        super::UsageError(format!(
            "app {} names unknown provider {}",
            app.name, app.provider
        ))
    })?;
    let instances = provider.instances()?;
    let eligible = eligibility::eligible(app, &target(&a), &instances);
    if g.json {
        super::print_json(&eligible)?;
    } else {
        let rows: Vec<Vec<String>> = eligible
            .iter()
            .map(|i| {
                vec![
                    i.id.to_string(),
                    i.app.to_string(),
                    i.account.to_string(),
                    i.region.to_string(),
                    dash(&i.zone),
                    i.cluster.to_string(),
                ]
            })
            .collect();
        out!(
            "{}",
            table(
                &["ID", "APP", "ACCOUNT", "REGION", "ZONE", "CLUSTER"],
                &rows
            )
        )?;
        if !app.enabled {
            eprintln!(
                "note: app {} is disabled (enabled = false): terminate will refuse",
                app.name
            );
        }
    }
    Ok(super::OK)
}
