#!/usr/bin/env bash
# Prints the interpreter of a virtual environment holding the real MLRun client (mlrun==1.12.1),
# creating it first when missing. The environment lives in a cache folder outside the clone
# (BATON_CACHE_DIR, else ~/.cache/baton), so CI and developers install it once; a half-made one
# (an install that was interrupted) is rebuilt. The interpreter is BATON_MLRUN_PYTHON, else
# python3.11, else python3. Concurrent callers wait for one another.
#
# `venv.sh kfp18` makes another one with `mlrun[kfp18]` (the real `kfp` 1.8, which MLRun's own
# `local` workflow engine needs to import a pipeline's `from kfp import dsl`); benches/mlrun_remote
# uses it. With BATON_MLRUN_VENV_NO_INSTALL=1 a missing venv is an error (exit 3), not installed.
set -euo pipefail

version=1.12.1
extra="${1:-}"
case "$extra" in
    "") name="mlrun-$version-venv" requirement="mlrun==$version" ;;
    kfp18) name="mlrun-$version-kfp18-venv" requirement="mlrun[kfp18]==$version" ;;
    *) echo "unknown flavour \`$extra\` (known: kfp18)" >&2; exit 2 ;;
esac
cache="${BATON_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/baton}"
venv="$cache/$name"
mkdir -p "$cache"

exec 9>"$cache/mlrun-venv.lock"
flock 9
if [ ! -f "$venv/.complete" ]; then
    if [ -n "${BATON_MLRUN_VENV_NO_INSTALL:-}" ]; then
        echo "no $venv yet (BATON_MLRUN_VENV_NO_INSTALL is set)" >&2
        exit 3
    fi
    echo "installing $requirement into $venv (about half a minute)" >&2
    # mlrun 1.12.1 requires Python 3.11 exactly.
    python="${BATON_MLRUN_PYTHON:-$(command -v python3.11 || command -v python3 || true)}"
    if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        echo "mlrun==$version needs Python 3.11, and ${python:-python3} is not; set BATON_MLRUN_PYTHON to a python3.11" >&2
        exit 1
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement" >&2
    touch "$venv/.complete"
fi
echo "$venv/bin/python"
