;; threshold: turns readings above a limit into one alert message, in hand-written WAT.
;;
;; params: field (default "value"), limit (required), topic (default "alert")
;; A JSON object whose `field` is a number strictly greater than `limit` becomes one message on
;; `topic`:
;;   {"topic":"<input topic>","field":"<field>","value":<raw>,"limit":<limit>}
;; Everything else is dropped. Same behaviour, byte for byte, as examples/filters/threshold.c.
;; Build: wat2wasm threshold.wat -o threshold.wasm
(module
  ;; the one import the host offers: log(level, ptr, len), levels 0 debug .. 3 error
  (import "edged" "log" (func $log (param i32 i32 i32)))

  ;; Memory map (4 pages, the same sizes as the C SDK's defaults):
  ;;        0  buffer descriptor            16  scratch bytes for the builder
  ;;      256  powers of ten (23 doubles)  512  constant text
  ;;     2048  params copy (4096 bytes)   6144  params index (32 x 16 bytes)
  ;;    65536  input area (64 KiB)       131072  output area (64 KiB)
  ;;   196608  the alert being built (64 KiB)
  (memory (export "memory") 4)
  (global $SCRATCH i32 (i32.const 196608))

  ;; in_ptr 65536, in_cap 65536, out_ptr 131072, out_cap 65536 (little-endian)
  (data (i32.const 0) "\00\00\01\00" "\00\00\01\00" "\00\00\02\00" "\00\00\01\00")
  (global $IN i32 (i32.const 65536))
  (global $IN_CAP i32 (i32.const 65536))
  (global $OUT i32 (i32.const 131072))
  (global $OUT_CAP i32 (i32.const 65536))
  (global $TMP i32 (i32.const 16))
  (global $TMP2 i32 (i32.const 24))
  (global $PSTORE i32 (i32.const 2048))
  (global $PARAMS i32 (i32.const 6144))

  ;; 1e0 .. 1e22, every one exact as a double
  (global $POW10 i32 (i32.const 256))
  (data (i32.const 256)
    "\00\00\00\00\00\00\f0\3f"  ;; 1e0
    "\00\00\00\00\00\00\24\40"  ;; 1e1
    "\00\00\00\00\00\00\59\40"  ;; 1e2
    "\00\00\00\00\00\40\8f\40"  ;; 1e3
    "\00\00\00\00\00\88\c3\40"  ;; 1e4
    "\00\00\00\00\00\6a\f8\40"  ;; 1e5
    "\00\00\00\00\80\84\2e\41"  ;; 1e6
    "\00\00\00\00\d0\12\63\41"  ;; 1e7
    "\00\00\00\00\84\d7\97\41"  ;; 1e8
    "\00\00\00\00\65\cd\cd\41"  ;; 1e9
    "\00\00\00\20\5f\a0\02\42"  ;; 1e10
    "\00\00\00\e8\76\48\37\42"  ;; 1e11
    "\00\00\00\a2\94\1a\6d\42"  ;; 1e12
    "\00\00\40\e5\9c\30\a2\42"  ;; 1e13
    "\00\00\90\1e\c4\bc\d6\42"  ;; 1e14
    "\00\00\34\26\f5\6b\0c\43"  ;; 1e15
    "\00\80\e0\37\79\c3\41\43"  ;; 1e16
    "\00\a0\d8\85\57\34\76\43"  ;; 1e17
    "\00\c8\4e\67\6d\c1\ab\43"  ;; 1e18
    "\00\3d\91\60\e4\58\e1\43"  ;; 1e19
    "\40\8c\b5\78\1d\af\15\44"  ;; 1e20
    "\50\ef\e2\d6\e4\1a\4b\44"  ;; 1e21
    "\92\d5\4d\06\cf\f0\80\44"  ;; 1e22
  )

  ;; constant text: each at its address, its length where it is used
  (global $S_TRUE i32 (i32.const 512))
  (data (i32.const 512) "true")
  (global $S_FALSE i32 (i32.const 516))
  (data (i32.const 516) "false")
  (global $S_NULL i32 (i32.const 521))
  (data (i32.const 521) "null")
  (global $S_HEX i32 (i32.const 525))
  (data (i32.const 525) "0123456789abcdef")
  (global $M_PARAMS_LEN i32 (i32.const 541))
  (data (i32.const 541) "edged: params_len exceeds the input area")
  (global $M_PARAMS_CAP i32 (i32.const 581))
  (data (i32.const 581) "edged: params exceed EDGED_PARAMS_CAP")
  (global $M_KEY_NUL i32 (i32.const 618))
  (data (i32.const 618) "edged: params: key without NUL")
  (global $M_VALUE_NUL i32 (i32.const 648))
  (data (i32.const 648) "edged: params: value without NUL")
  (global $M_MAX_PARAMS i32 (i32.const 680))
  (data (i32.const 680) "edged: more params than EDGED_MAX_PARAMS")
  (global $S_FIELD i32 (i32.const 720))
  (data (i32.const 720) "field")
  (global $S_VALUE i32 (i32.const 725))
  (data (i32.const 725) "value")
  (global $S_LIMIT i32 (i32.const 730))
  (data (i32.const 730) "limit")
  (global $S_TOPIC i32 (i32.const 735))
  (data (i32.const 735) "topic")
  (global $S_ALERT i32 (i32.const 740))
  (data (i32.const 740) "alert")
  (global $S_P_TOPIC i32 (i32.const 745))
  (data (i32.const 745) "{\"topic\":")
  (global $S_P_FIELD i32 (i32.const 754))
  (data (i32.const 754) ",\"field\":")
  (global $S_P_VALUE i32 (i32.const 763))
  (data (i32.const 763) ",\"value\":")
  (global $S_P_LIMIT i32 (i32.const 772))
  (data (i32.const 772) ",\"limit\":")
  (global $M_LIMIT i32 (i32.const 781))
  (data (i32.const 781) "threshold: param 'limit' is required and must be a number")
  (global $M_TOPIC i32 (i32.const 838))
  (data (i32.const 838) "threshold: param 'topic' is not a valid topic")

  ;; ==== the SDK part: the same in threshold.wat and average.wat ===========================
  ;; A line-by-line port of sdk/c/edged.h, so that these filters emit the same bytes as the
  ;; C, Rust and AssemblyScript ones.

  ;; bytes written to the output area this call, and whether anything was emitted
  (global $used (mut i32) (i32.const 0))
  (global $emitted (mut i32) (i32.const 0))
  ;; params kept: $pcount (key ptr, key len, value ptr, value len) entries at $PARAMS
  (global $pcount (mut i32) (i32.const 0))
  ;; what $param and $json_field found
  (global $found_ptr (mut i32) (i32.const 0))
  (global $found_len (mut i32) (i32.const 0))
  ;; the one text builder: $b_len bytes at $b_ptr of $b_cap; $b_failed once an append failed
  (global $b_ptr (mut i32) (i32.const 0))
  (global $b_len (mut i32) (i32.const 0))
  (global $b_cap (mut i32) (i32.const 0))
  (global $b_failed (mut i32) (i32.const 0))

  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))

  ;; ---- bytes ----------------------------------------------------------------------------

  (func $copy (param $dst i32) (param $src i32) (param $n i32)
    (block $done
      (loop $byte
        (br_if $done (i32.eqz (local.get $n)))
        (i32.store8 (local.get $dst) (i32.load8_u (local.get $src)))
        (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
        (local.set $src (i32.add (local.get $src) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $byte))))

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

  (func $is_digit (param $p i32) (param $end i32) (result i32)
    (local $c i32)
    (if (i32.ge_u (local.get $p) (local.get $end)) (then (return (i32.const 0))))
    (local.set $c (i32.load8_u (local.get $p)))
    (i32.and (i32.ge_u (local.get $c) (i32.const 48)) (i32.le_u (local.get $c) (i32.const 57))))

  ;; 1 if the host would accept the topic: 1..65535 bytes without '+', '#' or NUL.
  (func $topic_valid (param $p i32) (param $n i32) (result i32)
    (local $c i32)
    (if (i32.or (i32.eqz (local.get $n)) (i32.gt_u (local.get $n) (i32.const 65535)))
      (then (return (i32.const 0))))
    (block $done
      (loop $byte
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $c (i32.load8_u (local.get $p)))
        (if (i32.or (i32.or (i32.eq (local.get $c) (i32.const 43)) (i32.eq (local.get $c) (i32.const 35)))
                    (i32.eqz (local.get $c)))
          (then (return (i32.const 0))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $byte)))
    (i32.const 1))

  ;; ---- output ---------------------------------------------------------------------------

  ;; Appends one record: 0 done, -1 no room, -2 a topic the host would refuse.
  (func $emit (param $t i32) (param $tl i32) (param $p i32) (param $pl i32) (result i32)
    (local $room i32) (local $rec i32)
    (if (i32.eqz (call $topic_valid (local.get $t) (local.get $tl)))
      (then (return (i32.const -2))))
    ;; compared piecewise so that no sum can wrap
    (local.set $room (i32.sub (i32.sub (global.get $OUT_CAP) (i32.const 4)) (global.get $used)))
    (if (i32.or (i32.lt_u (local.get $room) (i32.const 8))
          (i32.or (i32.gt_u (local.get $tl) (i32.sub (local.get $room) (i32.const 8)))
                  (i32.gt_u (local.get $pl)
                    (i32.sub (i32.sub (local.get $room) (i32.const 8)) (local.get $tl)))))
      (then (return (i32.const -1))))
    (local.set $rec (i32.add (i32.add (global.get $OUT) (i32.const 4)) (global.get $used)))
    (i32.store (local.get $rec) (local.get $tl))
    (i32.store offset=4 (local.get $rec) (local.get $pl))
    (call $copy (i32.add (local.get $rec) (i32.const 8)) (local.get $t) (local.get $tl))
    (call $copy (i32.add (i32.add (local.get $rec) (i32.const 8)) (local.get $tl))
      (local.get $p) (local.get $pl))
    (global.set $used (i32.add (global.get $used)
      (i32.add (i32.const 8) (i32.add (local.get $tl) (local.get $pl)))))
    (i32.store (global.get $OUT) (global.get $used))
    (global.set $emitted (i32.const 1))
    (i32.const 0))

  (func $reset_output
    (global.set $used (i32.const 0))
    (global.set $emitted (i32.const 0))
    (i32.store (global.get $OUT) (i32.const 0)))

  ;; ---- params ---------------------------------------------------------------------------

  (func $bad_params (param $msg i32) (param $len i32) (result i32)
    (global.set $pcount (i32.const 0))
    (call $log (i32.const 3) (local.get $msg) (local.get $len))
    (i32.const -1))

  ;; Copies the `key NUL value NUL` params out of the input area and indexes them; 0, or -1
  ;; with the C SDK's log line when they are malformed or too many.
  (func $parse_params (param $len i32) (result i32)
    (local $pos i32) (local $k i32) (local $v i32) (local $entry i32)
    (global.set $pcount (i32.const 0))
    (if (i32.gt_u (local.get $len) (global.get $IN_CAP))
      (then (return (call $bad_params (global.get $M_PARAMS_LEN) (i32.const 40)))))
    (if (i32.gt_u (local.get $len) (i32.const 4096))
      (then (return (call $bad_params (global.get $M_PARAMS_CAP) (i32.const 37)))))
    (call $copy (global.get $PSTORE) (global.get $IN) (local.get $len))
    (block $done
      (loop $pair
        (br_if $done (i32.ge_u (local.get $pos) (local.get $len)))
        (local.set $k (local.get $pos))
        (block $end
          (loop $byte
            (br_if $end (i32.ge_u (local.get $pos) (local.get $len)))
            (br_if $end (i32.eqz (i32.load8_u (i32.add (global.get $PSTORE) (local.get $pos)))))
            (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
            (br $byte)))
        (if (i32.eq (local.get $pos) (local.get $len))
          (then (return (call $bad_params (global.get $M_KEY_NUL) (i32.const 30)))))
        (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
        (local.set $v (local.get $pos))
        (block $end
          (loop $byte
            (br_if $end (i32.ge_u (local.get $pos) (local.get $len)))
            (br_if $end (i32.eqz (i32.load8_u (i32.add (global.get $PSTORE) (local.get $pos)))))
            (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
            (br $byte)))
        (if (i32.eq (local.get $pos) (local.get $len))
          (then (return (call $bad_params (global.get $M_VALUE_NUL) (i32.const 32)))))
        (if (i32.eq (global.get $pcount) (i32.const 32))
          (then (return (call $bad_params (global.get $M_MAX_PARAMS) (i32.const 40)))))
        (local.set $entry (i32.add (global.get $PARAMS) (i32.shl (global.get $pcount) (i32.const 4))))
        (i32.store (local.get $entry) (i32.add (global.get $PSTORE) (local.get $k)))
        (i32.store offset=4 (local.get $entry)
          (i32.sub (i32.sub (local.get $v) (i32.const 1)) (local.get $k)))
        (i32.store offset=8 (local.get $entry) (i32.add (global.get $PSTORE) (local.get $v)))
        (i32.store offset=12 (local.get $entry) (i32.sub (local.get $pos) (local.get $v)))
        (global.set $pcount (i32.add (global.get $pcount) (i32.const 1)))
        (local.set $pos (i32.add (local.get $pos) (i32.const 1)))
        (br $pair)))
    (i32.const 0))

  ;; 1 and $found_ptr/$found_len set to the value when the param is there, else 0.
  (func $param (param $key i32) (param $key_len i32) (result i32)
    (local $i i32) (local $entry i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (global.get $pcount)))
        (local.set $entry (i32.add (global.get $PARAMS) (i32.shl (local.get $i) (i32.const 4))))
        (if (call $equal (i32.load (local.get $entry)) (i32.load offset=4 (local.get $entry))
                         (local.get $key) (local.get $key_len))
          (then
            (global.set $found_ptr (i32.load offset=8 (local.get $entry)))
            (global.set $found_len (i32.load offset=12 (local.get $entry)))
            (return (i32.const 1))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; ---- JSON numbers ---------------------------------------------------------------------

  ;; The whole text as one JSON number, or NaN: the C SDK's edged_parse_number, digit for
  ;; digit, so every language compares a reading with a limit alike.
  (func $parse_number (param $p i32) (param $n i32) (result f64)
    (local $end i32) (local $mant i64) (local $sig i32) (local $exp10 i32) (local $neg i32)
    (local $c i32) (local $e i32) (local $eneg i32) (local $v f64)
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (if (i32.eqz (local.get $n)) (then (return (f64.const nan))))
    (if (i32.eq (i32.load8_u (local.get $p)) (i32.const 45))              ;; '-'
      (then
        (local.set $neg (i32.const 1))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))))
    (if (i32.eq (local.get $p) (local.get $end)) (then (return (f64.const nan))))
    (local.set $c (i32.load8_u (local.get $p)))
    (if (i32.eq (local.get $c) (i32.const 48))                              ;; '0'
      (then (local.set $p (i32.add (local.get $p) (i32.const 1))))
      (else
        (if (i32.eqz (call $is_digit (local.get $p) (local.get $end)))
          (then (return (f64.const nan))))
        (block $done
          (loop $digit
            (br_if $done (i32.eqz (call $is_digit (local.get $p) (local.get $end))))
            (if (i32.lt_s (local.get $sig) (i32.const 19))
              (then
                (local.set $mant (i64.add (i64.mul (local.get $mant) (i64.const 10))
                  (i64.extend_i32_u (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))))
                (local.set $sig (i32.add (local.get $sig) (i32.const 1))))
              (else (local.set $exp10 (i32.add (local.get $exp10) (i32.const 1)))))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $digit)))))
    (if (i32.and (i32.lt_u (local.get $p) (local.get $end))
                 (i32.eq (i32.load8_u (local.get $p)) (i32.const 46)))      ;; '.'
      (then
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (if (i32.eqz (call $is_digit (local.get $p) (local.get $end)))
          (then (return (f64.const nan))))
        (block $done
          (loop $digit
            (br_if $done (i32.eqz (call $is_digit (local.get $p) (local.get $end))))
            (if (i32.lt_s (local.get $sig) (i32.const 19))
              (then
                (local.set $mant (i64.add (i64.mul (local.get $mant) (i64.const 10))
                  (i64.extend_i32_u (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))))
                (local.set $exp10 (i32.sub (local.get $exp10) (i32.const 1)))
                ;; leading zeros of 0.000x carry no precision
                (if (i64.ne (local.get $mant) (i64.const 0))
                  (then (local.set $sig (i32.add (local.get $sig) (i32.const 1)))))))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $digit)))))
    (if (i32.lt_u (local.get $p) (local.get $end))
      (then
        (local.set $c (i32.load8_u (local.get $p)))
        (if (i32.or (i32.eq (local.get $c) (i32.const 101)) (i32.eq (local.get $c) (i32.const 69)))
          (then
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (if (i32.lt_u (local.get $p) (local.get $end))
              (then
                (local.set $c (i32.load8_u (local.get $p)))
                (if (i32.or (i32.eq (local.get $c) (i32.const 43)) (i32.eq (local.get $c) (i32.const 45)))
                  (then
                    (local.set $eneg (i32.eq (local.get $c) (i32.const 45)))
                    (local.set $p (i32.add (local.get $p) (i32.const 1)))))))
            (if (i32.eqz (call $is_digit (local.get $p) (local.get $end)))
              (then (return (f64.const nan))))
            (block $done
              (loop $digit
                (br_if $done (i32.eqz (call $is_digit (local.get $p) (local.get $end))))
                ;; saturate: the result is 0 or infinite anyway
                (if (i32.lt_s (local.get $e) (i32.const 100000))
                  (then (local.set $e (i32.add (i32.mul (local.get $e) (i32.const 10))
                    (i32.sub (i32.load8_u (local.get $p)) (i32.const 48))))))
                (local.set $p (i32.add (local.get $p) (i32.const 1)))
                (br $digit)))
            (local.set $exp10 (i32.add (local.get $exp10)
              (select (i32.sub (i32.const 0) (local.get $e)) (local.get $e) (local.get $eneg))))))))
    (if (i32.ne (local.get $p) (local.get $end)) (then (return (f64.const nan))))

    (local.set $v (f64.convert_i64_u (local.get $mant)))
    (if (i64.ne (local.get $mant) (i64.const 0))
      (then
        (if (i32.gt_s (local.get $exp10) (i32.const 400)) (then (return (f64.const nan))))
        (if (i32.lt_s (local.get $exp10) (i32.const -400))
          (then (local.set $v (f64.const 0)))
          (else
            (if (i32.ge_s (local.get $exp10) (i32.const 0))
              (then
                (block $done
                  (loop $big
                    (br_if $done (i32.le_s (local.get $exp10) (i32.const 22)))
                    (local.set $v (f64.mul (local.get $v) (f64.const 1e22)))
                    (local.set $exp10 (i32.sub (local.get $exp10) (i32.const 22)))
                    (br $big)))
                (local.set $v (f64.mul (local.get $v)
                  (f64.load (i32.add (global.get $POW10) (i32.shl (local.get $exp10) (i32.const 3)))))))
              (else
                (block $done
                  (loop $small
                    (br_if $done (i32.ge_s (local.get $exp10) (i32.const -22)))
                    (local.set $v (f64.div (local.get $v) (f64.const 1e22)))
                    (local.set $exp10 (i32.add (local.get $exp10) (i32.const 22)))
                    (br $small)))
                (local.set $v (f64.div (local.get $v)
                  (f64.load (i32.add (global.get $POW10)
                    (i32.shl (i32.sub (i32.const 0) (local.get $exp10)) (i32.const 3))))))))))
        (if (f64.eq (f64.abs (local.get $v)) (f64.const inf)) (then (return (f64.const nan))))))
    (select (f64.neg (local.get $v)) (local.get $v) (local.get $neg)))

  ;; ---- JSON scanning --------------------------------------------------------------------

  (func $skip_ws (param $p i32) (param $end i32) (result i32)
    (local $c i32)
    (block $done
      (loop $byte
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (br_if $done (i32.eqz (i32.or (i32.or (i32.eq (local.get $c) (i32.const 32))
                                              (i32.eq (local.get $c) (i32.const 9)))
                                      (i32.or (i32.eq (local.get $c) (i32.const 10))
                                              (i32.eq (local.get $c) (i32.const 13))))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $byte)))
    (local.get $p))

  ;; $p at the opening quote: the address after the closing one, or 0.
  (func $skip_string (param $p i32) (param $end i32) (result i32)
    (local $c i32)
    (local.set $p (i32.add (local.get $p) (i32.const 1)))
    (block $done
      (loop $byte
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (if (i32.eq (local.get $c) (i32.const 92))                           ;; backslash
          (then
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (if (i32.eq (local.get $p) (local.get $end)) (then (return (i32.const 0)))))
          (else
            (if (i32.eq (local.get $c) (i32.const 34))                       ;; '"'
              (then (return (i32.add (local.get $p) (i32.const 1)))))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $byte)))
    (i32.const 0))

  ;; $p at '{' or '[': the address after the matching bracket, or 0 for mismatched kinds or
  ;; nesting deeper than 64.
  (func $skip_nested (param $p i32) (param $end i32) (result i32)
    (local $kinds i64) (local $depth i32) (local $c i32)
    (block $done
      (loop $byte
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $p)))
        (if (i32.eq (local.get $c) (i32.const 34))
          (then
            (local.set $p (call $skip_string (local.get $p) (local.get $end)))
            (if (i32.eqz (local.get $p)) (then (return (i32.const 0))))
            (br $byte)))
        (if (i32.or (i32.eq (local.get $c) (i32.const 123)) (i32.eq (local.get $c) (i32.const 91)))
          (then
            (if (i32.eq (local.get $depth) (i32.const 64)) (then (return (i32.const 0))))
            (if (i32.eq (local.get $c) (i32.const 123))
              (then (local.set $kinds (i64.or (local.get $kinds)
                (i64.shl (i64.const 1) (i64.extend_i32_u (local.get $depth))))))
              (else (local.set $kinds (i64.and (local.get $kinds)
                (i64.xor (i64.shl (i64.const 1) (i64.extend_i32_u (local.get $depth)))
                         (i64.const -1))))))
            (local.set $depth (i32.add (local.get $depth) (i32.const 1))))
          (else
            (if (i32.or (i32.eq (local.get $c) (i32.const 125)) (i32.eq (local.get $c) (i32.const 93)))
              (then
                (if (i32.eqz (local.get $depth)) (then (return (i32.const 0))))
                (local.set $depth (i32.sub (local.get $depth) (i32.const 1)))
                (if (i32.ne
                      (i32.wrap_i64 (i64.and (i64.shr_u (local.get $kinds)
                        (i64.extend_i32_u (local.get $depth))) (i64.const 1)))
                      (i32.eq (local.get $c) (i32.const 125)))
                  (then (return (i32.const 0))))
                (if (i32.eqz (local.get $depth))
                  (then (return (i32.add (local.get $p) (i32.const 1)))))))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $byte)))
    (i32.const 0))

  (func $is_delim (param $c i32) (result i32)
    (i32.or
      (i32.or (i32.or (i32.eq (local.get $c) (i32.const 44)) (i32.eq (local.get $c) (i32.const 125)))
              (i32.or (i32.eq (local.get $c) (i32.const 93)) (i32.eq (local.get $c) (i32.const 32))))
      (i32.or (i32.eq (local.get $c) (i32.const 9))
              (i32.or (i32.eq (local.get $c) (i32.const 10)) (i32.eq (local.get $c) (i32.const 13))))))

  ;; Scalars run to the next delimiter; only the returned value is checked.
  (func $skip_value (param $p i32) (param $end i32) (result i32)
    (local $c i32) (local $start i32)
    (if (i32.eq (local.get $p) (local.get $end)) (then (return (i32.const 0))))
    (local.set $c (i32.load8_u (local.get $p)))
    (if (i32.eq (local.get $c) (i32.const 34))
      (then (return (call $skip_string (local.get $p) (local.get $end)))))
    (if (i32.or (i32.eq (local.get $c) (i32.const 123)) (i32.eq (local.get $c) (i32.const 91)))
      (then (return (call $skip_nested (local.get $p) (local.get $end)))))
    (local.set $start (local.get $p))
    (block $done
      (loop $byte
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (br_if $done (call $is_delim (i32.load8_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $byte)))
    (select (i32.const 0) (local.get $p) (i32.eq (local.get $p) (local.get $start))))

  (func $scalar_ok (param $p i32) (param $n i32) (result i32)
    (local $v f64)
    (if (call $equal (local.get $p) (local.get $n) (global.get $S_TRUE) (i32.const 4))
      (then (return (i32.const 1))))
    (if (call $equal (local.get $p) (local.get $n) (global.get $S_FALSE) (i32.const 5))
      (then (return (i32.const 1))))
    (if (call $equal (local.get $p) (local.get $n) (global.get $S_NULL) (i32.const 4))
      (then (return (i32.const 1))))
    (local.set $v (call $parse_number (local.get $p) (local.get $n)))
    (f64.eq (local.get $v) (local.get $v)))                              ;; not NaN

  ;; The first top-level `key` of the JSON object: 0 and $found_ptr/$found_len set to its
  ;; value as written, -1 no such key, -2 not an object or malformed before the key.
  (func $json_field (param $json i32) (param $n i32) (param $key i32) (param $key_len i32)
    (result i32)
    (local $p i32) (local $end i32) (local $kstart i32) (local $kend i32) (local $vend i32)
    (local $c i32)
    (local.set $end (i32.add (local.get $json) (local.get $n)))
    (local.set $p (call $skip_ws (local.get $json) (local.get $end)))
    (if (i32.or (i32.eq (local.get $p) (local.get $end))
                (i32.ne (i32.load8_u (local.get $p)) (i32.const 123)))
      (then (return (i32.const -2))))
    (local.set $p (call $skip_ws (i32.add (local.get $p) (i32.const 1)) (local.get $end)))
    (if (i32.and (i32.lt_u (local.get $p) (local.get $end))
                 (i32.eq (i32.load8_u (local.get $p)) (i32.const 125)))
      (then (return (i32.const -1))))
    (loop $member
      (if (i32.or (i32.eq (local.get $p) (local.get $end))
                  (i32.ne (i32.load8_u (local.get $p)) (i32.const 34)))
        (then (return (i32.const -2))))
      (local.set $kend (call $skip_string (local.get $p) (local.get $end)))
      (if (i32.eqz (local.get $kend)) (then (return (i32.const -2))))
      (local.set $kstart (i32.add (local.get $p) (i32.const 1)))
      (local.set $p (call $skip_ws (local.get $kend) (local.get $end)))
      (if (i32.or (i32.eq (local.get $p) (local.get $end))
                  (i32.ne (i32.load8_u (local.get $p)) (i32.const 58)))   ;; ':'
        (then (return (i32.const -2))))
      (local.set $p (call $skip_ws (i32.add (local.get $p) (i32.const 1)) (local.get $end)))
      (local.set $vend (call $skip_value (local.get $p) (local.get $end)))
      (if (i32.eqz (local.get $vend)) (then (return (i32.const -2))))
      (if (call $equal (local.get $kstart)
                       (i32.sub (i32.sub (local.get $kend) (local.get $kstart)) (i32.const 1))
                       (local.get $key) (local.get $key_len))
        (then
          ;; a scalar must be a whole literal or number; strings and nested values are taken
          (local.set $c (i32.load8_u (local.get $p)))
          (if (i32.and (i32.ne (local.get $c) (i32.const 34))
                (i32.and (i32.ne (local.get $c) (i32.const 123)) (i32.ne (local.get $c) (i32.const 91))))
            (then
              (if (i32.eqz (call $scalar_ok (local.get $p) (i32.sub (local.get $vend) (local.get $p))))
                (then (return (i32.const -2))))))
          (global.set $found_ptr (local.get $p))
          (global.set $found_len (i32.sub (local.get $vend) (local.get $p)))
          (return (i32.const 0))))
      (local.set $p (call $skip_ws (local.get $vend) (local.get $end)))
      (if (i32.eq (local.get $p) (local.get $end)) (then (return (i32.const -2))))
      (local.set $c (i32.load8_u (local.get $p)))
      (if (i32.eq (local.get $c) (i32.const 125)) (then (return (i32.const -1))))
      (if (i32.ne (local.get $c) (i32.const 44)) (then (return (i32.const -2))))
      (local.set $p (call $skip_ws (i32.add (local.get $p) (i32.const 1)) (local.get $end)))
      (br $member))
    (i32.const -2))

  ;; ---- text builder ---------------------------------------------------------------------

  (func $b_init (param $ptr i32) (param $cap i32)
    (global.set $b_ptr (local.get $ptr))
    (global.set $b_len (i32.const 0))
    (global.set $b_cap (local.get $cap))
    (global.set $b_failed (i32.const 0)))

  ;; All or nothing; once an append failed, every later one fails too.
  (func $b_bytes (param $src i32) (param $n i32)
    (if (i32.or (global.get $b_failed)
                (i32.gt_u (local.get $n) (i32.sub (global.get $b_cap) (global.get $b_len))))
      (then (global.set $b_failed (i32.const 1)) (return)))
    (call $copy (i32.add (global.get $b_ptr) (global.get $b_len)) (local.get $src) (local.get $n))
    (global.set $b_len (i32.add (global.get $b_len) (local.get $n))))

  (func $b_char (param $c i32)
    (i32.store8 (global.get $TMP) (local.get $c))
    (call $b_bytes (global.get $TMP) (i32.const 1)))

  ;; The bytes as a quoted JSON string: '"', '\' and control characters escaped.
  (func $b_json_string (param $s i32) (param $n i32)
    (local $start i32) (local $c i32)
    (local.set $start (global.get $b_len))
    (call $b_char (i32.const 34))
    (block $done
      (loop $byte
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $c (i32.load8_u (local.get $s)))
        (block $next
          (if (i32.or (i32.eq (local.get $c) (i32.const 34)) (i32.eq (local.get $c) (i32.const 92)))
            (then (call $b_char (i32.const 92)) (call $b_char (local.get $c)) (br $next)))
          (if (i32.eq (local.get $c) (i32.const 10))                        ;; \n
            (then (call $b_char (i32.const 92)) (call $b_char (i32.const 110)) (br $next)))
          (if (i32.eq (local.get $c) (i32.const 13))                        ;; \r
            (then (call $b_char (i32.const 92)) (call $b_char (i32.const 114)) (br $next)))
          (if (i32.eq (local.get $c) (i32.const 9))                         ;; \t
            (then (call $b_char (i32.const 92)) (call $b_char (i32.const 116)) (br $next)))
          (if (i32.lt_u (local.get $c) (i32.const 32))                      ;; \u00XX, lowercase
            (then
              (i32.store (global.get $TMP2) (i32.const 0x3030755c))
              (i32.store8 offset=4 (global.get $TMP2)
                (i32.load8_u (i32.add (global.get $S_HEX) (i32.shr_u (local.get $c) (i32.const 4)))))
              (i32.store8 offset=5 (global.get $TMP2)
                (i32.load8_u (i32.add (global.get $S_HEX) (i32.and (local.get $c) (i32.const 15)))))
              (call $b_bytes (global.get $TMP2) (i32.const 6))
              (br $next)))
          (call $b_char (local.get $c)))
        (local.set $s (i32.add (local.get $s) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $byte)))
    (call $b_char (i32.const 34))
    ;; keep the all-or-nothing promise of the other appends
    (if (i32.and (global.get $b_failed) (i32.gt_u (global.get $b_len) (local.get $start)))
      (then (global.set $b_len (local.get $start)))))

  ;; ---- ABI entry points -----------------------------------------------------------------

  (func (export "edged_init") (param $len i32) (result i32)
    (local $code i32)
    (local.set $code (call $parse_params (local.get $len)))
    (if (local.get $code) (then (return (local.get $code))))
    (call $filter_init))

  ;; Result rule: a call that emitted returns EMIT (2); otherwise the filter's own result.
  (func (export "edged_on_message") (param $tl i32) (param $pl i32) (result i32)
    (local $r i32)
    ;; The host promises the message fits; if it does not, a trap is the loudest answer.
    (if (i32.or (i32.gt_u (local.get $tl) (global.get $IN_CAP))
                (i32.gt_u (local.get $pl) (i32.sub (global.get $IN_CAP) (local.get $tl))))
      (then (unreachable)))
    (call $reset_output)
    (local.set $r (call $filter_message (global.get $IN) (local.get $tl)
      (i32.add (global.get $IN) (local.get $tl)) (local.get $pl)))
    (select (i32.const 2) (local.get $r) (global.get $emitted)))

  ;; ==== the filter ========================================================================

  (global $field_ptr (mut i32) (i32.const 0))
  (global $field_len (mut i32) (i32.const 0))
  (global $limit_ptr (mut i32) (i32.const 0))   ;; the limit as written in the config,
  (global $limit_len (mut i32) (i32.const 0))   ;; echoed in every alert
  (global $limit (mut f64) (f64.const 0))
  (global $topic_ptr (mut i32) (i32.const 0))
  (global $topic_len (mut i32) (i32.const 0))

  (func $filter_init (result i32)
    (if (call $param (global.get $S_FIELD) (i32.const 5))
      (then
        (global.set $field_ptr (global.get $found_ptr))
        (global.set $field_len (global.get $found_len)))
      (else
        (global.set $field_ptr (global.get $S_VALUE))
        (global.set $field_len (i32.const 5))))
    (if (call $param (global.get $S_LIMIT) (i32.const 5))
      (then
        (global.set $limit_ptr (global.get $found_ptr))
        (global.set $limit_len (global.get $found_len))
        (global.set $limit (call $parse_number (global.get $limit_ptr) (global.get $limit_len)))))
    (if (i32.or (i32.eqz (global.get $limit_ptr)) (f64.ne (global.get $limit) (global.get $limit)))
      (then
        (call $log (i32.const 3) (global.get $M_LIMIT) (i32.const 57))
        (return (i32.const 1))))
    (if (call $param (global.get $S_TOPIC) (i32.const 5))
      (then
        (global.set $topic_ptr (global.get $found_ptr))
        (global.set $topic_len (global.get $found_len)))
      (else
        (global.set $topic_ptr (global.get $S_ALERT))
        (global.set $topic_len (i32.const 5))))
    ;; checked here because a bad topic would otherwise fail every alert
    (if (i32.eqz (call $topic_valid (global.get $topic_ptr) (global.get $topic_len)))
      (then
        (call $log (i32.const 3) (global.get $M_TOPIC) (i32.const 45))
        (return (i32.const 2))))
    (i32.const 0))

  (func $filter_message (param $t i32) (param $tl i32) (param $p i32) (param $pl i32)
    (result i32)
    (local $raw i32) (local $raw_len i32) (local $v f64)
    (if (call $json_field (local.get $p) (local.get $pl)
                          (global.get $field_ptr) (global.get $field_len))
      (then (return (i32.const 0))))
    (local.set $raw (global.get $found_ptr))
    (local.set $raw_len (global.get $found_len))
    (local.set $v (call $parse_number (local.get $raw) (local.get $raw_len)))
    ;; NaN (not a number) compares false too
    (if (i32.eqz (f64.gt (local.get $v) (global.get $limit))) (then (return (i32.const 0))))
    (call $b_init (global.get $SCRATCH) (i32.const 65536))
    (call $b_bytes (global.get $S_P_TOPIC) (i32.const 9))
    (call $b_json_string (local.get $t) (local.get $tl))
    (call $b_bytes (global.get $S_P_FIELD) (i32.const 9))
    (call $b_json_string (global.get $field_ptr) (global.get $field_len))
    (call $b_bytes (global.get $S_P_VALUE) (i32.const 9))
    (call $b_bytes (local.get $raw) (local.get $raw_len))
    (call $b_bytes (global.get $S_P_LIMIT) (i32.const 9))
    (call $b_bytes (global.get $limit_ptr) (global.get $limit_len))
    (call $b_char (i32.const 125))
    ;; an alert that does not fit cannot be shortened without lying: the reading is dropped
    (if (i32.eqz (global.get $b_failed))
      (then (drop (call $emit (global.get $topic_ptr) (global.get $topic_len)
                              (global.get $b_ptr) (global.get $b_len)))))
    (i32.const 0))
)
