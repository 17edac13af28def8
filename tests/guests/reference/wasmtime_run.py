"""Run a WASI program the way `wasmtime run` does, as a reference for Cairn.

Usage: wasmtime_run.py PROGRAM.wasm [--dir HOST::GUEST[:ro]]... [--env K=V]...
                       [--stdout FILE] -- [ARGS...]

Uses wasmtime's own WASI implementation through the `wasmtime` package from
PyPI (the C API of the same wasmtime Cairn embeds), so a program run here
and under `cairn exec` with the same grants can be compared line by line.
A core module runs through WASI preview 1 (`_start`), a component through
WASI preview 2 (`wasi:cli/run`). Prints the program's stdout and exits
with its exit status; a trap exits 125 with the trap on stderr.
"""

import sys

import wasmtime
import wasmtime.component as component


def main(argv: list[str]) -> int:
    if "--" in argv:
        cut = argv.index("--")
        flags, args = argv[:cut], argv[cut + 1 :]
    else:
        flags, args = argv, []
    program, flags = flags[0], flags[1:]
    dirs: list[tuple[str, str, bool]] = []
    env: list[tuple[str, str]] = []
    stdout = None
    i = 0
    while i < len(flags):
        flag, value = flags[i], flags[i + 1]
        i += 2
        if flag == "--dir":
            host, guest = value.split("::", 1)
            mutable = not guest.endswith(":ro")
            dirs.append((host, guest.removesuffix(":ro"), mutable))
        elif flag == "--env":
            key, val = value.split("=", 1)
            env.append((key, val))
        elif flag == "--stdout":
            stdout = value
        else:
            raise SystemExit(f"unknown flag {flag}")

    config = wasmtime.WasiConfig()
    name = program.rsplit("/", 1)[-1].removesuffix(".wasm")
    config.argv = [name, *args]
    config.env = env
    for host, guest, mutable in dirs:
        config.preopen_dir(host, guest, mutable)
    if stdout:
        config.stdout_file = stdout
    else:
        config.inherit_stdout()
    config.inherit_stderr()

    engine_config = wasmtime.Config()
    engine_config.wasm_component_model = True
    engine = wasmtime.Engine(engine_config)
    store = wasmtime.Store(engine)
    store.set_wasi(config)
    data = open(program, "rb").read()
    try:
        if data[4:8] == b"\x01\x00\x00\x00":
            module = wasmtime.Module(engine, data)
            linker = wasmtime.Linker(engine)
            linker.define_wasi()
            instance = linker.instantiate(store, module)
            instance.exports(store)["_start"](store)
            return 0
        comp = component.Component(engine, data)
        linker = component.Linker(engine)
        linker.add_wasip2()
        instance = linker.instantiate(store, comp)
        run_iface = next(
            n for n in comp.type.exports(engine) if n.startswith("wasi:cli/run@0.2")
        )
        index = instance.get_export_index(store, "run", instance.get_export_index(store, run_iface))
        func = instance.get_func(store, index)
        result = func(store)
        return 0 if not isinstance(result, wasmtime.component.Variant) and result is None else 1
    except wasmtime.ExitTrap as exit:
        return exit.code
    except wasmtime.Trap as trap:
        print(f"trap: {trap}", file=sys.stderr)
        return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
