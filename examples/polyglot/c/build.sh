#!/bin/sh
# Builds count.c into the wasm32-wasip2 component OUT, as `cairn build` does
# for the polyglot example (`build = "sh c/build.sh OUT"` in workflow.toml):
#
#   1. clang compiles and links it for wasm32-wasi against a WASI libc;
#   2. the linker is the Rust toolchain's `wasm-component-ld`, which runs
#      wasm-ld and turns the module into a component, adapting its WASI
#      preview 1 calls to preview 2 (the adapter is built into it).
#
# Needs clang, wasm-ld and a WASI sysroot: on Debian or Ubuntu
#   sudo apt-get install clang lld wasi-libc libclang-rt-dev-wasm32
# or a wasi-sdk (https://github.com/WebAssembly/wasi-sdk): set WASI_SDK_PATH.
set -eu
if [ $# -ne 1 ]; then
    echo "usage: sh c/build.sh OUT.wasm" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
out=$1
mkdir -p "$(dirname "$out")"

if [ -n "${WASI_SDK_PATH:-}" ]; then
    cc="$WASI_SDK_PATH/bin/clang"
    sysroot="--sysroot=$WASI_SDK_PATH/share/wasi-sysroot"
else
    cc=${CC_WASM:-clang}
    sysroot=""
fi
host=$(rustc -vV | sed -n 's/^host: //p')
linker="$(rustc --print sysroot)/lib/rustlib/$host/bin/wasm-component-ld"

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "c/build.sh: \`$cc\` not found. Install clang for WebAssembly:" >&2
    echo "  Debian/Ubuntu: sudo apt-get install clang lld wasi-libc libclang-rt-dev-wasm32" >&2
    echo "  elsewhere: a wasi-sdk, with WASI_SDK_PATH set to it" >&2
    exit 1
fi
if [ ! -x "$linker" ]; then
    echo "c/build.sh: the Rust toolchain has no wasm-component-ld at $linker (Rust 1.82 or later has it)" >&2
    exit 1
fi

# shellcheck disable=SC2086 # $sysroot is one optional word
"$cc" --target=wasm32-wasi $sysroot -O2 -Wall -Wextra -Werror \
    -fuse-ld="$linker" -Wl,--strip-all \
    -o "$out" "$here/count.c" || {
    echo "c/build.sh: compiling count.c failed; if clang could not find stdio.h, crt1-command.o or" >&2
    echo "  libclang_rt.builtins-wasm32.a, install a WASI sysroot:" >&2
    echo "  Debian/Ubuntu: sudo apt-get install clang lld wasi-libc libclang-rt-dev-wasm32" >&2
    exit 1
}
