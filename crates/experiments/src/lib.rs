//! Experiments: Chaos Toolkit files, run natively.
//!
//! An experiment asks a question ("if this happens, does the service stay within its steady
//! state?") in the open Chaos Toolkit format: a steady-state hypothesis of probes with
//! tolerances, a method of actions and probes, rollbacks. This crate runs those files with
//! the reference runner's semantics (chaostoolkit 1.19 with chaostoolkit-lib 1.44) for
//! everything that is not Python, and adds what Simian's users ask for:
//!
//! * [`load`] reads JSON or YAML, with errors at a line and column;
//! * [`validate`] gives the reference's verdict on a file, with its messages;
//! * [`run`] plays it and writes the same journal, with the same statuses and exit code;
//! * [`stop`] watches stop conditions during the method and ends the run when one trips;
//! * [`report`] turns a journal into one self-contained HTML page.
//!
//! The pieces the reference decides with Python's rules ([`pyish`], [`substitute`],
//! [`tolerance`]) are pure and tested on their own; I/O lives in [`provider`].

pub mod config;
pub mod faults;
pub mod interrupt;
pub mod load;
pub mod provider;
pub mod pyish;
pub mod report;
pub mod run;
pub mod stop;
pub mod substitute;
pub mod tolerance;
pub mod validate;

pub use faults::Faults;
pub use interrupt::{Interrupt, Stopped};
pub use load::{LoadError, Vars};
pub use provider::simian::{HowMany, Kills};
pub use run::{
    Dry, HypothesisStrategy, Observer, Options, Quiet, RollbackStrategy, exit_code, needs_simian,
};
pub use validate::Invalid;
