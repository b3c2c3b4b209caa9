;; Burns CPU on every message (a countdown loop of 12,000,000 rounds, about 10 ms) and
;; then forwards it unchanged: slow, but inside any generous budget.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\40\00\00\00\c0\ef\00\00\00\f0\00\00\00\10\00\00")
  (global $sink (mut i32) (i32.const 0))
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_on_message") (param $topic_len i32) (param $payload_len i32) (result i32)
    (local $n i32)
    (local.set $n (i32.const 12000000))
    (loop $burn
      (global.set $sink (i32.add (global.get $sink) (local.get $n)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $burn (local.get $n)))
    (i32.const 1)))
