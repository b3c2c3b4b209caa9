"""Every error edged shows to a user.

    EdgedError                  anything edged refuses or cannot do; the CLI prints it, no traceback
    ├── ConfigError             the config file is wrong: every problem with its key path
    ├── ModuleError             a filter module was refused at load (file, ABI, exports, init)
    ├── FilterCallError         one call into a loaded filter failed (trap, bad result, bad output)
    └── BrokerError             the MQTT broker could not be reached or refused us

A `FilterCallError` never stops the daemon: the pipeline drops the message, counts it under the
error's `reason`, and goes on with the next one.
"""

from __future__ import annotations


class EdgedError(Exception):
    """Base of every error edged raises on purpose."""


class ConfigError(EdgedError):
    """The config file cannot be used; `errors` lists every problem as ``key.path: reason``."""

    def __init__(self, errors: list[str], source: str) -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.errors)
        head = f"{self.source}: {count} error{'s' if count != 1 else ''}"
        return head + "".join(f"\n  - {error}" for error in self.errors)


class ModuleError(EdgedError):
    """A filter module was refused; the message says which module and why."""

    def __init__(self, module: str, reason: str) -> None:
        self.module = module
        self.reason = reason
        super().__init__(f"module {module!r}: {reason}")


class FilterCallError(EdgedError):
    """One call into a filter failed; `reason` is the counter it is dropped under."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class BrokerError(EdgedError):
    """The broker could not be reached, or refused the connection."""
