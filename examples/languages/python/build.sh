#!/bin/sh
# Builds ingest.py into the component OUT, as `cairn build` does for the
# languages example (`build = "sh python/build.sh OUT"` in workflow.toml):
# componentize-py puts CPython, its standard library, the Cairn Python SDK
# (guest-sdk/python) and ingest.py into one component of the world
# `cairn:python/task` (the Cairn task world plus wasi:http). About 20 s;
# the component is about 19 MB.
#
# Needs componentize-py 0.25.1, on PATH or where .ci/run installs it:
#   python3 -m venv target/toolchains/venv
#   target/toolchains/venv/bin/pip install componentize-py==0.25.1
set -eu
if [ $# -ne 1 ]; then
    echo "usage: sh python/build.sh OUT.wasm" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
mkdir -p "$(dirname "$1")"
out="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"

tool=$(command -v componentize-py || true)
[ -n "$tool" ] || [ ! -x "$root/target/toolchains/venv/bin/componentize-py" ] ||
    tool="$root/target/toolchains/venv/bin/componentize-py"
if [ -z "$tool" ]; then
    echo "python/build.sh: componentize-py not found. Install it (from the repository's root):" >&2
    echo "  python3 -m venv target/toolchains/venv" >&2
    echo "  target/toolchains/venv/bin/pip install componentize-py==0.25.1" >&2
    exit 1
fi

cd "$root"
# No __pycache__ beside the sources.
export PYTHONDONTWRITEBYTECODE=1
exec "$tool" -d wit -d guest-sdk/python/wit -w cairn:python/task \
    componentize -p guest-sdk/python -p examples/languages/python ingest -o "$out"
