//! Simian's HTTP surfaces.
//!
//! [`toxiproxy`] is the Toxiproxy-compatible control API of `simian proxy`: same routes,
//! status codes, JSON shapes, field order, headers and error texts as Toxiproxy 2.12, so every
//! existing Toxiproxy client works unchanged. Each surface turns HTTP into calls on a data
//! plane handle (here `simian_proxy::Registry`) and never touches sockets of the data plane
//! itself.

pub mod toxiproxy;
