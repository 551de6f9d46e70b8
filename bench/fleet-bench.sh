#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# ward's fleet enrollment benchmark: wardd vs python3-sushy (32 threads) against ward-bmcsim
# at 20 ms per request, 100 / 1,000 / 10,000 hosts. Run from the build directory (or give
# --builddir); the figures go to doc/fleet-bench.md. Options: see bench/fleet-bench.py --help.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! /usr/bin/python3 -c 'import sushy' 2>/dev/null; then
    echo "fleet-bench: installing python3-sushy (the peer)" >&2
    SUDO=
    if [ "$(id -u)" -ne 0 ]; then
        SUDO=sudo
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3-sushy >/dev/null
fi
exec /usr/bin/python3 "$here/fleet-bench.py" "$@"
