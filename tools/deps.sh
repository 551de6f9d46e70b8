#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install what building and testing ward needs (tools/debian-packages.txt),
# from Debian 12's archive. Idempotent and non-interactive; run as root or
# through sudo.
set -eu
cd "$(dirname "$0")"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2046 # one word per package
$SUDO apt-get install -y -qq --no-install-recommends $(grep -v '^#' debian-packages.txt) >/dev/null
echo "ward build dependencies are installed"
