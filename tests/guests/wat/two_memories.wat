;; A command component whose `run` passes a string from its own memory to a
;; nested component's: wasmtime's adapter between the two memories needs
;; multi-memory (as jco's QuickJS output does). It must load; running it traps
;; (wasmtime refuses to enter the nested instance), a guest outcome like any other.
(component
  (component $inner
    (core module $callee
      (memory (export "mem") 1)
      (func (export "realloc") (param i32 i32 i32 i32) (result i32) i32.const 64)
      (func (export "take") (param i32 i32)))
    (core instance $callee (instantiate $callee))
    (func (export "take") (param "s" string)
      (canon lift (core func $callee "take")
        (memory (core memory $callee "mem"))
        (realloc (core func $callee "realloc")))))
  (instance $inner (instantiate $inner))
  (alias export $inner "take" (func $take))

  (core module $memory (memory (export "mem") 1) (data (i32.const 0) "hello"))
  (core instance $memory (instantiate $memory))
  (core func $take_lowered (canon lower (func $take) (memory (core memory $memory "mem"))))

  (core module $caller
    (import "inner" "take" (func $take (param i32 i32)))
    (func (export "run") (result i32)
      (call $take (i32.const 0) (i32.const 5))
      i32.const 0))
  (core instance $caller
    (instantiate $caller
      (with "inner" (instance (export "take" (func $take_lowered))))))
  (func $run (result (result))
    (canon lift (core func $caller "run")))
  (instance $cli (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $cli)))
