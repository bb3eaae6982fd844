//! `simian`: parse the command line, set up logging, run the command, map the result to the
//! contract's exit codes (0 success, 1 failure, 2 bad usage or config, 3 a kill refused).
//! Started as `toxiproxy-server`, it is that server, with that server's flags.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

#[macro_use]
mod output;
mod args;
mod commands;
mod guardian;
mod notify;
mod outage;
mod wire;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let name = argv
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("simian");
    if name == "toxiproxy-server" {
        init_logs("info");
        return finish(commands::proxy::toxiproxy_server_main(&argv[1..]));
    }
    let cli = args::Cli::parse();
    let default_level = match &cli.command {
        args::Command::Monkey(_)
        | args::Command::Serve(_)
        | args::Command::Proxy(args::ProxyArgs { command: None, .. }) => "info",
        _ => "warn",
    };
    init_logs(default_level);
    finish(commands::run(cli))
}

fn init_logs(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIMIAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn finish(result: anyhow::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`simian history | head`): stop quietly, as Unix tools do.
        Err(err) if closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            use std::io::Write as _;
            // Errors can quote values from outside (ids, labels): never raw control characters.
            let message: Vec<String> = format!("{err:#}")
                .split('\n')
                .map(|line| output::safe(line).into_owned())
                .collect();
            let _ = writeln!(std::io::stderr(), "error: {}", message.join("\n"));
            ExitCode::from(commands::exit_code(&err))
        }
    }
}

/// True when `err` is a write to a pipe whose reader has gone.
fn closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
