//! Stage one: `simian.toml` as written, with the spans needed to point at a line.
//!
//! Only this file and `resolve.rs` know about TOML. Every table denies unknown keys, so a
//! typo is an error that names the key and its line instead of a silently ignored setting.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub monkey: RawMonkey,
    #[serde(default)]
    pub store: RawStore,
    pub outage: Option<Spanned<RawOutage>>,
    #[serde(default)]
    pub drills: RawDrills,
    #[serde(default)]
    pub notifiers: Vec<Spanned<RawNotifier>>,
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub providers: BTreeMap<Spanned<String>, Spanned<RawProvider>>,
    #[serde(default)]
    pub apps: Vec<Spanned<RawApp>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMonkey {
    pub enabled: Option<bool>,
    pub dry_run: Option<bool>,
    pub time_zone: Option<Spanned<String>>,
    pub start_hour: Option<Spanned<i64>>,
    pub end_hour: Option<Spanned<i64>>,
    pub work_days: Option<Spanned<Vec<Spanned<String>>>>,
    pub holidays: Option<Vec<Spanned<String>>>,
    pub max_kills_per_day: Option<Spanned<i64>>,
    pub seed: Option<Spanned<i64>>,
    pub resume_after: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub proxy_api: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    pub url: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutage {
    pub command: Option<Spanned<Vec<String>>>,
    pub http: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifier {
    pub kind: Spanned<String>,
    pub url: Option<Spanned<String>>,
    pub url_env: Option<Spanned<String>>,
    pub secret_env: Option<Spanned<String>>,
    pub events: Option<Vec<Spanned<String>>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawDrills {
    pub probes: Option<Vec<Spanned<String>>>,
    pub abort_below: Option<Spanned<f64>>,
    pub probe_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub kind: Spanned<String>,
    pub grace_period: Option<Spanned<String>>,
    pub selector: Option<Spanned<RawSelector>>,
    pub path: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
    pub signal: Option<Spanned<String>>,
    pub pause_for: Option<Spanned<String>>,
    pub kubeconfig: Option<Spanned<String>>,
    pub context: Option<Spanned<String>>,
    pub account: Option<Spanned<String>>,
    pub namespaces: Option<Spanned<Vec<String>>>,
    pub minimum_age: Option<Spanned<String>>,
    pub app_label: Option<Spanned<String>>,
    pub regions: Option<Spanned<Vec<String>>>,
    pub profile: Option<Spanned<String>>,
    pub endpoint_url: Option<Spanned<String>>,
    pub opt_in_tag: Option<Spanned<String>>,
}

/// `selector`: a table of labels every instance must carry, or (kind `kubernetes`) a label
/// selector in Kubernetes syntax.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSelector {
    Labels(BTreeMap<String, String>),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub name: Spanned<String>,
    pub provider: Spanned<String>,
    pub enabled: Option<bool>,
    pub mean_time_between_kills: Option<Spanned<f64>>,
    pub min_time_between_kills: Option<Spanned<i64>>,
    pub grouping: Option<Spanned<String>>,
    pub regions_independent: Option<bool>,
    pub allow_single_replica: Option<Spanned<bool>>,
    #[serde(default)]
    pub exceptions: Vec<Spanned<RawException>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawException {
    pub account: Option<String>,
    pub region: Option<String>,
    pub stack: Option<String>,
    pub detail: Option<String>,
}
