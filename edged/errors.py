"""Every error edged shows to a user.

    EdgedError                  anything edged refuses or cannot do; the CLI prints it, no traceback
    ├── ConfigError             the config file is wrong: every problem with its key path
    ├── ModuleError             a filter module was refused at load (file, ABI, exports, init)
    ├── FilterCallError         one call into a loaded filter failed (trap, bad result, bad output)
    ├── BrokerError             the MQTT broker could not be reached or refused us
    │   └── OutputRefused       one output its broker will never take (too large, or poison)
    ├── CredentialsError        a broker's certificate, key, CA or password file cannot be used
    ├── SetupError              modules or pipelines could not be built from a valid config
    ├── ServiceError            the systemd unit could not be installed or removed
    ├── StateError              the state directory, or a file in it, cannot be used
    └── DeployRefused           a node will not carry out a deploy, rollback or remove; the
                                reason goes into its ack

A `FilterCallError` never stops the daemon: the pipeline drops the message, counts it under the
error's `reason`, and goes on with the next one.
"""

from __future__ import annotations

from pathlib import Path


class EdgedError(Exception):
    """Base of every error edged raises on purpose."""


class ConfigError(EdgedError):
    """The config file cannot be used; `errors` lists every problem as ``key.path: reason``.

    The message shows the first SHOWN of them and how many more there are.
    """

    # A screen or two: 110,000 unknown keys printed 18 MB. Past this the reader also leaves out
    # the "did you mean" hints, which nobody would see.
    SHOWN = 50

    def __init__(self, errors: list[str], source: str) -> None:
        self.errors = list(errors)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.errors)
        head = f"{self.source}: {count} error{'s' if count != 1 else ''}"
        shown = "".join(f"\n  - {error}" for error in self.errors[: self.SHOWN])
        more = f"\n  ... and {count - self.SHOWN} more" if count > self.SHOWN else ""
        return head + shown + more


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


class FilterRejected(EdgedError):
    """A filter refused its input (result code `REJECT`): the input is dead-lettered with the
    filter's own `text`, and `records` (what it emitted beside, e.g. a request to the sender
    for what it lacks) go on. Not a violation: the filter did its job."""

    def __init__(self, text: str, records: list[tuple[bytes, bytes]]) -> None:
        self.text = text
        self.records = records
        super().__init__(f"rejected: {text}")


class BrokerError(EdgedError):
    """The broker could not be reached, or refused the connection."""


class OutputRefused(BrokerError):
    """An output its broker will never take: over the Maximum Packet Size it announced, or a
    publish it disconnected on again and again (`edged.mqtt.poison`). `reason` is the counter
    and the dead letter's reason; `detail` names the broker, the size and the limit."""

    def __init__(self, broker: str, reason: str, detail: str) -> None:
        self.broker = broker
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class CredentialsError(EdgedError):
    """A broker's TLS or password file cannot be used: `key` is its config key under the
    broker's section (`tls.key_file`, `password_file`, ...), `path` the file."""

    def __init__(self, key: str, path: Path, reason: str) -> None:
        self.key = key
        self.path = path
        self.reason = reason
        super().__init__(f"{key} {path}: {reason}")


class SetupError(EdgedError):
    """Modules or pipelines could not be built; `problems` lists each with its config key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = len(problems)
        super().__init__(
            f"{count} problem{'s' if count != 1 else ''} with modules:"
            + "".join(f"\n  - {p}" for p in problems)
        )


class ServiceError(EdgedError):
    """The service cannot be installed or removed as asked; the message says why and what to do."""


class StateError(EdgedError):
    """The state directory, or a file edged keeps there (the outbox, the module store), cannot
    be used: not writable, a full disk, or a file that cannot be read back."""


class DeployRefused(EdgedError):
    """A deploy (or rollback) that the node will not carry out; `reason` goes into the ack."""

    def __init__(self, reason: str, detail: str, request_id: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.request_id = request_id  # when one could be read, so the pusher gets its answer
        super().__init__(f"{reason}: {detail}")
