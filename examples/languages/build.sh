#!/bin/sh
# Builds the languages example's Python or JavaScript task into the
# component OUT, as `cairn build` does (`build = "sh build.sh python OUT"`
# and `"sh build.sh js OUT"` in workflow.toml):
#
#   python  componentize-py puts CPython, its standard library, the Cairn
#           Python SDK (guest-sdk/python) and python/ingest.py into one
#           component of the world `cairn:python/task` (the Cairn task world
#           plus wasi:http). About 20 s; about 19 MB.
#   js      componentize-js puts the StarlingMonkey engine (SpiderMonkey),
#           the Cairn JavaScript SDK (guest-sdk/js) and js/profile.js into
#           one component of the `cairn:task` world. About 10 s; about 12 MB.
#
# Both run from the repository's root: componentize-py reads the SDK and
# `wit/` there, and componentize-js resolves relative imports only inside
# the folder it runs in (profile.js imports ../../../guest-sdk/js/cairn.js).
#
# The tools are found on PATH or where .ci/run installs them:
#   python3 -m venv target/toolchains/venv
#   target/toolchains/venv/bin/pip install componentize-py==0.25.1
#   npm install --prefix target/toolchains/node @bytecodealliance/componentize-js@0.23.0
set -eu
if [ $# -ne 2 ] || { [ "$1" != python ] && [ "$1" != js ]; }; then
    echo "usage: sh build.sh python|js OUT.wasm" >&2
    exit 2
fi
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$(dirname "$2")"
out="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"

case $1 in
python)
    tool=componentize-py
    installed=target/toolchains/venv/bin/componentize-py
    install="python3 -m venv target/toolchains/venv && target/toolchains/venv/bin/pip install componentize-py==0.25.1"
    ;;
js)
    tool=componentize-js
    installed=target/toolchains/node/node_modules/.bin/componentize-js
    install="npm install --prefix target/toolchains/node @bytecodealliance/componentize-js@0.23.0"
    ;;
esac
if command -v "$tool" >/dev/null 2>&1; then
    tool=$(command -v "$tool")
elif [ -x "$root/$installed" ]; then
    tool="$root/$installed"
else
    echo "build.sh: $tool not found. Install it, from the repository's root:" >&2
    echo "  $install" >&2
    exit 1
fi

cd "$root"
case $1 in
python)
    # No __pycache__ beside the sources.
    export PYTHONDONTWRITEBYTECODE=1
    exec "$tool" -d wit -d guest-sdk/python/wit -w cairn:python/task \
        componentize -p guest-sdk/python -p examples/languages/python ingest -o "$out"
    ;;
js)
    exec "$tool" examples/languages/js/profile.js -w wit -n task -o "$out"
    ;;
esac
