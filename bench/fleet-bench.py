#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""ward's fleet enrollment benchmark (issue 5): wardd vs python3-sushy against ward-bmcsim.

usage: fleet-bench.py [--hosts 100,1000,10000] [--runs 3] [--big-runs 1] [--latency-ms 20]
                      [--threads 32] [--builddir DIR] [--workdir DIR] [--no-sushy]

For each fleet size N and each run: start ward-bmcsim (N BMCs, every flavour, HTTPS,
--latency-ms per request), write a wardd config with tools/fleet-config.py, start wardd and
read its log at 10 Hz until N hosts have entered Available. Measured on wardd: wall time
from exec to the last host's transition to Available (its time in wardd's log; the poll
only says when to stop), VmHWM at that moment, VmRSS once idle (5 s later),
utime+stime, the simulator's utime+stime, the store's commits, and the requests the
simulator counted (control API). Then, on the same simulator with its counters reset,
bench/sushy-enroll.py does the same enrollment with a ThreadPoolExecutor(32), timed from
exec to exit like wardd (interpreter start and imports included). First, bench/tls-connect
prints the client's CPU per fresh HTTPS connection and per GET on a kept one; with them each
run prints its client floor, N * (connection + (R_ward - 1) * kept GET): the CPU libcurl and
OpenSSL alone need for the run's requests, the least wall time any one-threaded client of
them can take here. Prints one line per run and a table of medians.

Lower bounds (per-BMC concurrency 1 makes a host's requests sequential):
    ward:  ceil(N / maxConcurrentReads) * R_ward * latency  (enrollment only reads; the
           config sets maxConcurrentReads = 64, its default, and maxConcurrentOps = 20)
    sushy: ceil(N / threads)          * R_sushy * latency
R is the measured number of requests per host. It is a benchmark, not a test: it polls.
"""
import argparse
import datetime
import fcntl
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

from fleetlib import (http_get, http_post, free_port, wait_line, proc_status, proc_cpu,
                      sim_counters, stop, tear_down, exit_on_sigterm)

SRCDIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_OPS = 20  # provisioning cap (not used by enrollment)
MAX_READS = 64  # the cap enrollment runs under (plugin default)
ADDRESS_MODE_FROM = 5000  # fleets this big use one socket (--address-base)


def one_run(args, n, run):
    work = os.path.join(args.workdir, "n%d-r%d" % (n, run))
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "sim"))
    os.makedirs(os.path.join(work, "state"))
    sim_cmd = [os.path.join(args.builddir, "tools/bmcsim/ward-bmcsim"), "--state-dir",
               os.path.join(work, "sim"), "--bmcs", str(n), "--flavour", "all",
               "--latency-ms", str(args.latency_ms), "--shared-password"]
    if n >= ADDRESS_MODE_FROM:
        sim_cmd += ["--address-base", "127.1.0.1"]
    if args.plain_http:
        sim_cmd += ["--plain-http"]
    sim_out = open(os.path.join(work, "sim", "out"), "w")
    sim = subprocess.Popen(sim_cmd, stdout=sim_out, stderr=subprocess.STDOUT)
    wardd = None
    try:
        ready = wait_line(os.path.join(work, "sim", "out"), "ready bmcs=", 120)
        control = ready.split("control=")[1].split()[0]
        fleet = os.path.join(work, "sim", "fleet.json")
        port = free_port()
        conf = os.path.join(work, "wardd.conf.lua")
        text = subprocess.run([sys.executable, os.path.join(SRCDIR, "tools/fleet-config.py"),
                               fleet, SRCDIR, args.builddir, os.path.join(work, "state"),
                               "127.0.0.1:%d" % port], check=True, capture_output=True,
                              text=True).stdout
        # enrollment only: no power sync during the measurement; the caps set explicitly
        text = text.replace('power_sync_interval = "30s",',
                            'power_sync_interval = "1h",\n    maxConcurrentOps = %d,\n'
                            '    maxConcurrentReads = %d,' % (MAX_OPS, args.max_reads))
        with open(conf, "w", encoding="utf-8") as f:
            f.write(text)
        http_post(control + "/control/counters/reset", {})
        sim_cpu0 = proc_cpu(sim.pid)
        log = open(os.path.join(work, "wardd.log"), "w")
        t0 = time.monotonic()
        t0_clock = time.time()
        wardd = subprocess.Popen([os.path.join(args.builddir, "wardd"), "--foreground",
                                  "--config", conf], stdout=log, stderr=subprocess.STDOUT)
        metrics = "http://127.0.0.1:%d/metrics" % port
        t_up = None
        avail = 0
        deadline = t0 + args.limit
        # Progress comes from wardd's log, which costs wardd nothing to read; /metrics is
        # asked only until it first answers (a scrape walks every host).
        logged = None  # when wardd logged the latest transition to Available (epoch s)
        with open(os.path.join(work, "wardd.log"), encoding="utf-8", errors="replace") as log_in:
            pending = ""
            while True:
                if wardd.poll() is not None:
                    raise RuntimeError("wardd exited with %s (see %s)" % (wardd.returncode, work))
                if time.monotonic() > deadline:
                    raise RuntimeError("%d/%d Available after %ss" % (avail, n, args.limit))
                if t_up is None:
                    try:
                        http_get(metrics, timeout=5)
                        t_up = time.monotonic() - t0
                    except OSError:
                        pass
                pending += log_in.read()
                done, _, pending = pending.rpartition("\n")
                for line in done.splitlines():
                    when = entered_available(line)
                    if when is not None:
                        avail += 1
                        logged = when if logged is None or when > logged else logged
                if avail >= n:
                    break
                time.sleep(0.1)
        wall = time.monotonic() - t0
        # the log is read every 0.1 s; its lines have the moment itself
        if logged is not None and logged > t0_clock:
            wall = min(wall, logged - t0_clock)
        cpu = proc_cpu(wardd.pid)
        sim_cpu = proc_cpu(sim.pid) - sim_cpu0
        commits = 0
        body = http_get(metrics, timeout=30)
        if t_up is None:
            t_up = time.monotonic() - t0
        for line in body.splitlines():
            if line.startswith("ward_store_commits_total "):
                commits = int(float(line.split()[1]))
        peak = proc_status(wardd.pid)["VmHWM"]
        requests, max_conc, errors, expanded = sim_counters(control)
        time.sleep(5)
        idle = proc_status(wardd.pid)["VmRSS"]
        stop(wardd)
        wardd = None
        res = {"n": n, "run": run, "wall": wall, "startup": t_up, "cpu": cpu,
               "sim_cpu": sim_cpu, "commits": commits, "requests": requests, "req_per_host": requests / n,
               "expanded_per_host": expanded / n,
               "max_concurrent": max_conc,
               "error_answers": errors, "peak_kib": peak, "idle_kib": idle}
        # an $expand answer waits the latency once more per member it inlines
        res["lower_bound"] = (math.ceil(n / args.max_reads)
                              * (res["req_per_host"] + res["expanded_per_host"])
                              * args.latency_ms / 1e3)
        if not args.no_sushy:
            http_post(control + "/control/counters/reset", {})
            env = dict(os.environ)
            t_sushy = time.monotonic()
            try:
                p = subprocess.run(["/usr/bin/python3",
                                    os.path.join(SRCDIR, "bench/sushy-enroll.py"), fleet,
                                    str(args.threads)], capture_output=True, text=True, env=env,
                                   timeout=args.limit)
                s = json.loads(p.stdout.strip().splitlines()[-1])
                # from exec to exit, as wardd's wall time is: interpreter start and imports
                # included (the script's own wall_s leaves them out)
                s["inner_wall_s"] = s["wall_s"]
                s["wall_s"] = time.monotonic() - t_sushy
            except subprocess.TimeoutExpired:
                # not finished within the limit: its throughput is at most N / limit
                s = {"wall_s": args.limit, "failed": n, "cpu_s": None,
                     "errors": ["did not finish within %ss" % args.limit]}
                res["sushy_timed_out"] = True
            s_requests, s_max_conc, _, _ = sim_counters(control)
            res.update({"sushy_wall": s["wall_s"], "sushy_failed": s["failed"],
                        "sushy_cpu": s.get("cpu_s"), "sushy_requests": s_requests,
                        "sushy_errors": s["errors"]})
            res["sushy_lower_bound"] = (math.ceil(n / args.threads) * s_requests / n
                                        * args.latency_ms / 1e3)
            res["ratio"] = res["sushy_wall"] / wall  # throughput ward / throughput sushy
        return res
    finally:
        tear_down(wardd, sim, sim_out, work, args.keep)


def entered_available(line):
    """When wardd logged a host's committed transition to Available (seconds since the
    epoch), or None (refusals, waits and failed commits mention "-> Available" too, without
    the transition's fields)."""
    if "-> Available" not in line:
        return None
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    if rec.get("to") != "Available" or "from" not in rec or "trigger" not in rec:
        return None
    try:
        return datetime.datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def tls_floor(args):
    """Print the client's CPU per fresh HTTPS connection to one simulated BMC and per GET
    on a kept connection (bench/tls-connect); return them in ms, or None."""
    tool = os.path.join(args.builddir, "bench/tls-connect")
    if not os.access(tool, os.X_OK):
        print("tls-connect: not built (make bench)", flush=True)
        return None
    work = os.path.join(args.workdir, "tls")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    out = open(os.path.join(work, "out"), "w")
    sim = subprocess.Popen([os.path.join(args.builddir, "tools/bmcsim/ward-bmcsim"), "--state-dir",
                            work, "--bmcs", "1", "--flavour", "generic"],
                           stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_line(os.path.join(work, "out"), "ready bmcs=", 60)
        with open(os.path.join(work, "fleet.json"), encoding="utf-8") as f:
            address = json.load(f)["bmcs"][0]["address"]
        p = subprocess.run([tool,
                            address + "/redfish/v1", os.path.join(work, "ca.pem"), "300"],
                           capture_output=True, text=True, timeout=120)
        print((p.stdout or p.stderr).strip(), flush=True)
        m = re.search(r"([0-9.]+) ms CPU per connection \(verified\).* ([0-9.]+) ms per GET on a "
                      r"kept connection", p.stdout)
        return (float(m.group(1)), float(m.group(2))) if m else None
    finally:
        stop(sim)
        out.close()
        shutil.rmtree(work, ignore_errors=True)


def show(r):
    line = ("N=%(n)d run=%(run)d ward: wall %(wall).2fs (bound %(lower_bound).2fs, x%(x).2f, "
            "metrics up %(startup).2fs) req/host %(req_per_host).2f (+%(expanded_per_host).2f expanded) cpu %(cpu).2fs "
            "(%(cpu_k).3fs/1k req) sim cpu %(sim_cpu).2fs commits %(commits)d peak %(peak_kib)dKiB (%(peak_h).1fKiB/host) "
            "idle %(idle_kib)dKiB (%(idle_h).1fKiB/host) maxconc/BMC %(max_concurrent)d")
    if "floor" in r:
        line = line.replace("x%(x).2f, ", "x%(x).2f, client floor %(floor).2fs, ")
    d = dict(r, x=r["wall"] / r["lower_bound"], cpu_k=r["cpu"] / r["requests"] * 1e3,
             peak_h=r["peak_kib"] / r["n"], idle_h=r["idle_kib"] / r["n"])
    out = line % d
    if "sushy_wall" in r:
        ge = ">=" if r.get("sushy_timed_out") else ""
        out += (" | sushy: wall %s%.2fs (bound %.2fs) req/host %.2f cpu %ss failed %d | "
                "ward/sushy throughput %sx%.2f" % (ge, r["sushy_wall"], r["sushy_lower_bound"],
                                                    r["sushy_requests"] / r["n"], r["sushy_cpu"],
                                                    r["sushy_failed"], ge, r["ratio"]))
        if r["sushy_errors"]:
            out += " sushy errors: %s" % r["sushy_errors"][:2]
    print(out, flush=True)


def table(results):
    print("\n| hosts | runs | ward wall s | lower bound s | wall/bound | client floor s "
          "| req/host | CPU s/1k req | peak KiB/host | idle KiB/host | sushy wall s "
          "| ward/sushy throughput |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sorted({r["n"] for r in results}):
        rs = [r for r in results if r["n"] == n]

        def med(f):
            return statistics.median(f(r) for r in rs)
        sw = med(lambda r: r["sushy_wall"]) if all("sushy_wall" in r for r in rs) else None
        # sushy stopped at the time limit: its wall time is at least the limit
        ge = ">=" if any(r.get("sushy_timed_out") for r in rs) else ""
        floor = "%.2f" % med(lambda r: r["floor"]) if all("floor" in r for r in rs) else "-"
        print("| %d | %d | %.2f | %.2f | %.2f | %s | %.2f | %.3f | %.1f | %.1f | %s | %s |" % (
            n, len(rs), med(lambda r: r["wall"]), med(lambda r: r["lower_bound"]),
            med(lambda r: r["wall"] / r["lower_bound"]), floor, med(lambda r: r["req_per_host"]),
            med(lambda r: r["cpu"] / r["requests"] * 1e3), med(lambda r: r["peak_kib"] / n),
            med(lambda r: r["idle_kib"] / n), ge + "%.2f" % sw if sw is not None else "-",
            ge + "%.2f" % med(lambda r: r["ratio"]) if sw is not None else "-"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hosts", default="100,1000,10000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--big-runs", type=int, default=1, help="runs for fleets of 10,000 and more")
    ap.add_argument("--latency-ms", type=int, default=20)
    ap.add_argument("--threads", type=int, default=32, help="sushy's thread pool")
    ap.add_argument("--max-reads", type=int, default=MAX_READS,
                    help="wardd's maxConcurrentReads (the enrollment cap)")
    ap.add_argument("--builddir", default=os.getcwd())
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--limit", type=float, default=600, help="seconds allowed per enrollment")
    ap.add_argument("--no-sushy", action="store_true")
    ap.add_argument("--plain-http", action="store_true",
                    help="diagnosis only: the simulator without TLS, to see what TLS costs "
                         "(no sushy run, no client floor)")
    ap.add_argument("--keep", action="store_true", help="keep logs and state")
    args = ap.parse_args()
    exit_on_sigterm()
    if args.plain_http:
        # sushy's script verifies against the simulator's CA, and the floor is TLS's
        args.no_sushy = True
    args.builddir = os.path.abspath(args.builddir)
    if args.workdir is None:
        args.workdir = os.path.join(args.builddir, "fleet-bench.d")
    # the children inherit it: wardd keeps a connection per BMC, the simulator a socket
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print("fleet-bench: %d CPUs, load average %s, latency %d ms, maxConcurrentReads %d, "
          "maxConcurrentOps %d, sushy threads %d" % (os.cpu_count(), os.getloadavg(),
                                                    args.latency_ms, args.max_reads, MAX_OPS,
                                                    args.threads), flush=True)
    os.makedirs(args.workdir, exist_ok=True)
    # runs share the work directory and the machine: a second benchmark would spoil both
    lock = open(os.path.join(args.workdir, "lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        print("fleet-bench: another run holds %s" % lock.name, file=sys.stderr)
        return 1
    tls = None if args.plain_http else tls_floor(args)
    results = []
    for n in [int(x) for x in args.hosts.split(",")]:
        for run in range(args.big_runs if n >= 10000 else args.runs):
            r = one_run(args, n, run)
            if tls is not None:
                r["floor"] = n * (tls[0] + (r["req_per_host"] - 1) * tls[1]) / 1e3
            show(r)
            results.append(r)
    table(results)
    print("load average at the end: %s" % (os.getloadavg(),))
    return 0


if __name__ == "__main__":
    sys.exit(main())
