//! What the benchmarks read and report: this process's memory, and medians with ranges.

/// A memory figure of this process from `/proc/self/status`, in kB: `"VmRSS:"` (resident
/// now) or `"VmHWM:"` (the peak). 0 where it cannot be read.
pub fn own_memory_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The median, the smallest and the largest of `samples` (not empty).
pub fn median_and_range(mut samples: Vec<f64>) -> (f64, f64, f64) {
    samples.sort_by(f64::total_cmp);
    (
        samples[samples.len() / 2],
        samples[0],
        samples[samples.len() - 1],
    )
}
