//! Headless Chromium (Debian's `chromium`), driven over the DevTools protocol on loopback:
//! open a page at a given viewport, evaluate JavaScript in it for DOM checks, and take a
//! screenshot. Tests of the pages Simian serves use it; they are ignored without Chromium
//! (`scripts/test.sh` installs it).

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// The reason a browser test is ignored by a plain `cargo test`.
pub const NEEDS_CHROMIUM: &str = "needs Debian's chromium: scripts/test.sh installs it (or install it and pass --include-ignored)";

/// How long a page may take to load.
const LOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// Chromium's executable, if one is installed.
pub fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// A headless Chromium of the test's own, killed when dropped.
pub struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts Chromium with a fresh profile, its DevTools endpoint on a loopback port it
    /// chooses; fails (saying so) when Chromium is not installed.
    pub fn start() -> Result<Browser, String> {
        let exe = chromium().ok_or_else(|| NEEDS_CHROMIUM.to_string())?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start chromium: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Chromium says where DevTools listens on stderr; the rest is drained.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = tx.send(port);
                }
            }
        });
        let port = rx
            .recv_timeout(LOAD_TIMEOUT)
            .map_err(|_| "chromium did not say where DevTools listens".to_string())?
            .parse()
            .map_err(|e| format!("DevTools port: {e}"))?;
        Ok(Browser {
            child,
            port,
            _profile: profile,
        })
    }

    /// A new tab, at `width` × `height` CSS pixels (`mobile` for a phone's viewport).
    pub fn tab(&self, width: u32, height: u32, mobile: bool) -> Result<Tab, String> {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(LOAD_TIMEOUT))
            .build()
            .new_agent();
        let target: Value = agent
            .put(&format!(
                "http://127.0.0.1:{}/json/new?about:blank",
                self.port
            ))
            .send_empty()
            .map_err(|e| format!("DevTools /json/new: {e}"))?
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("DevTools /json/new: {e}"))
            .and_then(|text| serde_json::from_str(&text).map_err(|e| e.to_string()))?;
        let url = target["webSocketDebuggerUrl"]
            .as_str()
            .ok_or("DevTools gave no webSocketDebuggerUrl")?;
        let (ws, _) = tungstenite::connect(url).map_err(|e| format!("DevTools socket: {e}"))?;
        let mut tab = Tab { ws, next_id: 0 };
        tab.call("Page.enable", json!({}))?;
        tab.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile }),
        )?;
        Ok(tab)
    }
}

/// One page of the browser.
pub struct Tab {
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Tab {
    /// Calls a DevTools method and waits for its answer.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(Message::text(request.to_string()))
            .map_err(|e| format!("{method}: {e}"))?;
        loop {
            let message = self.ws.read().map_err(|e| format!("{method}: {e}"))?;
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            if answer["id"] != id {
                continue; // an event
            }
            if !answer["error"].is_null() {
                return Err(format!("{method}: {}", answer["error"]));
            }
            return Ok(answer["result"].clone());
        }
    }

    /// Turns the page's own scripts off (or on again), to check a page without JavaScript.
    pub fn scripts(&mut self, enabled: bool) -> Result<(), String> {
        self.call(
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": !enabled }),
        )
        .map(|_| ())
    }

    /// Opens `url` and waits until it has loaded.
    pub fn open(&mut self, url: &str) -> Result<(), String> {
        self.call("Page.navigate", json!({ "url": url }))?;
        self.wait_loaded()
    }

    /// Waits until the current page (after a navigation, a form sent, a link followed) has
    /// loaded.
    pub fn wait_loaded(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + LOAD_TIMEOUT;
        // A navigation started by a click replaces the document a moment later.
        std::thread::sleep(Duration::from_millis(150));
        while self.eval("document.readyState")? != "complete" {
            if Instant::now() > deadline {
                return Err("the page did not load".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The value of a JavaScript expression evaluated in the page.
    pub fn eval(&mut self, expression: &str) -> Result<Value, String> {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
        )?;
        if let Some(details) = result.get("exceptionDetails") {
            return Err(format!("{expression}: {details}"));
        }
        Ok(result["result"]["value"].clone())
    }

    /// A PNG of the whole page (beyond the viewport) written to `path`; returns its width and
    /// height in pixels.
    pub fn screenshot(&mut self, path: &Path) -> Result<(u32, u32), String> {
        let shot = self.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        )?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().ok_or("no screenshot data")?)
            .map_err(|e| e.to_string())?;
        if png.len() < 24 || &png[..8] != b"\x89PNG\r\n\x1a\n" {
            return Err("the screenshot is not a PNG".into());
        }
        let size = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(path, &png).map_err(|e| e.to_string())?;
        Ok((size(16), size(20)))
    }
}
