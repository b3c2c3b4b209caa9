;; On every tick: emits one record on topic "tick" whose payload is the tick's number as four
;; little-endian bytes (0, 1, 2, ...); drops every message. For delivery tests: outputs that no
;; input stands behind.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\40\00\00\00\c0\ef\00\00\00\f0\00\00\00\10\00\00")
  (global $count (mut i32) (i32.const 0))
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_on_message") (param i32 i32) (result i32) (i32.const 0))
  (func (export "edged_on_tick") (param $now i64) (result i32)
    (i32.store (i32.const 61444) (i32.const 4))                     ;; topic_len
    (i32.store (i32.const 61448) (i32.const 4))                     ;; payload_len
    (i32.store (i32.const 61452) (i32.const 0x6b636974))            ;; "tick"
    (i32.store (i32.const 61456) (global.get $count))               ;; the number
    (i32.store (i32.const 61440) (i32.const 16))                    ;; used
    (global.set $count (i32.add (global.get $count) (i32.const 1)))
    (i32.const 2)))
