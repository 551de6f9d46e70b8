#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# From a fresh clone on Debian 12: install dependencies, build ward, and run
# wardd in the foreground on the example configuration, its embedded default.
# WARD_DEMO_SECONDS (default 20) bounds the demo; 0 runs until Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
sh tools/deps.sh
./bootstrap >/dev/null 2>&1
mkdir -p _quickstart
cd _quickstart
../configure -q >/dev/null
make -j"$(nproc)" >/dev/null
state=$(pwd)/state
mkdir -p "$state"
sed "s|^-- state_dir = .*|state_dir = \"$state\"|" ../examples/wardd.conf.lua >wardd.conf.lua
seconds=${WARD_DEMO_SECONDS:-20}
echo "wardd is starting (log below; it stops by itself after ${seconds}s, 0 = never)"
if [ "$seconds" -gt 0 ]; then
    exec timeout --preserve-status --signal=TERM --kill-after=30 "$seconds" ./wardd --foreground --config wardd.conf.lua
fi
exec ./wardd --foreground --config wardd.conf.lua
