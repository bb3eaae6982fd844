//! Runs the conformance suite of the real `toxiproxy-python` client (from PyPI) against the
//! `simian proxy` server: `tests/python/test_toxiproxy_python.py`. Ignored by a plain
//! `cargo test` (it needs Python packages); `scripts/test.sh` installs them and runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
#[ignore = "needs python3 with toxiproxy-python, pytest and requests: scripts/test.sh installs them (then pass --include-ignored)"]
fn toxiproxy_python_client_conformance() {
    simian_testkit::require_python_modules(
        &["toxiproxy", "pytest", "requests"],
        "pip install toxiproxy-python pytest requests future",
    );
    let suite = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/test_toxiproxy_python.py"
    );
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", suite])
        .env("SIMIAN_BIN", env!("CARGO_BIN_EXE_simian"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Only pytest itself: a plugin some other package installed (kmock's, for one,
        // which needs pytest-asyncio) must not decide whether this suite can load.
        .env("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
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
