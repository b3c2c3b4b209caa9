;; annotate: sets MQTT 5 properties on each message it passes on, and refuses the ones that
;; lack a user property it requires. Hand-written WAT; the same behaviour as
;; examples/filters/annotate.c.
;;
;; params (all optional):
;;   content_type   content type to set (e.g. application/json)
;;   property       name of a user property to add, with
;;   value          its value
;;   require        name of a user property every input must carry (e.g. traceparent); an
;;                  input without it is refused (REJECT) with the reason, and lands in the
;;                  dead letters
;; Topic and payload go on unchanged; what the filter does not set comes from the input as the
;; output rule says (docs/properties.md).
;;
;; What properties change (docs/filter-abi.md, "Properties"): the module exports
;; edged_properties, which returns the address of 8 bytes, props_ptr and props_cap. Before
;; each message the host writes the input's properties there: `used` (u32), then entries of
;; `id` (u32), `a_len` (u32), `b_len` (u32), a, b. And every record the module writes, emitted
;; messages and the REJECT reason alike, has a third length after topic_len and payload_len:
;; the bytes of entries (the same layout) that set properties on that message.
;; Build: wat2wasm annotate.wat -o annotate.wasm
(module
  ;; the one import the host offers: log(level, ptr, len), levels 0 debug .. 3 error
  (import "edged" "log" (func $log (param i32 i32 i32)))

  ;; Memory map (3 pages, the C SDK's default sizes):
  ;;        0  buffer descriptor (16)       16  properties descriptor (8)
  ;;      512  constant text              1024  the REJECT reason being built (160)
  ;;     1536  params index (32 x 16)     2048  params copy (4096 bytes)
  ;;     6144  properties to set on the next emit (1024)
  ;;     8192  the input's properties (4096), written by the host
  ;;    65536  input area (64 KiB)       131072  output area (64 KiB)
  (memory (export "memory") 3)

  ;; in_ptr 65536, in_cap 65536, out_ptr 131072, out_cap 65536 (little-endian)
  (data (i32.const 0) "\00\00\01\00" "\00\00\01\00" "\00\00\02\00" "\00\00\01\00")
  ;; props_ptr 8192, props_cap 4096
  (data (i32.const 16) "\00\20\00\00" "\00\10\00\00")
  (global $IN i32 (i32.const 65536))
  (global $IN_CAP i32 (i32.const 65536))
  (global $OUT i32 (i32.const 131072))
  (global $OUT_CAP i32 (i32.const 65536))
  (global $REASON i32 (i32.const 1024))
  (global $PARAMS i32 (i32.const 1536))
  (global $PSTORE i32 (i32.const 2048))
  (global $PROPS_OUT i32 (i32.const 6144))
  (global $PROPS_OUT_CAP i32 (i32.const 1024))
  (global $PROPS_IN i32 (i32.const 8192))
  (global $PROPS_CAP i32 (i32.const 4096))

  ;; MQTT 5 property ids as the entries carry them
  (global $PROP_CONTENT_TYPE i32 (i32.const 3))
  (global $PROP_USER i32 (i32.const 38))

  ;; constant text: each at its address, its length where it is used
  (global $M_PARAMS_LEN i32 (i32.const 512))
  (data (i32.const 512) "edged: params_len exceeds the input area")
  (global $M_PARAMS_CAP i32 (i32.const 552))
  (data (i32.const 552) "edged: params exceed EDGED_PARAMS_CAP")
  (global $M_KEY_NUL i32 (i32.const 589))
  (data (i32.const 589) "edged: params: key without NUL")
  (global $M_VALUE_NUL i32 (i32.const 619))
  (data (i32.const 619) "edged: params: value without NUL")
  (global $M_MAX_PARAMS i32 (i32.const 651))
  (data (i32.const 651) "edged: more params than EDGED_MAX_PARAMS")
  (global $S_CONTENT_TYPE i32 (i32.const 691))
  (data (i32.const 691) "content_type")
  (global $S_PROPERTY i32 (i32.const 703))
  (data (i32.const 703) "property")
  (global $S_VALUE i32 (i32.const 711))
  (data (i32.const 711) "value")
  (global $S_REQUIRE i32 (i32.const 716))
  (data (i32.const 716) "require")
  (global $S_MISSING i32 (i32.const 723))
  (data (i32.const 723) "missing user property ")
  (global $M_PAIR i32 (i32.const 745))
  (data (i32.const 745) "annotate: params 'property' and 'value' go together")
  (global $M_REQUIRE i32 (i32.const 796))
  (data (i32.const 796) "annotate: param 'require' is over 100 bytes")

  ;; bytes written to the output area this call, and whether anything was emitted
  (global $used (mut i32) (i32.const 0))
  (global $emitted (mut i32) (i32.const 0))
  ;; bytes of entries at $PROPS_OUT that the next emit sets
  (global $pending (mut i32) (i32.const 0))
  ;; params kept: $pcount (key ptr, key len, value ptr, value len) entries at $PARAMS
  (global $pcount (mut i32) (i32.const 0))
  ;; what $param and $user_property found
  (global $found_ptr (mut i32) (i32.const 0))
  (global $found_len (mut i32) (i32.const 0))

  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  ;; the opt-in: with this export every record below has three lengths
  (func (export "edged_properties") (result i32) (i32.const 16))

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

  ;; ---- properties -----------------------------------------------------------------------

  ;; 1 and $found_ptr/$found_len set to the value of the input's first user property called
  ;; name, else 0. Entries are walked by their lengths, checked against `used` (the host
  ;; never writes a malformed one, but a bad length must not read past the area).
  (func $user_property (param $name i32) (param $name_len i32) (result i32)
    (local $used i32) (local $at i32) (local $e i32) (local $a i32) (local $b i32)
    (local.set $used (i32.load (global.get $PROPS_IN)))
    (if (i32.gt_u (local.get $used) (i32.sub (global.get $PROPS_CAP) (i32.const 4)))
      (then (return (i32.const 0))))
    (block $done
      (loop $entry
        (br_if $done (i32.ge_u (local.get $at) (local.get $used)))
        (br_if $done (i32.lt_u (i32.sub (local.get $used) (local.get $at)) (i32.const 12)))
        (local.set $e (i32.add (i32.add (global.get $PROPS_IN) (i32.const 4)) (local.get $at)))
        (local.set $a (i32.load offset=4 (local.get $e)))
        (local.set $b (i32.load offset=8 (local.get $e)))
        ;; what is left after the header: a must fit it, and b what a leaves
        (br_if $done (i32.gt_u (local.get $a)
          (i32.sub (i32.sub (local.get $used) (local.get $at)) (i32.const 12))))
        (br_if $done (i32.gt_u (local.get $b)
          (i32.sub (i32.sub (i32.sub (local.get $used) (local.get $at)) (i32.const 12))
                   (local.get $a))))
        (if (i32.eq (i32.load (local.get $e)) (global.get $PROP_USER))
          (then
            (if (call $equal (i32.add (local.get $e) (i32.const 12)) (local.get $a)
                             (local.get $name) (local.get $name_len))
              (then
                (global.set $found_ptr
                  (i32.add (i32.add (local.get $e) (i32.const 12)) (local.get $a)))
                (global.set $found_len (local.get $b))
                (return (i32.const 1))))))
        (local.set $at (i32.add (local.get $at)
          (i32.add (i32.const 12) (i32.add (local.get $a) (local.get $b)))))
        (br $entry)))
    (i32.const 0))

  ;; Sets a property on the next emitted message: one entry appended at $PROPS_OUT. 0, or -1
  ;; when it does not fit (nothing set).
  (func $set_prop (param $id i32) (param $a i32) (param $al i32) (param $b i32) (param $bl i32)
                  (result i32)
    (local $room i32) (local $e i32)
    (local.set $room (i32.sub (global.get $PROPS_OUT_CAP) (global.get $pending)))
    (if (i32.lt_u (local.get $room) (i32.const 12)) (then (return (i32.const -1))))
    (if (i32.gt_u (local.get $al) (i32.sub (local.get $room) (i32.const 12)))
      (then (return (i32.const -1))))
    (if (i32.gt_u (local.get $bl)
          (i32.sub (i32.sub (local.get $room) (i32.const 12)) (local.get $al)))
      (then (return (i32.const -1))))
    (local.set $e (i32.add (global.get $PROPS_OUT) (global.get $pending)))
    (i32.store (local.get $e) (local.get $id))
    (i32.store offset=4 (local.get $e) (local.get $al))
    (i32.store offset=8 (local.get $e) (local.get $bl))
    (call $copy (i32.add (local.get $e) (i32.const 12)) (local.get $a) (local.get $al))
    (call $copy (i32.add (i32.add (local.get $e) (i32.const 12)) (local.get $al))
      (local.get $b) (local.get $bl))
    (global.set $pending (i32.add (global.get $pending)
      (i32.add (i32.const 12) (i32.add (local.get $al) (local.get $bl)))))
    (i32.const 0))

  ;; ---- output ---------------------------------------------------------------------------

  ;; Appends one record, topic_len payload_len props_len topic payload props, with the
  ;; properties set since the last emit: 0 done (they are then forgotten), -1 no room, -2 a
  ;; topic the host would refuse.
  (func $emit (param $t i32) (param $tl i32) (param $p i32) (param $pl i32) (result i32)
    (local $room i32) (local $rec i32)
    (if (i32.eqz (call $topic_valid (local.get $t) (local.get $tl)))
      (then (return (i32.const -2))))
    ;; compared piecewise so that no sum can wrap: each check subtracts what the one before
    ;; it proved fits
    (local.set $room (i32.sub (i32.sub (global.get $OUT_CAP) (i32.const 4)) (global.get $used)))
    (if (i32.lt_u (local.get $room) (i32.const 12)) (then (return (i32.const -1))))
    (local.set $room (i32.sub (local.get $room) (i32.const 12)))
    (if (i32.gt_u (local.get $tl) (local.get $room)) (then (return (i32.const -1))))
    (local.set $room (i32.sub (local.get $room) (local.get $tl)))
    (if (i32.gt_u (local.get $pl) (local.get $room)) (then (return (i32.const -1))))
    (local.set $room (i32.sub (local.get $room) (local.get $pl)))
    (if (i32.gt_u (global.get $pending) (local.get $room)) (then (return (i32.const -1))))
    (local.set $rec (i32.add (i32.add (global.get $OUT) (i32.const 4)) (global.get $used)))
    (i32.store (local.get $rec) (local.get $tl))
    (i32.store offset=4 (local.get $rec) (local.get $pl))
    (i32.store offset=8 (local.get $rec) (global.get $pending))
    (call $copy (i32.add (local.get $rec) (i32.const 12)) (local.get $t) (local.get $tl))
    (call $copy (i32.add (i32.add (local.get $rec) (i32.const 12)) (local.get $tl))
      (local.get $p) (local.get $pl))
    (call $copy
      (i32.add (i32.add (i32.add (local.get $rec) (i32.const 12)) (local.get $tl)) (local.get $pl))
      (global.get $PROPS_OUT) (global.get $pending))
    (global.set $used (i32.add (global.get $used)
      (i32.add (i32.add (i32.const 12) (global.get $pending))
               (i32.add (local.get $tl) (local.get $pl)))))
    (i32.store (global.get $OUT) (global.get $used))
    (global.set $pending (i32.const 0))
    (global.set $emitted (i32.const 1))
    (i32.const 0))

  ;; The REJECT reason record: topic_len 0, the reason as payload, props_len 0. Returns
  ;; REJECT (3), or DROP (0) when it does not fit.
  (func $reject (param $r i32) (param $rl i32) (result i32)
    (local $room i32) (local $rec i32)
    (local.set $room (i32.sub (i32.sub (global.get $OUT_CAP) (i32.const 4)) (global.get $used)))
    (if (i32.lt_u (local.get $room) (i32.const 12)) (then (return (i32.const 0))))
    (if (i32.gt_u (local.get $rl) (i32.sub (local.get $room) (i32.const 12)))
      (then (return (i32.const 0))))
    (local.set $rec (i32.add (i32.add (global.get $OUT) (i32.const 4)) (global.get $used)))
    (i32.store (local.get $rec) (i32.const 0))
    (i32.store offset=4 (local.get $rec) (local.get $rl))
    (i32.store offset=8 (local.get $rec) (i32.const 0))
    (call $copy (i32.add (local.get $rec) (i32.const 12)) (local.get $r) (local.get $rl))
    (global.set $used (i32.add (global.get $used) (i32.add (i32.const 12) (local.get $rl))))
    (i32.store (global.get $OUT) (global.get $used))
    (i32.const 3))

  (func $reset_output
    (global.set $used (i32.const 0))
    (global.set $emitted (i32.const 0))
    (global.set $pending (i32.const 0))
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

  ;; ---- ABI entry points -----------------------------------------------------------------

  (func (export "edged_init") (param $len i32) (result i32)
    (local $code i32)
    (local.set $code (call $parse_params (local.get $len)))
    (if (local.get $code) (then (return (local.get $code))))
    (call $filter_init))

  ;; Result rule: a call that emitted returns EMIT (2), unless the filter returns REJECT (3);
  ;; otherwise the filter's own result.
  (func (export "edged_on_message") (param $tl i32) (param $pl i32) (result i32)
    (local $r i32)
    ;; The host promises the message fits; if it does not, a trap is the loudest answer.
    (if (i32.or (i32.gt_u (local.get $tl) (global.get $IN_CAP))
                (i32.gt_u (local.get $pl) (i32.sub (global.get $IN_CAP) (local.get $tl))))
      (then (unreachable)))
    (call $reset_output)
    (local.set $r (call $filter_message (global.get $IN) (local.get $tl)
      (i32.add (global.get $IN) (local.get $tl)) (local.get $pl)))
    (select (i32.const 2) (local.get $r)
      (i32.and (global.get $emitted) (i32.ne (local.get $r) (i32.const 3)))))

  ;; ==== the filter ========================================================================

  ;; each param: whether it was given, and its value (in the params copy)
  (global $has_type (mut i32) (i32.const 0))
  (global $type_ptr (mut i32) (i32.const 0))
  (global $type_len (mut i32) (i32.const 0))
  (global $has_property (mut i32) (i32.const 0))
  (global $property_ptr (mut i32) (i32.const 0))
  (global $property_len (mut i32) (i32.const 0))
  (global $value_ptr (mut i32) (i32.const 0))
  (global $value_len (mut i32) (i32.const 0))
  (global $has_require (mut i32) (i32.const 0))
  (global $require_ptr (mut i32) (i32.const 0))
  (global $require_len (mut i32) (i32.const 0))

  (func $filter_init (result i32)
    (local $has_value i32)
    (global.set $has_type (call $param (global.get $S_CONTENT_TYPE) (i32.const 12)))
    (global.set $type_ptr (global.get $found_ptr))
    (global.set $type_len (global.get $found_len))
    (global.set $has_property (call $param (global.get $S_PROPERTY) (i32.const 8)))
    (global.set $property_ptr (global.get $found_ptr))
    (global.set $property_len (global.get $found_len))
    (local.set $has_value (call $param (global.get $S_VALUE) (i32.const 5)))
    (global.set $value_ptr (global.get $found_ptr))
    (global.set $value_len (global.get $found_len))
    (global.set $has_require (call $param (global.get $S_REQUIRE) (i32.const 7)))
    (global.set $require_ptr (global.get $found_ptr))
    (global.set $require_len (global.get $found_len))
    (if (i32.ne (global.get $has_property) (local.get $has_value))
      (then
        (call $log (i32.const 3) (global.get $M_PAIR) (i32.const 51))
        (return (i32.const 1))))
    (if (global.get $has_require)
      (then
        (if (i32.gt_u (global.get $require_len) (i32.const 100))
          (then
            (call $log (i32.const 3) (global.get $M_REQUIRE) (i32.const 43))
            (return (i32.const 2))))))
    (i32.const 0))

  (func $filter_message (param $t i32) (param $tl i32) (param $p i32) (param $pl i32) (result i32)
    (if (global.get $has_require)
      (then
        (if (i32.eqz (call $user_property (global.get $require_ptr) (global.get $require_len)))
          (then
            ;; "missing user property <name>": 22 + at most 100 bytes, in the 160 at $REASON
            (call $copy (global.get $REASON) (global.get $S_MISSING) (i32.const 22))
            (call $copy (i32.add (global.get $REASON) (i32.const 22))
              (global.get $require_ptr) (global.get $require_len))
            (return (call $reject (global.get $REASON)
              (i32.add (i32.const 22) (global.get $require_len))))))))
    (if (global.get $has_type)
      (then
        (drop (call $set_prop (global.get $PROP_CONTENT_TYPE)
          (global.get $type_ptr) (global.get $type_len) (i32.const 0) (i32.const 0)))))
    (if (global.get $has_property)
      (then
        (drop (call $set_prop (global.get $PROP_USER)
          (global.get $property_ptr) (global.get $property_len)
          (global.get $value_ptr) (global.get $value_len)))))
    (drop (call $emit (local.get $t) (local.get $tl) (local.get $p) (local.get $pl)))
    (i32.const 2))
)
