//! Simian providers: where instances live and how they die.
//!
//! Each provider implements [`simian_core::Provider`] with the same semantics: list what
//! exists now, kill one instance and verify it is dead, refuse what must never be touched,
//! and call an instance that is already gone `AlreadyGone`.
//!
//! * [`process`]: local processes that carry `SIMIAN_APP` in their environment. The embedded
//!   default: no setup, real kills (SIGTERM, a grace period, then SIGKILL).
//! * [`inventory`]: a static JSON or TOML inventory, for planning and simulation at any scale;
//!   a kill there is recorded and removes nothing real.
//! * [`docker`]: containers labelled `simian.app` on a Docker engine, stopped, killed or
//!   restarted through the Engine API, each outcome verified.
//! * [`kubernetes`]: pods labelled `simian.io/app`, grouped by owning workload, evicted (so
//!   disruption budgets hold) or deleted through the Kubernetes API, each outcome verified.
//! * [`toxiproxy`]: the proxies of a Toxiproxy-compatible server, where an experiment's
//!   network faults (toxics) are made and undone; it kills nothing.
//! * [`aws`]: EC2 instances of Auto Scaling groups named `app-stack-detail[-vNNN]` or tagged
//!   `simian:app`, terminated so that the group replaces them, each outcome verified.
//!
//! ```no_run
//! use simian_core::Provider;
//! use simian_providers::process::{ProcessConfig, ProcessProvider};
//!
//! let local = ProcessProvider::new("local", ProcessConfig::default());
//! for instance in local.instances().unwrap() {
//!     println!("{} {} {}", instance.id, instance.app, instance.cluster);
//! }
//! ```

pub mod aws;
mod blocking;
pub mod docker;
pub mod inventory;
pub mod kubernetes;
pub mod process;
pub mod toxiproxy;

pub use aws::{AwsConfig, AwsProvider};
pub use docker::{DockerAction, DockerConfig, DockerProvider};
pub use inventory::{InventoryError, StaticProvider};
pub use kubernetes::{KubernetesAction, KubernetesConfig, KubernetesProvider};
pub use process::{ProcessConfig, ProcessProvider};
pub use toxiproxy::ToxiproxyApi;
