//! The run: steady-state hypothesis, method, hypothesis again, rollbacks, journal.
//!
//! The order, the strategies, the dry modes and the statuses are the reference runner's
//! (chaostoolkit-lib 1.44), so that the same file gives the same journal and the same exit
//! code. Where Simian goes further it says so: a run stopped by a stop condition or a signal
//! plays its rollbacks (unless the strategy is `never`), and the journal's `simian` block
//! says what stopped it and when.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::faults::Faults;
use crate::interrupt::{Interrupt, Stopped};
use crate::load::Vars;
use crate::provider::simian::Kills;
use crate::provider::{self, Context, Failure};
use crate::pyish::{self, truthy};
use crate::stop;
use crate::substitute::Scope;
use crate::tolerance::{self, ProbeRunner};
use crate::validate::Invalid;

/// When rollbacks are played.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackStrategy {
    /// Unless the run failed or was interrupted (by Ctrl-C; Simian plays them when a stop
    /// condition or a signal stopped the run).
    Default,
    /// Always.
    Always,
    /// Never.
    Never,
    /// Only when the hypothesis deviated.
    Deviated,
}

impl RollbackStrategy {
    /// From its name in the file or on the command line.
    pub fn parse(s: &str) -> Option<RollbackStrategy> {
        Some(match s {
            "default" => RollbackStrategy::Default,
            "always" => RollbackStrategy::Always,
            "never" => RollbackStrategy::Never,
            "deviated" => RollbackStrategy::Deviated,
            _ => return None,
        })
    }
}

/// When the steady-state hypothesis is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypothesisStrategy {
    /// Before and after the method.
    Default,
    /// Only before.
    BeforeMethodOnly,
    /// Only after.
    AfterMethodOnly,
    /// Only during, every `--hypothesis-frequency` seconds.
    DuringMethodOnly,
    /// Before, during and after.
    Continuously,
}

impl HypothesisStrategy {
    /// From its name in the file or on the command line (`continously`, the reference's old
    /// spelling, too).
    pub fn parse(s: &str) -> Option<HypothesisStrategy> {
        Some(match s {
            "default" => HypothesisStrategy::Default,
            "before-method-only" => HypothesisStrategy::BeforeMethodOnly,
            "after-method-only" => HypothesisStrategy::AfterMethodOnly,
            "during-method-only" => HypothesisStrategy::DuringMethodOnly,
            "continuously" | "continously" => HypothesisStrategy::Continuously,
            _ => return None,
        })
    }

    fn before(self) -> bool {
        matches!(
            self,
            HypothesisStrategy::Default
                | HypothesisStrategy::BeforeMethodOnly
                | HypothesisStrategy::Continuously
        )
    }

    fn during(self) -> bool {
        matches!(
            self,
            HypothesisStrategy::DuringMethodOnly | HypothesisStrategy::Continuously
        )
    }

    fn after(self) -> bool {
        matches!(
            self,
            HypothesisStrategy::Default
                | HypothesisStrategy::AfterMethodOnly
                | HypothesisStrategy::Continuously
        )
    }
}

/// What a dry run leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dry {
    /// Probes do not run (and tolerances are not checked).
    Probes,
    /// Actions do not run.
    Actions,
    /// Nothing runs.
    Activities,
    /// Everything runs, pauses are skipped.
    Pause,
}

impl Dry {
    /// From its name on the command line.
    pub fn parse(s: &str) -> Option<Dry> {
        Some(match s {
            "probes" => Dry::Probes,
            "actions" => Dry::Actions,
            "activities" => Dry::Activities,
            "pause" => Dry::Pause,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Dry::Probes => "probes",
            Dry::Actions => "actions",
            Dry::Activities => "activities",
            Dry::Pause => "pause",
        }
    }
}

/// How to run: the command line's choices (each overrides the file's `runtime`).
#[derive(Clone)]
pub struct Options {
    /// `--dry`.
    pub dry: Option<Dry>,
    /// `--rollback-strategy`.
    pub rollback_strategy: Option<RollbackStrategy>,
    /// `--hypothesis-strategy`.
    pub hypothesis_strategy: Option<HypothesisStrategy>,
    /// `--hypothesis-frequency`, seconds.
    pub hypothesis_frequency: Duration,
    /// `--fail-fast`: a deviation during the method fails the run at once.
    pub fail_fast: bool,
    /// `--var` and `--var-file`.
    pub vars: Vars,
    /// Where Simian's own faults are recorded (see [`needs_simian`]); without it, the
    /// activities that make them fail.
    pub faults: Option<Arc<Faults>>,
    /// Simian's kills (see [`needs_simian`]); without it, `simian terminate` activities fail.
    pub kills: Option<Arc<dyn Kills>>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dry: None,
            rollback_strategy: None,
            hypothesis_strategy: None,
            hypothesis_frequency: Duration::from_secs(1),
            fail_fast: false,
            vars: Vars::default(),
            faults: None,
            kills: None,
        }
    }
}

/// Hears about the run as it goes (the CLI prints progress).
pub trait Observer: Send + Sync {
    /// A phase starts ("steady-state hypothesis", "method", "rollbacks").
    fn phase(&self, _what: &str) {}
    /// An activity finished; `run` is its journal record.
    fn activity(&self, _run: &Value) {}
}

/// An observer that hears nothing.
pub struct Quiet;

impl Observer for Quiet {}

/// Whether `experiment` needs Simian's configuration: a `simian` provider (kills and toxics),
/// or a natively run `chaostoxi` toxic (recorded in Simian's store before it is made).
pub fn needs_simian(experiment: &Map<String, Value>) -> bool {
    let hypothesis = experiment
        .get("steady-state-hypothesis")
        .and_then(|h| h.get("probes"))
        .and_then(Value::as_array);
    let lists = [
        hypothesis,
        experiment.get("method").and_then(Value::as_array),
        experiment.get("rollbacks").and_then(Value::as_array),
    ];
    lists.into_iter().flatten().flatten().any(|a| {
        let p = a.get("provider").unwrap_or(&Value::Null);
        match p.get("type").and_then(Value::as_str) {
            Some(provider::simian::TYPE) => true,
            Some("python") => provider::python::makes_faults(p),
            _ => false,
        }
    })
}

/// The activities a `ref` can name: the method's, then the hypothesis probes' (which win a
/// name clash, as in the reference).
pub fn named_activities(experiment: &Map<String, Value>) -> Map<String, Value> {
    let mut names = Map::new();
    let method = experiment.get("method").and_then(Value::as_array);
    let probes = experiment
        .get("steady-state-hypothesis")
        .and_then(|h| h.get("probes"))
        .and_then(Value::as_array);
    for a in method.into_iter().chain(probes).flatten() {
        if let Some(name) = a.get("name").and_then(Value::as_str)
            && !name.is_empty()
        {
            names.insert(name.to_string(), a.clone());
        }
    }
    names
}

/// Runs a validated experiment and returns its journal. `interrupt` stops the method (a
/// signal trips it; the experiment's stop conditions too); `hard_stop` stops the rollbacks
/// (a second signal).
pub fn run(
    experiment: Map<String, Value>,
    options: &Options,
    interrupt: Arc<Interrupt>,
    hard_stop: Arc<Interrupt>,
    observer: Arc<dyn Observer>,
) -> Result<Value, Invalid> {
    let started = Instant::now();
    let configuration = crate::config::configuration(&experiment, &options.vars)?;
    let secrets = crate::config::secrets(&experiment, &configuration, &options.vars)?;
    let mut scope = Scope {
        configuration,
        secrets,
    };
    // Stop conditions may name configuration (`${base}/health`) like any activity.
    let conditions = stop::Conditions::of(&match scope
        .substitute(&Value::Object(experiment.clone()))
    {
        Value::Object(m) => m,
        _ => Map::new(),
    })?;
    let runtime = experiment.get("runtime");
    let rollback_strategy = options.rollback_strategy.unwrap_or_else(|| {
        runtime
            .and_then(|r| r.pointer("/rollbacks/strategy"))
            .and_then(Value::as_str)
            .and_then(RollbackStrategy::parse)
            .unwrap_or(RollbackStrategy::Default)
    });
    let strategy = options.hypothesis_strategy.unwrap_or_else(|| {
        runtime
            .and_then(|r| r.pointer("/hypothesis/strategy"))
            .and_then(Value::as_str)
            .and_then(HypothesisStrategy::parse)
            .unwrap_or(HypothesisStrategy::Default)
    });
    // Dynamic configuration: a probe as a configuration value runs now, its output the value.
    dynamic_configuration(&mut scope, &options.vars, &interrupt);
    let mut experiment = experiment;
    if let Some(title) = experiment.get("title").cloned() {
        experiment.insert("title".to_string(), scope.substitute(&title));
    }
    let runner = Arc::new(Runner {
        names: named_activities(&experiment),
        experiment,
        scope,
        vars: options.vars.clone(),
        dry: options.dry,
        interrupt,
        hard_stop,
        observer,
        faults: options.faults.clone(),
        kills: options.kills.clone(),
        state: State::default(),
    });
    let start = Timestamp::now();
    let mut copy = runner.experiment.clone();
    copy.insert(
        "dry".to_string(),
        options
            .dry
            .map_or(Value::Null, |d| Value::String(d.name().into())),
    );

    let with_hypothesis = runner
        .experiment
        .get("steady-state-hypothesis")
        .and_then(|h| h.get("probes"))
        .and_then(Value::as_array)
        .is_some_and(|p| !p.is_empty());
    let mut before = Value::Null;
    let mut after = Value::Null;
    let mut proceed = true;
    if with_hypothesis && strategy.before() {
        runner
            .observer
            .phase("steady-state hypothesis (before the method)");
        let state = runner.hypothesis();
        if !state["steady_state_met"].as_bool().unwrap_or(false) {
            runner.set_status(status_of(&state));
            proceed = false;
        }
        before = state;
    }
    if proceed {
        let watch = conditions.watch(runner.interrupt.clone());
        let during = (with_hypothesis && strategy.during()).then(|| {
            let r = runner.clone();
            let done = Arc::new(Interrupt::new());
            let d = done.clone();
            let frequency = options.hypothesis_frequency;
            let fail_fast = options.fail_fast;
            (
                done,
                std::thread::spawn(move || r.continuously(&d, frequency, fail_fast)),
            )
        });
        runner.observer.phase("method");
        let completed = runner.method();
        if let Some((done, handle)) = during {
            done.trip(Stopped {
                by: "method".into(),
                name: "end".into(),
                reason: "the method ended".into(),
                at: Timestamp::now(),
            });
            let _ = handle.join();
        }
        drop(watch);
        if runner.interrupt.is_tripped() {
            runner.set_status("interrupted");
        }
        let status = runner.status();
        if !matches!(status.as_deref(), Some("interrupted" | "aborted"))
            && with_hypothesis
            && completed
            && strategy.after()
        {
            runner
                .observer
                .phase("steady-state hypothesis (after the method)");
            let state = runner.hypothesis();
            if !state["steady_state_met"].as_bool().unwrap_or(false) {
                *lock(&runner.state.deviated) = true;
                runner.set_status(status_of(&state));
            }
            after = state;
        }
    }
    let stopped = runner.interrupt.stopped();
    let deviated = *lock(&runner.state.deviated);
    let status = runner.status();
    let play = match rollback_strategy {
        RollbackStrategy::Always => true,
        RollbackStrategy::Never => false,
        RollbackStrategy::Deviated => deviated,
        RollbackStrategy::Default => {
            stopped.is_some() || !matches!(status.as_deref(), Some("failed" | "interrupted"))
        }
    };
    let rollbacks = if play {
        runner.observer.phase("rollbacks");
        runner.rollbacks()
    } else {
        Vec::new()
    };
    // Whatever ended the run, Simian's own faults end with it.
    let undone = runner
        .faults
        .as_ref()
        .map(|f| f.undo_all())
        .unwrap_or_default();
    if runner.hard_stop.is_tripped() {
        runner.set_status("interrupted");
    }
    let status = match runner.status() {
        Some(s)
            if matches!(
                s.as_str(),
                "completed" | "failed" | "aborted" | "interrupted"
            ) =>
        {
            s
        }
        _ => "completed".to_string(),
    };
    let end = Timestamp::now();
    let runs = std::mem::take(&mut *lock(&runner.state.runs));
    let during = std::mem::take(&mut *lock(&runner.state.during));
    let mut journal = json!({
        "chaoslib-version": null,
        "platform": platform(),
        "node": node(),
        "experiment": Value::Object(copy),
        "start": iso(start),
        "status": status,
        "deviated": deviated,
        "steady_states": {"before": before, "after": after, "during": during},
        "run": runs,
        "rollbacks": rollbacks,
        "end": iso(end),
        "duration": started.elapsed().as_secs_f64(),
        "simian": {
            "version": env!("CARGO_PKG_VERSION"),
            "stopped": stopped,
            "undone": undone,
        },
    });
    runner.apply_tolerance_values(&mut journal);
    Ok(journal)
}

/// The exit code a journal means: 0 when it completed without deviating, else 1.
pub fn exit_code(journal: &Value) -> u8 {
    let completed = journal["status"].as_str() == Some("completed");
    let deviated = journal["deviated"].as_bool().unwrap_or(false);
    if completed && !deviated { 0 } else { 1 }
}

/// `completed`, or `failed` when a probe of the hypothesis failed rather than missed.
fn status_of(state: &Value) -> &'static str {
    let failed = state["probes"]
        .as_array()
        .is_some_and(|p| p.iter().any(|r| r["status"].as_str() != Some("succeeded")));
    if failed { "failed" } else { "completed" }
}

fn dynamic_configuration(scope: &mut Scope, vars: &Vars, interrupt: &Interrupt) {
    let keys: Vec<String> = scope
        .configuration
        .iter()
        .filter(|(_, v)| v.get("type").and_then(Value::as_str) == Some("probe"))
        .map(|(k, _)| k.clone())
        .collect();
    for key in keys {
        let Some(probe) = scope.configuration.remove(&key) else {
            continue;
        };
        let cx = Context {
            scope,
            vars,
            interrupt,
            faults: None,
            kills: None,
        };
        let output = provider::run(&probe, &cx);
        let kind = probe.pointer("/provider/type").and_then(Value::as_str);
        let value = match (output, kind) {
            (Ok(out), Some("process")) if out["status"] == json!(0) => Some(Value::String(
                out["stdout"]
                    .as_str()
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
            )),
            (Ok(out), Some("http")) => Some(out["body"].clone()),
            (Ok(out), _) => {
                tracing::warn!(key, stderr = %out["stderr"], "dynamic configuration failed to load");
                None
            }
            (Err(e), _) => {
                tracing::warn!(key, error = ?e, "dynamic configuration failed to load");
                None
            }
        };
        if let Some(v) = value {
            scope.configuration.insert(key, v);
        }
    }
}

#[derive(Default)]
struct State {
    status: Mutex<Option<String>>,
    deviated: Mutex<bool>,
    runs: Mutex<Vec<Value>>,
    during: Mutex<Vec<Value>>,
    /// The `value` last given to each tolerance probe, by hypothesis probe name: the
    /// reference writes it into the experiment it journals.
    tolerance_values: Mutex<Vec<(String, Value)>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Runner {
    experiment: Map<String, Value>,
    names: Map<String, Value>,
    scope: Scope,
    vars: Vars,
    dry: Option<Dry>,
    interrupt: Arc<Interrupt>,
    hard_stop: Arc<Interrupt>,
    observer: Arc<dyn Observer>,
    faults: Option<Arc<Faults>>,
    kills: Option<Arc<dyn Kills>>,
    state: State,
}

/// Where an activity's record goes while it runs.
#[derive(Clone, Copy)]
enum Log {
    /// Kept by the caller (hypothesis probes).
    None,
    /// The method's runs.
    Method,
    /// The rollbacks' runs.
    Rollbacks,
}

impl Runner {
    fn status(&self) -> Option<String> {
        lock(&self.state.status).clone()
    }

    fn set_status(&self, s: &str) {
        *lock(&self.state.status) = Some(s.to_string());
    }

    fn resolve<'a>(&'a self, activity: &'a Value) -> Option<&'a Value> {
        match activity
            .get("ref")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            Some(r) => self.names.get(r),
            None => Some(activity),
        }
    }

    /// Plays one activity with its pauses; its journal record.
    fn execute(
        &self,
        activity: &Value,
        interrupt: &Interrupt,
        log: Log,
        rollbacks: &Mutex<Vec<Value>>,
    ) -> Value {
        self.execute_in(activity, interrupt, log, rollbacks, None)
    }

    /// Whether `activity` waits before it starts (a background activity without a pause
    /// takes its place in the journal when it is launched, as in the reference).
    fn pauses_before(&self, activity: &Value) -> bool {
        activity
            .get("pauses")
            .map(|p| self.scope.substitute(p))
            .and_then(|p| p.get("before").and_then(pyish::number))
            .is_some_and(|s| s > 0.0)
    }

    /// [`execute`](Self::execute), with the record's place in its log already taken.
    fn execute_in(
        &self,
        activity: &Value,
        interrupt: &Interrupt,
        log: Log,
        rollbacks: &Mutex<Vec<Value>>,
        reserved: Option<usize>,
    ) -> Value {
        let dry = if activity.get("dry").is_some() {
            None
        } else {
            self.dry
        };
        let kind = activity
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let is_dry = match dry {
            Some(Dry::Actions) => kind == "action",
            Some(Dry::Probes) => kind == "probe",
            Some(Dry::Activities) => true,
            _ => false,
        };
        let pauses = activity
            .get("pauses")
            .map(|p| self.scope.substitute(p))
            .unwrap_or(Value::Null);
        let pause = |when: &str| {
            let seconds = pauses.get(when).and_then(pyish::number).unwrap_or(0.0);
            if seconds > 0.0 && dry != Some(Dry::Pause) && !is_dry {
                interrupt.sleep(Duration::from_secs_f64(seconds.min(1e9)));
            }
        };
        pause("before");
        let start = Timestamp::now();
        let clock = Instant::now();
        let mut record = json!({
            "activity": activity,
            "output": null,
            "start": iso(start),
        });
        let list = match log {
            Log::None => None,
            Log::Method => Some(&self.state.runs),
            Log::Rollbacks => Some(rollbacks),
        };
        let slot = list.map(|l| match reserved {
            Some(i) => {
                if let Some(entry) = lock(l).get_mut(i) {
                    *entry = record.clone();
                }
                (l, i)
            }
            None => (l, push(l, record.clone())),
        });
        let result = if is_dry {
            Ok(Value::Null)
        } else {
            let cx = Context {
                scope: &self.scope,
                vars: &self.vars,
                interrupt,
                faults: self.faults.as_deref(),
                kills: self.kills.as_deref(),
            };
            provider::run(activity, &cx)
        };
        let interrupted = matches!(result, Err(Failure::Interrupted));
        match result {
            Ok(output) => {
                record["output"] = output;
                record["status"] = json!("succeeded");
            }
            Err(Failure::Failed(message)) => {
                record["status"] = json!("failed");
                record["exception"] =
                    json!([format!("chaoslib.exceptions.ActivityFailed: {message}\n")]);
            }
            Err(Failure::Interrupted) => {
                let why = interrupt
                    .stopped()
                    .map(|s| format!("{} {}: {}", s.by.replace('_', " "), s.name, s.reason))
                    .unwrap_or_default();
                record["status"] = json!("failed");
                record["exception"] = json!([format!(
                    "chaoslib.exceptions.InterruptExecution: the run was stopped ({why})\n"
                )]);
            }
        }
        record["end"] = json!(iso(Timestamp::now()));
        record["duration"] = json!(clock.elapsed().as_secs_f64());
        if let Some((list, i)) = slot
            && let Some(entry) = lock(list).get_mut(i)
        {
            *entry = record.clone();
        }
        self.observer.activity(&record);
        if !interrupted {
            pause("after");
        }
        record
    }

    /// The steady-state hypothesis, once: `{steady_state_met, probes}`.
    fn hypothesis(&self) -> Value {
        let none = Mutex::new(Vec::new());
        let mut probes = Vec::new();
        let list = self
            .experiment
            .get("steady-state-hypothesis")
            .and_then(|h| h.get("probes"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut met = true;
        for probe in &list {
            let Some(activity) = self.resolve(probe) else {
                met = false;
                break;
            };
            let mut run = self.execute(activity, &self.interrupt, Log::None, &none);
            if run["status"].as_str() == Some("failed") {
                run["tolerance_met"] = json!(false);
                probes.push(run);
                met = false;
                break;
            }
            run["tolerance_met"] = json!(true);
            if matches!(self.dry, Some(Dry::Probes | Dry::Activities)) {
                probes.push(run);
                continue;
            }
            let tolerance = probe.get("tolerance").unwrap_or(&Value::Null);
            if tolerance.get("type").and_then(Value::as_str) == Some("probe") {
                let name = probe
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                lock(&self.state.tolerance_values).push((name.to_string(), run["output"].clone()));
            }
            if !tolerance::within(tolerance, &run["output"], &self.scope, self) {
                run["tolerance_met"] = json!(false);
                probes.push(run);
                met = false;
                break;
            }
            probes.push(run);
        }
        json!({"steady_state_met": met, "probes": probes})
    }

    /// The method; false when it was aborted (a `ref` to nothing).
    fn method(self: &Arc<Self>) -> bool {
        let list = self
            .experiment
            .get("method")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let unused = Mutex::new(Vec::new());
        let mut background: Vec<JoinHandle<()>> = Vec::new();
        let mut completed = true;
        for item in &list {
            let Some(activity) = self.resolve(item).cloned() else {
                self.set_status("aborted");
                completed = false;
                break;
            };
            if activity.get("background").is_some_and(truthy) {
                let r = self.clone();
                let reserved = (!self.pauses_before(&activity))
                    .then(|| push(&self.state.runs, json!({"activity": activity})));
                background.push(std::thread::spawn(move || {
                    let unused = Mutex::new(Vec::new());
                    r.execute_in(&activity, &r.interrupt, Log::Method, &unused, reserved);
                }));
            } else {
                self.execute(&activity, &self.interrupt, Log::Method, &unused);
            }
            if matches!(
                self.status().as_deref(),
                Some("aborted" | "failed" | "interrupted")
            ) || self.interrupt.is_tripped()
            {
                break;
            }
        }
        for handle in background {
            let _ = handle.join();
        }
        completed
    }

    /// The hypothesis again and again during the method, until `done` trips.
    fn continuously(&self, done: &Interrupt, frequency: Duration, fail_fast: bool) {
        let mut failed = 0u32;
        let mut iteration = 1u32;
        while !done.is_tripped() {
            if matches!(
                self.status().as_deref(),
                Some("failed" | "interrupted" | "aborted")
            ) {
                break;
            }
            let state = self.hypothesis();
            let met = state["steady_state_met"].as_bool().unwrap_or(false);
            lock(&self.state.during).push(state);
            if !met {
                failed += 1;
                if fail_fast {
                    tracing::info!(
                        ratio = f64::from(failed) * 100.0 / f64::from(iteration),
                        "the hypothesis deviated during the method: failing fast"
                    );
                    self.set_status("failed");
                    break;
                }
            }
            iteration += 1;
            done.sleep(frequency);
        }
    }

    fn rollbacks(self: &Arc<Self>) -> Vec<Value> {
        let list = self
            .experiment
            .get("rollbacks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let runs = Arc::new(Mutex::new(Vec::new()));
        let mut background = Vec::new();
        for item in &list {
            if self.hard_stop.is_tripped() {
                break;
            }
            let Some(activity) = self.resolve(item).cloned() else {
                continue;
            };
            if activity.get("background").is_some_and(truthy) {
                let r = self.clone();
                let runs = runs.clone();
                let reserved = (!self.pauses_before(&activity))
                    .then(|| push(&runs, json!({"activity": activity})));
                background.push(std::thread::spawn(move || {
                    r.execute_in(&activity, &r.hard_stop, Log::Rollbacks, &runs, reserved);
                }));
            } else {
                self.execute(&activity, &self.hard_stop, Log::Rollbacks, &runs);
            }
        }
        for handle in background {
            let _ = handle.join();
        }
        std::mem::take(&mut *lock(&runs))
    }

    /// Writes each tolerance probe's last `value` where the reference's journal shows it.
    fn apply_tolerance_values(&self, journal: &mut Value) {
        let values = std::mem::take(&mut *lock(&self.state.tolerance_values));
        for (name, value) in values {
            let set = |probe: &mut Value| {
                if probe.get("name").and_then(Value::as_str) == Some(name.as_str())
                    && let Some(Value::Object(args)) =
                        probe.pointer_mut("/tolerance/provider/arguments")
                {
                    args.insert("value".to_string(), value.clone());
                }
            };
            if let Some(Value::Array(probes)) =
                journal.pointer_mut("/experiment/steady-state-hypothesis/probes")
            {
                probes.iter_mut().for_each(set);
            }
            for phase in ["before", "after"] {
                if let Some(Value::Array(runs)) =
                    journal.pointer_mut(&format!("/steady_states/{phase}/probes"))
                {
                    runs.iter_mut()
                        .filter_map(|r| r.get_mut("activity"))
                        .for_each(set);
                }
            }
            if let Some(Value::Array(states)) = journal.pointer_mut("/steady_states/during") {
                for state in states {
                    if let Some(Value::Array(runs)) = state.get_mut("probes") {
                        runs.iter_mut()
                            .filter_map(|r| r.get_mut("activity"))
                            .for_each(set);
                    }
                }
            }
        }
    }
}

impl ProbeRunner for Runner {
    fn run_probe(&self, probe: &Value) -> Result<Value, String> {
        let cx = Context {
            scope: &self.scope,
            vars: &self.vars,
            interrupt: &self.interrupt,
            faults: self.faults.as_deref(),
            kills: self.kills.as_deref(),
        };
        provider::run(probe, &cx).map_err(|e| format!("{e:?}"))
    }
}

fn push(list: &Mutex<Vec<Value>>, record: Value) -> usize {
    let mut l = lock(list);
    l.push(record);
    l.len() - 1
}

/// A timestamp as Python's `datetime.isoformat()` writes an aware UTC time.
pub fn iso(t: Timestamp) -> String {
    let micros = t.subsec_microsecond();
    let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if micros == 0 {
        format!("{base}+00:00")
    } else {
        format!("{base}.{micros:06}+00:00")
    }
}

fn platform() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("Linux-{}-{}", release.trim(), std::env::consts::ARCH)
}

fn node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
