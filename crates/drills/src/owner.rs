//! Who runs a drill: `BOOT_ID/PID@START`, so that another simian on the same machine can tell
//! whether that process still lives (the same pid with the same start time, since the same
//! boot). On another machine nothing can be told, and a drill is taken for abandoned only
//! [`ABANDONED_AFTER`](crate::ABANDONED_AFTER) past its deadline.

use std::fs;

/// This machine's boot id, or empty when unknown.
fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The start time of `pid` in clock ticks since boot, if it runs (a zombie does not).
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// This process, as a drill's owner.
pub fn this_process() -> String {
    let pid = std::process::id();
    format!(
        "{}/{pid}@{}",
        boot_id(),
        start_ticks(pid).unwrap_or_default()
    )
}

/// True only when `owner` names a process of this machine's current boot that no longer runs.
pub fn is_gone(owner: &str) -> bool {
    let Some((boot, process)) = owner.split_once('/') else {
        return false;
    };
    let Some((pid, start)) = process.split_once('@') else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    if boot.is_empty() || boot != boot_id() {
        return false;
    }
    start_ticks(pid) != Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_lives_and_a_dead_child_is_gone() {
        assert!(!is_gone(&this_process()));
        let mut child = std::process::Command::new("true")
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let pid = child.id();
        let start = start_ticks(pid);
        let _ = child.wait();
        let owner = format!("{}/{pid}@{}", boot_id(), start.unwrap_or(1));
        assert!(is_gone(&owner));
        // Another machine, or an unreadable owner: nothing can be told.
        assert!(!is_gone(&format!("another-boot/{pid}@1")));
        assert!(!is_gone("garbage"));
    }
}
