#!/usr/bin/env bash
# Prints the path of `moto_server` (moto's S3 protocol server, from PyPI) in a virtual
# environment, creating it first when missing. The environment lives in a cache folder outside
# the clone (BATON_CACHE_DIR, else ~/.cache/baton), so CI and developers install it once; a
# half-made one (an install that was interrupted) is rebuilt. Concurrent callers wait for one
# another. The S3 tests (tests/s3_store.rs) and benches/s3_pull.rs start it on a loopback port.
set -euo pipefail

version=5.2.5
name="moto-$version-venv"
cache="${BATON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/baton}"
venv="$cache/$name"
mkdir -p "$cache"

exec 9>"$cache/moto-venv.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
    echo "installing moto[server]==$version into $venv" >&2
    python="$(command -v python3 || true)"
    if [ -z "$python" ]; then
        echo "moto needs a python3 interpreter, and none is on PATH" >&2
        exit 1
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$version" >&2
    touch "$venv/.complete"
fi
echo "$venv/bin/moto_server"
