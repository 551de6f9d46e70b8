#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The peer of ward's fleet benchmark: enroll a ward-bmcsim fleet with python3-sushy.

usage: sushy-enroll.py FLEET_JSON [THREADS]

For every BMC of the simulator's fleet.json, in a ThreadPoolExecutor(THREADS, default 32):
connect with session auth (sushy.auth.SessionAuth), verify TLS against the fleet's CA, get
the system and read the same inventory ward's Enrolling step reads (Manufacturer, Model,
SerialNumber, UUID, BiosVersion, PowerState, processor and memory summary, NIC MACs).
Prints one JSON line: {"hosts", "enrolled", "failed", "wall_s", "threads", "cpu_s" (whole
process, start-up included), "peak_kib", "errors": [first few]}.
Run it with Debian's interpreter (/usr/bin/python3), where python3-sushy is installed.
"""
import concurrent.futures
import json
import logging
import os
import resource
import sys
import time

# requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's verify=; the fleet's
# CA must be the one trusted, so they go before any request is made.
for _name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
    os.environ.pop(_name, None)

import sushy
from sushy import auth as sushy_auth


def read_password(path):
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def enroll(bmc, ca):
    """One host's enrollment; returns the inventory (a dict) or raises."""
    password = read_password(bmc["password_file"])
    session = sushy_auth.SessionAuth(username=bmc["username"], password=password)
    conn = sushy.Sushy(bmc["address"] + "/redfish/v1", verify=ca, auth=session)
    members = conn.get_system_collection().members_identities
    if not members:
        raise RuntimeError("no ComputerSystem")
    system = conn.get_system(sorted(members)[0])
    raw = system.json
    inv = {
        "manufacturer": system.manufacturer,
        "model": system.model if hasattr(system, "model") else raw.get("Model"),
        "serial": system.serial_number,
        "uuid": system.uuid,
        "bios": system.bios_version,
        "power": system.power_state,
        "cpus": (raw.get("ProcessorSummary") or {}).get("Count"),
        "memory_gib": system.memory_summary.size_gib if system.memory_summary else None,
        "macs": sorted(system.ethernet_interfaces.summary.keys()),
    }
    # ward keeps its session for later operations; so does this peer (no logout), which
    # also keeps the request count comparable.
    return inv


def main(argv):
    if len(argv) not in (2, 3):
        sys.stderr.write(__doc__)
        return 2
    logging.disable(logging.WARNING)  # sushy warns per host about the self-made CA's chain
    with open(argv[1], encoding="utf-8") as f:
        fleet = json.load(f)
    threads = int(argv[2]) if len(argv) == 3 else 32
    bmcs = fleet["bmcs"]
    errors = []
    enrolled = 0
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(enroll, b, fleet["ca"]) for b in bmcs]
        for fut in concurrent.futures.as_completed(futures):
            try:
                inv = fut.result()
                if inv["serial"] is None or not inv["macs"]:
                    raise RuntimeError("incomplete inventory: %r" % (inv,))
                enrolled += 1
            except Exception as e:  # a benchmark reports failures, it does not stop on them
                if len(errors) < 5:
                    errors.append("%s: %s" % (type(e).__name__, e))
    wall = time.monotonic() - t0
    t = os.times()
    print(json.dumps({"hosts": len(bmcs), "enrolled": enrolled, "failed": len(bmcs) - enrolled,
                      "wall_s": round(wall, 3), "threads": threads,
                      "cpu_s": round(t.user + t.system, 2),
                      "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "errors": errors}))
    return 0 if enrolled == len(bmcs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
