#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Build every libFuzzer target with clang and run each from its seed corpus for
# RUNS inputs (default 50000) with a fixed seed, so a run is reproducible: the
# same tree explores the same inputs on any machine, and a crash found once is
# found again. SECONDS (default 120) only bounds a slow machine. A crash leaves
# its input in _fuzz/ and fails. WARD_FUZZ_SEED picks another seed to explore.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
runs=${1:-50000}
seconds=${2:-120}
seed=${WARD_FUZZ_SEED:-1}
[ -x configure ] || ./bootstrap >/dev/null 2>&1
mkdir -p _fuzz
cd _fuzz
# configure's output is kept, and shown only when it fails: its exit trap's "rm -f core"
# complains about our core/ directory on every fresh configure
[ -f Makefile ] || "$top/configure" -q CC=clang --enable-fuzzing CFLAGS="-O1 -g" >configure.out 2>&1 || {
    cat configure.out
    exit 1
}
targets=$(sed -n 's/^noinst_PROGRAMS += \(fuzz\/[a-z0-9-]*-fuzz\)$/\1/p' "$top"/fuzz/*.am "$top"/*/*.am "$top"/*/*/*.am 2>/dev/null | sort -u)
make -j"$(nproc)" $targets >/dev/null
status=0
for t in $targets; do
    name=$(basename "$t" -fuzz)
    work="corpus-$name"
    mkdir -p "$work"
    seeds="$top/fuzz/corpus/$name"
    if [ -f "$top/fuzz/$name.seeds" ]; then
        for d in $(grep -v '^#' "$top/fuzz/$name.seeds"); do
            seeds="$seeds $top/$d"
        done
    fi
    echo "=== fuzzing $name: $runs inputs, seed $seed"
    if ! ASAN_OPTIONS=detect_leaks=1 "./$t" -seed="$seed" -runs="$runs" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 "$work" $seeds >"fuzz-$name.log" 2>&1; then
        tail -n 40 "fuzz-$name.log"
        status=1
    else
        grep -E 'stat::number_of_executed_units|Done' "fuzz-$name.log" | head -n 2
    fi
done
exit $status
