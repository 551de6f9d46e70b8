#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Install what building and testing ward needs, from Debian 12's archive.
# Idempotent and non-interactive; run as root (or through sudo).
set -eu
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential autoconf automake libtool pkg-config make gcc clang \
    libclang-rt-14-dev \
    liblua5.4-dev libev-dev libcurl4-openssl-dev libcjson-dev libssl-dev \
    libgit2-dev libsqlite3-dev libmicrohttpd-dev libyaml-dev \
    binutils file ca-certificates openssl procps python3 \
    prometheus >/dev/null
echo "ward build dependencies are installed"
