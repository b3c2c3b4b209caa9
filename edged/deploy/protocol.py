"""The deploy protocol between `edged module ...` and a node, written once (docs/deploy.md).

The node (edged/deploy/manager.py) and the operator's commands (edged/cli/module.py) build and
read every topic, request, ack and status through this module, so the two sides cannot drift:

    <prefix>/<node>/deploy              a deploy message (edged/deploy/manifest.py), to one node
    <prefix>/<node>/rollback            a `Request`: back to the previous version of a module
    <prefix>/<node>/remove              a `Request`: drop the pushed version, back to the config's
    <prefix>/groups/<group>/<action>    the same three, to every node with <group> in its groups
    <prefix>/<node>/ack                 an `Ack` per request, from the node (QoS 1, not retained)
    <prefix>/<node>/modules             a `ModulesStatus`, from the node (QoS 1, retained)

The bytes on the wire are what nodes and operators of earlier releases send and expect, key
order included: acks and the status are compact JSON, a request is JSON with the default
separators. A reader takes what it understands from a message and ignores what it does not,
so a malformed or foreign payload is skipped, never an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# -- topics ------------------------------------------------------------------------------------

DEPLOY: Final = "deploy"
ROLLBACK: Final = "rollback"
REMOVE: Final = "remove"
#: the requests a node takes, in the order its control topics are listed
ACTIONS: Final = (DEPLOY, ROLLBACK, REMOVE)
ACK: Final = "ack"
MODULES: Final = "modules"


def node_topic(prefix: str, node: str, kind: str) -> str:
    """`<prefix>/<node>/<kind>`: a request to one node, or what that node publishes."""
    return f"{prefix}/{node}/{kind}"


def group_topic(prefix: str, group: str, action: str) -> str:
    """`<prefix>/groups/<group>/<action>`: a request to every member of a group."""
    return f"{prefix}/groups/{group}/{action}"


def request_topics(prefix: str, node: str, groups: Iterable[str]) -> dict[str, str]:
    """Every topic a node takes requests on, each with its action: its own, then its groups'."""
    topics = {node_topic(prefix, node, action): action for action in ACTIONS}
    for group in groups:
        topics.update({group_topic(prefix, group, action): action for action in ACTIONS})
    return topics


@dataclass(frozen=True, slots=True)
class Target:
    """Who a request is for, one node or one group: where it goes and where answers come from."""

    prefix: str
    node: str | None = None
    group: str | None = None

    def __post_init__(self) -> None:
        if (self.node is None) == (self.group is None):
            raise ValueError("a target is one node or one group")

    def request_topic(self, action: str) -> str:
        if self.group is not None:
            return group_topic(self.prefix, self.group, action)
        return node_topic(self.prefix, str(self.node), action)

    def reply_filter(self, kind: str) -> str:
        """`ack` or `modules` of the node, or of every node: a group's members are not known
        in advance, a reader keeps the answers of the nodes that say they are members."""
        return node_topic(self.prefix, self.node if self.node is not None else "+", kind)

    def node_of(self, topic: str) -> str:
        """The node a reply came from, read from its topic (which the broker's ACLs can vouch
        for, unlike the node_id in the payload)."""
        return topic.removeprefix(self.prefix + "/").rpartition("/")[0]


# -- requests ----------------------------------------------------------------------------------

REQUEST_SHAPE: Final = '{"module": NAME, "request_id": ID}'


@dataclass(frozen=True, slots=True)
class Request:
    """A rollback or a remove: which module, and the id the node's ack will carry."""

    module: str
    request_id: str | None

    def encode(self) -> bytes:
        return json.dumps({"module": self.module, "request_id": self.request_id}).encode()

    @classmethod
    def parse(cls, payload: bytes) -> Request | None:
        """The request in `payload`, or None if it is not a JSON object with a string module."""
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("module"), str):
            return None
        request_id = data.get("request_id")
        return cls(data["module"], request_id if isinstance(request_id, str) else None)


# -- acks --------------------------------------------------------------------------------------

ACTIVATED: Final = "activated"
ALREADY_ACTIVE: Final = "already_active"
REFUSED: Final = "refused"
ROLLED_BACK: Final = "rolled_back"
REMOVED: Final = "removed"

#: the results that mean a request did what it asked, per action; anything else (a refusal, a
#: rollback of a version that failed its probation) or no answer at all is a failure
SUCCESS: Final[Mapping[str, frozenset[str]]] = {
    DEPLOY: frozenset({ACTIVATED, ALREADY_ACTIVE}),
    ROLLBACK: frozenset({ROLLED_BACK}),
    REMOVE: frozenset({REMOVED}),
}

# The fields an ack carries after `detail`, by result: a field that does not apply is left out,
# not sent as null (a refused deploy names the version it refused, a refused rollback or
# remove names none). Readers must not rely on this: they take a missing field as None.
_EXTRA_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    ACTIVATED: ("version", "digest"),
    ALREADY_ACTIVE: ("version", "digest"),
    ROLLED_BACK: ("version", "digest", "failed_version"),
    REMOVED: ("version",),
}


@dataclass(frozen=True, slots=True)
class Ack:
    """A node's answer to one request; also sent unasked, for a rollback after a failed probation
    (`request_id` None, `failed_version` the version that failed)."""

    node_id: str
    request_id: str | None
    action: str | None  # deploy, rollback or remove
    module: str | None
    result: str  # activated, already_active, refused, rolled_back, removed
    reason: str | None = None  # why it was refused, or rolled back
    detail: str | None = None
    version: int | None = None  # the version now active (0: the config's file), or refused
    digest: str | None = None
    failed_version: int | None = None
    ts: int | None = None  # milliseconds since the epoch, when the node sent it

    def fields(self) -> dict[str, object]:
        """The ack as the node publishes it, in wire order."""
        body: dict[str, object] = {
            "node_id": self.node_id,
            "request_id": self.request_id,
            "action": self.action,
            "module": self.module,
            "result": self.result,
            "reason": self.reason,
            "detail": self.detail,
        }
        extra = _EXTRA_FIELDS.get(self.result, ())
        if self.result == REFUSED and self.action == DEPLOY:
            extra = ("version",)
        for name in extra:
            body[name] = getattr(self, name)
        body["ts"] = self.ts
        return body

    def encode(self) -> bytes:
        return json.dumps(self.fields(), separators=(",", ":")).encode()

    @classmethod
    def parse(cls, payload: bytes, node_id: str) -> Ack | None:
        """The ack in `payload`, from `node_id` (read from its topic), or None if it is not one:
        an ack is a JSON object with a string `result`; a field of the wrong type reads as None."""
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("result"), str):
            return None
        return cls(
            node_id=node_id,
            request_id=_text(data, "request_id"),
            action=_text(data, "action"),
            module=_text(data, "module"),
            result=data["result"],
            reason=_text(data, "reason"),
            detail=_text(data, "detail"),
            version=_number(data, "version"),
            digest=_text(data, "digest"),
            failed_version=_number(data, "failed_version"),
            ts=_number(data, "ts"),
        )


def _text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _number(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# -- the modules status ------------------------------------------------------------------------

FROM_CONFIG: Final = "config"
PUSHED: Final = "pushed"


@dataclass(frozen=True, slots=True)
class ModuleState:
    """One module in a node's status: the version it runs and where that came from."""

    version: int | None  # 0: the file named in the config
    digest: str | None  # None: the config's file cannot be read
    source: str | None  # config or pushed
    previous: tuple[int, str] | None = None  # pushed: the (version, digest) a rollback restores
    probation: bool = False  # pushed: still watched, rolled back by itself if it fails

    @classmethod
    def from_config(cls, digest: str | None) -> ModuleState:
        return cls(version=0, digest=digest, source=FROM_CONFIG)

    @classmethod
    def pushed(
        cls, version: int, digest: str, previous: tuple[int, str] | None, probation: bool
    ) -> ModuleState:
        return cls(version, digest, PUSHED, previous, probation)

    def fields(self) -> dict[str, object]:
        if self.source == FROM_CONFIG:
            return {"version": self.version, "source": self.source, "digest": self.digest}
        before = self.previous
        return {
            "version": self.version,
            "digest": self.digest,
            "source": self.source,
            "previous": None if before is None else {"version": before[0], "digest": before[1]},
            "probation": self.probation,
        }

    @classmethod
    def from_fields(cls, data: Mapping[str, Any]) -> ModuleState:
        previous = data.get("previous")
        before = None
        if isinstance(previous, dict):
            version, digest = _number(previous, "version"), _text(previous, "digest")
            before = None if version is None or digest is None else (version, digest)
        return cls(
            version=_number(data, "version"),
            digest=_text(data, "digest"),
            source=_text(data, "source"),
            previous=before,
            probation=bool(data.get("probation")),
        )


@dataclass(frozen=True, slots=True)
class ModulesStatus:
    """What a node runs, per module of its config; retained, republished on every change."""

    node_id: str | None
    groups: tuple[str, ...] | None  # None: not given, which a reader takes as any group
    modules: Mapping[str, ModuleState] = field(default_factory=dict)
    ts: int | None = None  # milliseconds since the epoch

    def encode(self) -> bytes:
        body = {
            "node_id": self.node_id,
            "groups": None if self.groups is None else list(self.groups),
            "modules": {name: state.fields() for name, state in self.modules.items()},
            "ts": self.ts,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def member_of(self, group: str) -> bool:
        return self.groups is None or group in self.groups

    @classmethod
    def from_json(cls, data: object) -> ModulesStatus | None:
        """The status in a decoded payload, or None if it is not a JSON object; entries that are
        not objects are skipped."""
        if not isinstance(data, dict):
            return None
        groups = data.get("groups")
        modules = data.get("modules")
        if isinstance(groups, list):
            groups = tuple(g for g in groups if isinstance(g, str))
        return cls(
            node_id=_text(data, "node_id"),
            groups=groups if isinstance(groups, tuple) else None,
            modules={
                str(name): ModuleState.from_fields(entry)
                for name, entry in (modules.items() if isinstance(modules, dict) else ())
                if isinstance(entry, dict)
            },
            ts=_number(data, "ts"),
        )
