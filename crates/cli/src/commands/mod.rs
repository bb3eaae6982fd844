//! One module per command; each returns the exit code it wants, and errors are mapped to
//! exit codes in one place ([`exit_code`]).

mod config_check;
mod demo;
mod drill;
mod eligible;
mod experiment;
mod history;
mod monkey;
pub mod proxy;
mod schedule;
mod serve;
mod terminate;

use std::path::Path;

use crate::args::{Cli, Command, ConfigCommand, Global};
use simian_config::{self as config, ConfigError, Settings};

/// Exit code: success.
pub const OK: u8 = 0;
/// Exit code: failure.
pub const FAILURE: u8 = 1;
/// Exit code: bad usage or bad config.
pub const USAGE: u8 = 2;
/// Exit code: a kill refused by a safety check.
pub const REFUSED: u8 = 3;

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<u8> {
    let g = &cli.global;
    match cli.command {
        Command::Config(ConfigCommand::Check(a)) => config_check::run(g, a),
        Command::Schedule(a) => schedule::run(g, a),
        Command::Eligible(a) => eligible::run(g, a),
        Command::Terminate(a) => terminate::run(g, a),
        Command::History(a) => history::run(g, a),
        Command::Monkey(a) => monkey::run(g, a),
        Command::Serve(a) => serve::run(g, a),
        Command::Demo(a) => demo::run(g, a),
        Command::Proxy(a) => proxy::run(g, a),
        Command::DemoService(a) => demo::service(a),
        Command::Guard(a) => crate::guardian::run(g, a),
        Command::Gorilla(a) => drill::gorilla(g, a),
        Command::Kong(a) => drill::kong(g, a),
        Command::Outages(a) => drill::outages(g, a),
        Command::Run(a) => experiment::run(g, a),
        Command::Validate(a) => experiment::validate(g, a),
        Command::Report(a) => experiment::report(g, a),
    }
}

/// The exit code for an error: 2 for configuration and usage mistakes, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err
        .chain()
        .any(|e| e.is::<ConfigError>() || e.is::<UsageError>())
    {
        USAGE
    } else {
        FAILURE
    }
}

/// A bad flag value that clap could not catch: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The settings named by `--config` / `$SIMIAN_CONFIG` / `./simian.toml`.
pub fn settings(g: &Global) -> Result<Settings, ConfigError> {
    let env = std::env::var(config::ENV_CONFIG).ok();
    let path = config::locate(g.config.as_deref(), env.as_deref());
    config::load(Path::new(&path))
}

/// Prints `value` as pretty JSON.
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?)?;
    Ok(())
}
