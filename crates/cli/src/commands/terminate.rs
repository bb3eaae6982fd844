//! `simian terminate`: one kill now, through every check. Exit 3 when a check refuses.

use std::sync::Arc;

use simian_core::{Check, SystemClock, TerminationState};
use simian_monkey::{Decision, KillRequest};

use crate::args::{Global, TerminateArgs};
use crate::output::safe;
use crate::wire;

pub fn run(g: &Global, a: TerminateArgs) -> anyhow::Result<u8> {
    let settings = super::settings(g)?;
    let engine = wire::engine(&settings, Arc::new(SystemClock))?;
    let mut request = KillRequest::manual(super::eligible::target(&a.target));
    request.dry_run = match (a.dry_run, a.no_dry_run) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    let decision = engine.terminate(&request)?;
    let code = match &decision {
        Decision::Terminated(t) if t.state == TerminationState::Failed => super::FAILURE,
        Decision::Terminated(_) | Decision::AlreadyHandled => super::OK,
        Decision::Refused(r) if r.check == Check::Inventory => super::FAILURE,
        Decision::Refused(_) => super::REFUSED,
    };
    if g.json {
        let value = match &decision {
            Decision::Terminated(t) => {
                serde_json::json!({"decision": "terminated", "termination": t})
            }
            Decision::Refused(r) => serde_json::json!({"decision": "refused", "refusal": r}),
            Decision::AlreadyHandled => serde_json::json!({"decision": "already_handled"}),
        };
        super::print_json(&value)?;
        return Ok(code);
    }
    match decision {
        Decision::Terminated(t) => {
            let what = if t.dry_run {
                "dry run: would terminate"
            } else {
                "terminated"
            };
            outln!(
                "{what} {} ({} in {}/{}, cluster {})",
                safe(&t.instance_id),
                safe(&t.app),
                safe(&t.account),
                safe(&t.region),
                safe(&t.cluster)
            )?;
            outln!("termination #{}: {} - {}", t.id, t.state, safe(&t.detail))?;
        }
        Decision::Refused(r) => {
            eprintln!("refused by {}: {}", r.check, safe(&r.reason));
        }
        Decision::AlreadyHandled => outln!("already handled")?,
    }
    Ok(code)
}
