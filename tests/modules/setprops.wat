;; Emits every message unchanged with three MQTT 5 properties set (filter ABI "Properties"):
;; content type application/json, correlation data "req-42" and the user property
;; stage=gateway. A payload "props?" is answered with the input's properties area instead
;; (its `used` header and entries), so a test can see what the host wrote there.
(module
  (memory (export "memory") 1)
  ;; buffers: input area at 64 (30000 bytes), output area at 32768 (16 KiB)
  (data (i32.const 0) "\40\00\00\00\30\75\00\00\00\80\00\00\00\40\00\00")
  ;; properties: area at 49152 (8 KiB)
  (data (i32.const 16) "\00\c0\00\00\00\20\00\00")
  ;; the 70 bytes of entries it sets
  (data (i32.const 60000) "\03\00\00\00\10\00\00\00\00\00\00\00\61\70\70\6c\69\63\61\74\69\6f\6e\2f\6a\73\6f\6e\09\00\00\00\06\00\00\00\00\00\00\00\72\65\71\2d\34\32\26\00\00\00\05\00\00\00\07\00\00\00\73\74\61\67\65\67\61\74\65\77\61\79")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  (func (export "edged_properties") (result i32) (i32.const 16))
  (func (export "edged_on_message") (param $t i32) (param $p i32) (result i32)
    (local $n i32)
    (if (i32.and (i32.eq (local.get $p) (i32.const 6))
                 (i32.eq (i32.load16_u (i32.add (i32.const 68) (local.get $t))) (i32.const 0x3f73)))
      (then
        ;; "props?": the payload becomes the properties area, no properties set
        (local.set $n (i32.add (i32.const 4) (i32.load (i32.const 49152))))
        (i32.store (i32.const 32768) (i32.add (i32.add (i32.const 12) (local.get $t)) (local.get $n)))
        (i32.store (i32.const 32772) (local.get $t))
        (i32.store (i32.const 32776) (local.get $n))
        (i32.store (i32.const 32780) (i32.const 0))
        (memory.copy (i32.const 32784) (i32.const 64) (local.get $t))
        (memory.copy (i32.add (i32.const 32784) (local.get $t)) (i32.const 49152) (local.get $n))
        (return (i32.const 2))))
    (local.set $n (i32.add (local.get $t) (local.get $p)))
    (i32.store (i32.const 32768) (i32.add (i32.const 82) (local.get $n)))
    (i32.store (i32.const 32772) (local.get $t))
    (i32.store (i32.const 32776) (local.get $p))
    (i32.store (i32.const 32780) (i32.const 70))
    (memory.copy (i32.const 32784) (i32.const 64) (local.get $n))
    (memory.copy (i32.add (i32.const 32784) (local.get $n)) (i32.const 60000) (i32.const 70))
    (i32.const 2)))
