//! `simian proxy` as people and scripts use it: the client subcommands, the binary started as
//! `toxiproxy-server` with that server's flags, and live byte counters on `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use util::{Sandbox, free_port};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "server did not start on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn echo_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = c.read(&mut buf) {
                    if n == 0 || c.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn the_client_subcommands_drive_a_server() {
    let s = Sandbox::new();
    let api = free_port();
    let _server = Server(
        // Two data-plane threads (the multi-threaded runtime) and busy polling: the settings
        // other than the defaults (one thread, no polling) that the other tests use.
        s.command(&[
            "proxy",
            "--host",
            "127.0.0.1",
            "--port",
            &api.to_string(),
            "--workers",
            "2",
            "--busy-poll-us",
            "50",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    wait_for(api);
    let echo = echo_server();
    let host = format!("http://127.0.0.1:{api}");
    let cli = |args: &[&str]| s.run(&[&["proxy"], args, &["--host", host.as_str()]].concat());

    let listen_port = free_port();
    let out = cli(&[
        "create",
        "echo",
        "--listen",
        &format!("127.0.0.1:{listen_port}"),
        "--upstream",
        &format!("127.0.0.1:{echo}"),
    ]);
    out.expect(0);
    assert_eq!(out.stdout().trim(), "Created new proxy echo");
    let list = cli(&["list"]);
    list.expect(0);
    assert!(
        list.stdout().contains("echo") && list.stdout().contains("enabled"),
        "{}",
        list.stdout()
    );

    let add = cli(&[
        "toxic",
        "add",
        "echo",
        "-t",
        "latency",
        "-a",
        "latency=150",
        "-a",
        "jitter=0",
    ]);
    add.expect(0);
    assert_eq!(
        add.stdout().trim(),
        "Added downstream latency toxic 'latency_downstream' on proxy 'echo'"
    );
    let mut c = TcpStream::connect(("127.0.0.1", listen_port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    c.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(140),
        "{:?}",
        started.elapsed()
    );

    cli(&[
        "toxic",
        "update",
        "echo",
        "-n",
        "latency_downstream",
        "-a",
        "latency=5",
        "--toxicity",
        "0.5",
    ])
    .expect(0);
    let inspect = cli(&["inspect", "echo"]);
    inspect.expect(0);
    assert!(
        inspect.stdout().contains("latency=5") && inspect.stdout().contains("0.50"),
        "{}",
        inspect.stdout()
    );
    let json = cli(&["inspect", "echo", "--json"]).json();
    assert_eq!(json["toxics"][0]["toxicity"], 0.5);

    assert_eq!(
        cli(&["toggle", "echo"]).stdout().trim(),
        "Proxy echo is now disabled"
    );
    assert!(TcpStream::connect(("127.0.0.1", listen_port)).is_err());
    assert_eq!(
        cli(&["toggle", "echo"]).stdout().trim(),
        "Proxy echo is now enabled"
    );
    assert_eq!(
        cli(&["toxic", "remove", "echo", "-n", "latency_downstream"])
            .stdout()
            .trim(),
        "Removed toxic 'latency_downstream' on proxy 'echo'"
    );

    let missing = cli(&["toxic", "remove", "echo", "-n", "latency_downstream"]);
    missing.expect(1);
    assert!(
        missing.stderr().contains("HTTP 404: toxic not found"),
        "{}",
        missing.stderr()
    );
    let bad = cli(&["toxic", "add", "echo", "-t", "latency", "-a", "latency"]);
    bad.expect(2);
    assert_eq!(
        cli(&["delete", "echo"]).stdout().trim(),
        "Deleted proxy echo"
    );
    let gone = cli(&["inspect", "echo"]);
    gone.expect(1);
    assert!(
        gone.stderr().contains("proxy not found"),
        "{}",
        gone.stderr()
    );

    // TOXIPROXY_URL works as --host does; nothing listening is a clear error.
    let env = s
        .command(&["proxy", "list"])
        .env("TOXIPROXY_URL", &host)
        .output()
        .unwrap();
    assert!(env.status.success());
    let dead = s.run(&[
        "proxy",
        "list",
        "--host",
        &format!("http://127.0.0.1:{}", free_port()),
    ]);
    dead.expect(1);
    assert!(
        dead.stderr().contains("is `simian proxy` running"),
        "{}",
        dead.stderr()
    );
}

#[test]
fn started_as_toxiproxy_server_it_takes_that_servers_flags() {
    let s = Sandbox::new();
    let link = s.path().join("toxiproxy-server");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_simian"), &link).unwrap();
    let version = Command::new(&link).arg("-version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        "toxiproxy-server version 2.12.0"
    );
    let unknown = Command::new(&link).arg("-bogus").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));

    let echo = echo_server();
    let listen = free_port();
    s.write("proxies.json", &format!(r#"[{{"name": "from_config", "listen": "127.0.0.1:{listen}", "upstream": "127.0.0.1:{echo}"}}]"#));
    let api = free_port();
    let _server = Server(
        Command::new(&link)
            .args([
                "-host",
                "127.0.0.1",
                &format!("-port={api}"),
                "-config",
                "proxies.json",
                "-seed",
                "7",
                "-proxy-metrics",
            ])
            .current_dir(s.path())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(api);
    let proxies = http_get(api, "/proxies");
    assert!(proxies.contains("\"from_config\""), "{proxies}");

    // Byte counters are live: read them while the connection is still open.
    let mut c = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(&[9u8; 1000]).unwrap();
    let mut buf = vec![0u8; 1000];
    c.read_exact(&mut buf).unwrap();
    let line = format!(
        "toxiproxy_proxy_sent_bytes_total{{direction=\"downstream\",listener=\"127.0.0.1:{listen}\",proxy=\"from_config\",upstream=\"127.0.0.1:{echo}\"}} 1000"
    );
    // A byte is counted as sent once its write returns, a moment after the client may see it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut metrics = http_get(api, "/metrics");
    while !metrics.contains(&line) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        metrics = http_get(api, "/metrics");
    }
    assert!(metrics.contains(&line), "{metrics}");
    assert!(
        metrics.contains("toxiproxy_proxy_received_bytes_total{direction=\"upstream\""),
        "{metrics}"
    );
    drop(c);
}

#[test]
fn out_of_range_tuning_flags_exit_2_and_say_the_range() {
    let s = Sandbox::new();
    for (flag, value, range) in [
        ("--workers", "0", "1..=1024"),
        ("--busy-poll-us", "100001", "0..=100000"),
        ("--busy-poll-us", "-5", ""),
        (
            "--loopback-congestion",
            "no-such-algorithm",
            "the kernel has no such algorithm",
        ),
    ] {
        let out = s.run(&["proxy", &format!("{flag}={value}")]);
        assert_eq!(out.code(), 2, "{flag} {value}: {}", out.stderr());
        assert!(
            out.stderr().contains(flag) && out.stderr().contains(range),
            "{flag} {value}: {}",
            out.stderr()
        );
    }
}

/// Sends `method path` with a JSON `body`; the status line and body of the answer.
fn http(port: u16, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Creates proxy `name` on 127.0.0.1:`listen` to 127.0.0.1:`upstream` through the API.
fn create_proxy(api: u16, name: &str, listen: u16, upstream: u16) {
    let (code, body) = http(
        api,
        "POST",
        "/proxies",
        &format!(
            r#"{{"name": "{name}", "listen": "127.0.0.1:{listen}", "upstream": "127.0.0.1:{upstream}"}}"#
        ),
    );
    assert_eq!(code, 201, "{body}");
}

fn server(s: &Sandbox, extra: &[&str]) -> (Server, u16) {
    let api = free_port();
    let port = api.to_string();
    let args = [
        &["proxy", "--host", "127.0.0.1", "--port", &port][..],
        extra,
    ]
    .concat();
    let server = Server(s.command(&args).stderr(Stdio::null()).spawn().unwrap());
    wait_for(api);
    (server, api)
}

/// Issue 18, items 2 and 5: a toxicity beyond float32 and a name with '/' are refused with
/// 400, and every listing stays JSON.
#[test]
fn unrepresentable_toxicity_and_unaddressable_names_are_refused() {
    let s = Sandbox::new();
    let (_server, api) = server(&s, &[]);
    let upstream = echo_server();
    let listen = free_port();
    create_proxy(api, "p", listen, upstream);
    let (code, body) = http(
        api,
        "POST",
        "/proxies/p/toxics",
        r#"{"type": "latency", "toxicity": 1e39, "attributes": {"latency": 10}}"#,
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("of type float32"), "{body}");
    let (code, body) = http(
        api,
        "POST",
        "/proxies/p/toxics",
        r#"{"type": "latency", "toxicity": 2.5}"#,
    );
    assert_eq!(
        code, 200,
        "outside [0, 1] is accepted, as Toxiproxy does: {body}"
    );
    let (_, listing) = http(api, "GET", "/proxies", "");
    let parsed: serde_json::Value = serde_json::from_str(&listing).expect("the listing is JSON");
    assert_eq!(parsed["p"]["toxics"][0]["toxicity"], 2.5);

    for body in [
        r#"{"name": "a/b", "upstream": "127.0.0.1:1"}"#.to_string(),
        r#"[{"name": "a/b", "upstream": "127.0.0.1:1"}]"#.to_string(),
    ] {
        let path = if body.starts_with('[') {
            "/populate"
        } else {
            "/proxies"
        };
        let (code, answer) = http(api, "POST", path, &body);
        assert_eq!(code, 400, "{path}: {answer}");
        assert!(answer.contains("cannot contain '/'"), "{answer}");
    }
    let (_, listing) = http(api, "GET", "/proxies", "");
    let parsed: serde_json::Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(
        parsed.as_object().unwrap().len(),
        1,
        "nothing half-applied: {listing}"
    );
}

/// Issue 18, item 3: `--config FILE` goes through the checks of `POST /populate`; a bad file
/// refuses to start, naming the file, the proxy and the reason.
#[test]
fn a_bad_proxy_config_file_refuses_to_start() {
    let s = Sandbox::new();
    let upstream = echo_server();
    for (text, says) in [
        (r#"[{"listen": "127.0.0.1:0", "upstream": "127.0.0.1:1"}]"#.to_string(), "missing required field: name at proxy 1"),
        (
            r#"[{"name": "ok", "upstream": "127.0.0.1:1"}, {"name": "x", "listen": "127.0.0.1:0", "upstream": ""}]"#.to_string(),
            "missing required field: upstream at proxy 2",
        ),
        (r#"[{"name": "a/b", "upstream": "127.0.0.1:1"}]"#.to_string(), "cannot contain '/'"),
        (r#"{"name": "p"}"#.to_string(), "[]proxy.Proxy"),
        ("[{".to_string(), "bad request body"),
    ] {
        s.write("proxies.json", &text);
        let out = s.run(&["proxy", "--host", "127.0.0.1", "--port", &free_port().to_string(), "--config", "proxies.json"]);
        out.expect(2);
        let err = out.stderr();
        assert!(err.contains("proxies.json") && err.contains(says), "{text}: {err}");
    }
    // A missing file too.
    let out = s.run(&[
        "proxy",
        "--port",
        &free_port().to_string(),
        "--config",
        "nope.json",
    ]);
    out.expect(2);
    assert!(out.stderr().contains("nope.json"), "{}", out.stderr());
    // A good file starts, with its proxies.
    let listen = free_port();
    s.write(
        "proxies.json",
        &format!(r#"[{{"name": "web", "listen": "127.0.0.1:{listen}", "upstream": "127.0.0.1:{upstream}"}}]"#),
    );
    let (_server, api) = server(&s, &["--config", "proxies.json"]);
    let (_, listing) = http(api, "GET", "/proxies", "");
    assert!(listing.contains("\"web\""), "{listing}");
}

/// Issue 18, item 6: deleting and disabling proxies logs no warning; a warning must mean that
/// something is wrong.
#[test]
fn deleting_and_disabling_proxies_warns_about_nothing() {
    let s = Sandbox::new();
    let api = free_port();
    let port = api.to_string();
    let child = s
        .command(&["proxy", "--host", "127.0.0.1", "--port", &port])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(api);
    let upstream = echo_server();
    for n in 0..40 {
        let name = format!("p{n}");
        create_proxy(api, &name, 0, upstream);
        if n % 2 == 0 {
            let (code, _) = http(
                api,
                "POST",
                &format!("/proxies/{name}"),
                r#"{"enabled": false}"#,
            );
            assert_eq!(code, 200);
        }
        let (code, _) = http(api, "DELETE", &format!("/proxies/{name}"), "");
        assert_eq!(code, 204);
    }
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        !log.contains("WARN") && !log.contains("accept failed"),
        "{log}"
    );
}

/// Issue 18, item 8: an answer the client cannot read is an error that shows what came
/// back, exit 1, never an empty table.
#[test]
fn the_client_says_when_an_answer_is_not_toxiproxy_json() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let body = "<html>not toxiproxy</html>";
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let s = Sandbox::new();
    let host = format!("http://127.0.0.1:{port}");
    for args in [
        &["proxy", "--host", &host, "list"][..],
        &["proxy", "--host", &host, "inspect", "web"][..],
        &["proxy", "--host", &host, "list", "--json"][..],
    ] {
        let out = s.run(args);
        out.expect(1);
        assert!(out.stdout().is_empty(), "{args:?}: {}", out.stdout());
        assert!(
            out.stderr().contains("not toxiproxy"),
            "{args:?}: {}",
            out.stderr()
        );
    }
}

/// Issue 18, item 9: a refused change leaves the proxy exactly as it was, still listening
/// where it did; `/reset` resets every proxy it can and names the rest.
#[test]
fn a_refused_change_changes_nothing_and_reset_does_what_it_can() {
    let s = Sandbox::new();
    let (_server, api) = server(&s, &[]);
    let upstream = echo_server();
    let (a_port, b_port) = (free_port(), free_port());
    for (name, port) in [("a", a_port), ("b", b_port)] {
        create_proxy(api, name, port, upstream);
    }
    // Move a onto a port someone holds: refused, and a still listens where it did.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let (code, body) = http(
        api,
        "POST",
        "/proxies/a",
        &format!(r#"{{"listen": "127.0.0.1:{taken_port}"}}"#),
    );
    assert_eq!(code, 500, "{body}");
    let (_, a) = http(api, "GET", "/proxies/a", "");
    let a: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert_eq!(a["listen"], format!("127.0.0.1:{a_port}"));
    assert_eq!(a["enabled"], true);
    let mut c = TcpStream::connect(("127.0.0.1", a_port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping", "a still proxies");
    // A new upstream alone restarts a on the very same socket.
    let other = echo_server();
    let (code, body) = http(
        api,
        "POST",
        "/proxies/a",
        &format!(r#"{{"upstream": "127.0.0.1:{other}"}}"#),
    );
    assert_eq!(code, 200, "{body}");
    let moved: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(moved["listen"], format!("127.0.0.1:{a_port}"));
    assert_eq!(moved["upstream"], format!("127.0.0.1:{other}"));
    let mut c = TcpStream::connect(("127.0.0.1", a_port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"pong").unwrap();
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"pong", "a proxies to its new upstream");

    // Disable b, take its port, add a toxic to a: reset clears the toxic, cannot enable b,
    // and says so.
    let (code, _) = http(api, "POST", "/proxies/b", r#"{"enabled": false}"#);
    assert_eq!(code, 200);
    let _holder = TcpListener::bind(("127.0.0.1", b_port)).unwrap();
    let (code, _) = http(
        api,
        "POST",
        "/proxies/a/toxics",
        r#"{"type": "latency", "attributes": {"latency": 5}}"#,
    );
    assert_eq!(code, 200);
    let (code, body) = http(api, "POST", "/reset", "");
    assert_eq!(code, 500, "{body}");
    assert!(body.contains("b ("), "{body}");
    let (_, a) = http(api, "GET", "/proxies/a", "");
    let a: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert_eq!(a["toxics"].as_array().unwrap().len(), 0, "a was reset: {a}");
    assert_eq!(a["enabled"], true);
}

/// Issue 18, item 7: 300 clients that trickle their headers a byte a second neither starve
/// the API nor the proxies: `/version` answers, a proxy proxies, and the slow connections are
/// closed once the header timeout (10 s) passes. Bounded: the trickle stops after 16 s.
#[test]
fn slow_api_clients_are_cut_off_and_starve_no_one() {
    let s = Sandbox::new();
    let (_server, api) = server(&s, &[]);
    let upstream = echo_server();
    let listen = free_port();
    create_proxy(api, "p", listen, upstream);
    let began = Instant::now();
    let slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut c = TcpStream::connect(("127.0.0.1", api)).unwrap();
            c.write_all(b"G").unwrap();
            c
        })
        .collect();
    let trickle = std::thread::spawn(move || {
        let mut slow = slow;
        let mut closed = 0;
        while began.elapsed() < Duration::from_secs(16) && closed < slow.len() {
            closed = 0;
            for c in &mut slow {
                if c.write_all(b"E").is_err() {
                    closed += 1;
                }
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        (closed, began.elapsed())
    });
    // A well-behaved client is answered (at worst once the timeout frees the slow ones' slots).
    let (code, body) = http(api, "GET", "/version", "");
    assert_eq!(code, 200, "{body}");
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );
    // The proxy proxies meanwhile.
    let mut c = TcpStream::connect(("127.0.0.1", listen)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    c.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    let (closed, when) = trickle.join().unwrap();
    assert_eq!(closed, 300, "every slow client was cut off (by {when:?})");
}
