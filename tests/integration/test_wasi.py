"""WASI filters and filter logs in the running daemon: grants checked at start, log lines
bounded per filter, and hostile WASI modules that cannot stall the loop or take it down.

Real parts: `edged run` as a subprocess, a real mosquitto, WAT modules compiled by wasmtime
(each breaks one rule on purpose), and, where clang and wasi-libc are installed, a C filter
built against wasi-libc that uses printf.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from edged.mqtt.mosquitto import PrivateBroker
from edged.pipeline.filterlog import BURST, RATE
from tests.helpers.daemon import DaemonProcess, write_config
from tests.helpers.mqtt import Client
from tests.helpers.paths import wasm

# input area at 64 (1024 bytes), output area at 2048 (1024 bytes)
_HEAD = """(memory (export "memory") 2)
  (data (i32.const 0) "\\40\\00\\00\\00\\00\\04\\00\\00\\00\\08\\00\\00\\00\\04\\00\\00")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))"""

#: calls edged.log 1,000 times per message, then forwards it
CHATTY = f"""(module
  (import "edged" "log" (func $log (param i32 i32 i32)))
  {_HEAD}
  (data (i32.const 4000) "chatter")
  (func (export "edged_on_message") (param i32 i32) (result i32) (local $i i32)
    (loop $again
      (call $log (i32.const 1) (i32.const 4000) (i32.const 7))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 1000))))
    (i32.const 1)))"""

#: every message: a 300 ms sleep through poll_oneoff, 1 MiB to stdout, and proc_exit(1) for a
#: payload starting with "x"
HOSTILE = """(module
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 32)
  (data (i32.const 0) "\\40\\00\\00\\00\\00\\04\\00\\00\\00\\08\\00\\00\\00\\04\\00\\00")
  (func (export "edged_abi_version") (result i32) (i32.const 1))
  (func (export "edged_buffers") (result i32) (i32.const 0))
  ;; a clock subscription of 300 ms at 3072; an iovec of 1 MiB from 65536 at 3200
  (data (i32.const 3072) "\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00\\00"
    "\\01\\00\\00\\00\\00\\00\\00\\00\\00\\a3\\e1\\11\\00\\00\\00\\00")
  (data (i32.const 3200) "\\00\\00\\01\\00\\00\\00\\10\\00")
  (func (export "edged_on_message") (param $t i32) (param $p i32) (result i32)
    (drop (call $poll (i32.const 3072) (i32.const 3300) (i32.const 1) (i32.const 3400)))
    (drop (call $write (i32.const 1) (i32.const 3200) (i32.const 1) (i32.const 3400)))
    (if (i32.eq (i32.load8_u (i32.add (i32.const 64) (local.get $t))) (i32.const 120))
      (then (call $exit (i32.const 1))))
    (i32.const 1)))"""

C_PRINTF = r"""
#include <stdio.h>
#include <stdint.h>
#include <string.h>
static char in_area[1024], out_area[1024];
static uint32_t desc[4];
static int seen;
__attribute__((export_name("edged_abi_version"))) int abi(void) { return 1; }
__attribute__((export_name("edged_buffers"))) int buffers(void) {
  desc[0] = (uint32_t)(uintptr_t)in_area; desc[1] = sizeof in_area;
  desc[2] = (uint32_t)(uintptr_t)out_area; desc[3] = sizeof out_area;
  return (int)(uintptr_t)desc;
}
__attribute__((export_name("edged_on_message"))) int on_message(int tlen, int plen) {
  printf("message %d: %.*s\n", ++seen, plen, in_area + tlen);
  fflush(stdout);
  return 1;
}
"""


@pytest.fixture
def broker() -> Iterator[PrivateBroker]:
    with PrivateBroker() as running:
        yield running


def _compile(tmp_path: Path, name: str, wat: str) -> str:
    path = tmp_path / f"{name}.wasm"
    path.write_bytes(wasmtime.wat2wasm(wat))
    return str(path)


def _config(
    broker: PrivateBroker, tmp_path: Path, modules: dict[str, Any], root: str
) -> dict[str, Any]:
    return {
        "node_id": f"n{uuid.uuid4().hex[:6]}",
        "topic_prefix": root,
        "state_dir": str(tmp_path / "state"),
        "broker": {"host": broker.host, "port": broker.port},
        "modules": modules,
        "pipelines": [
            {
                "name": name,
                "subscribe": [f"{root}/{name}/in/#"],
                "filters": [name],
                "outputs": [{"topic": f"{root}/{name}/out"}],
            }
            for name in modules
        ],
    }


def _start(broker: PrivateBroker, tmp_path: Path, data: dict[str, Any]) -> DaemonProcess:
    path = write_config(tmp_path / "edged.yaml", data)
    daemon = DaemonProcess(path, f"{data['topic_prefix']}/{data['node_id']}/status", broker)
    daemon.wait_online()
    return daemon


def test_a_filter_calling_log_a_thousand_times_per_message_is_held_to_its_bound(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    """20 messages over ~2 s, 1,000 log calls each (20,000 lines asked for): the daemon logs at
    most the burst plus the rate for the time that passed, and a line says how many it
    suppressed."""
    root = f"w/{uuid.uuid4().hex[:8]}"
    data = _config(broker, tmp_path, {"chatty": {"file": _compile(tmp_path, "c", CHATTY)}}, root)
    daemon = _start(broker, tmp_path, data)
    client = Client(broker)
    client.subscribe(f"{root}/chatty/out")
    began = time.monotonic()
    for i in range(20):
        client.publish(f"{root}/chatty/in/a", f"m{i}".encode())
        time.sleep(0.1)
    assert len(client.collect(20, timeout=10)) == 20
    elapsed = time.monotonic() - began
    assert daemon.stop() == 0
    lines = [e for e in daemon.events() if e.get("event") == "filter_log"]
    assert 0 < len(lines) <= BURST + RATE * (elapsed + 1)
    assert sum(int(e.get("suppressed", 0)) for e in lines) > 0
    assert all(e["module"] == "chatty" and e["pipeline"] == "chatty" for e in lines)
    assert daemon.log_path.stat().st_size < 200_000  # was 23.8 MB for 20 such messages
    client.close()


def test_hostile_wasi_calls_do_not_stall_the_loop_and_are_clear_violations(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    """A WASI filter that sleeps 300 ms through poll_oneoff, writes 1 MiB to stdout and calls
    proc_exit on every message, next to a pass-through pipeline: the pass-through gets 100
    messages through at once (300 ms sleeps would take 30 s), the hostile filter's own messages
    go through too, and its exits are violations with reason `exit`."""
    root = f"w/{uuid.uuid4().hex[:8]}"
    modules = {
        "hostile": {"file": _compile(tmp_path, "h", HOSTILE), "capabilities": ["log"]},
        "plain": {"file": wasm("passthrough")},
    }
    data = _config(broker, tmp_path, modules, root)
    data["metrics"] = {"interval": 0.3}
    data["violations"] = {"quarantine_after": 1000}
    daemon = _start(broker, tmp_path, data)
    client = Client(broker)
    client.subscribe(f"{root}/plain/out")
    client.subscribe(f"{root}/hostile/out")
    began = time.monotonic()
    for i in range(100):
        client.publish(f"{root}/hostile/in/a", f"m{i}".encode())
        client.publish(f"{root}/plain/in/a", f"m{i}".encode())
    client.publish(f"{root}/hostile/in/x", b"x: exit")
    got = client.collect(200, timeout=10)
    assert time.monotonic() - began < 10
    assert sum(1 for topic, _ in got if topic.endswith("/plain/out")) == 100
    assert sum(1 for topic, _ in got if topic.endswith("/hostile/out")) == 100
    metrics = Client(broker)
    metrics.subscribe(f"{root}/{data['node_id']}/metrics")
    deadline = time.monotonic() + 5
    exits = 0
    while time.monotonic() < deadline and not exits:
        for _, body in metrics.quiet(0.3):
            record = json.loads(body)
            exits = record["pipelines"]["hostile"]["dropped"].get("exit", 0)
    assert exits == 1
    assert daemon.proc.poll() is None  # the process is alive
    assert daemon.stop() == 0
    client.close()
    metrics.close()


def test_a_wasi_module_is_refused_at_start_without_its_grant(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    """The same hostile module without `capabilities: [log]`: edged check and edged run refuse
    it naming the import and the capability, exit 2."""
    root = f"w/{uuid.uuid4().hex[:8]}"
    modules = {"hostile": {"file": _compile(tmp_path, "h", HOSTILE)}}
    path = write_config(tmp_path / "edged.yaml", _config(broker, tmp_path, modules, root))
    done = subprocess.run(
        [sys.executable, "-m", "edged", "check", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert (
        "modules.hostile.capabilities: module 'hostile' imports "
        "wasi_snapshot_preview1.fd_write, which needs the capability 'log' (not granted)"
    ) in done.stderr


def _wasi_clang() -> list[str] | None:
    """clang for a WASI reactor, with Debian's wasi-libc (/usr/include/wasm32-wasi, found by
    clang's wasm32-wasi target without a --sysroot)."""
    if shutil.which("clang") is None or not Path("/usr/include/wasm32-wasi/stdio.h").exists():
        return None
    return ["clang", "--target=wasm32-wasi", "-mexec-model=reactor"]


def test_a_c_filter_with_wasi_libc_printf_logs_its_lines(
    broker: PrivateBroker, tmp_path: Path
) -> None:
    clang = _wasi_clang()
    if clang is None:
        pytest.skip("clang with wasi-libc is not installed (Debian: wasi-libc)")
    source = tmp_path / "printf.c"
    source.write_text(C_PRINTF)
    out = tmp_path / "printf.wasm"
    done = subprocess.run(
        [*clang, "-O2", "-o", str(out), str(source)], capture_output=True, text=True
    )
    if done.returncode != 0 and "libclang_rt" in done.stderr:
        pytest.skip("clang's wasm32 runtime is not installed (Debian: libclang-rt-14-dev-wasm32)")
    assert done.returncode == 0, done.stderr
    root = f"w/{uuid.uuid4().hex[:8]}"
    modules = {"printf": {"file": str(out), "capabilities": ["log"]}}
    daemon = _start(broker, tmp_path, _config(broker, tmp_path, modules, root))
    client = Client(broker)
    client.subscribe(f"{root}/printf/out")
    for i in range(3):
        client.publish(f"{root}/printf/in/a", f"reading {i}".encode())
    assert [p for _, p in client.collect(3, timeout=10)] == [
        b"reading 0",
        b"reading 1",
        b"reading 2",
    ]
    assert daemon.stop() == 0
    lines = [e["text"] for e in daemon.events() if e.get("event") == "filter_log"]
    assert lines == ["message 1: reading 0", "message 2: reading 1", "message 3: reading 2"]
    client.close()
