#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Run every test of ward: a warnings-as-errors build with `make check`, the
# same suite under AddressSanitizer + UndefinedBehaviorSanitizer, and
# `make distcheck`. Build trees go under _check/; exit status is the verdict.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)
./bootstrap >/dev/null 2>&1 || ./bootstrap

run_suite() { # run_suite NAME CONFIGURE-ARGS...
    name=$1
    shift
    echo "=== $name: configure $*"
    rm -rf "_check/$name"
    mkdir -p "_check/$name"
    (cd "_check/$name" && "$top/configure" -q "$@" >configure.out 2>&1) || {
        cat "_check/$name/configure.out"
        return 1
    }
    echo "=== $name: make check"
    if ! make -C "_check/$name" -j"$jobs" check >"_check/$name/check.out" 2>&1; then
        grep -E '^(FAIL|ERROR|XPASS)' "_check/$name/check.out" || true
        tail -n 60 "_check/$name/check.out"
        cat "_check/$name/test-suite.log" 2>/dev/null | tail -n 200
        return 1
    fi
    grep -E '^# (TOTAL|PASS|FAIL|ERROR|SKIP)' "_check/$name/check.out"
}

run_suite plain CFLAGS="-O2 -g -Werror"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite sanitizers --enable-sanitizers CFLAGS="-O1 -g"
export ASAN_OPTIONS UBSAN_OPTIONS
echo "=== distcheck"
make -C _check/plain -j"$jobs" distcheck >_check/plain/distcheck.out 2>&1 || {
    tail -n 80 _check/plain/distcheck.out
    exit 1
}
grep -E 'archives ready for distribution' _check/plain/distcheck.out | head -n 1
# one closing line for whoever reads the log: assertions across the two full suites
passed=$(cat _check/plain/check.out _check/sanitizers/check.out | sed -n 's/^# PASS: *//p' | awk '{s += $1} END {print s + 0}')
failed=$(cat _check/plain/check.out _check/sanitizers/check.out | sed -n 's/^# \(FAIL\|ERROR\): *//p' | awk '{s += $1} END {print s + 0}')
if command -v clang >/dev/null 2>&1; then
    echo "=== fuzz targets, ${FUZZ_RUNS:-50000} inputs each"
    sh tools/fuzz.sh "${FUZZ_RUNS:-50000}"
fi
echo "$passed passed, $failed failed"
