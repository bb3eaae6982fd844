#!/usr/bin/env python3
"""Experiment runner speed: Simian's `simian run` against the reference `chaos run`.

Usage: benches/experiments.py [RUNS] [PROBES]       (defaults: 3 runs, 200 probes)

Generates two experiments of PROBES probes in the method, one of http probes (GET /version of
a `simian proxy` API on 127.0.0.1, a fast local server that both runners hit) and one of
process probes (`true`), and runs each with both runners RUNS times, alternating. For every run
it reports:
  * start-up to the first probe: from just before the runner is started to the `start` of the
    first probe in its journal (loading, validation, configuration, interpreter start-up);
  * per activity: from the first probe's start to the last probe's end, divided by PROBES
    (the provider call plus everything the runner does around it: records, pauses checks,
    journal bookkeeping);
  * wall: the whole command.
Prints every run, then medians with ranges. Needs the release binary (SIMIAN_BIN, default
target/release/simian) and the reference runner (CHAOS, default `chaos` in PATH:
pip install chaostoolkit==1.19.0 chaostoolkit-lib==1.44.0).
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
PROBES = int(sys.argv[2]) if len(sys.argv) > 2 else 200
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIMIAN = os.environ.get("SIMIAN_BIN", os.path.join(ROOT, "target", "release", "simian"))
CHAOS = os.environ.get("CHAOS") or shutil.which("chaos")
if not os.path.exists(SIMIAN):
    sys.exit(f"no simian binary at {SIMIAN}: cargo build --release (or set SIMIAN_BIN)")
if not CHAOS:
    sys.exit("no `chaos` in PATH: pip install chaostoolkit==1.19.0 chaostoolkit-lib==1.44.0 (or set CHAOS)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def experiment(kind, api):
    if kind == "http":
        provider = {"type": "http", "url": f"{api}/version", "timeout": 5}
    else:
        provider = {"type": "process", "path": "true"}
    return {
        "title": f"{PROBES} {kind} probes",
        "description": "runner overhead benchmark",
        "method": [{"type": "probe", "name": f"p{i}", "provider": provider} for i in range(PROBES)],
    }


def stamp(s):
    return datetime.fromisoformat(s).timestamp()


def one(runner, path, work):
    journal = os.path.join(work, f"{runner}-journal.json")
    if runner == "simian":
        cmd = [SIMIAN, "run", path, "--journal-path", journal]
    else:
        cmd = [CHAOS, "--no-version-check", "--settings", os.path.join(work, "none.yaml"),
               "--log-file", os.path.join(work, "chaos.log"), "run", "--journal-path", journal, path]
    began = time.time()
    subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.time() - began
    runs = json.load(open(journal))["run"]
    assert len(runs) == PROBES and all(r["status"] == "succeeded" for r in runs), runner
    first = stamp(runs[0]["start"])
    last = stamp(runs[-1]["end"])
    return {"startup": first - began, "per": (last - first) / PROBES, "wall": wall}


def main():
    work = tempfile.mkdtemp(prefix="simian-bench-exp-")
    port = free_port()
    server = subprocess.Popen([SIMIAN, "proxy", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{api}/version", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)
        results = {}
        for kind in ("http", "process"):
            path = os.path.join(work, f"{kind}.json")
            with open(path, "w") as f:
                json.dump(experiment(kind, api), f)
            for run in range(RUNS):
                for runner in ("simian", "chaos"):
                    r = one(runner, path, work)
                    results.setdefault((kind, runner), []).append(r)
                    print(f"{kind:8} {runner:7} run {run + 1}: start-up {r['startup'] * 1000:8.1f} ms, "
                          f"per activity {r['per'] * 1000:7.3f} ms, wall {r['wall']:.2f} s", flush=True)
        print()
        print(f"medians of {RUNS} (ranges), {PROBES} probes")
        for (kind, runner), rs in results.items():
            def fmt(key, scale, digits):
                v = sorted(x[key] * scale for x in rs)
                return f"{statistics.median(v):.{digits}f} ({v[0]:.{digits}f}-{v[-1]:.{digits}f})"
            print(f"{kind:8} {runner:7} start-up {fmt('startup', 1000, 1)} ms, "
                  f"per activity {fmt('per', 1000, 3)} ms, wall {fmt('wall', 1, 2)} s")
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


main()
