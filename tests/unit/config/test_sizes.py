"""Sizes in a config: bytes or "16 MiB"-style strings, 1024-based units, and their ranges."""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.config import (
    EngineConfig,
    format_size,
    parse_config,
    parse_size,
)
from tests.unit.config.samples import MIB, errors_of, minimal


@pytest.mark.parametrize(
    ("given", "size"),
    [
        (0, 0),
        (65536, 65536),
        ("512 KiB", 512 * 1024),
        ("16MiB", 16 * MIB),
        ("1 GiB", 1024 * MIB),
        ("1.5 MiB", 3 * MIB // 2),
        ("0.5KiB", 512),
        ("100 B", 100),
        ("2 kib", 2048),
        (" 3 MiB ", 3 * MIB),
        ("4096", 4096),
    ],
)
def test_sizes_accept_bytes_and_binary_units(confdir: Path, given: object, size: int) -> None:
    """A size is an integer of bytes or a number with B, KiB, MiB or GiB, decimals allowed."""
    data = minimal()
    data["budgets"] = {"max_emit_bytes": given}
    assert parse_config(data, base_dir=confdir).budgets.max_emit_bytes == size


@pytest.mark.parametrize(
    ("given", "error"),
    [
        ("16 megs", """expected a size such as 16777216, "512 KiB" or "16 MiB", got '16 megs'"""),
        ("2 TiB", """expected a size such as 16777216, "512 KiB" or "16 MiB", got '2 TiB'"""),
        ("-1 KiB", """expected a size such as 16777216, "512 KiB" or "16 MiB", got '-1 KiB'"""),
        ("MiB", """expected a size such as 16777216, "512 KiB" or "16 MiB", got 'MiB'"""),
        ("1e6", """expected a size such as 16777216, "512 KiB" or "16 MiB", got '1e6'"""),
        ("", """expected a size such as 16777216, "512 KiB" or "16 MiB", got ''"""),
        (True, """expected a size such as 16777216, "512 KiB" or "16 MiB", got boolean true"""),
        (
            1.5e6,
            """expected a size such as 16777216, "512 KiB" or "16 MiB", got number 1500000.0""",
        ),
        ("16 MB", "unit 'MB' is ambiguous; write '16 MiB' (KiB, MiB and GiB are 1024-based)"),
        ("64kB", "unit 'kB' is ambiguous; write '64 KiB' (KiB, MiB and GiB are 1024-based)"),
        ("1 G", "unit 'G' is ambiguous; write '1 GiB' (KiB, MiB and GiB are 1024-based)"),
        ("0.1 KiB", "'0.1 KiB' is 102.4 bytes, not a whole number of bytes"),
        ("1.5 B", "'1.5 B' is 1.5 bytes, not a whole number of bytes"),
        (-1, "must be at least 0 B, got -1 B"),
    ],
)
def test_bad_sizes_are_explained(confdir: Path, given: object, error: str) -> None:
    """A size that is not whole bytes in B/KiB/MiB/GiB says why; KB, MB and GB are refused."""
    data = minimal()
    data["budgets"] = {"max_emit_bytes": given}
    assert errors_of(data, confdir) == [f"budgets.max_emit_bytes: {error}"]


def test_parse_size_and_format_size_are_inverse() -> None:
    """format_size writes a size the way parse_size reads it back."""
    for size in (0, 1, 1000, 1024, 65536, 1536, 16 * MIB, 3 * 1024 * MIB):
        assert parse_size(format_size(size)) == size
    assert format_size(512 * 1024) == "512 KiB"
    with pytest.raises(ValueError, match="ambiguous"):
        parse_size("1 MB")


def test_size_ranges_are_checked(confdir: Path) -> None:
    """Memory, Wasm stack and memory budget must lie within their documented ranges."""
    data = minimal()
    data["budgets"] = {"memory": "32 KiB"}
    data["engine"] = {"wasm_stack": "128 MiB"}
    data["daemon"] = {"memory_budget": "512 KiB"}
    data["modules"]["threshold"]["budgets"] = {"memory": "5 GiB"}
    assert errors_of(data, confdir) == [
        "engine.wasm_stack: must be between 64 KiB and 64 MiB, got 128 MiB",
        "budgets.memory: must be between 64 KiB and 4 GiB, got 32 KiB",
        "modules.threshold.budgets.memory: must be between 64 KiB and 4 GiB, got 5 GiB",
        "daemon.memory_budget: must be at least 1 MiB, got 512 KiB",
    ]


def test_smallest_allowed_sizes_are_accepted(confdir: Path) -> None:
    """One Wasm page of memory, a 64 KiB stack and a 1 MiB memory budget are all allowed."""
    data = minimal()
    data["budgets"] = {"memory": 65536, "max_emits": 0, "max_emit_bytes": 0, "table_elements": 0}
    data["engine"] = {"wasm_stack": "64 KiB", "epoch_tick_ms": 1}
    data["daemon"] = {"memory_budget": "1 MiB", "queue_size": 1}
    config = parse_config(data, base_dir=confdir)
    assert config.budgets.memory == 65536
    assert config.engine == EngineConfig(wasm_stack=65536, epoch_tick_ms=1.0)
    assert config.daemon.memory_budget == MIB


@pytest.mark.parametrize("given", ["9" * 5000 + " GiB", "1." + "5" * 5000 + " KiB", "9" * 31])
def test_sizes_with_absurdly_many_digits_are_refused_briefly(given: str) -> None:
    """A size of thousands of digits is refused like any malformed size, quoting only its start."""
    with pytest.raises(ValueError) as caught:
        parse_size(given)
    shown = repr(given) if len(given) < 39 else repr(given)[:36] + "..."
    assert str(caught.value) == (
        f"""expected a size such as 16777216, "512 KiB" or "16 MiB", got {shown}"""
    )
