//! A synchronous face over an asynchronous API client.
//!
//! The [`Provider`](simian_core::Provider) seam is synchronous (the engine and the daemon
//! run kills on threads), while the clients of the Docker Engine and Kubernetes APIs are
//! async. Each such provider owns one [`BlockingApi`]: a one-worker tokio runtime it blocks
//! on, a count of the requests it sent (for benchmarks and tests that hold a provider to one
//! request per page), and a connection made on first use, not at construction (so a
//! configuration can be checked offline), and forgotten after a failure, so that the next
//! call connects again instead of reusing a broken client.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A runtime, a request counter and a lazily made, cached connection of type `C`.
pub(crate) struct BlockingApi<C> {
    runtime: tokio::runtime::Runtime,
    connection: Mutex<Option<C>>,
    calls: AtomicU64,
}

impl<C: Clone> BlockingApi<C> {
    /// A client whose runtime thread is called `thread`; `api` names the API in the error.
    pub(crate) fn new(thread: &str, api: &str) -> Result<BlockingApi<C>, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(thread)
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the {api} client's runtime: {e}"))?;
        Ok(BlockingApi {
            runtime,
            connection: Mutex::new(None),
            calls: AtomicU64::new(0),
        })
    }

    /// Sends one request and waits for its answer, counting it.
    pub(crate) fn call<T>(&self, request: impl Future<Output = T>) -> T {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.runtime.block_on(request)
    }

    /// Runs work that sends no request of its own (reading a kubeconfig, building a client).
    pub(crate) fn run<T>(&self, work: impl Future<Output = T>) -> T {
        self.runtime.block_on(work)
    }

    /// How many requests [`call`](Self::call) has sent.
    pub(crate) fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The cached connection, or a new one from `connect`, cached when it succeeds.
    pub(crate) fn connection(
        &self,
        connect: impl FnOnce(&Self) -> Result<C, String>,
    ) -> Result<C, String> {
        let mut cached = self.connection.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cached.as_ref() {
            return Ok(c.clone());
        }
        let connection = connect(self)?;
        *cached = Some(connection.clone());
        Ok(connection)
    }

    /// Drops the cached connection after a failure: the next call connects again.
    pub(crate) fn forget(&self) {
        *self.connection.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
