#!/bin/sh
# The web UI with the ETL example: builds Cairn and the example's tasks,
# records a run of the pipeline by alice and one by mallory (refused by
# policy) in out/ui/state, makes an API token for alice, and serves the
# example there until Ctrl-C. Open the address it prints and sign in with
# the token it prints: the run's graph, every policy decision behind it,
# the logs, the outputs (the one labelled pii cannot be downloaded: policy
# says so), the audit records, "verify now" and the auditor's bundle.
# Needs only rustup and cargo. Set CAIRN_UI_LISTEN to listen elsewhere
# (default 127.0.0.1:8080).
set -eu
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "installing the wasm32-wasip2 target and building cairn"
rustup target add wasm32-wasip2
cargo build -p cairn
cairn=target/debug/cairn
state=out/ui/state
listen=${CAIRN_UI_LISTEN:-127.0.0.1:8080}
rm -rf out/ui
mkdir -p out/ui

step "building the ETL example's tasks"
"$cairn" build examples/etl

step "a run of the pipeline by alice, and one by mallory that policy refuses"
"$cairn" run examples/etl --as alice --state-dir "$state" >/dev/null
"$cairn" run examples/etl --as mallory --state-dir "$state" >/dev/null 2>&1 || true

step "an API token for alice (she signs in with it)"
"$cairn" token create --user alice --state-dir "$state" >out/ui/alice.token

printf '\nOpen http://%s/ui/ and sign in with this token (also in out/ui/alice.token):\n\n  %s\n\n' \
    "$listen" "$(cat out/ui/alice.token)"
step "serving the ETL example (Ctrl-C stops)"
exec "$cairn" serve examples/etl --state-dir "$state" --listen "$listen"
