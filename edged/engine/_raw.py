"""The one module that touches wasmtime-py's private names; everything else uses what it exports.

The per-message path calls wasmtime's C API directly instead of through `wasmtime.Func`, whose
`__call__` looks up the function's type and boxes every value on each call (see
`wasmtime_filter` for the figures). That needs the C context, memory and function handles that
wasmtime-py keeps private, and its ctypes declarations of the C API. Any wasmtime-py release may
change these, which is why the wasmtime major version is pinned and `tests/unit/test_engine.py`
runs this path directly. Each private access below says what it is for.
"""

from __future__ import annotations

import ctypes
from typing import Any

import wasmtime

# wasmtime-py's private modules: _bindings, its ctypes declarations of the C API's structures
# (contexts, values, traps, errors); _ffi, the loaded libwasmtime, for the addresses of its C
# functions; _func, where a Python host function that raised leaves its exception.
from wasmtime import _bindings, _ffi
from wasmtime import _func as _wasmtime_func

__all__ = [
    "TrapPtr",
    "args_array",
    "call_unchecked",
    "context",
    "error_at",
    "func_ref",
    "get_fuel",
    "memory_data",
    "memory_ref",
    "set_epoch_deadline",
    "set_fuel",
    "take_host_exception",
    "trap_from",
]


def _c_function(name: str, restype: Any, *argtypes: Any, release_gil: bool = False) -> Any:
    """The C function `name` with a plain integer result, so no pointer object is built per call.

    Short calls keep the GIL (PYFUNCTYPE); only the call into Wasm releases it, so the epoch
    ticker can run while a filter does.
    """
    proto = ctypes.CFUNCTYPE if release_gil else ctypes.PYFUNCTYPE
    # the symbol in wasmtime-py's loaded library
    address = ctypes.cast(getattr(_ffi.dll, name), ctypes.c_void_p).value
    assert address is not None, name
    return proto(restype, *argtypes)(address)


# The C API's types, as wasmtime-py declares them.
_Context = ctypes.POINTER(_bindings.wasmtime_context_t)
_ErrorPtr = ctypes.POINTER(_bindings.wasmtime_error_t)
#: A `wasm_trap_t *` slot the raw call fills when the guest traps.
TrapPtr = ctypes.POINTER(_bindings.wasm_trap_t)

#: `(ctx, func, args_and_results, n, trap_out) -> wasmtime_error_t * or None`: one guest call,
#: with no type check and no boxing; releases the GIL for the call's length.
call_unchecked = _c_function(
    "wasmtime_func_call_unchecked",
    ctypes.c_void_p,
    _Context,
    ctypes.POINTER(_bindings.wasmtime_func_t),
    ctypes.POINTER(_bindings.wasmtime_val_raw_t),
    ctypes.c_size_t,
    ctypes.POINTER(TrapPtr),
    release_gil=True,
)
#: `(ctx, memory) -> address`: where the linear memory starts now (it moves when it grows).
memory_data = _c_function(
    "wasmtime_memory_data",
    ctypes.c_size_t,
    _Context,
    ctypes.POINTER(_bindings.wasmtime_memory_t),
)
#: `(ctx, fuel) -> error or None`: the fuel the next call may burn.
set_fuel = _c_function("wasmtime_context_set_fuel", ctypes.c_void_p, _Context, ctypes.c_uint64)
#: `(ctx, uint64 *) -> error or None`: the fuel left after a call.
get_fuel = _c_function(
    "wasmtime_context_get_fuel", ctypes.c_void_p, _Context, ctypes.POINTER(ctypes.c_uint64)
)
#: `(ctx, ticks)`: the epoch deadline, in ticks from the engine's current epoch.
set_epoch_deadline = _c_function(
    "wasmtime_context_set_epoch_deadline", None, _Context, ctypes.c_uint64
)


def context(store: wasmtime.Store) -> Any:
    """The store's `wasmtime_context_t *`, the first argument of every C call above."""
    return store._context()  # wasmtime-py keeps the store's C context private


def memory_ref(memory: wasmtime.Memory) -> Any:
    """A `wasmtime_memory_t *` for `memory_data`, made once per instance."""
    return ctypes.byref(memory._memory)  # the C handle inside wasmtime-py's Memory


def func_ref(func: wasmtime.Func) -> Any:
    """A `wasmtime_func_t *` for `call_unchecked`, made once per export."""
    return ctypes.byref(func._func)  # the C handle inside wasmtime-py's Func


def args_array(length: int) -> Any:
    """A reusable `wasmtime_val_raw_t[length]`: a call's arguments in, its results out."""
    return (_bindings.wasmtime_val_raw * length)()


def take_host_exception() -> BaseException | None:
    """The exception a Python host function raised during the last call, cleared.

    wasmtime-py keeps it in a module global for `Func.__call__` to re-raise; the raw path must
    take it itself, or it would surface from some later, unrelated wasmtime call.
    """
    exc = _wasmtime_func.LAST_EXCEPTION
    _wasmtime_func.LAST_EXCEPTION = None
    return exc


def trap_from(trap: Any) -> wasmtime.Trap:
    """A `Trap` owning the trap `call_unchecked` wrote into `trap` (a `TrapPtr`).

    The Trap frees it; the slot must not be handed to another call.
    """
    return wasmtime.Trap._from_ptr(trap)  # wasmtime-py's constructor from a C pointer


def error_at(address: int) -> wasmtime.WasmtimeError:
    """A `WasmtimeError` owning the error `call_unchecked` returned (its address)."""
    # wasmtime-py's constructor from a C pointer
    return wasmtime.WasmtimeError._from_ptr(ctypes.cast(address, _ErrorPtr))
