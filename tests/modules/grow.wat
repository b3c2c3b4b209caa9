;; On every message whose payload starts with "b": grows its memory one page at a time, filling
;; each new page so that it really takes the RAM, until memory.grow fails; then traps.
;; Forwards the rest.
(module
  (memory (export "memory") 1)
  (data (i32.const 0) "\40\00\00\00\c0\ef\00\00\00\f0\00\00\00\10\00\00")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_on_message") (param $topic_len i32) (param $payload_len i32) (result i32)
    (local $old i32)
    (if (i32.and
          (i32.gt_u (local.get $payload_len) (i32.const 0))
          (i32.eq (i32.load8_u (i32.add (i32.const 64) (local.get $topic_len)))
                  (i32.const 0x62)))
      (then
        (loop $more
          (local.set $old (memory.grow (i32.const 1)))
          (if (i32.eq (local.get $old) (i32.const -1)) (then unreachable))
          (memory.fill (i32.mul (local.get $old) (i32.const 65536)) (i32.const 0x61)
                       (i32.const 65536))
          (br $more))))
    (i32.const 1)))
