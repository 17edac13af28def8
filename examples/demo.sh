#!/bin/sh
# The demo: the ETL example end to end. Builds Cairn and the example's tasks,
# shows the policy decisions, runs the pipeline (an orders export with
# customers' personal data in, a report that identifies no one out), shows a
# variant that would send personal data to the report refused by policy,
# and verifies the signed audit trail offline — the log, an auditor's bundle,
# and a tampered copy that must fail. Needs only rustup and cargo; installs
# the wasm target itself. Everything it writes goes to out/demo/.
set -eu
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "installing the wasm targets and building cairn"
# The same build as the README's test command (`cargo test --workspace`),
# so that the tests afterwards compile nothing more: `cargo build -p cairn`
# alone would resolve other features and build wasmtime a second time for
# the tests. The first time this compiles wasmtime and Cedar, about 15
# minutes on 2 cores; after that, seconds.
rustup target add wasm32-wasip2 wasm32-wasip1
if [ ! -x target/debug/cairn ]; then
    echo "first build: about 15 minutes on 2 cores (wasmtime, Cedar, the test guests); later runs take seconds"
fi
cargo test --workspace --no-run
cairn=target/debug/cairn
state=out/demo/state
rm -rf out/demo
mkdir -p out/demo

step "building the ETL example's tasks (the build commands in examples/etl/workflow.toml)"
"$cairn" build examples/etl

step "the pipeline, as Mermaid"
"$cairn" graph examples/etl --format mermaid

step "what alice's run would do, and which policy allows each step"
"$cairn" plan examples/etl --as alice

step "the run: each task in its own sandbox, every event in the signed audit log"
"$cairn" run examples/etl --as alice --state-dir "$state" --json >out/demo/run.json
report=$(sed -n 's/.*"path": "\(.*\)".*/\1/p' out/demo/run.json | tail -n 1)
cp "$report" out/demo/report.md
echo "the report (out/demo/report.md), first lines:"
head -n 20 out/demo/report.md

step "a variant that also feeds the raw customers to the report is refused (exit 3), naming the rule"
if "$cairn" plan examples/etl/leaky-report.toml --as alice; then
    echo "the pii policy was not enforced" >&2
    exit 1
fi
echo "(refused, as it should be)"

step "so is a run by someone outside the data team"
if "$cairn" run examples/etl --as mallory --state-dir "$state"; then
    echo "the run policy was not enforced" >&2
    exit 1
fi
echo "(refused, and the refusal is in the audit log)"

step "the audit trail, verified offline with only the public key"
"$cairn" audit verify "$state" --key "$state/keys/audit.pub"

step "a bundle of the run for auditors, verified on its own"
run=$(sed -n 's/^  "run": "\(.*\)",$/\1/p' out/demo/run.json)
"$cairn" audit export "$run" --state-dir "$state" --out out/demo/bundle
"$cairn" audit verify out/demo/bundle --key "$state/keys/audit.pub"

step "a copy of the log with one decision changed from deny to allow fails verification"
mkdir -p out/demo/tampered/audit
awk '!done && sub(/"decision":"deny"/, "\"decision\":\"allow\"") { done = 1 } { print }' \
    "$state/audit/log.jsonl" >out/demo/tampered/audit/log.jsonl
cp "$state/audit/checkpoint" out/demo/tampered/audit/
if "$cairn" audit verify out/demo/tampered --key "$state/keys/audit.pub"; then
    echo "tampering was not detected" >&2
    exit 1
fi
echo "(tampering detected, as it should be)"

step "done: the report is out/demo/report.md, the auditor's bundle out/demo/bundle"
