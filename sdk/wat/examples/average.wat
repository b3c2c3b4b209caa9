;; average: replaces a stream of readings with one summary per tick, in hand-written WAT.
;;
;; params: field (default "value"), suffix (default "/avg"), decimals (default 2, 0..20)
;; Every message is dropped; its numeric `field` is added to the window of its topic. On each
;; tick, every topic with readings (in the order topics were first seen) gets one message on
;; <topic><suffix>:
;;   {"avg":20.27,"min":20.00,"max":20.60,"count":3,"ts":1700000000000}
;; and its window starts over. Same behaviour, byte for byte, as examples/filters/average.c,
;; limits included: 64 topics of at most 200 bytes, readings below 1e15 in magnitude.
;; State, format 1, the same blob as average.c: the number of topics (u32), then per topic in
;; first-seen order its text (u32 length, bytes), count (u64), sum, min and max (f64; 0 for an
;; empty window).
;; Build: wat2wasm average.wat -o average.wasm
(module
  ;; the one import the host offers: log(level, ptr, len), levels 0 debug .. 3 error
  (import "edged" "log" (func $log (param i32 i32 i32)))

  ;; Memory map (3 pages, the same sizes as the C SDK's defaults):
  ;;        0  buffer descriptor            16  scratch bytes for the builder
  ;;       64  number text (64)            128  fraction digits (20)  160  integer digits (16)
  ;;      256  powers of ten (23 doubles)  512  constant text
  ;;     2048  params copy (4096 bytes)   6144  params index (32 x 16 bytes)
  ;;     8192  64 windows of 256 bytes   24576  summary topic (400)  25088  summary payload (256)
  ;;    65536  input area (64 KiB)       131072  output area (64 KiB)
  (memory (export "memory") 3)
  (global $NUM i32 (i32.const 64))
  (global $DIG i32 (i32.const 128))
  (global $REV i32 (i32.const 160))
  (global $WINDOWS i32 (i32.const 8192))
  (global $TBUF i32 (i32.const 24576))
  (global $PBUF i32 (i32.const 25088))
  (global $STATE_DESC i32 (i32.const 25600))
  (global $STATE i32 (i32.const 32768))
  (global $STATE_CAP i32 (i32.const 32768))

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
  (global $S_SUFFIX i32 (i32.const 730))
  (data (i32.const 730) "suffix")
  (global $S_AVG i32 (i32.const 736))
  (data (i32.const 736) "/avg")
  (global $S_DECIMALS i32 (i32.const 740))
  (data (i32.const 740) "decimals")
  (global $S_P_AVG i32 (i32.const 748))
  (data (i32.const 748) "{\"avg\":")
  (global $S_P_MIN i32 (i32.const 755))
  (data (i32.const 755) ",\"min\":")
  (global $S_P_MAX i32 (i32.const 762))
  (data (i32.const 762) ",\"max\":")
  (global $S_P_COUNT i32 (i32.const 769))
  (data (i32.const 769) ",\"count\":")
  (global $S_P_TS i32 (i32.const 778))
  (data (i32.const 778) ",\"ts\":")
  (global $M_SUFFIX i32 (i32.const 784))
  (data (i32.const 784) "average: param 'suffix' must be topic text of at most 200 bytes")
  (global $M_DECIMALS i32 (i32.const 847))
  (data (i32.const 847) "average: param 'decimals' must be an integer 0..20")
  (global $M_TOPICS i32 (i32.const 897))
  (data (i32.const 897) "average: more than 64 topics or a topic over 200 bytes; its readings are dropped")
  (global $M_RANGE i32 (i32.const 977))
  (data (i32.const 977) "average: ignoring readings of magnitude 1e15 or more")

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

  ;; ==== numbers as text (average only) ===================================================

  ;; A 64-bit integer in decimal.
  (func $b_int (param $v i64)
    (local $n i32) (local $m i64)
    (local.set $n (i32.const 20))
    (local.set $m (select (i64.sub (i64.const 0) (local.get $v)) (local.get $v)
                          (i64.lt_s (local.get $v) (i64.const 0))))
    (loop $digit
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (i64.store8 (i32.add (global.get $NUM) (local.get $n))
        (i64.add (i64.const 48) (i64.rem_u (local.get $m) (i64.const 10))))
      (local.set $m (i64.div_u (local.get $m) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $m) (i64.const 0))))
    (if (i64.lt_s (local.get $v) (i64.const 0))
      (then
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (i32.store8 (i32.add (global.get $NUM) (local.get $n)) (i32.const 45))))
    (call $b_bytes (i32.add (global.get $NUM) (local.get $n)) (i32.sub (i32.const 20) (local.get $n))))

  ;; `v` with exactly `decimals` digits after the point, no exponent: the digits of the exact
  ;; binary value, rounded half away from zero, from a 128-bit fixed-point fraction kept in
  ;; four 32-bit limbs. Refused: |v| >= 1e15, NaN, infinities.
  (func $b_fixed (param $v f64) (param $decimals i32)
    (local $a f64) (local $x f64) (local $ip i64) (local $hi i64) (local $lo i64) (local $t i64)
    (local $l0 i64) (local $l1 i64) (local $l2 i64) (local $l3 i64)
    (local $i i32) (local $n i32) (local $r i32) (local $nonzero i32) (local $neg i32)
    (if (i32.or (i32.or (i32.lt_s (local.get $decimals) (i32.const 0))
                        (i32.gt_s (local.get $decimals) (i32.const 20)))
                (i32.eqz (i32.and (f64.gt (local.get $v) (f64.const -1e15))
                                  (f64.lt (local.get $v) (f64.const 1e15)))))
      (then (global.set $b_failed (i32.const 1)) (return)))
    (local.set $neg (f64.lt (local.get $v) (f64.const 0)))
    (local.set $a (f64.abs (local.get $v)))
    (local.set $ip (i64.trunc_f64_u (local.get $a)))
    ;; below 2^-75 every printable digit is 0 and the rest is far from a half
    (if (f64.ge (local.get $a) (f64.const 0x1p-75))
      (then
        (local.set $x (f64.mul (f64.sub (local.get $a) (f64.convert_i64_u (local.get $ip)))
                               (f64.const 0x1p64)))
        (local.set $hi (i64.trunc_f64_u (local.get $x)))
        (local.set $lo (i64.trunc_f64_u
          (f64.mul (f64.sub (local.get $x) (f64.convert_i64_u (local.get $hi))) (f64.const 0x1p64))))
        (local.set $l0 (i64.and (local.get $lo) (i64.const 0xffffffff)))
        (local.set $l1 (i64.shr_u (local.get $lo) (i64.const 32)))
        (local.set $l2 (i64.and (local.get $hi) (i64.const 0xffffffff)))
        (local.set $l3 (i64.shr_u (local.get $hi) (i64.const 32)))))
    ;; each digit: the fraction times ten, the carry out of the top limb
    (block $done
      (loop $digit
        (br_if $done (i32.ge_s (local.get $i) (local.get $decimals)))
        (local.set $t (i64.mul (local.get $l0) (i64.const 10)))
        (local.set $l0 (i64.and (local.get $t) (i64.const 0xffffffff)))
        (local.set $t (i64.add (i64.mul (local.get $l1) (i64.const 10)) (i64.shr_u (local.get $t) (i64.const 32))))
        (local.set $l1 (i64.and (local.get $t) (i64.const 0xffffffff)))
        (local.set $t (i64.add (i64.mul (local.get $l2) (i64.const 10)) (i64.shr_u (local.get $t) (i64.const 32))))
        (local.set $l2 (i64.and (local.get $t) (i64.const 0xffffffff)))
        (local.set $t (i64.add (i64.mul (local.get $l3) (i64.const 10)) (i64.shr_u (local.get $t) (i64.const 32))))
        (local.set $l3 (i64.and (local.get $t) (i64.const 0xffffffff)))
        (i64.store8 (i32.add (global.get $DIG) (local.get $i)) (i64.shr_u (local.get $t) (i64.const 32)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $digit)))
    ;; what is left is at least one half: round up, carrying through nines
    (if (i64.ne (i64.shr_u (local.get $l3) (i64.const 31)) (i64.const 0))
      (then
        (local.set $i (i32.sub (local.get $decimals) (i32.const 1)))
        (block $done
          (loop $nine
            (br_if $done (i32.lt_s (local.get $i) (i32.const 0)))
            (br_if $done (i32.ne (i32.load8_u (i32.add (global.get $DIG) (local.get $i))) (i32.const 9)))
            (i32.store8 (i32.add (global.get $DIG) (local.get $i)) (i32.const 0))
            (local.set $i (i32.sub (local.get $i) (i32.const 1)))
            (br $nine)))
        (if (i32.ge_s (local.get $i) (i32.const 0))
          (then (i32.store8 (i32.add (global.get $DIG) (local.get $i))
                  (i32.add (i32.load8_u (i32.add (global.get $DIG) (local.get $i))) (i32.const 1))))
          (else (local.set $ip (i64.add (local.get $ip) (i64.const 1)))))))
    (local.set $nonzero (i64.ne (local.get $ip) (i64.const 0)))
    (local.set $i (i32.const 0))
    (block $done
      (loop $digit
        (br_if $done (i32.ge_s (local.get $i) (local.get $decimals)))
        (if (i32.load8_u (i32.add (global.get $DIG) (local.get $i)))
          (then (local.set $nonzero (i32.const 1))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $digit)))
    ;; a result that rounds to zero prints without a sign
    (if (i32.and (local.get $neg) (local.get $nonzero))
      (then
        (i32.store8 (global.get $NUM) (i32.const 45))
        (local.set $n (i32.const 1))))
    (loop $int_digit                                    ;; backwards into REV ...
      (i64.store8 (i32.add (global.get $REV) (local.get $r))
        (i64.add (i64.const 48) (i64.rem_u (local.get $ip) (i64.const 10))))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (local.set $ip (i64.div_u (local.get $ip) (i64.const 10)))
      (br_if $int_digit (i64.ne (local.get $ip) (i64.const 0))))
    (block $done                                        ;; ... and forwards into NUM
      (loop $copy_digit
        (br_if $done (i32.eqz (local.get $r)))
        (local.set $r (i32.sub (local.get $r) (i32.const 1)))
        (i32.store8 (i32.add (global.get $NUM) (local.get $n))
          (i32.load8_u (i32.add (global.get $REV) (local.get $r))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $copy_digit)))
    (if (i32.gt_s (local.get $decimals) (i32.const 0))
      (then
        (i32.store8 (i32.add (global.get $NUM) (local.get $n)) (i32.const 46))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (local.set $i (i32.const 0))
        (block $done
          (loop $digit
            (br_if $done (i32.ge_s (local.get $i) (local.get $decimals)))
            (i32.store8 (i32.add (global.get $NUM) (local.get $n))
              (i32.add (i32.const 48) (i32.load8_u (i32.add (global.get $DIG) (local.get $i)))))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $digit)))))
    (call $b_bytes (global.get $NUM) (local.get $n)))

  ;; FNV-1a, 32 bits: spreads topics over the window table.
  (func $hash (param $p i32) (param $n i32) (result i32)
    (local $h i32)
    (local.set $h (i32.const 0x811c9dc5))
    (block $done
      (loop $byte
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $h (i32.mul (i32.xor (local.get $h) (i32.load8_u (local.get $p)))
                               (i32.const 16777619)))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $byte)))
    (local.get $h))

  ;; ==== the filter ========================================================================

  ;; One window per topic, 256 bytes each, in first-seen order:
  ;;   0 hash  4 topic length  8 count (i64)  16 sum  24 min  32 max (f64)  40 topic (200)
  (global $n_windows (mut i32) (i32.const 0))
  (global $warned_topics (mut i32) (i32.const 0))
  (global $warned_range (mut i32) (i32.const 0))
  (global $field_ptr (mut i32) (i32.const 0))
  (global $field_len (mut i32) (i32.const 0))
  (global $suffix_ptr (mut i32) (i32.const 0))
  (global $suffix_len (mut i32) (i32.const 0))
  (global $decimals (mut i32) (i32.const 2))

  (func $filter_init (result i32)
    (local $v f64)
    (if (call $param (global.get $S_FIELD) (i32.const 5))
      (then
        (global.set $field_ptr (global.get $found_ptr))
        (global.set $field_len (global.get $found_len)))
      (else
        (global.set $field_ptr (global.get $S_VALUE))
        (global.set $field_len (i32.const 5))))
    (if (call $param (global.get $S_SUFFIX) (i32.const 6))
      (then
        (global.set $suffix_ptr (global.get $found_ptr))
        (global.set $suffix_len (global.get $found_len)))
      (else
        (global.set $suffix_ptr (global.get $S_AVG))
        (global.set $suffix_len (i32.const 4))))
    ;; an empty suffix is allowed (same topic out); anything else must be topic text
    (if (i32.or (i32.gt_u (global.get $suffix_len) (i32.const 200))
                (i32.and (i32.ne (global.get $suffix_len) (i32.const 0))
                         (i32.eqz (call $topic_valid (global.get $suffix_ptr) (global.get $suffix_len)))))
      (then
        (call $log (i32.const 3) (global.get $M_SUFFIX) (i32.const 63))
        (return (i32.const 1))))
    (local.set $v (f64.const 2))
    (if (call $param (global.get $S_DECIMALS) (i32.const 8))
      (then (local.set $v (call $parse_number (global.get $found_ptr) (global.get $found_len)))))
    ;; an integer 0..20 (NaN, not a number, fails the range test)
    (if (i32.eqz (i32.and (f64.ge (local.get $v) (f64.const 0)) (f64.le (local.get $v) (f64.const 20))))
      (then
        (call $log (i32.const 3) (global.get $M_DECIMALS) (i32.const 50))
        (return (i32.const 2))))
    (if (f64.ne (local.get $v) (f64.convert_i32_s (i32.trunc_f64_s (local.get $v))))
      (then
        (call $log (i32.const 3) (global.get $M_DECIMALS) (i32.const 50))
        (return (i32.const 2))))
    (global.set $decimals (i32.trunc_f64_s (local.get $v)))
    (i32.const 0))

  ;; The window of this topic, a new one, or 0 when the table is full or the topic too long.
  (func $find_or_add (param $t i32) (param $tl i32) (result i32)
    (local $h i32) (local $i i32) (local $w i32)
    (local.set $h (call $hash (local.get $t) (local.get $tl)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (global.get $n_windows)))
        (local.set $w (i32.add (global.get $WINDOWS) (i32.shl (local.get $i) (i32.const 8))))
        (if (i32.and (i32.eq (i32.load (local.get $w)) (local.get $h))
                     (i32.eq (i32.load offset=4 (local.get $w)) (local.get $tl)))
          (then
            (if (call $equal (i32.add (local.get $w) (i32.const 40)) (local.get $tl)
                             (local.get $t) (local.get $tl))
              (then (return (local.get $w))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (if (i32.or (i32.eq (global.get $n_windows) (i32.const 64)) (i32.gt_u (local.get $tl) (i32.const 200)))
      (then
        (if (i32.eqz (global.get $warned_topics))
          (then
            (global.set $warned_topics (i32.const 1))
            (call $log (i32.const 2) (global.get $M_TOPICS) (i32.const 80))))
        (return (i32.const 0))))
    (local.set $w (i32.add (global.get $WINDOWS) (i32.shl (global.get $n_windows) (i32.const 8))))
    (global.set $n_windows (i32.add (global.get $n_windows) (i32.const 1)))
    (i32.store (local.get $w) (local.get $h))
    (i32.store offset=4 (local.get $w) (local.get $tl))
    (call $copy (i32.add (local.get $w) (i32.const 40)) (local.get $t) (local.get $tl))
    (local.get $w))

  ;; Every message is dropped; its reading goes into the window of its topic.
  (func $filter_message (param $t i32) (param $tl i32) (param $p i32) (param $pl i32)
    (result i32)
    (local $v f64) (local $w i32)
    (if (call $json_field (local.get $p) (local.get $pl)
                          (global.get $field_ptr) (global.get $field_len))
      (then (return (i32.const 0))))
    (local.set $v (call $parse_number (global.get $found_ptr) (global.get $found_len)))
    (if (f64.ne (local.get $v) (local.get $v)) (then (return (i32.const 0))))
    (if (i32.eqz (i32.and (f64.gt (local.get $v) (f64.const -1e15)) (f64.lt (local.get $v) (f64.const 1e15))))
      (then
        (if (i32.eqz (global.get $warned_range))
          (then
            (global.set $warned_range (i32.const 1))
            (call $log (i32.const 2) (global.get $M_RANGE) (i32.const 52))))
        (return (i32.const 0))))
    (local.set $w (call $find_or_add (local.get $t) (local.get $tl)))
    (if (i32.eqz (local.get $w)) (then (return (i32.const 0))))
    (if (i64.eqz (i64.load offset=8 (local.get $w)))
      (then
        (f64.store offset=16 (local.get $w) (f64.const 0))
        (f64.store offset=24 (local.get $w) (local.get $v))
        (f64.store offset=32 (local.get $w) (local.get $v))))
    (i64.store offset=8 (local.get $w) (i64.add (i64.load offset=8 (local.get $w)) (i64.const 1)))
    (f64.store offset=16 (local.get $w) (f64.add (f64.load offset=16 (local.get $w)) (local.get $v)))
    (if (f64.lt (local.get $v) (f64.load offset=24 (local.get $w)))
      (then (f64.store offset=24 (local.get $w) (local.get $v))))
    (if (f64.gt (local.get $v) (f64.load offset=32 (local.get $w)))
      (then (f64.store offset=32 (local.get $w) (local.get $v))))
    (i32.const 0))

  ;; One summary per topic with readings, in first-seen order; a full output area leaves the
  ;; remaining windows for the next tick.
  (func (export "edged_on_tick") (param $now i64) (result i32)
    (local $i i32) (local $w i32) (local $avg f64) (local $tl i32)
    (call $reset_output)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (global.get $n_windows)))
        (local.set $w (i32.add (global.get $WINDOWS) (i32.shl (local.get $i) (i32.const 8))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i64.eqz (i64.load offset=8 (local.get $w))))
        (local.set $avg (f64.div (f64.load offset=16 (local.get $w))
                                 (f64.convert_i64_s (i64.load offset=8 (local.get $w)))))
        ;; rounding in the sum can land a hair outside [min, max]; the true mean cannot
        (if (f64.lt (local.get $avg) (f64.load offset=24 (local.get $w)))
          (then (local.set $avg (f64.load offset=24 (local.get $w)))))
        (if (f64.gt (local.get $avg) (f64.load offset=32 (local.get $w)))
          (then (local.set $avg (f64.load offset=32 (local.get $w)))))
        (call $b_init (global.get $TBUF) (i32.const 400))
        (call $b_bytes (i32.add (local.get $w) (i32.const 40)) (i32.load offset=4 (local.get $w)))
        (call $b_bytes (global.get $suffix_ptr) (global.get $suffix_len))
        (local.set $tl (global.get $b_len))
        (call $b_init (global.get $PBUF) (i32.const 256))
        (call $b_bytes (global.get $S_P_AVG) (i32.const 7))
        (call $b_fixed (local.get $avg) (global.get $decimals))
        (call $b_bytes (global.get $S_P_MIN) (i32.const 7))
        (call $b_fixed (f64.load offset=24 (local.get $w)) (global.get $decimals))
        (call $b_bytes (global.get $S_P_MAX) (i32.const 7))
        (call $b_fixed (f64.load offset=32 (local.get $w)) (global.get $decimals))
        (call $b_bytes (global.get $S_P_COUNT) (i32.const 9))
        (call $b_int (i64.load offset=8 (local.get $w)))
        (call $b_bytes (global.get $S_P_TS) (i32.const 6))
        (call $b_int (local.get $now))
        (call $b_char (i32.const 125))
        (br_if $done (i32.eq (call $emit (global.get $TBUF) (local.get $tl)
                                         (global.get $PBUF) (global.get $b_len))
                             (i32.const -1)))
        (i64.store offset=8 (local.get $w) (i64.const 0))
        (br $next)))
    (select (i32.const 2) (i32.const 0) (global.get $emitted)))

  ;; ==== state blobs (average only) =======================================================
  ;; The C SDK's edged_put_* and edged_get_* (EDGED_WITH_STATE): little-endian values, byte
  ;; strings as a u32 length then the bytes, and a failure that sticks, in the writer as in
  ;; the reader. One buffer serves both ways: a save is written at $STATE and the host copies
  ;; it out; the host writes a blob to load there, on a fresh instance before any message.

  (global $s_len (mut i32) (i32.const 0))
  (global $s_failed (mut i32) (i32.const 0))
  (global $r_pos (mut i32) (i32.const 0))
  (global $r_len (mut i32) (i32.const 0))
  (global $r_failed (mut i32) (i32.const 0))

  ;; 1 when $n more bytes fit the blob being written; else 0, and $s_failed from now on.
  (func $s_room (param $n i32) (result i32)
    (if (i32.or (global.get $s_failed)
                (i32.gt_u (local.get $n) (i32.sub (global.get $STATE_CAP) (global.get $s_len))))
      (then (global.set $s_failed (i32.const 1)) (return (i32.const 0))))
    (i32.const 1))

  (func $s_u32 (param $v i32)
    (if (call $s_room (i32.const 4))
      (then
        (i32.store (i32.add (global.get $STATE) (global.get $s_len)) (local.get $v))
        (global.set $s_len (i32.add (global.get $s_len) (i32.const 4))))))

  (func $s_u64 (param $v i64)
    (if (call $s_room (i32.const 8))
      (then
        (i64.store (i32.add (global.get $STATE) (global.get $s_len)) (local.get $v))
        (global.set $s_len (i32.add (global.get $s_len) (i32.const 8))))))

  (func $s_f64 (param $v f64)
    (call $s_u64 (i64.reinterpret_f64 (local.get $v))))

  ;; A length and its bytes, both or neither.
  (func $s_bytes (param $p i32) (param $n i32)
    (if (i32.gt_u (local.get $n) (global.get $STATE_CAP))
      (then (global.set $s_failed (i32.const 1)) (return)))
    (if (call $s_room (i32.add (local.get $n) (i32.const 4)))
      (then
        (call $s_u32 (local.get $n))
        (call $copy (i32.add (global.get $STATE) (global.get $s_len)) (local.get $p) (local.get $n))
        (global.set $s_len (i32.add (global.get $s_len) (local.get $n))))))

  ;; The address of the next $n bytes of the blob being read; 0 past its end, and $r_failed
  ;; from now on ($STATE is never 0, so 0 is free to mean that).
  (func $r_take (param $n i32) (result i32)
    (local $at i32)
    (if (i32.or (global.get $r_failed)
                (i32.gt_u (local.get $n) (i32.sub (global.get $r_len) (global.get $r_pos))))
      (then (global.set $r_failed (i32.const 1)) (return (i32.const 0))))
    (local.set $at (i32.add (global.get $STATE) (global.get $r_pos)))
    (global.set $r_pos (i32.add (global.get $r_pos) (local.get $n)))
    (local.get $at))

  ;; Past the end the readers give 0; test $r_failed once after a group of them.
  (func $r_u32 (result i32)
    (local $at i32)
    (local.set $at (call $r_take (i32.const 4)))
    (if (result i32) (local.get $at) (then (i32.load (local.get $at))) (else (i32.const 0))))

  (func $r_u64 (result i64)
    (local $at i32)
    (local.set $at (call $r_take (i32.const 8)))
    (if (result i64) (local.get $at) (then (i64.load (local.get $at))) (else (i64.const 0))))

  (func $r_f64 (result f64)
    (f64.reinterpret_i64 (call $r_u64)))

  ;; A length and its bytes, left in $found_ptr and $found_len (in the state buffer: copy what
  ;; you keep); 1, or 0 when the blob ends first.
  (func $r_bytes (result i32)
    (local $start i32) (local $n i32) (local $at i32)
    (local.set $start (global.get $r_pos))
    (local.set $n (call $r_u32))
    (if (global.get $r_failed) (then (return (i32.const 0))))
    (local.set $at (call $r_take (local.get $n)))
    (if (global.get $r_failed)
      (then (global.set $r_pos (local.get $start)) (return (i32.const 0))))
    (global.set $found_ptr (local.get $at))
    (global.set $found_len (local.get $n))
    (i32.const 1))

  ;; A save that does not fit traps rather than hand over a cut state: the host keeps the last
  ;; good one. (This filter's largest state is under half of $STATE_CAP.)
  (func (export "edged_state_save") (result i32)
    (local $format i32)
    (global.set $s_len (i32.const 0))
    (global.set $s_failed (i32.const 0))
    (local.set $format (call $filter_save))
    (if (global.get $s_failed) (then (unreachable)))
    (i32.store (global.get $STATE_DESC) (global.get $STATE))
    (i32.store offset=4 (global.get $STATE_DESC) (global.get $s_len))
    (i32.store offset=8 (global.get $STATE_DESC) (local.get $format))
    (global.get $STATE_DESC))

  (func (export "edged_state_buffer") (param $len i32) (result i32)
    (select (i32.const -1) (global.get $STATE)
            (i32.gt_u (local.get $len) (global.get $STATE_CAP))))

  ;; The filter's own code, or the C SDK's: -1 a read ran past the end, -2 bytes left unread.
  (func (export "edged_state_load") (param $format i32) (param $len i32) (result i32)
    (local $code i32)
    (if (i32.gt_u (local.get $len) (global.get $STATE_CAP)) (then (unreachable)))
    (global.set $r_pos (i32.const 0))
    (global.set $r_len (local.get $len))
    (global.set $r_failed (i32.const 0))
    (local.set $code (call $filter_load (local.get $format)))
    (if (local.get $code) (then (return (local.get $code))))
    (if (global.get $r_failed) (then (return (i32.const -1))))
    (select (i32.const 0) (i32.const -2) (i32.eq (global.get $r_pos) (global.get $r_len))))

  ;; ==== the filter's state ===============================================================

  (func $filter_save (result i32)
    (local $i i32) (local $w i32) (local $empty i32)
    (call $s_u32 (global.get $n_windows))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (global.get $n_windows)))
        (local.set $w (i32.add (global.get $WINDOWS) (i32.shl (local.get $i) (i32.const 8))))
        (call $s_bytes (i32.add (local.get $w) (i32.const 40)) (i32.load offset=4 (local.get $w)))
        (call $s_u64 (i64.load offset=8 (local.get $w)))
        ;; an emptied window keeps its place in the order, not its old figures
        (local.set $empty (i64.eqz (i64.load offset=8 (local.get $w))))
        (call $s_f64 (select (f64.const 0) (f64.load offset=16 (local.get $w)) (local.get $empty)))
        (call $s_f64 (select (f64.const 0) (f64.load offset=24 (local.get $w)) (local.get $empty)))
        (call $s_f64 (select (f64.const 0) (f64.load offset=32 (local.get $w)) (local.get $empty)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  ;; Refused: 1 an unknown format, 2 more topics or a longer topic than this filter keeps,
  ;; 3 a topic twice, -1 a blob that ends too soon.
  (func $filter_load (param $format i32) (result i32)
    (local $n i32) (local $i i32) (local $t i32) (local $tl i32) (local $w i32) (local $before i32)
    (local $count i64) (local $sum f64) (local $min f64) (local $max f64)
    (if (i32.ne (local.get $format) (i32.const 1)) (then (return (i32.const 1))))
    (local.set $n (call $r_u32))
    (if (global.get $r_failed) (then (return (i32.const -1))))
    (if (i32.gt_u (local.get $n) (i32.const 64)) (then (return (i32.const 2))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (drop (call $r_bytes))
        (local.set $t (global.get $found_ptr))
        (local.set $tl (global.get $found_len))
        (local.set $count (call $r_u64))
        (local.set $sum (call $r_f64))
        (local.set $min (call $r_f64))
        (local.set $max (call $r_f64))
        (if (global.get $r_failed) (then (return (i32.const -1))))
        ;; a count over the i64 range reads as negative
        (if (i32.or (i32.gt_u (local.get $tl) (i32.const 200)) (i64.lt_s (local.get $count) (i64.const 0)))
          (then (return (i32.const 2))))
        (local.set $before (global.get $n_windows))
        (local.set $w (call $find_or_add (local.get $t) (local.get $tl)))
        (if (i32.eq (global.get $n_windows) (local.get $before)) (then (return (i32.const 3))))
        (i64.store offset=8 (local.get $w) (local.get $count))
        (f64.store offset=16 (local.get $w) (local.get $sum))
        (f64.store offset=24 (local.get $w) (local.get $min))
        (f64.store offset=32 (local.get $w) (local.get $max))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))
)
