//! The command line, as the contract in PRODUCT.md fixes it. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Chaos engineering for any fleet: scheduled random termination inside guardrails.
#[derive(Debug, Parser)]
#[command(name = "simian", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args, Clone)]
pub struct Global {
    /// The config file (else $SIMIAN_CONFIG, else ./simian.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print data as JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Preview planned kills; no side effects.
    Schedule(ScheduleArgs),
    /// List the instances of an app that a kill could draw from.
    Eligible(TargetArgs),
    /// Kill one eligible instance of an app now, through every safety check.
    Terminate(TerminateArgs),
    /// Show recorded terminations (and refusals).
    History(HistoryArgs),
    /// Run the scheduler daemon: make each work day's schedule and fire it.
    Monkey(MonkeyArgs),
    /// The daemon plus Simian's control API (schedule, history, apps, kills, kill switch).
    Serve(ServeArgs),
    /// Run a local fleet under fire, with zero setup.
    Demo(DemoArgs),
    /// Run the Toxiproxy-compatible fault-injection proxy, or (with a subcommand) talk to one.
    Proxy(ProxyArgs),
    /// Chaos Gorilla: a whole zone goes dark (terminate, pause or isolate), always undone.
    Gorilla(GorillaArgs),
    /// Chaos Kong: a whole region goes dark, always undone. Requires --confirm REGION.
    Kong(KongArgs),
    /// Drills running and past, with what each touched; `outages end ID` ends one now.
    Outages(OutagesArgs),
    /// Run a Chaos Toolkit experiment (JSON or YAML) natively: hypothesis, method, rollbacks.
    Run(RunArgs),
    /// Check an experiment file without running it.
    Validate(ValidateArgs),
    /// Turn a run's journal into a self-contained HTML report.
    Report(ReportArgs),
    /// The small HTTP service the demo fleet runs (internal).
    #[command(hide = true)]
    DemoService(DemoServiceArgs),
    /// Undo one fault at its deadline (internal: started by the engine, detached).
    #[command(hide = true)]
    Guard(GuardArgs),
}

/// `simian run`
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The experiment file (.json, .yaml or .yml).
    pub experiment: PathBuf,
    /// Where to write the journal.
    #[arg(long, value_name = "PATH", default_value = "./journal.json")]
    pub journal_path: PathBuf,
    /// Also write the HTML report here.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,
    /// When rollbacks are played (overrides the file's runtime.rollbacks.strategy).
    #[arg(long, value_name = "STRATEGY", value_parser = ["default", "always", "never", "deviated"])]
    pub rollback_strategy: Option<String>,
    /// When the hypothesis is checked (overrides the file's runtime.hypothesis.strategy).
    #[arg(long, value_name = "STRATEGY", value_parser = ["default", "before-method-only", "after-method-only", "during-method-only", "continuously"])]
    pub hypothesis_strategy: Option<String>,
    /// Seconds between checks of the hypothesis during the method.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub hypothesis_frequency: f64,
    /// Fail the run at the first deviation during the method.
    #[arg(long)]
    pub fail_fast: bool,
    /// Run without the chosen kind of activity (or without pauses).
    #[arg(long, value_name = "WHAT", value_parser = ["probes", "actions", "activities", "pause"])]
    pub dry: Option<String>,
    /// A configuration value: NAME=VALUE or NAME:TYPE=VALUE (int, float, bool, str, json).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// A JSON/YAML file of configuration and secrets, or a .env file of environment variables.
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

/// `simian validate`
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The experiment file (.json, .yaml or .yml).
    pub experiment: PathBuf,
    /// A variable file, as for `simian run` (.env files can satisfy `env` entries).
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

/// `simian report`
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The journal a run wrote.
    pub journal: PathBuf,
    /// Where to write the HTML page.
    #[arg(long, value_name = "PATH", default_value = "./report.html")]
    pub out: PathBuf,
}

/// `simian guard`
#[derive(Debug, Args)]
pub struct GuardArgs {
    /// The lease to watch.
    #[arg(required_unless_present = "drill")]
    pub lease: Option<i64>,
    /// Watch every lease of this drill instead.
    #[arg(long, conflicts_with = "lease")]
    pub drill: Option<i64>,
}

/// What a drill does to each instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Kill each instance through its provider (every provider).
    Terminate,
    /// Freeze each instance for --duration (processes, Docker).
    Pause,
    /// Cut each instance off the network for --duration (Docker, Kubernetes).
    Isolate,
}

/// Options of `gorilla` and `kong`.
#[derive(Debug, Args)]
pub struct DrillOptions {
    /// Only this app (repeatable; default: every configured app).
    #[arg(long = "app", value_name = "APP")]
    pub apps: Vec<String>,
    /// What is done to each instance.
    #[arg(long, value_enum, default_value = "terminate")]
    pub mode: ModeArg,
    /// How long the zone stays dark, e.g. 5m (required for pause and isolate; for terminate,
    /// how long the probes keep watching after the kills).
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<std::time::Duration>,
    /// A URL that must answer 2xx: checked before (failing: no drill), every second during
    /// and after (repeatable; default: [drills] probes).
    #[arg(long = "probe", value_name = "URL")]
    pub probes: Vec<String>,
    /// Abort and undo when the share of successful probe checks over the last 10 s falls
    /// below this percentage (default: [drills] abort_below, else 95).
    #[arg(long, value_name = "PCT")]
    pub abort_below: Option<f64>,
    /// Plan and record only, whatever the config says.
    #[arg(long, conflicts_with = "no_dry_run")]
    pub dry_run: bool,
    /// Really act, whatever the config says (the kill switch and every guardrail still apply).
    #[arg(long)]
    pub no_dry_run: bool,
}

/// `simian gorilla`
#[derive(Debug, Args)]
pub struct GorillaArgs {
    /// The zone that goes dark.
    pub zone: String,
    /// The drill's options.
    #[command(flatten)]
    pub options: DrillOptions,
}

/// `simian kong`
#[derive(Debug, Args)]
pub struct KongArgs {
    /// The region that goes dark.
    pub region: String,
    /// The drill's options.
    #[command(flatten)]
    pub options: DrillOptions,
    /// The region's name again: a whole region is not taken down by a typo.
    #[arg(long, value_name = "REGION")]
    pub confirm: Option<String>,
}

/// `simian outages`
#[derive(Debug, Args)]
pub struct OutagesArgs {
    /// `end ID`: end a running drill now, undoing everything it did.
    #[command(subcommand)]
    pub command: Option<OutagesCommand>,
}

/// `simian outages ...`
#[derive(Debug, Subcommand)]
pub enum OutagesCommand {
    /// End a running drill now: undo everything it did.
    End {
        /// The drill's id (see `simian outages`).
        id: i64,
    },
}

/// A duration such as `90s`, `5m` or `1h`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    s.parse::<jiff::SignedDuration>()
        .ok()
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .ok_or_else(|| format!("{s:?} is not a duration: write one such as 30s, 5m or 1h"))
}

/// `simian config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the config, reach the store, and print the resolved values.
    Check(CheckArgs),
}

/// `simian config check`
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Do not open the store (for a machine that cannot reach the database).
    #[arg(long)]
    pub offline: bool,
}

/// `simian schedule`
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// First day (YYYY-MM-DD, local to the configured time zone); default today.
    #[arg(long, value_name = "D")]
    pub date: Option<jiff::civil::Date>,
    /// How many calendar days to preview.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=3660))]
    pub days: u16,
    /// Seed (else [monkey] seed, else random; the seed used is printed).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
}

/// An app and optional filters.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// The app.
    pub app: String,
    /// Only this account.
    #[arg(long)]
    pub account: Option<String>,
    /// Only this region.
    #[arg(long)]
    pub region: Option<String>,
    /// Only this stack.
    #[arg(long)]
    pub stack: Option<String>,
    /// Only this cluster.
    #[arg(long)]
    pub cluster: Option<String>,
}

/// `simian terminate`
#[derive(Debug, Args)]
pub struct TerminateArgs {
    /// What to kill.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Record only, whatever the config says.
    #[arg(long, conflicts_with = "no_dry_run")]
    pub dry_run: bool,
    /// Really kill, whatever the config says (the kill switch and every check still apply).
    #[arg(long)]
    pub no_dry_run: bool,
}

/// `simian history`
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only since this date (YYYY-MM-DD, local) or instant (RFC 3339).
    #[arg(long, value_name = "D")]
    pub since: Option<String>,
    /// Only this app.
    #[arg(long, value_name = "A")]
    pub app: Option<String>,
    /// Also list the refusals (the audit trail).
    #[arg(long)]
    pub refusals: bool,
    /// At most this many of each (the newest).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub limit: usize,
}

/// `simian monkey`
#[derive(Debug, Args)]
pub struct MonkeyArgs {
    /// Run on a simulated clock starting at this instant (RFC 3339); for tests and rehearsals.
    #[arg(long, value_name = "T")]
    pub clock_start: Option<jiff::Timestamp>,
    /// How many times faster than real time the simulated clock runs.
    #[arg(
        long,
        value_name = "X",
        default_value_t = 1.0,
        requires = "clock_start"
    )]
    pub clock_speed: f64,
    /// The real instant (Unix seconds) at which the simulated clock shows --clock-start; a
    /// restarted daemon given the same anchor continues the same timeline. Default: now.
    #[arg(long, value_name = "UNIX", requires = "clock_start")]
    pub clock_anchor: Option<f64>,
}

/// `simian serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where the API listens (default: [server] listen, else 127.0.0.1:8080). Any address
    /// but loopback needs a token ($SIMIAN_API_TOKEN or [server] token_file).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// The daemon's flags, as `simian monkey` takes them.
    #[command(flatten)]
    pub monkey: MonkeyArgs,
}

/// `simian demo`
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Availability zones in the fleet.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
    pub zones: u8,
    /// Replicas per zone.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=10))]
    pub replicas: u8,
    /// Simulated work days to run (about 20 seconds each).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=60))]
    pub days: u16,
    /// Seed: the same seed replays the same kills.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Availability target in percent; exit 1 below it.
    #[arg(long, default_value_t = 99.9)]
    pub target: f64,
    /// No retries and no health checks in the load balancer: watch kills become errors.
    #[arg(long)]
    pub fragile: bool,
    /// Real seconds per simulated work day.
    #[arg(long, default_value_t = 20.0, hide = true)]
    pub day_seconds: f64,
    /// Run the fleet as Docker containers (built locally FROM scratch, nothing pulled)
    /// killed through the docker provider, instead of local processes.
    #[arg(long)]
    pub docker: bool,
    /// Chaos Gorilla too: zone 2 goes dark (paused) for one simulated hour at noon of the
    /// first day, then comes back.
    #[arg(long)]
    pub gorilla: bool,
}

/// `simian proxy`
///
/// Without a subcommand, runs the server; `--config FILE` is then a JSON array of proxies in
/// the `/populate` format, created at start. With a subcommand, talks to a server at
/// `--host` (a URL, or a host used with `--port`), else `$TOXIPROXY_URL`, else
/// `http://localhost:8474`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// What to do; none runs the server.
    #[command(subcommand)]
    pub command: Option<ProxyCommand>,
    /// API host to bind (server) or to reach (client; a URL is accepted).
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// API port.
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// Seed for toxicity, jitter and slicer randomness (reproducible runs).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Serve byte counters on /metrics.
    #[arg(long)]
    pub proxy_metrics: bool,
    /// Serve process metrics on /metrics.
    #[arg(long)]
    pub runtime_metrics: bool,
    /// Threads that move bytes (default: half the cores, at least one, leaving the rest to
    /// the clients and servers the proxy sits between).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: Option<u16>,
    /// Microseconds a connection without toxics keeps polling for its next bytes before its
    /// thread sleeps (default 0: never). Saves a wake-up per request/response hop, for latency
    /// benchmarks, at the price of up to a core while connections talk.
    #[arg(long, value_name = "MICROSECONDS", value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub busy_poll_us: Option<u32>,
    /// TCP congestion control of the proxy's own sockets on connections that stay on this
    /// machine (default: cubic, or reno where cubic may not be chosen); "system" keeps the
    /// system's, as on every other connection.
    #[arg(long, value_name = "ALGORITHM")]
    pub loopback_congestion: Option<String>,
}

/// `simian proxy <command>`: a client of a running server.
#[derive(Debug, Subcommand)]
pub enum ProxyCommand {
    /// List proxies.
    List,
    /// Show a proxy and its toxics.
    Inspect {
        /// The proxy.
        proxy: String,
    },
    /// Create a proxy.
    Create {
        /// The proxy.
        proxy: String,
        /// Address to listen on, e.g. 127.0.0.1:26379.
        #[arg(short, long)]
        listen: String,
        /// Upstream address, e.g. 127.0.0.1:6379.
        #[arg(short, long)]
        upstream: String,
    },
    /// Enable a disabled proxy, or disable an enabled one.
    Toggle {
        /// The proxy.
        proxy: String,
    },
    /// Delete a proxy.
    Delete {
        /// The proxy.
        proxy: String,
    },
    /// Add, update or remove toxics.
    #[command(subcommand)]
    Toxic(ToxicCommand),
}

/// `simian proxy toxic <command>`
#[derive(Debug, Subcommand)]
pub enum ToxicCommand {
    /// Add a toxic.
    Add {
        /// The proxy.
        proxy: String,
        /// latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data or noop.
        #[arg(short = 't', long = "type")]
        toxic_type: String,
        /// Toxic name (default TYPE_STREAM).
        #[arg(short = 'n', long = "toxic-name")]
        name: Option<String>,
        /// Probability of applying to a connection, 0 to 1.
        #[arg(long)]
        toxicity: Option<f32>,
        /// An attribute, KEY=VALUE (repeatable), e.g. latency=100.
        #[arg(short, long = "attribute", value_name = "KEY=VALUE")]
        attributes: Vec<String>,
        /// Apply to client-to-server bytes (default: server to client).
        #[arg(short = 'u', long, conflicts_with = "downstream")]
        upstream: bool,
        /// Apply to server-to-client bytes (the default).
        #[arg(short = 'd', long)]
        downstream: bool,
    },
    /// Update a toxic's attributes or toxicity.
    Update {
        /// The proxy.
        proxy: String,
        /// The toxic.
        #[arg(short = 'n', long = "toxic-name")]
        name: String,
        /// New toxicity (unchanged when absent).
        #[arg(long)]
        toxicity: Option<f32>,
        /// An attribute, KEY=VALUE (repeatable).
        #[arg(short, long = "attribute", value_name = "KEY=VALUE")]
        attributes: Vec<String>,
    },
    /// Remove a toxic.
    Remove {
        /// The proxy.
        proxy: String,
        /// The toxic.
        #[arg(short = 'n', long = "toxic-name")]
        name: String,
    },
}

/// `simian demo-service` (internal)
#[derive(Debug, Args)]
pub struct DemoServiceArgs {
    /// Port to listen on (0: any free port).
    #[arg(long)]
    pub port: u16,
    /// Address to listen on: loopback, or every address inside a demo container.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("simian").chain(args.iter().copied()))
    }

    #[test]
    fn every_command_parses() {
        assert!(matches!(
            parse(&["config", "check"]).unwrap().command,
            Command::Config(ConfigCommand::Check(_))
        ));
        let s = parse(&[
            "schedule",
            "--date",
            "2026-03-02",
            "--days",
            "5",
            "--seed",
            "9",
            "--json",
        ])
        .unwrap();
        assert!(s.global.json);
        assert!(matches!(
            s.command,
            Command::Schedule(ScheduleArgs {
                days: 5,
                seed: Some(9),
                ..
            })
        ));
        assert!(matches!(
            parse(&["eligible", "web", "--region", "r"])
                .unwrap()
                .command,
            Command::Eligible(TargetArgs {
                region: Some(_),
                ..
            })
        ));
        assert!(matches!(
            parse(&["terminate", "web", "--no-dry-run"])
                .unwrap()
                .command,
            Command::Terminate(TerminateArgs {
                no_dry_run: true,
                ..
            })
        ));
        assert!(parse(&["terminate", "web", "--dry-run", "--no-dry-run"]).is_err());
        assert!(matches!(
            parse(&["history", "--since", "2026-03-01", "--app", "web"])
                .unwrap()
                .command,
            Command::History(_)
        ));
        assert!(matches!(
            parse(&[
                "monkey",
                "--clock-start",
                "2026-03-02T16:00:00Z",
                "--clock-speed",
                "60"
            ])
            .unwrap()
            .command,
            Command::Monkey(_)
        ));
        assert!(
            parse(&["monkey", "--clock-speed", "60"]).is_err(),
            "speed needs a start"
        );
        assert!(matches!(
            parse(&["demo", "--days", "2", "--fragile"])
                .unwrap()
                .command,
            Command::Demo(DemoArgs {
                days: 2,
                fragile: true,
                ..
            })
        ));
        assert!(parse(&["--config", "x.toml", "config", "check"]).is_ok());
        assert!(matches!(
            parse(&[
                "proxy", "--host", "0.0.0.0", "--port", "9000", "--seed", "1"
            ])
            .unwrap()
            .command,
            Command::Proxy(ProxyArgs {
                command: None,
                seed: Some(1),
                ..
            })
        ));
        assert!(matches!(
            parse(&["proxy", "list", "--host", "http://127.0.0.1:8474"])
                .unwrap()
                .command,
            Command::Proxy(ProxyArgs {
                command: Some(ProxyCommand::List),
                ..
            })
        ));
        let add = parse(&[
            "proxy",
            "toxic",
            "add",
            "redis",
            "-t",
            "latency",
            "-a",
            "latency=100",
            "-u",
        ])
        .unwrap();
        assert!(matches!(
            add.command,
            Command::Proxy(ProxyArgs {
                command: Some(ProxyCommand::Toxic(ToxicCommand::Add {
                    upstream: true,
                    ..
                })),
                ..
            })
        ));
        assert!(
            parse(&[
                "proxy", "toxic", "add", "redis", "-t", "latency", "-u", "-d"
            ])
            .is_err()
        );
        assert!(parse(&["schedule", "--date", "2026-13-01"]).is_err());
        assert!(parse(&["schedule", "--days", "0"]).is_err());
    }
}
