"""Conformance: the real toxiproxy-python client (PyPI) against `simian proxy`.

Started by crates/cli/tests/toxiproxy_python.rs with SIMIAN_BIN pointing at the binary.
Every endpoint the client exposes is exercised, with its error paths, plus the raw API
details its APIConsumer lets us reach (status codes, bodies, headers).
"""
import os
import socket
import subprocess
import threading
import time

import pytest
import requests
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = subprocess.Popen([os.environ["SIMIAN_BIN"], "proxy", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    APIConsumer.host = "127.0.0.1"
    APIConsumer.port = port
    yield "http://127.0.0.1:%d" % port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def echo():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return

            def handle(c):
                while True:
                    try:
                        data = c.recv(65536)
                    except OSError:
                        return
                    if not data:
                        c.close()
                        return
                    c.sendall(data)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield "127.0.0.1:%d" % srv.getsockname()[1]
    srv.close()


@pytest.fixture
def tp(server):
    t = Toxiproxy()
    t.destroy_all()
    return t


def rtt(listen, payload=b"ping"):
    host, port = listen.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=5)
    start = time.time()
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        chunk = s.recv(65536)
        assert chunk, "connection closed early"
        got += chunk
    s.close()
    assert got == payload
    return (time.time() - start) * 1000


def test_running_and_version(tp):
    assert tp.running() is True
    assert tp.version() == b'{"version": "2.12.0"}\n'


def test_create_list_get_and_destroy(tp, echo):
    p = tp.create(upstream=echo, name="create_me")
    assert p.name == "create_me" and p.upstream == echo and p.enabled is True
    assert p.listen.startswith("127.0.0.1:") and not p.listen.endswith(":0"), "the bound port is reported"
    assert rtt(p.listen) < 100
    assert set(tp.proxies()) == {"create_me"}
    got = tp.get_proxy("create_me")
    assert got.listen == p.listen
    assert tp.get_proxy("missing") is None
    assert tp.destroy(p) is True
    assert tp.proxies() == {}
    with pytest.raises(NotFound):
        p.destroy()


def test_create_with_listen_and_disabled(tp, echo):
    port = free_port()
    p = tp.create(upstream=echo, name="fixed", listen="127.0.0.1:%d" % port, enabled=False)
    assert p.enabled is False
    assert p.listen == "127.0.0.1:%d" % port, "a disabled proxy shows its listen verbatim"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    p.enable()
    assert tp.get_proxy("fixed").enabled is True
    assert rtt("127.0.0.1:%d" % port) < 100


def test_duplicate_proxy_is_a_conflict(tp, echo):
    tp.create(upstream=echo, name="dup")
    with pytest.raises(ProxyExists):
        tp.create(upstream=echo, name="dup")
    # The server says so too (the client checks first; ask the server directly).
    with pytest.raises(ProxyExists) as err:
        APIConsumer.post("/proxies", json={"name": "dup", "upstream": echo, "listen": "127.0.0.1:0"})
    assert b'"error":"proxy already exists","status":409' in err.value.args[0]


def test_every_toxic_type_round_trips(tp, echo):
    p = tp.create(upstream=echo, name="all_toxics")
    cases = {
        "latency": {"latency": 10, "jitter": 2},
        "bandwidth": {"rate": 1000},
        "slow_close": {"delay": 10},
        "timeout": {"timeout": 1000},
        "reset_peer": {"timeout": 1000},
        "slicer": {"average_size": 64, "size_variation": 8, "delay": 10},
        "limit_data": {"bytes": 100000},
        "noop": {},
    }
    for i, (kind, attributes) in enumerate(cases.items()):
        stream = "upstream" if i % 2 else "downstream"
        p.add_toxic(type=kind, stream=stream, attributes=attributes, toxicity=0.5)
    toxics = p.toxics()
    assert len(toxics) == len(cases)
    for i, (kind, attributes) in enumerate(cases.items()):
        stream = "upstream" if i % 2 else "downstream"
        t = toxics["%s_%s" % (kind, stream)]
        assert t.type == kind and t.stream == stream
        assert t.toxicity == 0.5
        assert t.attributes == attributes


def test_toxic_errors(tp, echo):
    p = tp.create(upstream=echo, name="toxic_errors")
    p.add_toxic(type="latency", attributes={"latency": 10})
    with pytest.raises(ProxyExists):
        p.add_toxic(type="latency", attributes={"latency": 20})
    with pytest.raises(InvalidToxic) as err:
        p.add_toxic(type="teleport", name="x")
    assert b"invalid toxic type" in err.value.args[0]
    with pytest.raises(InvalidToxic) as err:
        p.add_toxic(type="latency", name="y", stream="sideways")
    assert b"stream was invalid, can be either upstream or downstream" in err.value.args[0]
    with pytest.raises(InvalidToxic) as err:
        p.add_toxic(type="bandwidth", name="z", attributes={"rate": 0})
    assert b"rate" in err.value.args[0], "a rate of 0 is refused instead of stalling forever"
    with pytest.raises(InvalidToxic):
        p.add_toxic(type="slicer", name="s", attributes={"average_size": 0, "size_variation": 0})
    with pytest.raises(NotFound):
        p.destroy_toxic("nope")
    with pytest.raises(NotFound):
        APIConsumer.post("/proxies/nope/toxics", json={"type": "latency"})


def test_latency_applies_and_is_removed_live(tp, echo):
    p = tp.create(upstream=echo, name="slow")
    assert rtt(p.listen) < 100
    p.add_toxic(type="latency", attributes={"latency": 200})
    assert 190 <= rtt(p.listen) < 1000
    p.destroy_toxic("latency_downstream")
    assert rtt(p.listen) < 100


def test_update_toxic_merges_attributes(tp, echo):
    p = tp.create(upstream=echo, name="update_me")
    p.add_toxic(type="latency", name="lat", attributes={"latency": 100, "jitter": 5})
    r = APIConsumer.post("/proxies/update_me/toxics/lat", json={"attributes": {"latency": 300}})
    assert r.status_code == 200
    assert r.json() == {"attributes": {"latency": 300, "jitter": 5}, "name": "lat", "type": "latency",
                        "stream": "downstream", "toxicity": 1}
    r = requests.patch("http://%s:%s/proxies/update_me/toxics/lat" % (APIConsumer.host, APIConsumer.port),
                       json={"toxicity": 0.25})
    assert r.json()["toxicity"] == 0.25 and r.json()["attributes"]["latency"] == 300


def test_down_context_refuses_then_restores(tp, echo):
    p = tp.create(upstream=echo, name="flaky")
    host, port = p.listen.rsplit(":", 1)
    with p.down():
        with pytest.raises(OSError):
            socket.create_connection((host, int(port)), timeout=1)
    assert rtt(p.listen) < 100


def test_reset_enables_and_clears(tp, echo):
    p = tp.create(upstream=echo, name="reset_me")
    p.add_toxic(type="latency", attributes={"latency": 300})
    p.disable()
    assert tp.reset() is True
    got = tp.get_proxy("reset_me")
    assert got.enabled is True
    assert got.toxics() == {}
    assert rtt(got.listen) < 100


def test_client_populate(tp, echo):
    made = tp.populate([{"name": "pop_a", "upstream": echo, "listen": "127.0.0.1:%d" % free_port()},
                        {"name": "pop_b", "upstream": echo, "listen": "127.0.0.1:%d" % free_port()}])
    assert sorted(p.name for p in made) == ["pop_a", "pop_b"]
    assert set(tp.proxies()) == {"pop_a", "pop_b"}


def test_server_populate(tp, echo):
    listen = "127.0.0.1:%d" % free_port()
    r = APIConsumer.post("/populate", json=[{"name": "srv_pop", "upstream": echo, "listen": listen}])
    assert r.status_code == 201
    assert r.headers["Content-Type"] == "application/json"
    assert r.json()["proxies"][0]["listen"] == listen
    # Same addresses: kept, toxics and all.
    tp.get_proxy("srv_pop").add_toxic(type="noop")
    r = APIConsumer.post("/populate", json=[{"name": "srv_pop", "upstream": echo, "listen": listen}])
    assert len(r.json()["proxies"][0]["toxics"]) == 1
    with pytest.raises(InvalidToxic) as err:
        APIConsumer.post("/populate", json=[{"name": "ok", "upstream": echo}, {"name": "no_upstream"}])
    assert err.value.args[0] == b'{"error":"missing required field: upstream at proxy 2","status":400,"proxies":null}'
    assert "ok" not in tp.proxies(), "a failed validation changes nothing"
    r = APIConsumer.post("/populate", json=[])
    assert r.status_code == 201 and r.content == b'{"proxies":null}'


def test_raw_api_shapes(server, tp, echo):
    r = requests.get(server + "/proxies")
    assert r.status_code == 200 and r.content == b"{}" and r.headers["Content-Type"] == "application/json"
    assert len(r.headers["X-Toxiproxy-Request-Id"]) == 20
    r = requests.get(server + "/nope")
    assert r.status_code == 404 and r.content == b"404 page not found\n"
    r = requests.get(server + "/proxies/")
    assert r.status_code == 404
    r = requests.put(server + "/proxies")
    assert r.status_code == 405 and r.content == b"" and "Content-Type" not in r.headers
    r = requests.get(server + "/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert r.status_code == 403 and r.content == b"User agent not allowed\n"
    r = requests.post(server + "/proxies", data=b"")
    assert r.status_code == 400 and r.content == b'{"error":"bad request body: EOF","status":400}\n'
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    r = requests.post(server + "/proxies", json={"upstream": echo})
    assert r.json() == {"error": "missing required field: name", "status": 400}
    r = requests.post(server + "/proxies", json={"name": "n"})
    assert r.json() == {"error": "missing required field: upstream", "status": 400}
    r = requests.post(server + "/proxies", json={"name": 3, "upstream": echo})
    assert r.json()["error"] == "bad request body: json: cannot unmarshal number into Go struct field Proxy.name of type string"
    r = requests.post(server + "/proxies", json={"name": "shape", "upstream": echo, "listen": "127.0.0.1:0"})
    assert r.status_code == 201
    assert list(r.json().keys()) == ["name", "listen", "upstream", "enabled", "Logger", "toxics"]
    r = requests.post(server + "/proxies/shape/toxics", json={"type": "latency", "toxicity": 0.7})
    assert r.status_code == 200
    assert b'"toxicity":0.7}' in r.content
    assert r.json()["name"] == "latency_downstream"
    r = requests.get(server + "/proxies/shape/toxics/latency_downstream")
    assert r.json()["attributes"] == {"latency": 0, "jitter": 0}
    r = requests.delete(server + "/proxies/shape/toxics/latency_downstream")
    assert r.status_code == 204 and r.content == b""
    r = requests.post(server + "/proxies/shape", json={"enabled": False})
    assert r.status_code == 200 and r.json()["enabled"] is False
    # Another proxy takes the disabled proxy's port: re-enabling it is a bind error.
    shape_listen = tp.get_proxy("shape").listen
    r = requests.post(server + "/proxies", json={"name": "clash", "upstream": echo, "listen": shape_listen})
    assert r.status_code == 201
    r = requests.post(server + "/proxies/shape", json={"enabled": True})
    assert r.status_code == 500
    assert r.json()["error"] == "listen tcp %s: bind: address already in use" % shape_listen
    r = requests.post(server + "/reset")
    assert r.status_code == 500, "reset stops at the first bind error"
    assert requests.delete(server + "/proxies/clash").status_code == 204
    r = requests.post(server + "/proxies", json={"name": "bad_listen", "upstream": echo, "listen": "nonsense"})
    assert r.status_code == 500 and r.json()["error"] == "listen tcp: address nonsense: missing port in address"
    r = requests.post(server + "/reset")
    assert r.status_code == 204 and r.content == b""


def test_a_pooled_connection_survives_refusals_or_is_told_it_closes(server):
    """A refusal still reads the request to its end, so a pooled connection carries the next
    request; a body too large to read is answered with `Connection: close`, so the pool
    drops that connection instead of sending the next request into it."""
    with requests.Session() as s:
        r = s.post(server + "/proxies", data=b"{}", headers={"User-Agent": "Mozilla/5.0"})
        assert r.status_code == 403 and r.content == b"User agent not allowed\n"
        assert "close" not in r.headers.get("Connection", "")
        r = s.get(server + "/version")
        assert r.status_code == 200
        pools = s.get_adapter(server).poolmanager.pools
        opened = sum(pools[key].num_connections for key in pools.keys())
        assert opened == 1, "the refused request's connection was reused"
        r = s.post(server + "/proxies", data=b" " * (8 * 1024 * 1024 + 1))
        assert r.status_code == 400
        assert r.json()["error"] == "bad request body: request body too large"
        assert r.headers["Connection"] == "close"
        r = s.get(server + "/version")
        assert r.status_code == 200
