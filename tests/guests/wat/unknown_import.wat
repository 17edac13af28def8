;; A task that imports an interface the host does not serve
;; (`acme:db/query`): loading it must fail, naming that import.
(component
  (import "acme:db/query@1.0.0" (instance $q (export "get" (func (result u32)))))
  (type $failure-def (variant (case "transient" string) (case "permanent" string)))
  (export $failure "failure" (type $failure-def))
  (core module $m
    (memory (export "memory") 1)
    (func (export "run") (result i32) (i32.const 16)))
  (core instance $i (instantiate $m))
  (func $run (result (result (error $failure)))
    (canon lift (core func $i "run") (memory (core memory $i "memory"))))
  (export "run" (func $run)))
