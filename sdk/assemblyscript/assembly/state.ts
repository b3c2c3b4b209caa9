// State for AssemblyScript filters (docs/filter-abi.md, "State"): a blob writer and reader,
// and the three state exports around the filter's own save and load functions.
//
//   import { StateReader, StateWriter, stateful } from "./state";
//   export { edged_state_buffer, edged_state_load, edged_state_save } from "./state";
//
//   function save(w: StateWriter): u32 { w.u64(seen); return 1; }
//   function load(format: u32, r: StateReader): i32 {
//     if (format != 1) return 1;
//     seen = r.u64();
//     return 0;
//   }
//   stateful(save, load);
//
// Kept apart from edged.ts so that a filter without state compiles none of it: its module is
// byte for byte what it was before state existed.

import { LOG_ERROR, Str, log } from "./edged";

/** The largest state blob, saved or loaded (the node's budgets.max_state caps it too). */
export const STATE_CAP: u32 = 64 * 1024;
/** What edged_state_load returns when the filter's load accepted a blob but a read ran past
 * its end (C: EDGED_STATE_TRUNCATED)... */
export const STATE_TRUNCATED: i32 = -1;
/** ... or left bytes unread (C: EDGED_STATE_TRAILING). */
export const STATE_TRAILING: i32 = -2;

// ---- state blobs ----------------------------------------------------------------------------

/** Writes a state blob: little-endian values, and byte strings as a u32 length then the bytes
 * (the C SDK's edged_put_* layout). Every append is all or nothing; a failed one sets `failed`
 * and refuses the rest, and the SDK then saves nothing (the call traps, so the node keeps the
 * last good state). The SDK hands one to the filter's save function. */
@final
export class StateWriter {
  len: u32 = 0;
  failed: bool = false;

  constructor(public ptr: usize, public cap: u32) {}

  /** Appends `n` bytes at `data`, without a length. */
  raw(data: usize, n: u32): StateWriter {
    if (this.failed || n > this.cap - this.len) {
      this.failed = true;
      return this;
    }
    memory.copy(this.ptr + this.len, data, n);
    this.len += n;
    return this;
  }

  u8(v: u8): StateWriter {
    if (this.failed || this.cap - this.len < 1) {
      this.failed = true;
      return this;
    }
    store<u8>(this.ptr + this.len, v);
    this.len += 1;
    return this;
  }

  u32(v: u32): StateWriter {
    if (this.failed || this.cap - this.len < 4) {
      this.failed = true;
      return this;
    }
    store<u32>(this.ptr + this.len, v);
    this.len += 4;
    return this;
  }

  u64(v: u64): StateWriter {
    if (this.failed || this.cap - this.len < 8) {
      this.failed = true;
      return this;
    }
    store<u64>(this.ptr + this.len, v);
    this.len += 8;
    return this;
  }

  f64(v: f64): StateWriter {
    return this.u64(reinterpret<u64>(v));
  }

  /** Appends a u32 length, then the bytes; both or neither. */
  bytes(s: Str): StateWriter {
    if (this.failed || this.cap - this.len < 4 || s.len > this.cap - this.len - 4) {
      this.failed = true;
      return this;
    }
    return this.u32(s.len).raw(s.ptr, s.len);
  }
}

/** Reads a state blob written by StateWriter (or the C SDK's edged_put_*). A read past the end
 * returns 0 (bytes: false) and sets `failed`, and so does every later read: test `failed`
 * once after a group of reads. The SDK hands one to the filter's load function. */
@final
export class StateReader {
  pos: u32 = 0;
  failed: bool = false;

  constructor(public ptr: usize, public len: u32) {}

  /** True when every byte was read and no read failed. */
  done(): bool {
    return !this.failed && this.pos == this.len;
  }

  private take(n: u32): usize {
    if (this.failed || n > this.len - this.pos) {
      this.failed = true;
      return 0;
    }
    const at = this.ptr + this.pos;
    this.pos += n;
    return at;
  }

  u8(): u8 {
    const at = this.take(1);
    return at ? load<u8>(at) : 0;
  }

  u32(): u32 {
    const at = this.take(4);
    return at ? load<u32>(at) : 0;
  }

  u64(): u64 {
    const at = this.take(8);
    return at ? load<u64>(at) : 0;
  }

  f64(): f64 {
    return reinterpret<f64>(this.u64());
  }

  /** A u32 length, then that many bytes: `out` points at them (no copy), in the SDK's state
   * buffer, which the next save overwrites: copy what you keep. False when the blob ends
   * first. */
  bytes(out: Str): bool {
    const start = this.pos;
    const n = this.u32();
    if (this.failed) return false;
    const at = this.take(n);
    if (this.failed) {
      this.pos = start;
      return false;
    }
    out.set(at, n);
    return true;
  }

  /** The next `n` bytes as they are, into `out`; false when the blob ends first. */
  raw(out: Str, n: u32): bool {
    const at = this.take(n);
    if (this.failed) return false;
    out.set(at, n);
    return true;
  }
}

// ---- registration and ABI entry points ------------------------------------------------------

let onSave: ((w: StateWriter) => u32) | null = null;
let onLoad: ((format: u32, r: StateReader) => i32) | null = null;
// Made on the first state call, so a filter without state pays nothing for them; made once,
// since the stub runtime never frees.
let stateArea: usize = 0; // the 12-byte state descriptor, then STATE_CAP bytes of blob
let writer: StateWriter | null = null;
let reader: StateReader | null = null;

/** Registers the filter's state functions (docs/filter-abi.md, "State"); the entry file then
 * re-exports edged_state_save, edged_state_buffer and edged_state_load. `save` writes the state
 * and returns its format, the filter's own number for this layout. `load` reads it back on a
 * fresh instance, before its first message: 0 takes it, a positive code refuses it (the node
 * then starts the filter fresh, so a half-done load need not be undone). A load that returns 0
 * after a failed read is refused as STATE_TRUNCATED, one that left bytes unread as
 * STATE_TRAILING. */
export function stateful(
  save: (w: StateWriter) => u32,
  load: (format: u32, r: StateReader) => i32,
): void {
  onSave = save;
  onLoad = load;
}

function stateBlob(): usize {
  if (stateArea == 0) stateArea = heap.alloc(12 + STATE_CAP);
  return stateArea + 12;
}

export function edged_state_save(): i32 {
  let w = writer;
  if (w === null) writer = w = new StateWriter(stateBlob(), STATE_CAP);
  w.len = 0;
  w.failed = false;
  const save = onSave;
  const format: u32 = save === null ? 0 : save(w);
  if (w.failed) {
    // A cut state would lose data quietly; the trap keeps the last good one.
    log(LOG_ERROR, "edged: the state does not fit STATE_CAP");
    unreachable();
  }
  store<u32>(stateArea, <u32>w.ptr);
  store<u32>(stateArea, w.len, 4);
  store<u32>(stateArea, format, 8);
  return <i32>stateArea;
}

export function edged_state_buffer(len: u32): i32 {
  return len > STATE_CAP ? -1 : <i32>stateBlob();
}

export function edged_state_load(format: u32, len: u32): i32 {
  if (len > STATE_CAP) unreachable();
  let r = reader;
  if (r === null) reader = r = new StateReader(stateBlob(), 0);
  r.len = len;
  r.pos = 0;
  r.failed = false;
  const load = onLoad;
  const code = load === null ? 1 : load(format, r);
  if (code != 0) return code;
  if (r.failed) return STATE_TRUNCATED;
  return r.pos == r.len ? 0 : STATE_TRAILING;
}
