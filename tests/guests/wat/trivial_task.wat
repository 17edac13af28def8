;; The smallest Cairn task: exports `run: func() -> result<_, failure>` and
;; imports nothing. Its result is read from linear memory at offset 16, which
;; is zero: `ok`. Used by the benchmark as the "trivial component".
(component
  (type $failure-def (variant (case "transient" string) (case "permanent" string)))
  (export $failure "failure" (type $failure-def))
  (core module $m
    (memory (export "memory") 1)
    (func (export "run") (result i32) (i32.const 16)))
  (core instance $i (instantiate $m))
  (func $run (result (result (error $failure)))
    (canon lift (core func $i "run") (memory (core memory $i "memory"))))
  (export "run" (func $run)))
