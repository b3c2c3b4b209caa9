"""Build edged's offline install bundles: dist/edged-<version>-linux-<arch>.tar.gz.

Each bundle holds the edged wheel built from this tree, every dependency as a wheel for that
platform (pip download --only-binary=:all: --platform ...), pip itself as a wheel, the systemd
unit, the configs, the example filters and install.sh. Run through crossbuild/build-bundle.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
ARCHES = ("aarch64", "x86_64")
# Debian bookworm and Raspberry Pi OS bookworm: CPython 3.11.
DEFAULT_PYTHONS = ("3.11",)
# The newest glibc a wheel may need. 2.28 (Debian buster) is older than any system with a
# Python 3.11, so the bundle is not limited to bookworm's 2.36.
DEFAULT_GLIBC = "2.28"
# Files of the tree that go into every bundle, beside the wheels.
TREE_FILES = (
    "systemd/edged.service",
    "systemd/README.md",
    "configs/gateway.yaml",
    "configs/demo.yaml",
)
FILTERS_DIR = "examples/filters"
FILTER_SUFFIXES = (".wasm", ".c", ".wat", ".md")
# Packages that must come as a platform wheel (wasmtime also ships a py3-none-any wheel that
# has no native library in it).
NATIVE = ("wasmtime", "cryptography", "cffi", "pyyaml")
_WHEEL = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(-(?P<build>\d[^-]*))?"
    r"-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)
_MANYLINUX = re.compile(r"^manylinux_(\d+)_(\d+)_(\w+)$")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


class BundleError(Exception):
    """The bundle cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class Wheel:
    """A wheel file name taken apart (PEP 427)."""

    filename: str
    name: str
    version: str
    pythons: tuple[str, ...]
    abis: tuple[str, ...]
    platforms: tuple[str, ...]

    @classmethod
    def parse(cls, filename: str) -> Wheel:
        match = _WHEEL.match(filename)
        if match is None:
            raise BundleError(f"not a wheel file name: {filename}")
        return cls(
            filename,
            match["name"].lower().replace("_", "-"),
            match["version"],
            tuple(match["py"].split(".")),
            tuple(match["abi"].split(".")),
            tuple(match["plat"].split(".")),
        )

    @property
    def pure(self) -> bool:
        return self.platforms == ("any",)

    def glibc(self) -> tuple[int, int] | None:
        """The oldest glibc one of its manylinux tags runs on; None for a pure wheel."""
        found: list[tuple[int, int]] = []
        for plat in self.platforms:
            if match := _MANYLINUX.match(plat):
                found.append((int(match[1]), int(match[2])))
                continue
            for arch in ARCHES:
                if plat.endswith(f"_{arch}") and plat.removesuffix(f"_{arch}") in _LEGACY:
                    found.append(_LEGACY[plat.removesuffix(f"_{arch}")])
        return min(found) if found else None


def platform_tags(arch: str, glibc: str) -> list[str]:
    """Every manylinux tag a system with this glibc accepts, newest first."""
    major, minor = (int(part) for part in glibc.split("."))
    if major != 2:
        raise BundleError(f"glibc {glibc}: only 2.x is known")
    oldest = 17 if arch == "aarch64" else 5
    tags = [f"manylinux_2_{m}_{arch}" for m in range(minor, oldest - 1, -1)]
    legacy = {name: ver for name, ver in _LEGACY.items() if ver[1] <= minor}
    if arch == "aarch64":
        legacy = {name: ver for name, ver in legacy.items() if name == "manylinux2014"}
    return tags + [f"{name}_{arch}" for name in legacy]


def project_version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return str(data["project"]["version"])


def _run(argv: Sequence[str], *, quiet: bool, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        list(argv), capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if result.returncode != 0:
        raise BundleError(
            f"`{' '.join(argv[:4])} ...` failed (exit {result.returncode}):\n"
            + (result.stderr or result.stdout)[-4000:]
        )
    if not quiet and result.stdout:
        print(result.stdout, end="")


def build_edged_wheel(out: Path, *, quiet: bool = True) -> Path:
    """The edged wheel, built from a clean copy of this tree (no build/ or egg-info left here)."""
    with tempfile.TemporaryDirectory(prefix="edged-src-") as tmp:
        src = Path(tmp) / "edged"
        src.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, src / name)
        shutil.copytree(
            ROOT / "edged",
            src / "edged",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
        out.mkdir(parents=True, exist_ok=True)
        # The wheel's zip entries are dated at the last commit: the same tree, the same wheel.
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "-w",
                str(out),
                str(src),
            ],
            quiet=quiet,
            env={"SOURCE_DATE_EPOCH": str(_source_date())},
        )
    wheels = sorted(out.glob(f"edged-{project_version()}-*.whl"))
    if len(wheels) != 1:
        raise BundleError(f"expected one edged wheel in {out}, found {[w.name for w in wheels]}")
    return wheels[0]


def download_wheels(
    edged_wheel: Path, dest: Path, arch: str, pythons: Iterable[str], glibc: str
) -> None:
    """edged's dependencies and pip, as wheels for `arch`, for every Python version given."""
    dest.mkdir(parents=True, exist_ok=True)
    platforms = [arg for tag in platform_tags(arch, glibc) for arg in ("--platform", tag)]
    for version in pythons:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--only-binary=:all:",
                "--implementation",
                "cp",
                "--python-version",
                version,
                *platforms,
                "--dest",
                str(dest),
                str(edged_wheel),
                "pip",
            ],
            quiet=True,
        )


def check_wheels(wheels: Sequence[Wheel], arch: str, pythons: Sequence[str]) -> tuple[int, int]:
    """Refuse a wheel for another platform or Python; return the glibc every wheel runs on."""
    problems: list[str] = []
    other = [a for a in ARCHES if a != arch]
    abis = {f"cp{v.replace('.', '')}" for v in pythons} | {"abi3", "none"}
    names = {w.name for w in wheels}
    for name in ("edged", "pip", *NATIVE):
        if name not in names:
            problems.append(f"no {name} wheel")
    floor = (2, 5)
    for wheel in wheels:
        if wheel.pure:
            if wheel.name in NATIVE:
                problems.append(f"{wheel.filename} has no native code for {arch}")
            continue
        for plat in wheel.platforms:
            if not plat.endswith(f"_{arch}") or any(plat.endswith(f"_{o}") for o in other):
                problems.append(f"{wheel.filename}: platform {plat} is not {arch}")
        if not set(wheel.abis) & abis:
            problems.append(f"{wheel.filename}: ABI {'.'.join(wheel.abis)} is not one of {abis}")
        needed = wheel.glibc()
        if needed is None:
            problems.append(f"{wheel.filename}: not a manylinux wheel")
        else:
            floor = max(floor, needed)
    if problems:
        raise BundleError("wrong wheels for " + arch + ":\n  " + "\n  ".join(problems))
    return floor


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _source_date() -> int:
    if env := os.environ.get("SOURCE_DATE_EPOCH"):
        return int(env)
    result = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else 0


def _git_commit() -> str:
    result = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty", "--abbrev=12"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def _fill(template: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        template = template.replace(f"@{key}@", value)
    if left := re.findall(r"@[A-Z_]+@", template):
        raise BundleError(f"unfilled placeholders: {sorted(set(left))}")
    return template


def stage_bundle(
    stage: Path,
    edged_wheel: Path,
    wheel_cache: Path,
    arch: str,
    pythons: Sequence[str],
    glibc: str,
) -> dict[str, object]:
    """Lay out one bundle in `stage` and return its manifest."""
    version = project_version()
    wheels_dir = stage / "wheels"
    download_wheels(edged_wheel, wheel_cache, arch, pythons, glibc)
    wheels_dir.mkdir(parents=True)
    for whl in sorted(wheel_cache.glob("*.whl")):
        shutil.copy2(whl, wheels_dir / whl.name)
    if not (wheels_dir / edged_wheel.name).exists():
        shutil.copy2(edged_wheel, wheels_dir / edged_wheel.name)
    wheels = [Wheel.parse(p.name) for p in sorted(wheels_dir.glob("*.whl"))]
    floor = check_wheels(wheels, arch, pythons)

    for name in TREE_FILES:
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, stage / name)
    filters = stage / FILTERS_DIR
    filters.mkdir(parents=True)
    for path in sorted((ROOT / FILTERS_DIR).iterdir()):
        if path.suffix in FILTER_SUFFIXES or path.name == "Makefile":
            shutil.copy2(path, filters / path.name)

    values = {
        "VERSION": version,
        "ARCH": arch,
        "PYTHONS": " ".join(pythons),
        "GLIBC": f"{floor[0]}.{floor[1]}",
        "PIP_WHEEL": next(w.filename for w in wheels if w.name == "pip"),
    }
    install = stage / "install.sh"
    install.write_text(_fill((HERE / "install.sh").read_text(), values))
    install.chmod(0o755)
    (stage / "README.md").write_text(_fill((HERE / "bundle-README.md").read_text(), values))
    manifest: dict[str, object] = {
        "name": "edged",
        "version": version,
        "arch": arch,
        "pythons": list(pythons),
        "glibc": values["GLIBC"],
        "source": _git_commit(),
        "source_date": time.strftime("%Y-%m-%d", time.gmtime(_source_date())),
        "wheels": {w.filename: _sha256(wheels_dir / w.filename) for w in wheels},
    }
    (stage / "bundle.json").write_text(json.dumps(manifest, indent=2) + "\n")
    files = sorted(p for p in stage.rglob("*") if p.is_file())
    (stage / "SHA256SUMS").write_text(
        "".join(f"{_sha256(p)}  {p.relative_to(stage)}\n" for p in files)
    )
    return manifest


def write_tarball(stage: Path, target: Path, mtime: int) -> None:
    """A tar.gz of `stage` under its own name: sorted, root-owned, fixed times, so it is stable."""

    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = mtime
        info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
        return info

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = [stage, *sorted(stage.rglob("*"))]
        for path in paths:
            arcname = str(Path(stage.name) / path.relative_to(stage))
            tar.add(path, arcname=arcname, recursive=False, filter=clean)
    temp = target.with_name(f".{target.name}.tmp")
    with open(temp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(buffer.getvalue())
    os.replace(temp, target)


def build(
    arches: Sequence[str],
    out: Path,
    *,
    pythons: Sequence[str] = DEFAULT_PYTHONS,
    glibc: str = DEFAULT_GLIBC,
    log: bool = True,
) -> list[Path]:
    """Build one bundle per arch into `out`; return their paths."""
    version = project_version()
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="edged-bundle-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        edged_wheel = build_edged_wheel(work / "edged-wheel")
        if log:
            print(f"built {edged_wheel.name} ({time.monotonic() - started:.1f} s)")
        for arch in arches:
            started = time.monotonic()
            name = f"edged-{version}-linux-{arch}"
            stage = work / "stage" / name
            stage.mkdir(parents=True)
            manifest = stage_bundle(
                stage, edged_wheel, work / f"wheels-{arch}", arch, pythons, glibc
            )
            target = out / f"{name}.tar.gz"
            write_tarball(stage, target, _source_date())
            made.append(target)
            if log:
                wheels = manifest["wheels"]
                assert isinstance(wheels, dict)
                size = target.stat().st_size
                print(
                    f"{target}: {size / 2**20:.1f} MiB, {len(wheels)} wheels, CPython "
                    f"{', '.join(pythons)}, glibc >= {manifest['glibc']} "
                    f"({time.monotonic() - started:.1f} s)"
                )
                for filename in sorted(wheels):
                    print(f"  {filename}")
    return made


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build-bundle",
        description="Build edged's offline install bundles (dist/edged-VERSION-linux-ARCH.tar.gz).",
    )
    parser.add_argument("--arch", choices=(*ARCHES, "all"), default="all")
    parser.add_argument(
        "--python",
        default=",".join(DEFAULT_PYTHONS),
        metavar="X.Y[,X.Y...]",
        help="CPython versions to carry wheels for (default: %(default)s, Debian bookworm's)",
    )
    parser.add_argument(
        "--glibc",
        default=DEFAULT_GLIBC,
        metavar="2.N",
        help="newest glibc a wheel may need (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "dist", metavar="DIR", help="default: dist/"
    )
    args = parser.parse_args(argv)
    arches = ARCHES if args.arch == "all" else (args.arch,)
    pythons = tuple(v.strip() for v in args.python.split(",") if v.strip())
    for version in pythons:
        if not re.fullmatch(r"3\.\d+", version) or int(version.split(".")[1]) < 11:
            parser.error(f"--python {version}: edged needs CPython 3.11 or newer")
    if not re.fullmatch(r"2\.\d+", args.glibc):
        parser.error(f"--glibc {args.glibc}: expected 2.N")
    try:
        build(arches, args.out, pythons=pythons, glibc=args.glibc)
    except BundleError as exc:
        print(f"build-bundle: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
