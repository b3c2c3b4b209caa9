;; {{name}}: republishes every message under a topic prefix.
;;
;; params: prefix (default "copy/", at most 192 bytes, no '+' or '#')
;; A message on sensors/t1 goes on as the same payload on copy/sensors/t1.
;;
;; A filter written by hand against the filter ABI v1 (docs/filter-abi.md), with nothing but
;; WebAssembly 1.0 instructions. Everything the ABI asks for is here; replace $on_message's
;; body with your own logic. Build: wat2wasm template.wat -o filter.wasm
(module
  ;; The only import the host offers: log(level, ptr, len); levels 0 debug .. 3 error.
  (import "edged" "log" (func $log (param i32 i32 i32)))

  ;; Memory map (2 pages = 128 KiB, fixed: the module never grows its memory)
  ;;        0  buffer descriptor, 16 bytes (read by the host after edged_buffers)
  ;;       64  the prefix, up to 192 bytes (params are overwritten by the next message,
  ;;           so init copies what it keeps)
  ;;      256  constant text (param names, log messages)
  ;;     1024  input area, 64512 bytes: topic, then payload
  ;;    65536  output area, 65536 bytes: `used`, then records
  (memory (export "memory") 2 2)

  ;; in_ptr = 1024, in_cap = 64512, out_ptr = 65536, out_cap = 65536 (little-endian u32s)
  (data (i32.const 0) "\00\04\00\00" "\00\fc\00\00" "\00\00\01\00" "\00\00\01\00")
  (data (i32.const 64) "copy/")
  (data (i32.const 256) "prefix")                                               ;; 6 bytes
  (data (i32.const 272) "prefix: must be topic text of at most 192 bytes, without '+' or '#'")

  (global $IN i32 (i32.const 1024))
  (global $OUT i32 (i32.const 65536))
  (global $OUT_CAP i32 (i32.const 65536))
  (global $PREFIX i32 (i32.const 64))
  (global $PREFIX_CAP i32 (i32.const 192))
  (global $prefix_len (mut i32) (i32.const 5))

  ;; ---- required exports ---------------------------------------------------------------

  ;; The ABI version this module was written for; edged refuses any other.
  (func (export "edged_abi_version") (result i32) (i32.const 1))

  ;; The address of the buffer descriptor.
  (func (export "edged_buffers") (result i32) (i32.const 0))

  ;; Called once per message with the topic (topic_len bytes at $IN) and the payload right
  ;; after it. Returns 0 DROP, 1 FORWARD, or 2 EMIT (the output area holds the messages).
  (func $on_message (export "edged_on_message") (param $topic_len i32) (param $payload_len i32)
    (result i32)
    (local $rec i32)
    (local $new_topic_len i32)
    (local.set $new_topic_len (i32.add (global.get $prefix_len) (local.get $topic_len)))
    ;; One record: topic_len, payload_len, topic bytes, payload bytes. The input area is
    ;; smaller than the output area minus the largest prefix, so the record always fits.
    (local.set $rec (i32.add (global.get $OUT) (i32.const 4)))
    (i32.store (local.get $rec) (local.get $new_topic_len))
    (i32.store offset=4 (local.get $rec) (local.get $payload_len))
    (call $copy (i32.add (local.get $rec) (i32.const 8))
      (global.get $PREFIX) (global.get $prefix_len))
    (call $copy (i32.add (i32.add (local.get $rec) (i32.const 8)) (global.get $prefix_len))
      (global.get $IN) (local.get $topic_len))
    (call $copy (i32.add (i32.add (local.get $rec) (i32.const 8)) (local.get $new_topic_len))
      (i32.add (global.get $IN) (local.get $topic_len)) (local.get $payload_len))
    ;; `used`: the bytes of all records, not counting these 4.
    (i32.store (global.get $OUT)
      (i32.add (i32.const 8) (i32.add (local.get $new_topic_len) (local.get $payload_len))))
    (i32.const 2))

  ;; ---- optional exports ---------------------------------------------------------------

  ;; Called once after instantiation with the params at $IN: `key NUL value NUL` pairs,
  ;; params_len bytes in all. 0 means ready; anything else refuses the module.
  (func (export "edged_init") (param $len i32) (result i32)
    (local $pos i32) (local $key i32) (local $key_len i32) (local $val i32) (local $val_len i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $pos) (local.get $len)))
        ;; key: from $pos to the next NUL
        (local.set $key (i32.add (global.get $IN) (local.get $pos)))
        (local.set $key_len (call $strlen (local.get $key)))
        ;; value: after that NUL, to the next one
        (local.set $val (i32.add (i32.add (local.get $key) (local.get $key_len)) (i32.const 1)))
        (local.set $val_len (call $strlen (local.get $val)))
        (local.set $pos (i32.add (local.get $pos)
          (i32.add (i32.add (local.get $key_len) (local.get $val_len)) (i32.const 2))))
        (if (call $equal (local.get $key) (local.get $key_len) (i32.const 256) (i32.const 6))
          (then
            (if (i32.or (i32.gt_u (local.get $val_len) (global.get $PREFIX_CAP))
                        (call $has_wildcard (local.get $val) (local.get $val_len)))
              (then
                (call $log (i32.const 3) (i32.const 272) (i32.const 67))
                (return (i32.const 1))))
            (call $copy (global.get $PREFIX) (local.get $val) (local.get $val_len))
            (global.set $prefix_len (local.get $val_len))))
        (br $next)))
    (i32.const 0))

  ;; Not exported here: edged_on_tick (param i64 now_ms) (result i32), called every
  ;; tick_interval seconds when a pipeline asks for ticks; returns 0 or 2 (EMIT). Export it
  ;; only when the filter uses it: configuring tick_interval for a module without it is a
  ;; config error. examples/count.wat has one.

  ;; ---- helpers ------------------------------------------------------------------------

  ;; Copies $n bytes from $src to $dst, one at a time (memory.copy is not in WebAssembly 1.0).
  (func $copy (param $dst i32) (param $src i32) (param $n i32)
    (block $done
      (loop $byte
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store8 (local.get $dst) (i32.load8_u (local.get $src)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $byte))))

  ;; Length of the NUL-terminated text at $p. The host writes well-formed params, and the
  ;; 64 KiB after the input area are all inside memory, so the scan always stops.
  (func $strlen (param $p i32) (result i32)
    (local $n i32)
    (block $done
      (loop $byte
        (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $byte)))
    (local.get $n))

  ;; 1 if the $a_len bytes at $a equal the $b_len bytes at $b.
  (func $equal (param $a i32) (param $a_len i32) (param $b i32) (param $b_len i32) (result i32)
    (if (i32.ne (local.get $a_len) (local.get $b_len)) (then (return (i32.const 0))))
    (block $done
      (loop $byte
        (br_if $done (i32.eqz (local.get $a_len)))
        (if (i32.ne (i32.load8_u (local.get $a)) (i32.load8_u (local.get $b)))
          (then (return (i32.const 0))))
        (local.set $a (i32.add (local.get $a) (i32.const 1)))
        (local.set $b (i32.add (local.get $b) (i32.const 1)))
        (local.set $a_len (i32.sub (local.get $a_len) (i32.const 1)))
        (br $byte)))
    (i32.const 1))

  ;; 1 if the bytes contain '+' or '#', which the host refuses in an emitted topic.
  (func $has_wildcard (param $p i32) (param $n i32) (result i32)
    (local $c i32)
    (block $done
      (loop $byte
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $c (i32.load8_u (local.get $p)))
        (if (i32.or (i32.eq (local.get $c) (i32.const 43)) (i32.eq (local.get $c) (i32.const 35)))
          (then (return (i32.const 1))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $byte)))
    (i32.const 0)))
