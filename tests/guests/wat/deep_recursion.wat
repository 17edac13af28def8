;; Hostile: recursion with no shadow stack in linear memory, so only the
;; engine's wasm stack limit can stop it. A WASI command (core module).
(module
  (func $down (param i64) (result i64)
    (i64.add (call $down (i64.add (local.get 0) (i64.const 1))) (local.get 0)))
  (func (export "_start")
    (drop (call $down (i64.const 0))))
  (memory (export "memory") 1))
