"""`edged install-service` and `edged uninstall-service`: the systemd unit, the `edged` user and
a default config on a gateway, and their removal.

Run as root on the gateway, from the venv edged is installed in: the unit's ExecStart names that
venv's `edged`. With `--root DIR` every path is taken under DIR (an image being built, or a test)
and nothing is run on this machine: the commands the target still needs are printed instead.
`--dry-run` changes nothing and prints what would be done.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import edged
from edged.errors import ServiceError

USER = "edged"
UNIT = "edged.service"
# The ExecStart of the shipped unit; the installer puts its own venv's `edged` in its place.
SHIPPED_EDGED = "/opt/edged/venv/bin/edged"
CONFIG = "/etc/edged/edged.yaml"
USERADD = [
    "useradd",
    "--system",
    "--no-create-home",
    "--home-dir",
    "/nonexistent",
    "--shell",
    "/usr/sbin/nologin",
]
# ProtectHome=yes hides these from the service: an edged installed under them cannot start.
_HIDDEN = (Path("/home"), Path("/root"), Path("/run/user"))
# Characters that a unit file would need quoted or escaped in ExecStart.
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/._+-]+")

_DEFAULT_CONFIG = """\
# edged's config, written by `edged install-service`, which never overwrites it.
# Check it:  sudo -u edged {edged} check --config /etc/edged/edged.yaml
# Apply it:  sudo systemctl reload edged
# Every setting is described in configs/gateway.yaml of the source tree.
# Relative paths are relative to this file.

# This gateway's name (here: its host name at install time), in its MQTT client id and topics.
# It must be unique among the nodes on one broker.
node_id: {node_id}
topic_prefix: edged

broker:
  host: localhost
  port: 1883
  # username: gateway
  # password_file: /etc/edged/broker-password   # root:edged 0640; never logged

modules:
  passthrough:
    file: filters/passthrough.wasm
  # The other example filters are in /etc/edged/filters too (examples/filters/README.md):
  # threshold:
  #   file: filters/threshold.wasm
  #   params: {{field: temp, limit: 35, topic: alerts/overheat}}
  # deadband:
  #   file: filters/deadband.wasm
  # average:
  #   file: filters/average.wasm
  # convert:
  #   file: filters/convert.wasm

pipelines:
  # Every message under sensors/ goes out unchanged under processed/.
  - name: passthrough
    subscribe:
      - topic: sensors/#
        qos: 1
    filters:
      - module: passthrough
    outputs:
      - topic: "processed/{{topic}}"
        qos: 1
"""


@dataclass(frozen=True)
class Layout:
    """Where everything goes, under `root` ("/" on the gateway itself)."""

    root: Path

    def at(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    @property
    def real(self) -> bool:
        return self.root == Path("/")

    @property
    def config_dir(self) -> Path:
        return self.at("/etc/edged")

    @property
    def config(self) -> Path:
        return self.at(CONFIG)

    @property
    def filters(self) -> Path:
        return self.at("/etc/edged/filters")

    @property
    def unit(self) -> Path:
        return self.at(f"/etc/systemd/system/{UNIT}")

    @property
    def dropins(self) -> Path:
        return self.at(f"/etc/systemd/system/{UNIT}.d")

    @property
    def wants_link(self) -> Path:
        return self.at(f"/etc/systemd/system/multi-user.target.wants/{UNIT}")

    @property
    def state(self) -> Path:
        return self.at("/var/lib/edged")


@dataclass
class _Steps:
    """Prints each step as it is done, or as it would be done under --dry-run."""

    out: TextIO
    dry_run: bool
    layout: Layout
    # Commands the target still has to run (under --root nothing is run here).
    pending: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        print(f"would {text}" if self.dry_run else text, file=self.out)

    def command(self, argv: Sequence[str], why: str) -> None:
        """Run a command on this machine; under --root only note it for the target."""
        line = " ".join(argv)
        if not self.layout.real:
            self.pending.append(line)
            return
        self.say(f"run: {line}  ({why})")
        if self.dry_run:
            return
        try:
            result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise ServiceError(f"{argv[0]} is not installed; it is needed to {why}") from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip()
            raise ServiceError(f"`{line}` failed (exit {result.returncode}): {detail}")

    def mkdir(self, path: Path, mode: int) -> None:
        if path.is_dir():
            print(f"kept {path}: it exists", file=self.out)
            return
        self.say(f"create {path} ({mode:04o} root:{USER})")
        if not self.dry_run:
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)
            self._group(path)

    def write(self, path: Path, data: bytes, mode: int, *, group: bool = True) -> None:
        owner = f"root:{USER}" if group else "root:root"
        self.say(f"write {path} ({mode:04o} {owner})")
        if self.dry_run:
            return
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_bytes(data)
        temp.chmod(mode)
        if group:
            self._group(temp)
        os.replace(temp, path)

    def remove(self, path: Path) -> None:
        if not (path.exists() or path.is_symlink()):
            return
        self.say(f"remove {path}")
        if self.dry_run:
            return
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    def _group(self, path: Path) -> None:
        if not self.layout.real:
            self.pending.append(f"chown -R root:{USER} /etc/edged")
            return
        os.chown(path, 0, grp.getgrnam(USER).gr_gid)


def edged_script() -> Path:
    """The `edged` command of the running interpreter's environment (its venv's bin)."""
    # Not resolved: a venv's python is a symlink to the system's, whose bin has no edged.
    return Path(os.path.abspath(sys.executable)).parent / "edged"


def source_tree(given: Path | None) -> Path:
    """The tree holding systemd/edged.service and examples/filters: given, or edged's checkout."""
    tree = given if given is not None else Path(edged.__file__).resolve().parent.parent
    if not (tree / "systemd" / UNIT).is_file() or not (tree / "examples" / "filters").is_dir():
        where = f"in {tree}" if given is not None else f"next to edged ({tree})"
        raise ServiceError(
            f"no systemd/{UNIT} and examples/filters {where}; pass --source with the "
            "edged source tree or the unpacked bundle"
        )
    return tree


def render_unit(template: str, script: Path) -> str:
    """The shipped unit with ExecStart naming `script` instead of /opt/edged/venv/bin/edged."""
    text = str(script)
    if not _PLAIN_PATH.fullmatch(text):
        raise ServiceError(
            f"{text} has characters a unit file would need escaped; install edged in a venv "
            "with a plain path, such as /opt/edged/venv"
        )
    lines = template.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("ExecStart=")]
    prefix = f"ExecStart={SHIPPED_EDGED} "
    if len(starts) != 1 or not lines[starts[0]].startswith(prefix):
        raise ServiceError(f"the unit template has no single `{prefix.strip()} ...` line")
    lines[starts[0]] = lines[starts[0]].replace(SHIPPED_EDGED, text, 1)
    return "".join(lines)


def default_config(script: Path, hostname: str | None = None) -> str:
    name = (hostname if hostname is not None else socket.gethostname()).split(".")[0]
    node_id = re.sub(r"[^A-Za-z0-9_-]", "-", name)[:64].strip("-") or "gateway"
    return _DEFAULT_CONFIG.format(node_id=node_id, edged=script)


def unreachable(paths: Sequence[Path]) -> list[str]:
    """Why the `edged` user could not use these from inside the unit's sandbox, if it could not."""
    problems: list[str] = []
    for given in paths:
        path = Path(os.path.realpath(given))
        if hidden := next((h for h in _HIDDEN if path.is_relative_to(h)), None):
            problems.append(f"{path} is under {hidden}, which ProtectHome=yes hides")
            continue
        for parent in reversed(path.parents):
            try:
                mode = stat.S_IMODE(parent.stat().st_mode)
            except OSError:
                break
            if not mode & stat.S_IXOTH:
                problems.append(f"{parent} is not searchable by other users (mode {mode:04o})")
                break
        else:
            try:
                mode = stat.S_IMODE(path.stat().st_mode)
            except OSError:
                continue
            if not mode & stat.S_IROTH:
                problems.append(f"{path} is not readable by other users (mode {mode:04o})")
    return problems


def _systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def _require_root(layout: Layout, dry_run: bool) -> None:
    if layout.real and not dry_run and os.geteuid() != 0:
        raise ServiceError("this changes /etc and system users: run it with sudo")


def install(
    root: Path = Path("/"),
    *,
    source: Path | None = None,
    dry_run: bool = False,
    out: TextIO | None = None,
) -> int:
    out = out if out is not None else sys.stdout
    layout = Layout(root)
    _require_root(layout, dry_run)
    tree = source_tree(source)
    script = edged_script()
    if not script.is_file():
        raise ServiceError(f"no `edged` command next to {sys.executable}; is edged installed?")
    unit = render_unit((tree / "systemd" / UNIT).read_text(), script)
    filters = sorted((tree / "examples" / "filters").glob("*.wasm"))
    # The script, the interpreter its venv links to, and the edged package it imports.
    needed = [script, Path(sys.executable), Path(edged.__file__).parent]
    if problems := unreachable(needed):
        advice = (
            "; create the venv with the system's python3 (sudo python3 -m venv /opt/edged/venv) "
            "and pip install edged into it, not -e (systemd/README.md)"
        )
        if layout.real:
            raise ServiceError("the service could not start edged: " + "; ".join(problems) + advice)
        for problem in problems:
            print(f"warning: {problem}{advice}", file=out)

    steps = _Steps(out, dry_run, layout)
    _ensure_user(steps)
    steps.mkdir(layout.config_dir, 0o750)
    steps.mkdir(layout.filters, 0o750)
    if layout.config.exists():
        print(f"kept {layout.config}: it exists and is never overwritten", file=out)
    else:
        steps.write(layout.config, default_config(script).encode(), 0o640)
    for wasm in filters:
        target = layout.filters / wasm.name
        if target.exists():
            if target.read_bytes() != wasm.read_bytes():
                print(f"kept {target}: it differs from {wasm}", file=out)
            continue
        steps.write(target, wasm.read_bytes(), 0o640)
    if not (layout.unit.exists() and layout.unit.read_text() == unit):
        if not dry_run:
            layout.unit.parent.mkdir(parents=True, exist_ok=True)
        steps.write(layout.unit, unit.encode(), 0o644, group=False)
    print(f"unit: ExecStart={script} run --config {CONFIG}", file=out)
    _reload_systemd(steps)
    _next_steps(steps, script)
    return 0


def uninstall(
    root: Path = Path("/"),
    *,
    purge: bool = False,
    dry_run: bool = False,
    out: TextIO | None = None,
) -> int:
    out = out if out is not None else sys.stdout
    layout = Layout(root)
    _require_root(layout, dry_run)
    steps = _Steps(out, dry_run, layout)
    if layout.real and _systemd_running() and layout.unit.exists():
        steps.command(["systemctl", "disable", "--now", UNIT], "stop and disable edged")
    elif layout.wants_link.is_symlink():
        steps.remove(layout.wants_link)  # what `systemctl disable` would have removed
    steps.remove(layout.unit)
    if purge:
        steps.remove(layout.dropins)
        steps.remove(layout.config_dir)
        steps.remove(layout.state)
    _reload_systemd(steps)
    if not purge:
        kept = [p for p in (layout.dropins, layout.config_dir, layout.state) if p.exists()]
        if kept:
            them = "them" if len(kept) > 1 else "it"
            print(f"kept {', '.join(map(str, kept))} (--purge removes {them})", file=out)
    print(f"kept the {USER} user and group (`userdel {USER}` removes them)", file=out)
    _print_pending(steps)
    return 0


def _ensure_user(steps: _Steps) -> None:
    if not steps.layout.real:
        steps.pending.append(" ".join([*USERADD, "--user-group", USER]))
        return
    try:
        pwd.getpwnam(USER)
    except KeyError:
        pass
    else:
        print(f"kept the {USER} user: it exists", file=steps.out)
        return
    try:
        grp.getgrnam(USER)
        group = ["--gid", USER]
    except KeyError:
        group = ["--user-group"]
    steps.command([*USERADD, *group, USER], f"create the {USER} system user and group")


def _reload_systemd(steps: _Steps) -> None:
    if steps.layout.real and not _systemd_running():
        print("skipped systemctl daemon-reload: systemd is not running here", file=steps.out)
        return
    steps.command(["systemctl", "daemon-reload"], "make systemd read the unit")


def _print_pending(steps: _Steps) -> None:
    if not steps.pending:
        return
    print(
        f"\nNothing was run on this machine (--root {steps.layout.root}); on the target, as root:",
        file=steps.out,
    )
    for line in dict.fromkeys(steps.pending):  # in order, once each
        print(f"  {line}", file=steps.out)


def _next_steps(steps: _Steps, script: Path) -> None:
    _print_pending(steps)
    if steps.dry_run:
        return
    print(
        "\nNext:\n"
        "  sudo systemctl enable --now edged   # start now and at every boot (running: restart)\n"
        f"  {script} logs   # or: journalctl -u edged -f -o cat\n"
        f"  sudoedit {CONFIG}   # then check it and apply it:\n"
        f"  sudo -u {USER} {script} check --config {CONFIG}\n"
        "  sudo systemctl reload edged",
        file=steps.out,
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`install-service` and `uninstall-service`."""
    inst = commands.add_parser(
        "install-service",
        help="install the systemd unit, the edged user and a default config (as root)",
    )
    inst.add_argument(
        "--source",
        type=Path,
        metavar="DIR",
        help="the tree with systemd/ and examples/filters (default: edged's own checkout)",
    )
    inst.set_defaults(handler=_install)
    uninst = commands.add_parser(
        "uninstall-service", help="stop and remove the systemd unit (as root)"
    )
    uninst.add_argument(
        "--purge", action="store_true", help="remove /etc/edged and /var/lib/edged too"
    )
    uninst.set_defaults(handler=_uninstall)
    for sub in (inst, uninst):
        sub.add_argument(
            "--root",
            type=Path,
            default=Path("/"),
            metavar="DIR",
            help="work under DIR (an image, a test) and run nothing here",
        )
        sub.add_argument("--dry-run", action="store_true", help="print what would be done")


def _install(args: argparse.Namespace) -> int:
    return install(Path(os.path.abspath(args.root)), source=args.source, dry_run=args.dry_run)


def _uninstall(args: argparse.Namespace) -> int:
    return uninstall(Path(os.path.abspath(args.root)), purge=args.purge, dry_run=args.dry_run)
