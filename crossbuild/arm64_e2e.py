"""The aarch64 bundle, proven end to end on arm64 without hardware. Run through
crossbuild/arm64-e2e.

1. An arm64 Debian bookworm root file system (`mmdebstrap --variant=extract`: packages are only
   unpacked, so no binfmt support is needed), cached in crossbuild/.cache/.
2. The aarch64 bundle, built from this tree (or given with --bundle), unpacked.
3. The bundle's own install.sh, with every Python command run by the rootfs's aarch64
   python3.11 under `qemu-aarch64-static -L ROOTFS`: the venv, pip installing the bundle's
   wheels with --no-index (pip, running as aarch64, decides which wheels fit), the wasmtime
   check, `edged install-service --root`.
4. `edged check` of the installed default config, then `edged run` under qemu against a
   mosquitto on this host's loopback: real messages through the Wasm filters, the exact outputs
   asserted, SIGTERM, exit 0, "offline" status.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import build_bundle
import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edged.mqtt.mosquitto import PrivateBroker, find_mosquitto

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
SUITE = "bookworm"
# python3.11 brings python3.11-minimal, libpython3.11-stdlib, libffi8 (ctypes) and libssl3.
# No python3-venv: install.sh must not need it.
PACKAGES = ("python3.11",)
NODE = "arm64-e2e"
STATUS = f"edged/{NODE}/status"
QEMU = "qemu-aarch64-static"
TOOLS = {"mmdebstrap": "mmdebstrap", QEMU: "qemu-user-static", "mosquitto": "mosquitto"}

# What the sensors publish (all QoS 1), in this order.
READINGS: list[tuple[str, str]] = [
    ("sensors/kitchen/temp", '{"temp": 20.0, "ts": 1}'),
    ("sensors/kitchen/temp", '{"temp": 20.4, "ts": 2}'),
    ("sensors/kitchen/temp", '{"temp": 21.6, "ts": 3}'),
    ("sensors/kitchen/temp", '{"temp": 31.5, "ts": 4}'),
    ("sensors/kitchen/temp", '{"temp": 29.0, "ts": 5}'),
    ("sensors/attic/temp", '{"temp": 35.25, "ts": 6}'),
    ("sensors/attic/temp", "not json"),
    ("sensors/attic/humidity", '{"rh": 40.5, "ts": 7}'),
]
# What edged must publish, per topic in order: threshold alerts above 30 °C; Celsius to
# Fahrenheit through a 1 °F deadband; humidity passed through unchanged.
EXPECTED: dict[str, list[str]] = {
    "out/alerts/overheat": [
        '{"topic":"sensors/kitchen/temp","field":"temp","value":31.5,"limit":30}',
        '{"topic":"sensors/attic/temp","field":"temp","value":35.25,"limit":30}',
    ],
    "out/f/sensors/kitchen/temp": [
        '{"temp_f":68.0,"ts":1}',
        '{"temp_f":70.9,"ts":3}',
        '{"temp_f":88.7,"ts":4}',
        '{"temp_f":84.2,"ts":5}',
    ],
    "out/f/sensors/attic/temp": ['{"temp_f":95.5,"ts":6}'],
    "out/raw/sensors/attic/humidity": ['{"rh": 40.5, "ts": 7}'],
}


class E2EError(Exception):
    """The proof failed; the message says where."""


def _sudo() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo"]


def ensure_tools() -> None:
    """Install mmdebstrap, qemu-user-static and mosquitto with apt-get when missing."""

    def have(tool: str) -> bool:
        if tool == "mosquitto":
            return find_mosquitto() is not None
        return shutil.which(tool) is not None

    missing = sorted({pkg for tool, pkg in TOOLS.items() if not have(tool)})
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise E2EError(f"please install: {' '.join(missing)} (no apt-get here)")
    print(f"installing {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run([*_sudo(), "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        [*_sudo(), "apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )


def rootfs(rebuild: bool) -> tuple[Path, bool]:
    """The arm64 bookworm rootfs, built once and kept; (path, whether it came from the cache)."""
    target = CACHE / f"rootfs-arm64-{SUITE}"
    stamp = target / ".edged-rootfs"
    key = f"{SUITE} {' '.join(PACKAGES)}\n"
    if not rebuild and stamp.is_file() and stamp.read_text() == key:
        return target, True
    print(f"building the arm64 {SUITE} rootfs in {target} (mmdebstrap)", flush=True)
    building = target.with_name(target.name + ".building")
    for path in (building, target):
        if path.exists():
            shutil.rmtree(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            "mmdebstrap",
            "--variant=extract",
            "--arch=arm64",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(building),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise E2EError(f"mmdebstrap failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    (building / stamp.name).write_text(key)
    building.rename(target)
    return target, False


def emulated(root: Path) -> list[str]:
    return [QEMU, "-L", str(root)]


def _clean_env() -> dict[str, str]:
    """This environment without the host Python's own settings."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
    return {k: v for k, v in os.environ.items() if k not in drop}


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    result = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else _clean_env(),
        check=False,
    )
    if result.returncode != 0:
        raise E2EError(
            f"`{shlex.join(argv)}` failed (exit {result.returncode}):\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result.stdout


def write_config(path: Path, port: int, filters: Path, state: Path) -> None:
    def module(name: str) -> dict[str, str]:
        return {"file": str(filters / f"{name}.wasm")}

    config = {
        "node_id": NODE,
        "topic_prefix": "edged",
        "state_dir": str(state),
        "broker": {"host": "127.0.0.1", "port": port},
        "modules": {name: module(name) for name in ("threshold", "convert", "deadband")}
        | {"passthrough": module("passthrough")},
        "pipelines": [
            {
                "name": "overheat",
                "subscribe": [{"topic": "sensors/+/temp", "qos": 1}],
                "filters": [
                    {
                        "module": "threshold",
                        "params": {"field": "temp", "limit": 30, "topic": "alerts/overheat"},
                    }
                ],
                "outputs": [{"topic": "out/{topic}", "qos": 1}],
            },
            {
                "name": "fahrenheit",
                "subscribe": [{"topic": "sensors/+/temp", "qos": 1}],
                "filters": [
                    {
                        "module": "convert",
                        "params": {
                            "field": "temp",
                            "as": "temp_f",
                            "scale": 1.8,
                            "offset": 32,
                            "decimals": 1,
                            "keep": "ts",
                        },
                    },
                    {"module": "deadband", "params": {"field": "temp_f", "deadband": 1.0}},
                ],
                "outputs": [{"topic": "out/f/{topic}", "qos": 1}],
            },
            {
                "name": "humidity",
                "subscribe": [{"topic": "sensors/+/humidity", "qos": 1}],
                "filters": ["passthrough"],
                "outputs": [{"topic": "out/raw/{topic}", "qos": 1}],
            },
        ],
        "log": {"level": "info"},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


class Listener:
    """An MQTT client on the host that records outputs and the daemon's status, in order."""

    def __init__(self, broker: PrivateBroker) -> None:
        self.messages: queue.Queue[tuple[str, str]] = queue.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="arm64-e2e-host")
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            (m.topic, m.payload.decode(errors="replace"))
        )
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        for topic in ("out/#", STATUS):
            self.client.subscribe(topic, 1)

    def wait_status(self, state: str, timeout: float, daemon: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if daemon.poll() is not None and state == "online":
                raise E2EError(f"the daemon exited with {daemon.returncode} before going online")
            try:
                topic, payload = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            if topic == STATUS and json.loads(payload).get("state") == state:
                return
        raise E2EError(f"no {state!r} status within {timeout:.0f} s")

    def outputs(self, count: int, timeout: float) -> tuple[list[tuple[str, str]], float]:
        """`count` outputs, then whatever else comes within two seconds; and the seconds until
        the `count`th arrived."""
        got: list[tuple[str, str]] = []
        started = time.monotonic()
        deadline = started + timeout
        quiet_until: float | None = None
        while True:
            now = time.monotonic()
            if quiet_until is not None and now >= quiet_until:
                return got, quiet_until - 2.0 - started
            if quiet_until is None and now >= deadline:
                return got, now - started
            try:
                topic, payload = self.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            if topic != STATUS:
                got.append((topic, payload))
            if len(got) >= count and quiet_until is None:
                quiet_until = time.monotonic() + 2.0

    def publish(self, topic: str, payload: str) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(30)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@contextmanager
def daemon_process(argv: Sequence[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**_clean_env(), "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as sink:
        proc = subprocess.Popen(list(argv), stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def du(path: Path) -> int:
    """Bytes on disk under `path`, as `du` counts them."""
    return sum(p.lstat().st_blocks * 512 for p in path.rglob("*"))


def prove(args: argparse.Namespace) -> int:
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = time.monotonic() - since
        return time.monotonic()

    if platform.machine() == "aarch64":
        print("note: this host is aarch64 already; qemu-user runs the same instructions")
    t = time.monotonic()
    ensure_tools()
    root, cached = rootfs(args.rebuild_rootfs)
    t = lap("rootfs", t)
    qemu = emulated(root)
    python = root / "usr" / "bin" / "python3.11"
    machine = run([*qemu, str(python), "-c", "import platform; print(platform.machine())"]).strip()
    if machine != "aarch64":
        raise E2EError(f"the rootfs's python3.11 reports {machine!r}, not aarch64")

    with tempfile.TemporaryDirectory(prefix="edged-arm64-e2e-") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.bundle:
            tarball = Path(args.bundle).resolve()
        else:
            (tarball,) = build_bundle.build(["aarch64"], work / "dist", log=False)
        t = lap("bundle", t)
        run(["tar", "-xzf", str(tarball), "-C", str(work)])
        bundle = work / tarball.name.removesuffix(".tar.gz")
        bundle_size = tarball.stat().st_size
        print(f"bundle {tarball.name}: {bundle_size / 2**20:.1f} MiB", flush=True)

        target = work / "target"  # what install.sh writes: opt/edged/venv, etc/edged, the unit
        install_env = {
            **_clean_env(),
            "EDGED_INSTALL_ARCH": "aarch64",
            "EDGED_INSTALL_RUNNER": shlex.join(qemu),
        }
        print("install.sh, its Python commands under qemu-aarch64 ...", flush=True)
        out = run(
            [str(bundle / "install.sh"), "--python", str(python), "--root", str(target)],
            env=install_env,
        )
        if "on aarch64" not in out:
            raise E2EError(f"install.sh did not report an aarch64 install:\n{out}")
        t = lap("install", t)
        venv = target / "opt" / "edged" / "venv"
        edged = [*qemu, str(venv / "bin" / "python"), "-m", "edged"]
        installed = target / "etc" / "edged"
        out = run([*edged, "check", "--config", str(installed / "edged.yaml")])
        if "OK" not in out:
            raise E2EError(f"edged check of the installed config said:\n{out}")
        t = lap("check", t)

        with PrivateBroker() as broker:
            config = work / "e2e.yaml"
            write_config(config, broker.port, installed / "filters", work / "state")
            listener = Listener(broker)
            log = work / "edged.log"
            try:
                with daemon_process([*edged, "run", "--config", str(config)], log) as daemon:
                    try:
                        listener.wait_status("online", 600, daemon)
                        t = lap("start", t)
                        for topic, payload in READINGS:
                            listener.publish(topic, payload)
                        want = sum(len(v) for v in EXPECTED.values())
                        got, timings["messages"] = listener.outputs(want, 300)
                        t = time.monotonic()
                        daemon.send_signal(signal.SIGTERM)
                        code = daemon.wait(120)
                        listener.wait_status("offline", 10, daemon)
                        t = lap("stop", t)
                    except (E2EError, subprocess.TimeoutExpired):
                        print(log.read_text(errors="replace")[-5000:], file=sys.stderr)
                        raise
            finally:
                listener.close()
        by_topic: dict[str, list[str]] = {}
        for topic, payload in got:
            by_topic.setdefault(topic, []).append(payload)
        if by_topic != EXPECTED:
            raise E2EError(
                "outputs differ\nexpected: "
                + json.dumps(EXPECTED, indent=1)
                + "\ngot: "
                + json.dumps(by_topic, indent=1)
            )
        if code != 0:
            raise E2EError(f"the daemon exited with {code} on SIGTERM:\n{log.read_text()[-3000:]}")
        venv_size = du(venv)

    total = time.monotonic() - started
    steps = ", ".join(
        f"{name} {seconds:.{2 if seconds < 1 else 1}f} s"
        + (" (cached)" if name == "rootfs" and cached else "")
        for name, seconds in timings.items()
    )
    print(
        f"installed size (venv): {venv_size / 2**20:.1f} MiB; bundle {bundle_size / 2**20:.1f} MiB"
    )
    print(
        f"PASS arm64-e2e: edged on aarch64 under qemu-user ({SUITE}, python3.11): "
        f"{len(READINGS)} messages in, {len(got)} out exactly as expected, exit 0 on SIGTERM; "
        f"{steps}; total {total:.1f} s"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="arm64-e2e",
        description="Install the aarch64 bundle into an arm64 rootfs and run it under qemu-user.",
    )
    parser.add_argument(
        "--bundle", metavar="TARBALL", help="use this aarch64 bundle instead of building one"
    )
    parser.add_argument(
        "--rebuild-rootfs", action="store_true", help="build the cached arm64 rootfs again"
    )
    parser.add_argument("--workdir", metavar="DIR", help="keep the work files in DIR")
    args = parser.parse_args(argv)
    try:
        return prove(args)
    except (E2EError, build_bundle.BundleError) as exc:
        print(f"FAIL arm64-e2e: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
