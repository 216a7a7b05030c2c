#!/usr/bin/env bash
# Prints the interpreter of a virtual environment holding the real MLRun client (mlrun==1.12.1),
# creating it first when missing. The environment lives in a cache folder outside the clone
# (BATON_CACHE_DIR, else ~/.cache/baton), so CI and developers install it once; a half-made one
# (an install that was interrupted) is rebuilt. The interpreter is BATON_MLRUN_PYTHON, else
# python3.11, else python3. Concurrent callers wait for one another.
set -euo pipefail

version=1.12.1
cache="${BATON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/baton}"
venv="$cache/mlrun-$version-venv"
mkdir -p "$cache"

exec 9>"$cache/mlrun-venv.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
    echo "installing mlrun==$version into $venv (about half a minute)" >&2
    # mlrun 1.12.1 requires Python 3.11 exactly.
    python="${BATON_MLRUN_PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
    if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        echo "mlrun==$version needs Python 3.11, and ${python:-python3} is not; set BATON_MLRUN_PYTHON to a python3.11" >&2
        exit 1
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "mlrun==$version" >&2
    touch "$venv/.complete"
fi
echo "$venv/bin/python"
