#!/usr/bin/env bash
# Prints the interpreter of a virtual environment holding the KFP SDK and its IR protobufs
# (kfp==2.17.3, kfp-pipeline-spec==2.17.3), creating it first when missing. It lives in a cache
# folder outside the clone (BATON_CACHE_DIR, else ~/.cache/baton), so CI and developers install it
# once; a half-made one (an interrupted install) is rebuilt. The interpreter is
# BATON_KFP_PYTHON, else python3.11, else python3. Concurrent callers wait for one another.
set -euo pipefail

version=2.17.3
cache="${BATON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/baton}"
venv="$cache/kfp-$version-venv"
mkdir -p "$cache"

exec 9>"$cache/kfp-venv.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
    echo "installing kfp==$version into $venv (about half a minute)" >&2
    python="${BATON_KFP_PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
    if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))'; then
        echo "kfp==$version needs Python 3.9 or newer, and ${python:-python3} is not; set BATON_KFP_PYTHON" >&2
        exit 1
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    # kfp-pipeline-spec imports google/rpc/status.proto without declaring
    # googleapis-common-protos, so it is named here.
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kfp==$version" "kfp-pipeline-spec==$version" googleapis-common-protos PyYAML >&2
    touch "$venv/.complete"
fi
echo "$venv/bin/python"
