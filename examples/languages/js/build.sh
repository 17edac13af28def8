#!/bin/sh
# Builds profile.js into the component OUT, as `cairn build` does for the
# languages example (`build = "sh js/build.sh OUT"` in workflow.toml):
# componentize-js puts the StarlingMonkey engine (SpiderMonkey), the Cairn
# JavaScript SDK (guest-sdk/js) and profile.js into one component of the
# `cairn:task` world. About 10 s; the component is about 12 MB.
#
# componentize-js resolves relative imports inside the folder it runs in,
# so it runs from the repository's root, where profile.js's import of
# ../../../guest-sdk/js/cairn.js stays inside.
#
# Needs componentize-js 0.23.0, on PATH or where .ci/run installs it:
#   npm install --prefix target/toolchains/node @bytecodealliance/componentize-js@0.23.0
set -eu
if [ $# -ne 1 ]; then
    echo "usage: sh js/build.sh OUT.wasm" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
mkdir -p "$(dirname "$1")"
out="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"

tool=$(command -v componentize-js || true)
[ -n "$tool" ] || [ ! -x "$root/target/toolchains/node/node_modules/.bin/componentize-js" ] ||
    tool="$root/target/toolchains/node/node_modules/.bin/componentize-js"
if [ -z "$tool" ]; then
    echo "js/build.sh: componentize-js not found. Install it (from the repository's root):" >&2
    echo "  npm install --prefix target/toolchains/node @bytecodealliance/componentize-js@0.23.0" >&2
    exit 1
fi

cd "$root"
exec "$tool" examples/languages/js/profile.js -w wit -n task -o "$out"
