#!/bin/sh
# The demo: build the hello task for wasm32-wasip2 and run it in Cairn's
# sandbox. Needs only rustup and cargo; installs the wasm targets itself.
set -eu
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 wasm32-wasip1

echo "==> building the hello task (a Cairn task written with the guest SDK)"
cargo build --release --target wasm32-wasip2 -p hello

echo "==> building cairn and running the task in the sandbox"
cargo build -p cairn
cairn=target/debug/cairn
wasm=target/wasm32-wasip2/release/hello.wasm
rm -rf out/hello
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
