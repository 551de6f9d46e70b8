#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# ward's main job on one machine: install the dependencies, build, start a
# simulated BMC fleet (ward-bmcsim, every vendor flavour, HTTPS with its own CA)
# and wardd on the embedded default (SQLite store, the shipped PhysicalHost
# policy, the Redfish plugin). wardd enrolls the fleet; the script then claims
# hosts with a boot image, lets wardd provision them, releases one, and shows
# the hosts, a history and the health check. Everything listens on 127.0.0.1.
#
#   WARD_DEMO_HOSTS     size of the fleet (default 6)
#   WARD_DEMO_SECONDS   keep wardd running this long after the demo (default 0;
#                       "forever" keeps it until Ctrl-C)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
hosts=${WARD_DEMO_HOSTS:-6}
linger=${WARD_DEMO_SECONDS:-0}
port=${WARD_DEMO_PORT:-9580}

# Bold headings only on a terminal, like wardctl's colours.
if [ -t 1 ]; then
    say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
    say() { printf '\n== %s\n' "$*"; }
fi

say "installing build dependencies (Debian packages)"
sh tools/deps.sh
say "building ward"
./bootstrap >/dev/null 2>&1
mkdir -p _quickstart
cd _quickstart
# configure's output is kept, and shown only when it fails: its exit trap's "rm -f core"
# complains about our core/ directory on every fresh configure
[ -f Makefile ] || ../configure -q >configure.out 2>&1 || {
    cat configure.out
    exit 1
}
make -j"$(nproc)" >/dev/null
qs=$(pwd)
rm -rf "$qs/sim" "$qs/state"
mkdir -p "$qs/sim" "$qs/state"

pids=""
cleanup() {
    for p in $pids; do
        kill -TERM "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# wait_for SECONDS COMMAND...: retry a check until it holds or the time is up
wait_for() {
    limit=$1
    shift
    i=0
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -gt $((limit * 10)) ]; then
            echo "gave up after ${limit}s waiting for: $*" >&2
            return 1
        fi
        sleep 0.1
    done
}

say "starting ward-bmcsim: $hosts BMCs on 127.0.0.1 over HTTPS"
./tools/bmcsim/ward-bmcsim --state-dir "$qs/sim" --bmcs "$hosts" --flavour all \
    --power-delay-ms 500 >"$qs/sim/out" 2>&1 &
pids="$pids $!"
wait_for 30 grep -q '^ready' "$qs/sim/out"
cat "$qs/sim/out"

head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$qs/api.token"
chmod 600 "$qs/api.token"
python3 "$top/tools/fleet-config.py" "$qs/sim/fleet.json" "$top" "$qs" "$qs/state" \
    "127.0.0.1:$port" >"$qs/wardd.conf.lua"
sed -i "s|^http = { listen = \\(.*\\) }|http = { listen = \\1, token_file = \"$qs/api.token\" }|" \
    "$qs/wardd.conf.lua"

say "starting wardd (JSON log in $qs/wardd.log; transitions shown below)"
./wardd --foreground --config "$qs/wardd.conf.lua" >"$qs/wardd.log" 2>&1 &
wardd_pid=$!
pids="$wardd_pid $pids"
tail -n +1 -f "$qs/wardd.log" | sed -un 's/.*"component":"policy","msg":"\([^"]*\)".*/  wardd: \1/p' &
pids="$pids $!"

ctl() { ./wardctl --url "http://127.0.0.1:$port" --token-file "$qs/api.token" --no-color "$@"; }
count_state() { ctl -o json hosts --state "$1" | grep -o '"name"' | wc -l; }
all_in() { [ "$(count_state "$1")" -ge "$2" ]; }

wait_for 60 all_in Available "$hosts"
say "the fleet is enrolled"
ctl hosts

image="http://127.0.0.1:8080/images/edge-os.iso"
say "claiming two hosts for consumer cluster-a with boot image $image"
ctl claim --consumer cluster-a --image "$image"
ctl claim --consumer cluster-a --image "$image"
wait_for 120 all_in Provisioned 2
say "two hosts are provisioned: virtual media inserted, one-time boot from CD, powered on"
ctl hosts

first=$(ctl -o json hosts --state Provisioned | sed -n 's/.*"name": *"\([^"]*\)".*/\1/p' | head -n 1)
say "releasing $first: wardd powers it off, ejects the media and returns it to Available"
ctl release "$first" --consumer cluster-a
wait_for 120 all_in Available $((hosts - 1))
ctl hosts
say "history of $first"
ctl history "$first"
say "health"
ctl doctor || true

if [ "$linger" = forever ]; then
    say "wardd keeps running: http://127.0.0.1:$port/metrics — Ctrl-C stops it"
    wait "$wardd_pid"
elif [ "$linger" -gt 0 ]; then
    sleep "$linger"
fi
say "stopping wardd (SIGTERM drains in-flight work)"
kill -TERM "$wardd_pid"
wait "$wardd_pid" && echo "wardd exited 0"
