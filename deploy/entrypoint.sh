#!/bin/sh
# Start `shadowjudge` with the given arguments after two steps that keep secrets out of the
# settings file, the image and any ConfigMap:
# 1. each file in /run/secrets (compose secrets) becomes the environment variable of its name,
#    unless that variable is set already (Kubernetes passes secrets as variables directly);
# 2. ${VARS} in the mounted settings file are filled from the environment (the ClickHouse
#    password inside store.url, which the settings cannot name by variable) and the result is
#    written where only this user reads it.
set -eu
if [ -d /run/secrets ]; then
    for file in /run/secrets/*; do
        [ -f "$file" ] || continue
        name=$(basename "$file")
        if [ -z "$(printenv "$name" || true)" ]; then
            export "$name=$(cat "$file")"
        fi
    done
fi
template="${SHADOWJUDGE_CONFIG_TEMPLATE:-/etc/shadowjudge/shadowjudge.yaml}"
rendered="${SHADOWJUDGE_CONFIG:-/tmp/shadowjudge.yaml}"
umask 077
python -c 'import os, sys; sys.stdout.write(os.path.expandvars(sys.stdin.read()))' \
    < "$template" > "$rendered"
exec shadowjudge -c "$rendered" "$@"
