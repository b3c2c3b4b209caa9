;; Forwards every message unchanged, like examples/filters/passthrough.wat, but with other bytes
;; (it counts the messages it has seen): a new version of a module whose outputs are identical.
(module
  (memory (export "memory") 1)
  ;; descriptor at 0: input area at 64 (61376 bytes), output area at 61440 (4 KiB)
  (data (i32.const 0) "\40\00\00\00\c0\ef\00\00\00\f0\00\00\00\10\00\00")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_on_message") (param i32 i32) (result i32)
    (i32.store (i32.const 16) (i32.add (i32.load (i32.const 16)) (i32.const 1)))
    (i32.const 1)))
