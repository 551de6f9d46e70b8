#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ward's soak benchmark: does a wardd that runs for a long time next to misbehaving BMCs
keep its memory, descriptors and BMC sessions flat?

usage: soak.py [--hosts 200] [--minutes 20] [--phase-s 60] [--latency-ms 20]
               [--power-sync 10s] [--claims 5] [--builddir DIR] [--workdir DIR] [--keep]

Starts ward-bmcsim (every flavour, HTTPS) and wardd on it with a short power sync, waits for
the fleet to be enrolled, then runs phases of --phase-s seconds until --minutes have passed.
In each phase one fault (the simulator's: 5xx answers, hangs past the client timeout,
connection resets, malformed and truncated JSON, expired sessions, slow-drip bodies, an
expired certificate) is switched on for a tenth of the BMCs, a different tenth each
phase; --claims hosts are claimed with a boot image, provisioned and released through the
API. Then every fault is cleared and the fleet gets a recovery window.

Every 5 s it samples wardd's VmRSS, open descriptors, threads and CPU, the store's size
on disk, the sessions the BMCs hold and the hosts by state, and prints one line a
minute. At the end it prints the RSS slope over the second half (KiB per hour, least
squares), the descriptors' range, the most sessions any BMC held, the logins per host,
and the hosts by state after recovery, and the events wardd recorded. It is a benchmark, not a test: it polls, and what
it prints is for a person (and doc/soak.md) to judge.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from fleetlib import (exit_on_sigterm, free_port, http_get, http_post, proc_cpu, proc_status,
                      tear_down, wait_line)

SRCDIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAULTS = [
    ("5xx", {"error_rate": 0.3}),
    ("hang", {"hang": True}),
    ("reset", {"reset": True}),
    ("malformed", {"malformed": True}),
    ("truncated", {"truncated": True}),
    ("expire_sessions", {"expire_sessions": True}),
    ("slow_drip", {"slow_drip": True}),
    ("wrong_cert", {"wrong_cert": "expired"}),
]
IMAGE = "http://127.0.0.1:8080/images/soak.iso"


class Api:
    """wardd's /api/v1 with its token."""

    def __init__(self, port, token):
        self.base = "http://127.0.0.1:%d/api/v1" % port
        self.token = token

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": "Bearer " + self.token,
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read().decode() or "null")
        except urllib.error.HTTPError as e:
            return e.code, None

    def states(self):
        """Hosts by lifecycle state, from the ward_hosts gauge."""
        out = {}
        for line in http_get(self.base.replace("/api/v1", "/metrics"), timeout=30).splitlines():
            if line.startswith('ward_hosts{state="'):
                st = line.split('"')[1]
                n = int(float(line.split()[-1]))
                if n:
                    out[st] = n
        return out

    def state_of(self, name):
        code, body = self.call("GET", "/hosts/" + name)
        if code != 200 or not body:
            return None
        return body.get("states", {}).get("lifecycle", {}).get("state")


def pid_sample(pid, db):
    rss = proc_status(pid)["VmRSS"]
    fds = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/status" % pid, encoding="utf-8") as f:
        threads = int(next(line for line in f if line.startswith("Threads:")).split()[1])
    size = sum(os.path.getsize(db + sfx) for sfx in ("", "-wal", "-shm")
               if os.path.exists(db + sfx))
    return {"rss": rss, "fds": fds, "threads": threads, "cpu": proc_cpu(pid),
            "store_kib": size // 1024}


def sessions(control):
    bmcs = json.loads(http_get(control + "/control/bmcs", timeout=60))["bmcs"]
    return (sum(b["active_sessions"] for b in bmcs), max(b["active_sessions"] for b in bmcs),
            sum(b["logins"] for b in bmcs), max(b["max_concurrent"] for b in bmcs))


def slope_kib_per_hour(points):
    """Least-squares slope of (seconds, KiB) points, in KiB per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    var = sum((p[0] - mx) ** 2 for p in points)
    if var == 0:
        return 0.0
    return sum((p[0] - mx) * (p[1] - my) for p in points) / var * 3600


def churn(api, claims, limit, log):
    """Claim hosts with an image, wait for them to be Provisioned, release them; return
    (provisioned, claimed)."""
    names = []
    for _ in range(claims):
        code, body = api.call("POST", "/claims", {"consumer": "soak", "bootISOSource": IMAGE})
        if code in (200, 201) and body:
            names.append(body.get("name") or body.get("host", {}).get("name"))
    end = time.monotonic() + limit
    done = set()
    while names and time.monotonic() < end and len(done) < len(names):
        for n in names:
            if n not in done and api.state_of(n) == "Provisioned":
                done.add(n)
        time.sleep(1)
    for n in names:
        code, _ = api.call("POST", "/hosts/%s/release" % n, {"consumer": "soak"})
        if code != 200:
            log("release %s: HTTP %d" % (n, code))
    return len(done), len(names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=200)
    ap.add_argument("--minutes", type=float, default=20)
    ap.add_argument("--phase-s", type=float, default=60)
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--power-sync", default="10s", help="wardd's power_sync_interval")
    ap.add_argument("--claims", type=int, default=5, help="hosts provisioned per phase")
    ap.add_argument("--recovery-s", type=float, default=180,
                    help="how long the fleet gets after the faults are cleared")
    ap.add_argument("--builddir", default=os.getcwd())
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true", help="keep logs and state")
    args = ap.parse_args()
    exit_on_sigterm()
    args.builddir = os.path.abspath(args.builddir)
    work = args.workdir or os.path.join(args.builddir, "soak.d")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "sim"))
    os.makedirs(os.path.join(work, "state"))
    t_start = time.monotonic()

    def log(msg):
        print("[%6.0fs] %s" % (time.monotonic() - t_start, msg), flush=True)

    sim_out = open(os.path.join(work, "sim", "out"), "w")
    sim = subprocess.Popen([os.path.join(args.builddir, "tools/bmcsim/ward-bmcsim"),
                            "--state-dir", os.path.join(work, "sim"), "--bmcs", str(args.hosts),
                            "--flavour", "all", "--latency-ms", str(args.latency_ms),
                            "--jitter-ms", str(args.latency_ms // 4), "--power-delay-ms", "500"],
                           stdout=sim_out, stderr=subprocess.STDOUT)
    wardd = None
    stop_sampling = threading.Event()
    try:
        ready = wait_line(os.path.join(work, "sim", "out"), "ready bmcs=", 120)
        control = ready.split("control=")[1].split()[0]
        port = free_port()
        token = "%048x" % random.getrandbits(192)
        token_file = os.path.join(work, "api.token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(token)
        text = subprocess.run([sys.executable, os.path.join(SRCDIR, "tools/fleet-config.py"),
                               os.path.join(work, "sim", "fleet.json"), SRCDIR, args.builddir,
                               os.path.join(work, "state"), "127.0.0.1:%d" % port],
                              check=True, capture_output=True, text=True).stdout
        text = text.replace('power_sync_interval = "30s"',
                            'power_sync_interval = "%s"' % args.power_sync)
        text = text.replace('http = { listen = "127.0.0.1:%d" }' % port,
                            'http = { listen = "127.0.0.1:%d", token_file = "%s" }'
                            % (port, token_file))
        conf = os.path.join(work, "wardd.conf.lua")
        with open(conf, "w", encoding="utf-8") as f:
            f.write(text)
        wardd_log = open(os.path.join(work, "wardd.log"), "w")
        wardd = subprocess.Popen([os.path.join(args.builddir, "wardd"), "--foreground",
                                  "--config", conf], stdout=wardd_log, stderr=subprocess.STDOUT)
        api = Api(port, token)
        db = os.path.join(work, "state", "ward.db")
        while True:
            if wardd.poll() is not None:
                raise RuntimeError("wardd exited with %s (see %s)" % (wardd.returncode, work))
            try:
                if api.states().get("Available", 0) >= args.hosts:
                    break
            except OSError:
                pass
            if time.monotonic() - t_start > 300:
                raise RuntimeError("the fleet was not enrolled within 300 s")
            time.sleep(1)
        log("%d hosts enrolled; soaking for %.0f min" % (args.hosts, args.minutes))

        samples = []
        t0 = time.monotonic()

        def sampler():
            while not stop_sampling.wait(5):
                try:
                    s = pid_sample(wardd.pid, db)
                    s["t"] = time.monotonic() - t0
                    s["sessions"], s["max_sessions"], s["logins"], s["max_conc"] = \
                        sessions(control)
                    samples.append(s)
                except (OSError, ValueError, KeyError, StopIteration):
                    pass

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        slice_n = max(1, args.hosts // 10)
        phase = 0
        provisioned = claimed = 0
        while time.monotonic() - t0 < args.minutes * 60:
            name, fault = FAULTS[phase % len(FAULTS)]
            first = (phase * slice_n) % args.hosts
            faulted = [(first + i) % args.hosts for i in range(slice_n)]
            http_post(control + "/control/faults", [dict(fault, bmc=i) for i in faulted])
            p_end = time.monotonic() + args.phase_s
            p, c = churn(api, args.claims, args.phase_s * 0.8, log)
            provisioned += p
            claimed += c
            while time.monotonic() < p_end:
                if wardd.poll() is not None:
                    raise RuntimeError("wardd exited with %s" % wardd.returncode)
                time.sleep(1)
            http_post(control + "/control/faults", {"bmc": "*", "clear": True})
            last = samples[-1] if samples else None
            if last:
                log("phase %d (%s on BMCs %d-%d): provisioned %d/%d; rss %d KiB, fds %d, "
                    "threads %d, store %d KiB, sessions %d (max per BMC %d), logins %d, "
                    "hosts %s" % (phase, name, first, (first + slice_n - 1) % args.hosts, p, c,
                                  last["rss"], last["fds"], last["threads"], last["store_kib"],
                                  last["sessions"], last["max_sessions"], last["logins"],
                                  json.dumps(api.states(), sort_keys=True)))
            phase += 1
        log("faults cleared; %.0f s to recover" % args.recovery_s)
        end = time.monotonic() + args.recovery_s
        while time.monotonic() < end:
            if wardd.poll() is not None:
                raise RuntimeError("wardd exited with %s" % wardd.returncode)
            if api.states().get("Available", 0) >= args.hosts:
                break
            time.sleep(2)
        stop_sampling.set()
        th.join()
        final = api.states()
        code, body = api.call("GET", "/events?limit=10000")
        counted = {}
        for ev in (body or {}).get("items", []) if code == 200 else []:
            key = "%s %s" % (ev.get("type"), ev.get("reason"))
            counted[key] = counted.get(key, 0) + ev.get("count", 1)
        health = http_get("http://127.0.0.1:%d/healthz" % port)
        soaked = [s for s in samples if s["t"] <= args.minutes * 60]
        half = [(s["t"], s["rss"]) for s in soaked if s["t"] >= soaked[-1]["t"] / 2]
        rss = [s["rss"] for s in soaked]
        fds = [s["fds"] for s in soaked]
        print("soak: %d hosts, %.0f min, %d phases, power sync %s, latency %d ms" %
              (args.hosts, args.minutes, phase, args.power_sync, args.latency_ms))
        print("  wardd RSS: %d KiB after enrollment, %d at the end, max %d; slope over the "
              "second half %+.0f KiB/h (%+.1f B/host/h)" %
              (rss[0], rss[-1], max(rss), slope_kib_per_hour(half),
               slope_kib_per_hour(half) * 1024 / args.hosts))
        print("  descriptors %d-%d, threads %d-%d, store %d -> %d KiB, wardd CPU %.1f s" %
              (min(fds), max(fds), min(s["threads"] for s in soaked),
               max(s["threads"] for s in soaked), soaked[0]["store_kib"],
               soaked[-1]["store_kib"], soaked[-1]["cpu"] - soaked[0]["cpu"]))
        print("  BMC sessions: %d held at the end, at most %d on one BMC; %d logins "
              "(%.1f per host); at most %d requests at once on one BMC" %
              (samples[-1]["sessions"], max(s["max_sessions"] for s in samples),
               samples[-1]["logins"], samples[-1]["logins"] / args.hosts,
               max(s["max_conc"] for s in samples)))
        print("  provisioned %d of %d claims; after %.0f s of recovery: %s; healthz %s" %
              (provisioned, claimed, args.recovery_s, json.dumps(final, sort_keys=True),
               health.strip()[:60]))
        print("  events: %s" % ", ".join("%s %d" % kv for kv in sorted(counted.items())))
        return 0
    finally:
        stop_sampling.set()
        tear_down(wardd, sim, sim_out, work, args.keep)


if __name__ == "__main__":
    sys.exit(main())
