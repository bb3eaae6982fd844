//! Wiring: the only place that names concrete providers, stores and checks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use simian_core::{Clock, Provider, Store, StoreError};
use simian_monkey::{Engine, Policy, PolicySource};
use simian_providers::{
    AwsProvider, DockerProvider, KubernetesProvider, ProcessProvider, StaticProvider,
};

use simian_config::{self as config, ConfigError, ProviderSettings, Settings};

/// Builds every configured provider. A bad inventory file is a configuration error.
pub fn providers(settings: &Settings) -> Result<BTreeMap<String, Arc<dyn Provider>>, ConfigError> {
    let mut out: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
    for (name, p) in &settings.providers {
        let provider: Arc<dyn Provider> = match p {
            ProviderSettings::Process(c) => Arc::new(ProcessProvider::new(name.clone(), c.clone())),
            ProviderSettings::Docker(c) => Arc::new(
                DockerProvider::new(name.clone(), c.clone()).map_err(|e| ConfigError {
                    location: settings.path.display().to_string(),
                    message: format!("[providers.{name}]: {e}"),
                    hint: None,
                })?,
            ),
            ProviderSettings::Kubernetes(c) => Arc::new(
                KubernetesProvider::new(name.clone(), c.clone()).map_err(|e| ConfigError {
                    location: settings.path.display().to_string(),
                    message: format!("[providers.{name}]: {e}"),
                    hint: None,
                })?,
            ),
            ProviderSettings::Aws(c) => Arc::new(
                AwsProvider::new(name.clone(), c.clone()).map_err(|e| ConfigError {
                    location: settings.path.display().to_string(),
                    message: format!("[providers.{name}]: {e}"),
                    hint: None,
                })?,
            ),
            ProviderSettings::Static { path } => Arc::new(
                StaticProvider::open(name.clone(), path.clone()).map_err(|e| ConfigError {
                    location: settings.path.display().to_string(),
                    message: format!("[providers.{name}]: {e}"),
                    hint: Some("fix the inventory file, or point path at another one".into()),
                })?,
            ),
        };
        out.insert(name.clone(), provider);
    }
    Ok(out)
}

/// Opens the configured store. The config's `[store] url` is named only when the store could
/// not be opened, the one failure the URL can be the cause of; a locked database or a failed
/// migration says what failed, not where the URL was written.
///
/// Every command that opens the store also undoes the faults whose deadline has passed (their
/// guardian died): a failure there is logged, never fatal.
pub fn store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    let store = simian_store::open(&settings.store_url, &settings.base_dir)
        .map_err(|e| store_error(settings, e))?;
    let now = jiff::Timestamp::now();
    reconcile(settings, store.as_ref(), now);
    Ok(store)
}

/// The configured providers, plus the Toxiproxy APIs that `leases` name (an experiment's
/// toxics), so that every open lease has a provider to undo it.
pub fn lease_providers(
    settings: &Settings,
    leases: &[simian_core::Lease],
) -> Result<BTreeMap<String, Arc<dyn Provider>>, ConfigError> {
    let mut out = providers(settings)?;
    for lease in leases {
        if let Some(api) = simian_providers::ToxiproxyApi::for_lease(lease) {
            out.entry(lease.provider.clone())
                .or_insert_with(|| Arc::new(api));
        }
    }
    Ok(out)
}

/// Undoes the faults whose deadline has passed, then ends the drills whose simian died.
fn reconcile(settings: &Settings, store: &dyn Store, now: jiff::Timestamp) {
    match store.open_leases() {
        Ok(open) if open.iter().any(|l| l.deadline <= now) => {
            match lease_providers(settings, &open) {
                Ok(providers) => {
                    if let Err(e) = simian_monkey::reconcile_leases(store, &providers) {
                        tracing::warn!(error = %e, "cannot undo expired faults now; the next command tries again");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot undo expired faults: the providers cannot be built")
                }
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open faults"),
    }
    if let Err(e) = simian_drills::reconcile_drills(store) {
        tracing::warn!(error = %e, "cannot end abandoned drills now; the next command tries again");
    }
}

/// A store failure at start-up, pointing at the config only when the URL can be the cause.
pub fn store_error(settings: &Settings, e: StoreError) -> anyhow::Error {
    match e {
        StoreError::Open { .. } => {
            anyhow::Error::new(e).context(format!("[store] url in {}", settings.path.display()))
        }
        other => anyhow::Error::new(other),
    }
}

/// The policy, re-read from the config file at every kill.
pub struct FilePolicy {
    path: PathBuf,
}

impl PolicySource for FilePolicy {
    fn load(&self) -> Result<Policy, String> {
        config::load(&self.path)
            .map(|s| s.policy)
            .map_err(|e| e.to_string())
    }
}

/// The engine over everything the config names.
pub fn engine(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Arc<Engine>> {
    engine_with(settings, clock, None)
}

/// The engine over everything the config names, its providers, store and events measured
/// into `metrics` when given (`simian serve`).
pub fn engine_with(
    settings: &Settings,
    clock: Arc<dyn Clock>,
    metrics: Option<Arc<simian_server::metrics::Metrics>>,
) -> anyhow::Result<Arc<Engine>> {
    use simian_server::metrics::{MeteredProvider, MeteredStore};
    let mut providers = providers(settings)?;
    let mut store = store(settings)?;
    if let Some(m) = &metrics {
        providers = providers
            .into_iter()
            .map(|(name, p)| {
                let metered: Arc<dyn Provider> = Arc::new(MeteredProvider::new(p, m.clone()));
                (name, metered)
            })
            .collect();
        store = Arc::new(MeteredStore::new(store, m.clone()));
    }
    let extra = metrics.map(|m| m as Arc<dyn simian_core::Notifier>);
    Ok(Arc::new(
        Engine::new(
            providers,
            store,
            clock,
            Arc::from(crate::outage::build(settings.outage.as_ref())),
            crate::notify::build(&settings.notifiers, extra),
            Arc::new(FilePolicy {
                path: settings.path.clone(),
            }),
            rand::random(),
        )
        .with_guardian(Arc::new(crate::guardian::ProcessGuardian::new(
            &settings.path,
        ))),
    ))
}

/// The drill runner over everything the config names.
pub fn drills(settings: &Settings, store: Arc<dyn Store>) -> anyhow::Result<simian_drills::Drills> {
    Ok(simian_drills::Drills::new(
        store,
        providers(settings)?,
        Arc::new(FilePolicy {
            path: settings.path.clone(),
        }),
        Arc::from(crate::outage::build(settings.outage.as_ref())),
        Arc::new(crate::guardian::ProcessGuardian::new(&settings.path)),
    )
    .with_notifier(crate::notify::build(&settings.notifiers, None)))
}
