#!/bin/sh
# The demo: build the hello task for wasm32-wasip2, run it in Cairn's
# sandbox, then run the hello workflow under its Cedar policies and verify
# its signed audit trail. Needs only rustup and cargo; installs the wasm
# targets itself.
set -eu
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 wasm32-wasip1

echo "==> building the hello task (a Cairn task written with the guest SDK)"
cargo build --release --target wasm32-wasip2 -p hello

echo "==> building cairn and running the task in the sandbox"
cargo build -p cairn
cairn=target/debug/cairn
wasm=target/wasm32-wasip2/release/hello.wasm
rm -rf out/hello out/bundle
"$cairn" exec "$wasm" --input name=examples/hello/name.txt --output-dir out/hello

echo "==> the task's output, out/hello/greeting:"
cat out/hello/greeting

echo "==> the same task pinned to its sha256, with JSON for machines:"
digest=$(sha256sum "$wasm" | cut -d' ' -f1)
"$cairn" exec "$wasm" --sha256 "$digest" --input name=examples/hello/name.txt --output-dir out/hello --json

echo "==> and any other bytes than the pinned ones are refused before they are compiled:"
if "$cairn" exec "$wasm" --sha256 "$(printf '%064d' 0)" --output-dir out/hello; then
    echo "the pin was not enforced" >&2
    exit 1
fi
echo "(refused, as it should be)"

echo "==> the hello workflow, run as a member of staff: authorized by its Cedar policies, audited"
state=out/state
rm -rf "$state"
"$cairn" run examples/hello --as demo --state-dir "$state"

echo "==> the same workflow started by someone the policies do not know is refused (exit 3)"
if "$cairn" run examples/hello --as eve --state-dir "$state"; then
    echo "the policy was not enforced" >&2
    exit 1
fi

echo "==> the audit trail, verified offline with only the public key"
"$cairn" audit show "$state"
"$cairn" audit verify "$state" --key "$state/keys/audit.pub"

echo "==> a bundle of the first run for auditors, verified on its own"
run=$("$cairn" audit show "$state" --kind run-started --json | head -n 1 | sed 's/.*"run":"\([^"]*\)".*/\1/')
"$cairn" audit export "$run" --state-dir "$state" --out out/bundle
"$cairn" audit verify out/bundle --key "$state/keys/audit.pub"
