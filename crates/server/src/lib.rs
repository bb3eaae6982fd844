//! Simian's HTTP surfaces.
//!
//! [`control`] is Simian's own control plane (`simian serve`): the schedule, the history, the
//! apps, kills and the kill switch, under `/api/v1`, with its OpenAPI document. It turns HTTP
//! into calls on the engine and the store, the same calls the CLI makes.
//!
//! [`toxiproxy`] is the Toxiproxy-compatible control API of `simian proxy`: same routes,
//! status codes, JSON shapes, field order, headers and error texts as Toxiproxy 2.12, so every
//! existing Toxiproxy client works unchanged. Each surface turns HTTP into calls on a data
//! plane handle (here `simian_proxy::Registry`) and never touches sockets of the data plane
//! itself.

pub mod control;
pub mod http;
pub mod metrics;
pub mod toxiproxy;
