# SPDX-License-Identifier: Apache-2.0
"""What bench/fleet-bench.py and bench/soak.py share: the simulator's control API, a
process's memory and CPU from /proc, starting and stopping the programs they measure."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def http_post(url, body, timeout=10):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_line(path, prefix, limit):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    if line.startswith(prefix):
                        return line.strip()
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    raise RuntimeError("no %r in %s after %ss" % (prefix, path, limit))


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid, encoding="utf-8") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(val.split()[0])  # kB
    return out


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid, encoding="utf-8") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def sim_counters(control):
    bmcs = json.loads(http_get(control + "/control/bmcs", timeout=60))["bmcs"]
    return (sum(b["requests"] for b in bmcs), max(b["max_concurrent"] for b in bmcs),
            sum(b["responses_4xx"] + b["responses_5xx"] for b in bmcs),
            sum(b.get("expanded", 0) for b in bmcs))


def stop(proc, limit=30):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tear_down(wardd, sim, sim_out, work, keep):
    """Stop wardd (None when it did not start) and the simulator, close the simulator's
    output, and remove the work directory unless it is to be kept."""
    if wardd is not None:
        stop(wardd)
    stop(sim)
    sim_out.close()
    if not keep:
        shutil.rmtree(work, ignore_errors=True)


def exit_on_sigterm():
    """Make SIGTERM end the script through its finally blocks, so the wardd and simulator it
    started are stopped too instead of left running on the machine's cores."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
