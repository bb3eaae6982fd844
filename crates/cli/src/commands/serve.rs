//! `simian serve`: the daemon, exactly as `simian monkey` runs it, plus Simian's control API
//! (`simian_server::control`). SIGTERM or Ctrl-C stop both: the API stops accepting, kills
//! under way (the daemon's and the API's) finish and are recorded, then the process exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use simian_monkey::Daemon;
use simian_server::control::ControlApi;

use crate::args::{Global, ServeArgs};
use crate::wire;

/// The environment variable holding the API token.
pub const ENV_TOKEN: &str = "SIMIAN_API_TOKEN";

/// The API token: `$SIMIAN_API_TOKEN`, else the first line of `[server] token_file`.
fn token(settings: &simian_config::Settings) -> anyhow::Result<Option<String>> {
    if let Ok(t) = std::env::var(ENV_TOKEN)
        && !t.trim().is_empty()
    {
        return Ok(Some(t.trim().to_string()));
    }
    let Some(file) = &settings.server.token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        super::UsageError(format!(
            "[server] token_file {}: cannot read it: {e}",
            file.display()
        ))
    })?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(super::UsageError(format!(
            "[server] token_file {} is empty: put the token on its first line",
            file.display()
        ))
        .into());
    }
    Ok(Some(token))
}

pub fn run(g: &Global, a: ServeArgs) -> anyhow::Result<u8> {
    let clock = super::monkey::clock(&a.monkey)?;
    let settings = super::settings(g)?;
    let listen = a.listen.unwrap_or(settings.server.listen);
    let token = token(&settings)?;
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(super::UsageError(format!(
            "listening on {listen}, beyond loopback, needs an API token: set {ENV_TOKEN} or [server] token_file"
        ))
        .into());
    }
    let metrics = simian_server::metrics::Metrics::new();
    let engine = wire::engine_with(&settings, clock, Some(metrics.clone()))?;
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, shutdown.clone())
            .context("installing the signal handlers")?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("simian-serve")
        .enable_all()
        .build()
        .context("starting the server's runtime")?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        %listen,
        config = %settings.path.display(),
        store = %simian_store::redact(&settings.store_url),
        token = token.is_some(),
        "serving the control API"
    );
    let daemon = {
        let (engine, shutdown) = (engine.clone(), shutdown.clone());
        let resume_after = settings.resume_after;
        std::thread::Builder::new()
            .name("simian-daemon".into())
            .spawn(move || {
                Daemon::new(engine, Duration::from_millis(250))
                    .resume_after(resume_after)
                    .run(&shutdown)
            })?
    };
    let api = ControlApi::new(
        engine,
        token,
        Some(metrics),
        settings.server.proxy_api.clone(),
    );
    let stop = shutdown.clone();
    runtime.block_on(simian_server::http::serve_connections(
        listener,
        simian_server::http::Limits::api(simian_server::control::MAX_BODY),
        move |req| api.clone().handle(req),
        async move {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    ));
    shutdown.store(true, Ordering::SeqCst);
    // Kills the API started finish on the blocking pool before the runtime goes.
    drop(runtime);
    match daemon.join() {
        Ok(result) => {
            result?;
        }
        Err(_) => anyhow::bail!("the daemon thread panicked"),
    }
    Ok(super::OK)
}
