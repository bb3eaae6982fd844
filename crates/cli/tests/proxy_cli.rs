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
        // One data-plane thread and no busy polling: the smallest setting must work as well
        // as the defaults the other tests use.
        s.command(&[
            "proxy",
            "--host",
            "127.0.0.1",
            "--port",
            &api.to_string(),
            "--workers",
            "1",
            "--busy-poll-us",
            "0",
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
