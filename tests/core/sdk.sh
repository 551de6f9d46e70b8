#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# A third-party plugin builds out of tree against the *installed* SDK (headers
# and ward-plugin.pc), and the installed wardd loads it.
set -u
: "${WARD_BUILDDIR:?run through make check}" "${WARD_SRCDIR:?}"
echo "1..7"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ward-sdk-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dest="$tmp/root"
n=0
check() { # check DESCRIPTION COMMAND...
    n=$((n + 1)); desc=$1; shift
    if "$@" >"$tmp/out" 2>&1; then echo "ok $n - $desc"; else
        echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/out"; fi
}
check "make install into a staging root" ${MAKE:-make} -C "$WARD_BUILDDIR" install DESTDIR="$dest"
pcdir=$(find "$dest" -name ward-plugin.pc -exec dirname {} \; | head -n 1)
check "ward-plugin.pc is installed" test -n "$pcdir"
export PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$dest"
cp -R "$WARD_SRCDIR/examples/plugin-hello" "$tmp/hello"
chmod -R u+w "$tmp/hello"
check "the example plugin builds out of tree with pkg-config" ${MAKE:-make} -C "$tmp/hello"
check "it exports exactly one symbol, hello_plugin" \
    sh -c "nm -D --defined-only '$tmp/hello/ward-hello.so' | awk '\$2 ~ /^[A-Z]\$/ && \$2 != \"A\" {print \$3}' | grep -vx hello_plugin | grep -q . && exit 1 || exit 0"
check "the shipped policies are installed" test -n "$(find "$dest" -name physicalhost.lua)"
wardd=$(find "$dest" -type f -name wardd | head -n 1)
policies=$(find "$dest" -name physicalhost.lua -exec dirname {} \; | head -n 1)
cat >"$tmp/wardd.conf.lua" <<CONF
policy_dir = "$policies"
plugin "hello" { path = "$tmp/hello/ward-hello.so", greeting = "from out of tree" }
CONF
check "the installed wardd loads it (--test)" sh -c "\"$wardd\" --test --config \"$tmp/wardd.conf.lua\" >\"$tmp/wardd.log\" 2>&1"
check "and the plugin ran its init" grep -q "hello, from out of tree" "$tmp/wardd.log"
