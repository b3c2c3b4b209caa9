"""The offline install bundles (crossbuild/build-bundle): both are built once for this module,
their contents checked for each platform, install.sh's refusals, and an x86_64 install from the
bundle alone (no index) whose config passes `edged check` and whose demo runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
ARCHES = ("aarch64", "x86_64")
# edged's dependencies, theirs, and pip (install.sh installs pip from the bundle).
PACKAGES = {
    "edged",
    "pip",
    "wasmtime",
    "paho-mqtt",
    "pyyaml",
    "structlog",
    "cryptography",
    "cffi",
    "pycparser",
    "prometheus-client",
}
NATIVE = {"wasmtime", "cryptography", "cffi", "pyyaml"}
SHELLCHECK = shutil.which("shellcheck")


def bundle_name(arch: str) -> str:
    return f"edged-{VERSION}-linux-{arch}"


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both tarballs, built by crossbuild/build_bundle.py (wheels from the package index)."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, str(ROOT / "crossbuild" / "build_bundle.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return {arch: out / f"{bundle_name(arch)}.tar.gz" for arch in ARCHES}


@pytest.fixture(scope="module")
def unpacked(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each bundle extracted, as a user would: tar -xzf."""
    dirs: dict[str, Path] = {}
    for arch, tarball in bundles.items():
        where = tmp_path_factory.mktemp(f"unpacked-{arch}")
        subprocess.run(["tar", "-xzf", str(tarball), "-C", str(where)], check=True)
        dirs[arch] = where / bundle_name(arch)
    return dirs


def wheel_tags(filename: str) -> tuple[str, str, list[str]]:
    """(normalised name, ABI tags, platform tags) of a wheel file name."""
    parts = filename.removesuffix(".whl").split("-")
    return parts[0].lower().replace("_", "-"), parts[-2], parts[-1].split(".")


def install_sh(
    bundle: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bundle / "install.sh"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def installed(unpacked: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The x86_64 bundle installed under a temporary root, with every index out of reach."""
    root = tmp_path_factory.mktemp("root")
    # A newer (and broken) structlog where pip would find it if install.sh let it look anywhere
    # but the bundle's wheels/.
    decoys = tmp_path_factory.mktemp("decoys")
    (decoys / "structlog-99.0-py3-none-any.whl").write_bytes(b"not a wheel")
    blocked = {
        "PIP_FIND_LINKS": str(decoys),
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",
        "PIP_NO_INDEX": "0",
        "EDGED_INSTALL_ARCH": "x86_64",
    }
    result = install_sh(unpacked["x86_64"], "--root", str(root), env=blocked)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "installed edged" in result.stdout
    return root


@pytest.mark.parametrize("arch", ARCHES)
def test_bundle_is_one_directory_named_by_version_and_arch(
    arch: str, bundles: dict[str, Path]
) -> None:
    """dist/edged-<version>-linux-<arch>.tar.gz unpacks into one edged-<version>-linux-<arch>/."""
    with tarfile.open(bundles[arch]) as tar:
        tops = {Path(name).parts[0] for name in tar.getnames()}
        owners = {(m.uid, m.gid) for m in tar.getmembers()}
    assert tops == {bundle_name(arch)}
    assert owners == {(0, 0)}


def test_the_same_tree_builds_the_same_bundle(bundles: dict[str, Path], tmp_path: Path) -> None:
    """Building again from the same tree gives a byte-identical tarball."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "crossbuild" / "build_bundle.py"),
            "--arch",
            "x86_64",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    again = tmp_path / bundles["x86_64"].name
    assert again.read_bytes() == bundles["x86_64"].read_bytes()


@pytest.mark.parametrize("arch", ARCHES)
def test_every_wheel_is_for_the_bundles_platform(arch: str, unpacked: dict[str, Path]) -> None:
    """Every dependency is a wheel for CPython 3.11 on that arch; none is for the other arch."""
    other = next(a for a in ARCHES if a != arch)
    names = sorted(p.name for p in (unpacked[arch] / "wheels").iterdir())
    assert all(name.endswith(".whl") for name in names), names
    found = set()
    for name in names:
        package, abi, platforms = wheel_tags(name)
        found.add(package)
        assert not any(other in plat for plat in platforms), name
        if package in NATIVE:
            assert platforms != ["any"], f"{name} has no native code"
            assert all(re.fullmatch(rf"manylinux[\w]*_{arch}", p) for p in platforms), name
            assert set(abi.split(".")) & {"cp311", "abi3", "none"}, name
        else:
            assert platforms == ["any"], name
    assert found == PACKAGES
    assert f"edged-{VERSION}-py3-none-any.whl" in names


@pytest.mark.parametrize("arch", ARCHES)
def test_bundle_carries_unit_configs_filters_and_checksums(
    arch: str, unpacked: dict[str, Path]
) -> None:
    """The unit, the configs and the example filters are the tree's; SHA256SUMS and bundle.json
    match the files."""
    bundle = unpacked[arch]
    for name in ("systemd/edged.service", "configs/gateway.yaml", "configs/demo.yaml"):
        assert (bundle / name).read_bytes() == (ROOT / name).read_bytes(), name
    wasm = sorted(p.name for p in (ROOT / "examples" / "filters").glob("*.wasm"))
    assert wasm and sorted(p.name for p in (bundle / "examples/filters").glob("*.wasm")) == wasm
    for name in wasm:
        assert (bundle / "examples/filters" / name).read_bytes() == (
            ROOT / "examples/filters" / name
        ).read_bytes()
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert (manifest["version"], manifest["arch"], manifest["pythons"]) == (VERSION, arch, ["3.11"])
    wheels = sorted(p.name for p in (bundle / "wheels").iterdir())
    assert sorted(manifest["wheels"]) == wheels
    sums = {}
    for line in (bundle / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    files = {str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file()}
    assert set(sums) == files - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert hashlib.sha256((bundle / name).read_bytes()).hexdigest() == digest, name
    assert not re.search(r"@[A-Z_]+@", (bundle / "README.md").read_text())


@pytest.mark.parametrize("arch", ARCHES)
def test_install_sh_is_executable_and_clean_shell(arch: str, unpacked: dict[str, Path]) -> None:
    """install.sh is executable, parses with `bash -n`, is shellcheck-clean, names its bundle."""
    script = unpacked[arch] / "install.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert f'BUNDLE_ARCH="{arch}"' in text and f'VERSION="{VERSION}"' in text
    assert not re.search(r"@[A-Z_]+@", text)
    if SHELLCHECK:
        result = subprocess.run([SHELLCHECK, str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


@pytest.mark.skipif(SHELLCHECK is None, reason="shellcheck is not installed (Debian: shellcheck)")
def test_crossbuild_scripts_are_shellcheck_clean() -> None:
    """The install.sh template and the crossbuild and scripts/bundle wrappers pass shellcheck."""
    assert SHELLCHECK is not None
    scripts = [ROOT / "crossbuild" / name for name in ("install.sh", "build-bundle", "arm64-e2e")]
    result = subprocess.run(
        [SHELLCHECK, *map(str, scripts), str(ROOT / "scripts" / "bundle")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("machine", ["armv7l", "armv6l", "i686"])
@pytest.mark.parametrize("arch", ARCHES)
def test_install_sh_refuses_a_32_bit_system(
    arch: str, machine: str, unpacked: dict[str, Path], tmp_path: Path
) -> None:
    """On armv7l (32-bit Raspberry Pi OS) install.sh says wasmtime is 64-bit only, points to the
    64-bit image, and changes nothing."""
    result = install_sh(
        unpacked[arch], "--root", str(tmp_path / "root"), env={"EDGED_INSTALL_ARCH": machine}
    )
    assert result.returncode == 1
    assert f"32-bit system ({machine})" in result.stderr
    assert "wasmtime, which is 64-bit only" in result.stderr
    assert "Raspberry Pi OS (64-bit)" in result.stderr
    assert f"edged-{VERSION}-linux-aarch64.tar.gz" in result.stderr
    assert not (tmp_path / "root" / "opt").exists()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EDGED_INSTALL_OS": "Darwin"}, "this bundle is for Linux; this system is Darwin"),
        (
            {"EDGED_INSTALL_ARCH": "aarch64"},
            "this is the x86_64 bundle and this machine is aarch64",
        ),
        ({"EDGED_INSTALL_ARCH": "riscv64"}, "unsupported machine type riscv64"),
    ],
)
def test_install_sh_refuses_another_os_or_arch(
    env: dict[str, str], message: str, unpacked: dict[str, Path], tmp_path: Path
) -> None:
    """A non-Linux system or another architecture is refused with what to use instead."""
    result = install_sh(unpacked["x86_64"], "--root", str(tmp_path), env=env)
    assert result.returncode == 1
    assert message in result.stderr


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ("3.9 64 venv 2.36 cpython", "edged needs Python 3.11 or newer; {py} is 3.9"),
        ("3.11 64 no-venv 2.36 cpython", "has no venv module"),
        ("3.11 32 venv 2.36 cpython", "32-bit userland and Python"),
        ("3.12 64 venv 2.36 cpython", "carries wheels for CPython 3.11 and {py} is 3.12"),
        ("3.11 64 venv none cpython", "C library is not glibc"),
        ("3.11 64 venv 2.17 cpython", "need glibc 2.28 or newer; this system has 2.17"),
        ("3.11 64 venv 2.36 pypy", "{py} is pypy"),
    ],
)
def test_install_sh_refuses_an_unsuitable_python(
    probe: str, message: str, unpacked: dict[str, Path], tmp_path: Path
) -> None:
    """Python older than 3.11, another version than the wheels', no venv module, a 32-bit Python
    or a non-glibc system is refused before anything is written."""
    fake = tmp_path / "python3"
    fake.write_text(f"#!/bin/sh\necho '{probe}'\n")
    fake.chmod(0o755)
    root = tmp_path / "root"
    result = install_sh(
        unpacked["x86_64"],
        "--root",
        str(root),
        "--python",
        str(fake),
        env={"EDGED_INSTALL_ARCH": "x86_64"},
    )
    assert result.returncode == 1
    assert message.format(py=fake) in result.stderr
    assert not (root / "opt").exists()


def test_x86_64_bundle_installs_offline_and_its_config_checks(
    installed: Path, unpacked: dict[str, Path]
) -> None:
    """install.sh builds the venv from the bundle's wheels alone and installs the service files;
    the installed config passes `edged check`."""
    venv = installed / "opt" / "edged" / "venv"
    config = installed / "etc" / "edged" / "edged.yaml"
    unit = (installed / "etc/systemd/system/edged.service").read_text()
    assert f"ExecStart={venv}/bin/edged run --config /etc/edged/edged.yaml" in unit
    check = subprocess.run(
        [str(venv / "bin" / "edged"), "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert check.returncode == 0, check.stderr
    assert "OK" in check.stdout
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import edged; print(edged.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=installed,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv)
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PIP_CONFIG_FILE": os.devnull},
    )
    bundled = {
        wheel_tags(p.name)[0]: p.name.split("-")[1]
        for p in (unpacked["x86_64"] / "wheels").iterdir()
    }
    # names as PEP 503 normalises them: pip freeze says prometheus_client, its wheel the same
    pins = dict(line.lower().replace("_", "-").split("==") for line in freeze.stdout.split())
    assert pins == bundled


def test_demo_runs_from_the_installed_wheel_in_the_unpacked_bundle(
    installed: Path, unpacked: dict[str, Path], tmp_path: Path
) -> None:
    """`edged demo` from the installed venv finds configs/ and examples/ in the bundle directory,
    and says where to run it from anywhere else."""
    edged = installed / "opt" / "edged" / "venv" / "bin" / "edged"
    demo = subprocess.run(
        [str(edged), "demo", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unpacked["x86_64"],
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "summary: 12 readings in" in demo.stdout
    elsewhere = subprocess.run(
        [str(edged), "demo"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert elsewhere.returncode == 2
    assert "in the unpacked offline bundle" in elsewhere.stderr
