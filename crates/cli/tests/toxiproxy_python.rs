//! Runs the conformance suite of the real `toxiproxy-python` client (from PyPI) against the
//! `simian proxy` server: `tests/python/test_toxiproxy_python.py`. `.ci/run` installs the
//! client and pytest; elsewhere the test is skipped, saying why.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn toxiproxy_python_client_conformance() {
    let probe = Command::new("python3")
        .args(["-c", "import toxiproxy, pytest, requests"])
        .output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the toxiproxy-python conformance suite: pip install toxiproxy-python pytest"
        );
        eprintln!(
            "skipping: python3 with toxiproxy-python, pytest and requests is not installed (pip install toxiproxy-python pytest)"
        );
        return;
    }
    let suite = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/test_toxiproxy_python.py"
    );
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", suite])
        .env("SIMIAN_BIN", env!("CARGO_BIN_EXE_simian"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "the toxiproxy-python suite failed:\n{text}"
    );
}
