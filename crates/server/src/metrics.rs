//! Prometheus metrics of `simian serve`, served at `/metrics` in the text exposition format
//! (the `prometheus-client` crate).
//!
//! Three sources, each at its seam, so that nothing in the engine knows about metrics:
//! [`Metrics`] is a [`Notifier`] (kills, refusals, drills, the delay from a planned minute to
//! the kill being issued); [`MeteredProvider`] and [`MeteredStore`] wrap the provider and the
//! store seams (list latency and errors; query latency and errors). The gauges of the moment
//! (today's planned and pending kills, the kill switch) are read from the store at each scrape.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::civil::Date;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use simian_core::{
    Claim, ClaimResult, Drill, DrillEnding, Event, FaultKind, FaultOutcome, HistoryFilter,
    Instance, KillOutcome, KillSwitch, Lease, NewDrill, NewLease, NewSchedule, Notifier, Provider,
    ProviderError, Refusal, Schedule, ScheduleEntry, Store, StoreError, Termination,
    TerminationState,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TerminationLabels {
    app: String,
    state: String,
    origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DrillLabels {
    kind: String,
    mode: String,
    ending: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProviderLabels {
    provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    provider: String,
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

fn latency() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Every metric, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    terminations: Family<TerminationLabels, Counter>,
    refusals: Family<CheckLabels, Counter>,
    drills: Family<DrillLabels, Counter>,
    kill_delay: Histogram,
    provider_list: Family<ProviderLabels, Histogram, fn() -> Histogram>,
    provider_errors: Family<OperationLabels, Counter>,
    store_queries: Family<QueryLabels, Histogram, fn() -> Histogram>,
    store_errors: Family<QueryLabels, Counter>,
    planned: Gauge,
    pending: Gauge,
    kills_allowed: Gauge,
}

impl Metrics {
    /// Every metric, registered, at zero.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::default();
        let terminations = Family::<TerminationLabels, Counter>::default();
        registry.register(
            "simian_terminations",
            "Kills whose outcome is recorded, by app, state and origin",
            terminations.clone(),
        );
        let refusals = Family::<CheckLabels, Counter>::default();
        registry.register(
            "simian_refusals",
            "Kills refused, by check",
            refusals.clone(),
        );
        let drills = Family::<DrillLabels, Counter>::default();
        registry.register(
            "simian_drills",
            "Zone and region drills ended, by kind, mode and how they ended",
            drills.clone(),
        );
        // A second to about 9 hours: the daemon wakes for each kill within its minute.
        let kill_delay = Histogram::new(exponential_buckets(1.0, 2.0, 16));
        registry.register(
            "simian_kill_delay_seconds",
            "From a planned kill's minute to the kill being issued (the daemon's clock)",
            kill_delay.clone(),
        );
        let provider_list: Family<ProviderLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency);
        registry.register(
            "simian_provider_list_seconds",
            "How long a provider takes to list its instances",
            provider_list.clone(),
        );
        let provider_errors = Family::<OperationLabels, Counter>::default();
        registry.register(
            "simian_provider_errors",
            "Provider calls that failed, by provider and operation",
            provider_errors.clone(),
        );
        let store_queries: Family<QueryLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency);
        registry.register(
            "simian_store_seconds",
            "How long the store takes, by operation",
            store_queries.clone(),
        );
        let store_errors = Family::<QueryLabels, Counter>::default();
        registry.register(
            "simian_store_errors",
            "Store operations that failed, by operation",
            store_errors.clone(),
        );
        let planned = Gauge::default();
        registry.register(
            "simian_planned_kills",
            "Kills planned for today",
            planned.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "simian_pending_kills",
            "Kills planned for today and not handled yet",
            pending.clone(),
        );
        let kills_allowed = Gauge::default();
        registry.register(
            "simian_kills_allowed",
            "1 while both kill switches (the config's and the API's) are on, else 0",
            kills_allowed.clone(),
        );
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        registry.register("simian_build_info", "The running build (always 1)", build);
        Arc::new(Metrics {
            registry,
            terminations,
            refusals,
            drills,
            kill_delay,
            provider_list,
            provider_errors,
            store_queries,
            store_errors,
            planned,
            pending,
            kills_allowed,
        })
    }

    /// Reads today's schedule (`today`) and the kill switch (`holding`) into their gauges,
    /// then encodes everything.
    pub fn scrape(
        &self,
        today: Option<&Schedule>,
        holding: Option<&str>,
    ) -> Result<String, std::fmt::Error> {
        let (planned, pending) = today.map_or((0, 0), |s| {
            let pending = s
                .entries
                .iter()
                .filter(|e| e.status == simian_core::EntryStatus::Pending)
                .count();
            (s.entries.len(), pending)
        });
        self.planned.set(planned as i64);
        self.pending.set(pending as i64);
        self.kills_allowed.set(i64::from(holding.is_none()));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    fn provider_error(&self, provider: &str, operation: &str) {
        self.provider_errors
            .get_or_create(&OperationLabels {
                provider: provider.to_string(),
                operation: operation.to_string(),
            })
            .inc();
    }

    fn store_query(&self, operation: &str, took: Duration, failed: bool) {
        let labels = QueryLabels {
            operation: operation.to_string(),
        };
        self.store_queries
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if failed {
            self.store_errors.get_or_create(&labels).inc();
        }
    }
}

impl Notifier for Metrics {
    fn notify(&self, event: Event<'_>) {
        match event {
            Event::Termination(t) if t.state != TerminationState::Recorded => {
                self.terminations
                    .get_or_create(&TerminationLabels {
                        app: t.app.clone(),
                        state: t.state.to_string(),
                        origin: t.origin.to_string(),
                    })
                    .inc();
            }
            Event::Refusal(r) => {
                self.refusals
                    .get_or_create(&CheckLabels {
                        check: r.check.to_string(),
                    })
                    .inc();
            }
            Event::DrillEnded(d) => {
                self.drills
                    .get_or_create(&DrillLabels {
                        kind: d.kind.to_string(),
                        mode: d.mode.to_string(),
                        ending: d.ending.map_or("", DrillEnding::as_str).to_string(),
                    })
                    .inc();
            }
            Event::Fired { planned, issued } => {
                let delay = issued.duration_since(planned).as_secs_f64().max(0.0);
                self.kill_delay.observe(delay);
            }
            _ => {}
        }
    }
}

/// A provider whose listings are timed and whose failures are counted.
pub struct MeteredProvider {
    inner: Arc<dyn Provider>,
    metrics: Arc<Metrics>,
}

impl MeteredProvider {
    /// `inner`, measured into `metrics`.
    pub fn new(inner: Arc<dyn Provider>, metrics: Arc<Metrics>) -> MeteredProvider {
        MeteredProvider { inner, metrics }
    }

    fn count<T>(&self, operation: &str, r: Result<T, ProviderError>) -> Result<T, ProviderError> {
        if r.is_err() {
            self.metrics.provider_error(self.inner.name(), operation);
        }
        r
    }
}

impl Provider for MeteredProvider {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn instances(&self) -> Result<Vec<Instance>, ProviderError> {
        let started = Instant::now();
        let r = self.inner.instances();
        self.metrics
            .provider_list
            .get_or_create(&ProviderLabels {
                provider: self.inner.name().to_string(),
            })
            .observe(started.elapsed().as_secs_f64());
        self.count("list", r)
    }

    fn terminate(
        &self,
        instance: &Instance,
        termination: i64,
    ) -> Result<KillOutcome, ProviderError> {
        self.count("terminate", self.inner.terminate(instance, termination))
    }

    fn lease(&self) -> Option<(FaultKind, Duration)> {
        self.inner.lease()
    }

    fn faults(&self) -> &'static [FaultKind] {
        self.inner.faults()
    }

    fn fault_memo(
        &self,
        instance: &Instance,
        kind: FaultKind,
    ) -> Result<Option<String>, ProviderError> {
        self.count("fault_memo", self.inner.fault_memo(instance, kind))
    }

    fn make_fault(
        &self,
        instance: &Instance,
        lease: &Lease,
    ) -> Result<FaultOutcome, ProviderError> {
        self.count("make_fault", self.inner.make_fault(instance, lease))
    }

    fn undo(&self, lease: &Lease) -> Result<String, ProviderError> {
        self.count("undo", self.inner.undo(lease))
    }
}

/// A store whose operations are timed and whose failures are counted.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    /// `inner`, measured into `metrics`.
    pub fn new(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> MeteredStore {
        MeteredStore { inner, metrics }
    }
}

/// Each method: the inner store's, timed under its own name.
macro_rules! metered {
    ($( fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        impl Store for MeteredStore {
            $(
                fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    let started = Instant::now();
                    let r = self.inner.$name($($arg),*);
                    self.metrics.store_query(stringify!($name), started.elapsed(), r.is_err());
                    r
                }
            )*
        }
    };
}

metered! {
    fn save_schedule(&self, schedule: &NewSchedule) -> Schedule;
    fn schedule(&self, date: Date) -> Option<Schedule>;
    fn due_entries(&self, until: Timestamp) -> Vec<ScheduleEntry>;
    fn next_pending(&self) -> Option<Timestamp>;
    fn claim(&self, claim: &Claim<'_>) -> ClaimResult;
    fn finish(&self, termination: i64, state: TerminationState, detail: &str, at: Timestamp) -> ();
    fn refuse_recorded(&self, termination: i64, detail: &str, refusal: &Refusal) -> Option<i64>;
    fn unfinished(&self) -> Vec<Termination>;
    fn refuse(&self, refusal: &Refusal) -> bool;
    fn terminations(&self, filter: &HistoryFilter) -> Vec<Termination>;
    fn refusals(&self, filter: &HistoryFilter) -> Vec<Refusal>;
    fn open_lease(&self, lease: &NewLease) -> Lease;
    fn end_lease(&self, id: i64, at: Timestamp, ending: &str) -> bool;
    fn lease(&self, id: i64) -> Option<Lease>;
    fn open_leases(&self) -> Vec<Lease>;
    fn record_leases(&self, leases: &[NewLease]) -> Vec<Lease>;
    fn begin_undo(&self, ids: &[i64], at: Timestamp) -> ();
    fn end_leases(&self, endings: &[(i64, String)], at: Timestamp) -> usize;
    fn begin_drill(&self, drill: &NewDrill) -> Result<Drill, Drill>;
    fn drill(&self, id: i64) -> Option<Drill>;
    fn running_drills(&self) -> Vec<Drill>;
    fn drills(&self, filter: &HistoryFilter) -> Vec<Drill>;
    fn end_drill(&self, id: i64, at: Timestamp, ending: DrillEnding, detail: &str, report: Option<&str>) -> bool;
    fn record_drill_terminations(&self, drill: &Drill, victims: &[(&str, &Instance)], at: Timestamp) -> Vec<Termination>;
    fn drill_leases(&self, drill: i64) -> Vec<Lease>;
    fn drill_terminations(&self, drill: i64) -> Vec<Termination>;
    fn kill_switch(&self) -> Option<KillSwitch>;
    fn set_kill_switch(&self, change: &KillSwitch) -> ();
}

#[cfg(test)]
mod tests {
    use super::*;

    use simian_core::Check;

    #[test]
    fn events_count_and_the_encoding_is_prometheus_text() {
        let m = Metrics::new();
        let refusal = Refusal {
            id: 1,
            at: Timestamp::UNIX_EPOCH,
            app: "web".into(),
            account: "a".into(),
            region: "r".into(),
            stack: String::new(),
            cluster: "web".into(),
            instance_id: None,
            check: Check::KillSwitch,
            reason: "off".into(),
            dry_run: false,
            schedule_entry: None,
            origin: simian_core::Origin::Manual,
        };
        m.notify(Event::Refusal(&refusal));
        m.notify(Event::Refusal(&refusal));
        m.notify(Event::Fired {
            planned: Timestamp::UNIX_EPOCH,
            issued: Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(3),
        });
        let text = m.scrape(None, Some("off")).unwrap_or_default();
        assert!(
            text.contains("simian_refusals_total{check=\"kill_switch\"} 2"),
            "{text}"
        );
        assert!(text.contains("simian_kill_delay_seconds_count 1"), "{text}");
        assert!(
            text.contains("simian_kill_delay_seconds_bucket{le=\"4.0\"} 1"),
            "{text}"
        );
        assert!(text.contains("simian_kills_allowed 0"), "{text}");
        assert!(text.contains("simian_build_info{version=\""), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
