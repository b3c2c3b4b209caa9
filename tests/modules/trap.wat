;; Traps (`unreachable`) on every message whose payload starts with "b"; forwards the rest.
;; It also proves which instance serves a message: edged_init sets a flag at 16, and a bad
;; message sets a flag at 20 before it traps. Good messages are forwarded only by an instance
;; that went through edged_init and has not seen a bad message (fresh memory), else dropped.
(module
  (memory (export "memory") 1)
  ;; descriptor at 0: input area at 64 (61376 bytes), output area at 61440 (4 KiB)
  (data (i32.const 0) "\40\00\00\00\c0\ef\00\00\00\f0\00\00\00\10\00\00")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_init") (param i32) (result i32)
    (i32.store (i32.const 16) (i32.const 1))
    (i32.const 0))
  (func (export "edged_on_message") (param $topic_len i32) (param $payload_len i32) (result i32)
    (if (i32.and
          (i32.gt_u (local.get $payload_len) (i32.const 0))
          (i32.eq (i32.load8_u (i32.add (i32.const 64) (local.get $topic_len)))
                  (i32.const 0x62)))
      (then
        (i32.store (i32.const 20) (i32.const 1))
        unreachable))
    (if (result i32) (i32.and (i32.eq (i32.load (i32.const 16)) (i32.const 1))
                              (i32.eqz (i32.load (i32.const 20))))
      (then (i32.const 1))
      (else (i32.const 0)))))
