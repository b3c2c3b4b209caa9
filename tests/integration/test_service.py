"""The systemd unit as systemd reads it, and `edged install-service` / `uninstall-service` under
--root: files, modes, ExecStart, what is kept, and a default config that passes `edged check`."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edged import cli
from edged.cli import service
from tests.helpers.paths import ROOT

UNIT = ROOT / "systemd" / "edged.service"
EXAMPLES = ROOT / "examples" / "filters"
EDGED = Path(os.path.abspath(sys.executable)).parent / "edged"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (Debian package: systemd)"
)
MAX_EXPOSURE = 2.0


def edged(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = edged("install-service", "--root", str(root), *args)
    assert result.returncode == 0, result.stderr
    return result


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, errors="replace", timeout=60
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def unit_problems(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What `systemd-analyze verify` said about edged.service (it warns on stderr, exit 0)."""
    return [line for line in result.stderr.splitlines() if "edged.service" in line]


@needs_analyze
def test_installed_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """The unit install-service writes (ExecStart: this venv's edged) verifies without a warning."""
    install(tmp_path)
    unit = tmp_path / "etc" / "systemd" / "system" / "edged.service"
    result = analyze("verify", str(unit))
    assert result.returncode == 0 and not unit_problems(result), result.stderr


@needs_analyze
def test_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    """The verify check is real: an unknown key or a bad value in the unit is reported."""
    install(tmp_path)
    unit = tmp_path / "etc" / "systemd" / "system" / "edged.service"
    text = unit.read_text()
    unit.write_text(text.replace("Type=notify\n", "Type=notfy\nProtectSystm=strict\n"))
    problems = unit_problems(analyze("verify", str(unit)))
    assert any("notfy" in p for p in problems), problems
    assert any("ProtectSystm" in p for p in problems), problems


@needs_analyze
def test_shipped_unit_exposure_is_at_most_2() -> None:
    """`systemd-analyze security --offline=true` rates the shipped unit at an exposure <= 2.0."""
    result = analyze("security", "--offline=true", "--threshold=20", str(UNIT))
    found = re.search(r"Overall exposure level for edged\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_keeps_the_settings_the_daemon_relies_on() -> None:
    """Type=notify with watchdog and reload, the state directory, and no W^X for the JIT."""
    settings = [
        line.strip()
        for line in UNIT.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for wanted in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=30",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=edged",
        "User=edged",
        f"ExecStart={service.SHIPPED_EDGED} run --config /etc/edged/edged.yaml",
    ):
        assert wanted in settings
    assert not any(s.startswith("MemoryDenyWriteExecute=") for s in settings)


def test_install_creates_the_files_with_their_modes(tmp_path: Path) -> None:
    """Config dir 0750, config and filters 0640, unit 0644; the target's commands are printed."""
    result = install(tmp_path)
    etc = tmp_path / "etc" / "edged"
    assert mode(etc) == 0o750
    assert mode(etc / "filters") == 0o750
    assert mode(etc / "edged.yaml") == 0o640
    shipped = sorted(p.name for p in EXAMPLES.glob("*.wasm"))
    assert sorted(p.name for p in (etc / "filters").iterdir()) == shipped
    for name in shipped:
        assert mode(etc / "filters" / name) == 0o640
        assert (etc / "filters" / name).read_bytes() == (EXAMPLES / name).read_bytes()
    assert mode(tmp_path / "etc" / "systemd" / "system" / "edged.service") == 0o644
    assert "useradd --system --no-create-home --home-dir /nonexistent" in result.stdout
    assert "chown -R root:edged /etc/edged" in result.stdout
    assert "sudo systemctl enable --now edged" in result.stdout


def test_installed_unit_runs_this_venvs_edged(tmp_path: Path) -> None:
    """The installed unit is the shipped one with ExecStart naming the current venv's edged."""
    install(tmp_path)
    installed = (tmp_path / "etc" / "systemd" / "system" / "edged.service").read_text()
    exec_start = [line for line in installed.splitlines() if line.startswith("ExecStart=")]
    assert exec_start == [f"ExecStart={EDGED} run --config /etc/edged/edged.yaml"]
    shipped = UNIT.read_text().replace(f"ExecStart={service.SHIPPED_EDGED} ", f"ExecStart={EDGED} ")
    assert installed == shipped


def test_second_install_keeps_an_edited_config(tmp_path: Path) -> None:
    """Installing again never overwrites edged.yaml, and says that it kept it."""
    install(tmp_path)
    config = tmp_path / "etc" / "edged" / "edged.yaml"
    config.write_text(config.read_text() + "# edited\n")
    result = install(tmp_path)
    assert config.read_text().endswith("# edited\n")
    assert f"kept {config}" in result.stdout


def test_installed_default_config_passes_edged_check(tmp_path: Path) -> None:
    """`edged check` accepts the default config; its filter paths resolve in /etc/edged/filters."""
    install(tmp_path)
    config = tmp_path / "etc" / "edged" / "edged.yaml"
    result = edged(
        "check", "--config", str(config), env={"STATE_DIRECTORY": str(tmp_path / "state")}
    )
    assert result.returncode == 0, result.stderr
    assert "OK: 1 modules, 1 pipelines" in result.stdout
    for name in re.findall(r"file: (filters/\S+\.wasm)", config.read_text()):  # examples too
        assert (config.parent / name).is_file(), name


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    """--dry-run prints every step as "would ..." and leaves the root empty."""
    result = install(tmp_path, "--dry-run")
    assert list(tmp_path.iterdir()) == []
    assert f"would write {tmp_path}/etc/edged/edged.yaml" in result.stdout
    assert f"would write {tmp_path}/etc/systemd/system/edged.service" in result.stdout


def test_uninstall_removes_the_unit_and_keeps_the_config(tmp_path: Path) -> None:
    """Without --purge the unit and its enable link go; /etc/edged and /var/lib/edged stay."""
    install(tmp_path)
    wants = tmp_path / "etc" / "systemd" / "system" / "multi-user.target.wants"
    wants.mkdir()
    (wants / "edged.service").symlink_to("/etc/systemd/system/edged.service")
    (tmp_path / "var" / "lib" / "edged").mkdir(parents=True)
    result = edged("uninstall-service", "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "etc" / "systemd" / "system" / "edged.service").exists()
    assert not (wants / "edged.service").is_symlink()
    assert (tmp_path / "etc" / "edged" / "edged.yaml").is_file()
    assert (tmp_path / "var" / "lib" / "edged").is_dir()
    assert "--purge removes them" in result.stdout


def test_uninstall_purge_removes_config_and_state(tmp_path: Path) -> None:
    """--purge removes /etc/edged and /var/lib/edged as well."""
    install(tmp_path)
    (tmp_path / "var" / "lib" / "edged" / "compiled").mkdir(parents=True)
    result = edged("uninstall-service", "--root", str(tmp_path), "--purge")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "etc" / "systemd" / "system" / "edged.service").exists()
    assert not (tmp_path / "etc" / "edged").exists()
    assert not (tmp_path / "var" / "lib" / "edged").exists()


def test_without_root_it_says_run_with_sudo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real install or uninstall by a normal user stops at once: exit 2, "run it with sudo"."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for command in ("install-service", "uninstall-service"):
        assert cli.main([command]) == 2
        assert "run it with sudo" in capsys.readouterr().err


def test_missing_source_tree_is_a_clear_error(tmp_path: Path) -> None:
    """--source without systemd/edged.service and examples/filters: exit 2, naming --source."""
    result = edged("install-service", "--root", str(tmp_path / "r"), "--source", str(tmp_path))
    assert result.returncode == 2
    assert "--source" in result.stderr and "Traceback" not in result.stderr


def test_edged_under_home_is_refused_for_the_sandbox() -> None:
    """A venv under /home or /root is reported: ProtectHome=yes would hide it from the service."""
    problems = service.unreachable([Path("/home/pi/edged/.venv/bin/edged"), Path("/root/x")])
    assert len(problems) == 2 and all("ProtectHome" in p for p in problems)


def test_unit_refuses_a_path_it_would_have_to_escape() -> None:
    """An edged path with a space or '%' is refused rather than written into ExecStart."""
    template = UNIT.read_text()
    for bad in ("/opt/my venv/bin/edged", "/opt/100%/bin/edged"):
        with pytest.raises(service.ServiceError, match="plain path"):
            service.render_unit(template, Path(bad))


def test_default_config_node_id_comes_from_the_host_name() -> None:
    """The node id is the short host name, made safe for a node id."""
    text = service.default_config(EDGED, hostname="Pi 4.local")
    assert "\nnode_id: Pi-4\n" in text
    assert "\nnode_id: gateway\n" in service.default_config(EDGED, hostname="...")
