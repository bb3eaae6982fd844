//! `simian demo`: a local fleet under fire. The work happens in `simian-demo`.

use crate::args::{DemoArgs, DemoServiceArgs, Global};

pub fn run(g: &Global, a: DemoArgs) -> anyhow::Result<u8> {
    if !(0.0..=100.0).contains(&a.target) {
        return Err(super::UsageError(format!(
            "--target {} must be a percentage from 0 to 100",
            a.target
        ))
        .into());
    }
    if !a.day_seconds.is_finite() || a.day_seconds < 1.0 {
        return Err(super::UsageError("--day-seconds must be at least 1".into()).into());
    }
    let options = simian_demo::DemoOptions {
        zones: a.zones,
        replicas: a.replicas,
        days: a.days,
        seed: a.seed.unwrap_or_else(rand::random),
        target: a.target,
        fragile: a.fragile,
        day_seconds: a.day_seconds,
        json: g.json,
        docker: a.docker,
        gorilla: a.gorilla,
    };
    let summary = simian_demo::run(options)?;
    Ok(if summary.met_target {
        super::OK
    } else {
        super::FAILURE
    })
}

pub fn service(a: DemoServiceArgs) -> anyhow::Result<u8> {
    simian_demo::service::run(std::net::SocketAddr::new(a.host, a.port))?;
    Ok(super::OK)
}
