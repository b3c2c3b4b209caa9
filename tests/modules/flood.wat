;; On every message whose payload starts with "b": emits 100 records (topic "x", empty payload,
;; 9 bytes each) in one call; forwards the rest.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\40\00\00\00\c0\ef\00\00\00\f0\00\00\00\10\00\00")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_on_message") (param $topic_len i32) (param $payload_len i32) (result i32)
    (local $i i32)
    (local $at i32)
    (if (i32.and
          (i32.gt_u (local.get $payload_len) (i32.const 0))
          (i32.eq (i32.load8_u (i32.add (i32.const 64) (local.get $topic_len)))
                  (i32.const 0x62)))
      (then
        ;; records start after `used` at 61440
        (local.set $at (i32.const 61444))
        (loop $record
          (i32.store (local.get $at) (i32.const 1))                      ;; topic_len
          (i32.store (i32.add (local.get $at) (i32.const 4)) (i32.const 0))  ;; payload_len
          (i32.store8 (i32.add (local.get $at) (i32.const 8)) (i32.const 0x78))  ;; "x"
          (local.set $at (i32.add (local.get $at) (i32.const 9)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br_if $record (i32.lt_u (local.get $i) (i32.const 100))))
        (i32.store (i32.const 61440) (i32.const 900))                    ;; used: 100 * 9
        (return (i32.const 2))))
    (i32.const 1)))
