#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# ward-redfish.so as wardd loads it: the ABI, the config map and its validation.
set -u
: "${WARD_BUILDDIR:?run through make check}" "${WARD_SRCDIR:?}"
echo "1..9"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ward-redfish-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
so="$WARD_BUILDDIR/plugins/redfish/.libs/ward-redfish.so"
wardd="$WARD_BUILDDIR/wardd"
n=0
check() { # check DESCRIPTION COMMAND...
    n=$((n + 1)); desc=$1; shift
    if "$@" >"$tmp/out" 2>&1; then echo "ok $n - $desc"; else
        echo "not ok $n - $desc"; sed 's/^/# /' "$tmp/out"; fi
}
conf() { # conf SETTINGS: write a configuration loading the plugin with them
    {
        printf 'policy_dir = "%s/policies"\nstate_dir = "%s/state"\n' "$WARD_SRCDIR" "$tmp"
        printf 'plugin "redfish" { path = "%s", quirks = "%s/plugins/redfish/quirks.lua"%s }\n' \
            "$so" "$WARD_SRCDIR" "$1"
    } >"$tmp/wardd.conf.lua"
}
check "it exports exactly one symbol, redfish_plugin" \
    sh -c "nm -D --defined-only '$so' | awk '\$2 ~ /^[A-Z]\$/ && \$2 != \"A\" {print \$3}' | grep -vx redfish_plugin | grep -q . && exit 1 || exit 0"
conf ""
check "wardd loads it with the defaults (--test)" \
    sh -c "'$wardd' --test --config '$tmp/wardd.conf.lua' >'$tmp/wardd.log' 2>&1"
check "and it reports the quirk hooks it loaded" grep -q "5 vendor quirk hooks" "$tmp/wardd.log"
conf ", maxConcurrentOps = 21"
check "maxConcurrentOps 21 is refused" \
    sh -c "! '$wardd' --test --config '$tmp/wardd.conf.lua' >'$tmp/wardd.log' 2>&1"
check "with a reason" grep -q "maxConcurrentOps must be between 1 and 20" "$tmp/wardd.log"
conf ", maxConcurrentReads = 1025"
check "maxConcurrentReads 1025 is refused" \
    sh -c "! '$wardd' --test --config '$tmp/wardd.conf.lua' >'$tmp/wardd.log' 2>&1"
check "with a reason" grep -q "maxConcurrentReads must be between 1 and 1024" "$tmp/wardd.log"
printf 'return {quirks = {{name = "x"}}}\n' >"$tmp/bad.lua"
printf 'policy_dir = "%s/policies"\nplugin "redfish" { path = "%s", quirks = "%s" }\n' \
    "$WARD_SRCDIR" "$so" "$tmp/bad.lua" >"$tmp/wardd.conf.lua"
check "a broken quirks file stops the start with its reason" \
    sh -c "! '$wardd' --test --config '$tmp/wardd.conf.lua' && grep -q 'quirks\[1\] has neither' '$tmp/out'"
check "the settings reference is generated from the config map" \
    sh -c "'$wardd' --describe-plugin 'redfish=$so' | grep -q 'bmcCooldownPeriod'"
