#!/usr/bin/env python3
"""Writes the schedule benchmark's fleet into DIR: inventory.json with INSTANCES instances in
GROUPS clusters of APPS apps (cluster grouping: one group per cluster), spread over 3
accounts, 4 regions and 3 zones, and a simian.toml that opts every app in.
With LABELS > 0, every instance carries that many labels, as deployments label them: team,
env, tier and owner follow the cluster, version varies inside it (3 values), and any further
label k takes one of 7 values (900 distinct label sets in all). With UNIQUE = 1 the version
label is replaced by a host label unique to each instance: the worst case, where no two
instances share a label set.
Usage: gen-inventory.py DIR [INSTANCES] [GROUPS] [APPS] [LABELS] [UNIQUE]"""
import json
import os
import sys

out = sys.argv[1]
instances = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
groups = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
apps = int(sys.argv[4]) if len(sys.argv) > 4 else 100
labels = int(sys.argv[5]) if len(sys.argv) > 5 else 0
unique = len(sys.argv) > 6 and sys.argv[6] == "1"
per_group = instances // groups
accounts = ["prod", "test", "staging"]
regions = ["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"]
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "inventory.json"), "w") as f:
    f.write('{"instances": [\n')
    first = True
    for g in range(groups):
        region = regions[g % 4]
        for n in range(per_group):
            rec = {"id": f"i-{g:06d}-{n:02d}", "app": f"app{g % apps}", "account": accounts[g % 3],
                   "region": region, "zone": f"{region}{'abc'[n % 3]}", "stack": "prod", "detail": f"c{g}"}
            if labels:
                pairs = [("team", f"team{g % 20}"), ("env", accounts[g % 3]),
                         ("tier", ["web", "api", "worker", "db"][g % 4]), ("owner", f"owner{g % 50}"),
                         ("host", f"host-{g:06d}-{n:02d}") if unique else ("version", f"v{n % 3}")]
                pairs += [(f"label{k}", f"value{(g + k) % 7}") for k in range(5, labels)]
                rec["labels"] = dict(pairs[:labels])
            f.write(("" if first else ",\n") + json.dumps(rec, separators=(",", ":")))
            first = False
    f.write("\n]}\n")
with open(os.path.join(out, "simian.toml"), "w") as f:
    f.write('[monkey]\ntime_zone = "America/Los_Angeles"\n\n[providers.fleet]\nkind = "static"\npath = "inventory.json"\n')
    for a in range(apps):
        f.write(f'\n[[apps]]\nname = "app{a}"\nprovider = "fleet"\nmean_time_between_kills = 5\n')
