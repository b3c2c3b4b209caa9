;; On every message whose payload starts with "b": emits one record of 2001 bytes (topic "x",
;; a 2000-byte payload of "a"); forwards the rest. Its 4 KiB output area holds that easily.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\40\00\00\00\c0\ef\00\00\00\f0\00\00\00\10\00\00")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_on_message") (param $topic_len i32) (param $payload_len i32) (result i32)
    (if (i32.and
          (i32.gt_u (local.get $payload_len) (i32.const 0))
          (i32.eq (i32.load8_u (i32.add (i32.const 64) (local.get $topic_len)))
                  (i32.const 0x62)))
      (then
        (i32.store (i32.const 61440) (i32.const 2009))   ;; used: 8 + 1 + 2000
        (i32.store (i32.const 61444) (i32.const 1))      ;; topic_len
        (i32.store (i32.const 61448) (i32.const 2000))   ;; payload_len
        (i32.store8 (i32.const 61452) (i32.const 0x78))  ;; "x"
        (memory.fill (i32.const 61453) (i32.const 0x61) (i32.const 2000))
        (return (i32.const 2))))
    (i32.const 1)))
