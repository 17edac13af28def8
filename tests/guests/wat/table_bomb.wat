;; Hostile: grows a table until refused, then traps. A WASI command (has
;; `_start`) so it runs as a core module through WASI preview 1.
(module
  (table $t 1 funcref)
  (func (export "_start")
    (loop $grow
      ;; table.grow returns -1 once the host refuses.
      (if (i32.eq (table.grow $t (ref.null func) (i32.const 10000)) (i32.const -1))
        (then unreachable))
      (br $grow)))
  (memory (export "memory") 1))
