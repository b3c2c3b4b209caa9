;; count: counts messages and says how many arrived on every tick.
;;
;; No params. Every message is dropped and counted; on a tick with at least one message since
;; the last, one message on "count" with the payload {"count":N,"ts":<now_ms>}. Configure a
;; tick_interval for it. Build: wat2wasm count.wat -o count.wasm
(module
  (import "edged" "log" (func $log (param i32 i32 i32)))

  ;; 0: descriptor; 64: "count" topic; 128: digits; 1024: input (512 bytes: this filter never
  ;; reads the message, so its input area only needs to exist); 2048: output (1 KiB).
  ;; Messages larger than the input area are dropped by the host before the call and counted
  ;; there as input_too_large, so this filter counts only messages up to 512 bytes.
  (memory (export "memory") 1 1)
  (data (i32.const 0) "\00\04\00\00" "\00\02\00\00" "\00\08\00\00" "\00\04\00\00")
  (data (i32.const 64) "count")
  (data (i32.const 80) "{\"count\":")                                           ;; 9 bytes
  (data (i32.const 96) ",\"ts\":")                                              ;; 6 bytes

  (global $OUT i32 (i32.const 2048))
  (global $count (mut i64) (i64.const 0))

  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))

  (func (export "edged_on_message") (param i32 i32) (result i32)
    (global.set $count (i64.add (global.get $count) (i64.const 1)))
    (i32.const 0))

  ;; Writes the record by hand: topic_len, payload_len, "count", then the payload.
  (func (export "edged_on_tick") (param $now i64) (result i32)
    (local $at i32)
    (if (i64.eqz (global.get $count)) (then (return (i32.const 0))))
    (local.set $at (i32.add (global.get $OUT) (i32.const 17)))    ;; used + 2 lengths + topic
    (local.set $at (call $put (local.get $at) (i32.const 80) (i32.const 9)))
    (local.set $at (call $put_int (local.get $at) (global.get $count)))
    (local.set $at (call $put (local.get $at) (i32.const 96) (i32.const 6)))
    (local.set $at (call $put_int (local.get $at) (local.get $now)))
    (i32.store8 (local.get $at) (i32.const 125))                   ;; '}'
    (local.set $at (i32.add (local.get $at) (i32.const 1)))
    (i32.store offset=4 (global.get $OUT) (i32.const 5))            ;; topic_len
    (i32.store offset=8 (global.get $OUT)                           ;; payload_len
      (i32.sub (local.get $at) (i32.add (global.get $OUT) (i32.const 17))))
    (drop (call $put (i32.add (global.get $OUT) (i32.const 12)) (i32.const 64) (i32.const 5)))
    (i32.store (global.get $OUT)                                    ;; used
      (i32.sub (local.get $at) (i32.add (global.get $OUT) (i32.const 4))))
    (global.set $count (i64.const 0))
    (i32.const 2))

  ;; Copies $n bytes from $src to $dst; returns the address after them.
  (func $put (param $dst i32) (param $src i32) (param $n i32) (result i32)
    (block $done
      (loop $byte
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store8 (local.get $dst) (i32.load8_u (local.get $src)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $byte)))
    (local.get $dst))

  ;; Writes $v (>= 0) in decimal at $dst; returns the address after it. The digits are made
  ;; backwards at 128..147, then copied in order.
  (func $put_int (param $dst i32) (param $v i64) (result i32)
    (local $p i32)
    (local.set $p (i32.const 148))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i64.store8 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
      (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
    (call $put (local.get $dst) (local.get $p) (i32.sub (i32.const 148) (local.get $p)))))
