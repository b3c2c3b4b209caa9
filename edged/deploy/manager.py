"""The node's side of deploys: verify, store, compile off the loop, swap, probation, rollback.

Everything but compiling runs on the daemon's one thread, between two messages, so a swap never
loses or repeats a message; compiling runs in a worker thread so a pathological module cannot
stall message processing while it compiles (docs/deploy.md). A deploy's request is acknowledged
once it is recorded in the module store, and a deploy recorded but not carried out (a crash, a
stop or a reload during its compile) is carried out at the next start (`resume_pending`).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from edged.config import Config
from edged.deploy import protocol
from edged.deploy.manifest import Manifest, parse, verify
from edged.deploy.protocol import (
    ACK,
    ACTIVATED,
    ALREADY_ACTIVE,
    DEPLOY,
    MODULES,
    REFUSED,
    REMOVE,
    REMOVED,
    ROLLBACK,
    ROLLED_BACK,
    Ack,
    ModulesStatus,
    ModuleState,
    Request,
)
from edged.deploy.store import Active, ModuleStore, Version
from edged.engine import SavedState, WasmtimeEngine
from edged.engine.abi import ABI_VERSION
from edged.engine.wasmtime_engine import WasmtimeModule
from edged.errors import DeployRefused, ModuleError
from edged.keys import key_id, load_public_key
from edged.mqtt.message import TopicSubscription
from edged.pipeline import Pipeline, Step
from edged.pipeline.assembly import Pushed, make_step
from edged.sizes import format_bytes

log = structlog.get_logger("edged.deploy")

#: `(topic, payload, qos, retain) -> accepted`
Publish = Callable[[str, bytes, int, bool], bool]
#: called once a request is carried out and acknowledged (a deploy: recorded, see _start_deploy)
Done = Callable[[], object]


@dataclass(slots=True)
class _Probation:
    module: str
    version: int
    until: float
    calls_needed: int
    violations_at_start: int
    calls_at_start: int


@dataclass(slots=True)
class _Compiling:
    manifest: Manifest
    digest: str
    future: Future[WasmtimeModule]
    unsigned: bool
    started: float = field(default_factory=time.monotonic)


class DeployManager:
    def __init__(
        self,
        config: Config,
        engine: WasmtimeEngine,
        store: ModuleStore,
        pipelines: Callable[[], Sequence[Pipeline]],
        publish: Publish,
    ) -> None:
        self.config = config
        self.engine = engine
        self.store = store
        self._pipelines = pipelines
        self._publish = publish
        d = config.deploy
        self._trusted = {key_id(k): k for k in map(load_public_key, d.trusted_keys)}
        prefix, node = config.topic_prefix, config.node_id
        self.control_topics = protocol.request_topics(prefix, node, d.groups)
        self._control_bytes = {t.encode(): a for t, a in self.control_topics.items()}
        self.ack_topic = protocol.node_topic(prefix, node, ACK)
        self.modules_topic = protocol.node_topic(prefix, node, MODULES)
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="edged-compile")
        self._compiling: _Compiling | None = None
        self._waiting: list[tuple[str, bytes, Done | None]] = []
        self._probation: dict[str, _Probation] = {}
        # per module on probation: the state each of its filters had when it was swapped in,
        # for a rollback to give back when the new version's state is refused
        self._at_swap: dict[str, dict[tuple[str, int], SavedState | None]] = {}
        self.swaps = 0  # swaps and rollbacks done: the daemon checkpoints after each
        #: acks sent, by (result, reason): the metrics' deploys by result
        self.results: Counter[tuple[str, str]] = Counter()
        if d.allow_unsigned:
            log.warning(
                "unsigned_deploys_allowed",
                note="development only: anyone who can "
                "publish to the deploy topic can run code on this node",
            )

    # -- start-up ---------------------------------------------------------------------------

    def subscriptions(self, first_ident: int) -> list[TopicSubscription]:
        return [
            TopicSubscription(topic, 1, ident)
            for ident, topic in enumerate(sorted(self.control_topics), start=first_ident)
        ]

    def restore(self) -> dict[str, Pushed]:
        """The pushed modules to run instead of the config's files, from the store."""
        pushed: dict[str, Pushed] = {}
        for name, entry in self.store.active().items():
            if name not in self.config.modules:
                log.warning("stored_module_not_in_config", module=name)
                continue
            for candidate in (entry.current, entry.previous):
                if candidate is None:
                    continue
                wasm = self.store.get(candidate.digest)
                if wasm is None:
                    continue
                try:
                    module = self.engine.load(name, wasm)
                except ModuleError as exc:
                    log.error("stored_module_refused", module=name, reason=exc.reason)
                    continue
                granted = frozenset(candidate.capabilities or ())
                pushed[name] = Pushed(module, candidate.params, granted)
                if candidate is not entry.current:
                    log.warning("restored_previous_version", module=name, version=candidate.version)
                    self.store.set_active(name, Active(current=candidate))
                break
            else:
                log.error("stored_module_lost", module=name, fallback="the config's file")
                self.store.set_active(name, None)
        return pushed

    # -- messages on the control topics -----------------------------------------------------

    def is_control(self, topic: bytes) -> bool:
        return topic in self._control_bytes

    def handle(self, topic: bytes, payload: bytes, done: Done | None = None) -> None:
        """Carry out one request; `done()` is called once it is finished and acknowledged (for a
        deploy, once it is recorded and its compile started), so that the daemon acknowledges
        the request's MQTT message only then: a crash before that has the broker deliver the
        request again, and one after it has the next start carry the deploy out."""
        action = self._control_bytes[topic]
        if self._compiling is not None:
            # one deploy at a time, in arrival order
            self._waiting.append((action, payload, done))
            return
        self._dispatch(action, payload, done)

    def _dispatch(self, action: str, payload: bytes, done: Done | None) -> None:
        try:
            self._carry_out(action, payload)
        finally:
            if done is not None:
                done()

    def _carry_out(self, action: str, payload: bytes) -> None:
        if action == DEPLOY:
            self._start_deploy(payload)
            return
        request = Request.parse(payload)
        if request is None:
            self._ack(
                action, None, None, REFUSED, "malformed", f"expected {protocol.REQUEST_SHAPE}"
            )
            return
        name, request_id = request.module, request.request_id
        if name not in self.config.modules:
            self._ack(
                action,
                request_id,
                name,
                REFUSED,
                "unknown_target",
                f"no module '{name}' on this node",
            )
        elif action == ROLLBACK:
            self._rollback(name, "requested", request_id)
        else:
            self._remove(name, request_id)

    def _start_deploy(self, payload: bytes) -> None:
        manifest: Manifest | None = None
        try:
            manifest, wasm = parse(payload)
            limit = self.config.deploy.max_module_bytes
            if len(wasm) > limit:
                raise DeployRefused(
                    "too_large", f"{format_bytes(len(wasm))} over the {format_bytes(limit)} limit"
                )
            if manifest.module not in self.config.modules:
                raise DeployRefused("unknown_target", f"no module '{manifest.module}' here")
            unsigned = verify(
                manifest, wasm, self._trusted, allow_unsigned=self.config.deploy.allow_unsigned
            )
            allowed = self.config.deploy.allowed_capabilities
            beyond = sorted(set(manifest.capabilities or ()) - allowed)
            if beyond:
                raise DeployRefused(
                    "capability_not_allowed",
                    f"asks for {', '.join(beyond)}; deploy.allowed_capabilities here allows "
                    + (", ".join(sorted(allowed)) or "none"),
                )
            current = self._current(manifest.module)
            if (
                current is not None
                and current.digest == manifest.sha256
                and current.version == manifest.version
            ):
                self._ack(
                    DEPLOY,
                    manifest.request_id,
                    manifest.module,
                    ALREADY_ACTIVE,
                    None,
                    None,
                    version=manifest.version,
                    digest=manifest.sha256,
                )
                return
            active_version = current.version if current else 0
            if manifest.version <= active_version:
                raise DeployRefused(
                    "not_newer",
                    f"version {manifest.version} is not newer than active {active_version}",
                )
            if manifest.abi != ABI_VERSION:
                raise DeployRefused(
                    "wrong_abi",
                    f"built for filter ABI {manifest.abi}; this node speaks {ABI_VERSION}",
                )
        except DeployRefused as exc:
            m = manifest
            self._ack(
                DEPLOY,
                m.request_id if m else exc.request_id,
                m.module if m else None,
                REFUSED,
                exc.reason,
                exc.detail,
                version=m.version if m else None,
            )
            return
        self.store.put(wasm)
        # Recorded, the request is acknowledged now (the caller's `done`), not after the
        # compile: MQTT acknowledges a connection's inputs in order, so every input after the
        # request waited for that acknowledgement too, and a broker holding to edged's Receive
        # Maximum (100) stops sending within 10 ms at 10,000 msgs/s. Measured on a busy 2-core
        # VM: the request waited 18 to 140 ms a swap (compile, store writes, the loop's polls).
        # A crash before the swap finds the record at the next start (`resume_pending`).
        self.store.set_pending({"manifest": manifest.to_json(), "unsigned": unsigned})
        self._compile(manifest, wasm, unsigned)

    def _compile(self, manifest: Manifest, wasm: bytes, unsigned: bool) -> None:
        future = self._worker.submit(self.engine.load, manifest.module, wasm)
        self._compiling = _Compiling(manifest, manifest.sha256, future, unsigned)

    def resume_pending(self) -> None:
        """Carry out a deploy recorded but not finished: a crash, a stop or a reload came during
        its compile (its request was acknowledged already, and is not sent again)."""
        record = self.store.pending()
        if record is None or self._compiling is not None:
            return
        try:
            manifest = Manifest(**record["manifest"])
            unsigned = bool(record.get("unsigned", False))
        except (TypeError, KeyError):
            log.error("pending_deploy_unreadable", record=record)
            self.store.set_pending(None)
            return
        name = manifest.module
        current = self._current(name)
        wasm = self.store.get(manifest.sha256)
        if (
            current is not None
            and current.digest == manifest.sha256
            and current.version == manifest.version
        ):
            # carried out, and stopped before the record was cleared
            self.store.set_pending(None)
            self._ack(
                DEPLOY,
                manifest.request_id,
                name,
                ALREADY_ACTIVE,
                None,
                None,
                version=manifest.version,
                digest=manifest.sha256,
            )
            return
        if name not in self.config.modules:
            refused = ("unknown_target", f"no module '{name}' here")
        elif current is not None and manifest.version <= current.version:
            refused = ("not_newer", f"version {manifest.version} is not newer than active "
                       f"{current.version}")  # fmt: skip
        elif wasm is None:
            refused = ("invalid_module", "its stored bytes are gone")
        else:
            log.info("pending_deploy_resumed", module=name, version=manifest.version)
            self._compile(manifest, wasm, unsigned)
            return
        self.store.set_pending(None)
        self._ack(DEPLOY, manifest.request_id, name, REFUSED, *refused, version=manifest.version)

    @property
    def busy(self) -> bool:
        return self._compiling is not None

    def poll(self, now: float) -> None:
        """Called by the daemon's loop: finish a compiled deploy, watch probations."""
        job = self._compiling
        if job is not None and job.future.done():
            self._compiling = None
            self._finish_deploy(job)
            while self._waiting and self._compiling is None:
                self._dispatch(*self._waiting.pop(0))
        if self._probation:
            self._watch_probation(now)

    def close(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)

    # -- activation -------------------------------------------------------------------------

    def _finish_deploy(self, job: _Compiling) -> None:
        m = job.manifest
        granted = frozenset(m.capabilities or ())
        try:
            self._swap(m.module, job.future.result(), m.params, capabilities=granted)
        except ModuleError as exc:
            reason = (
                "wrong_abi"
                if "filter ABI" in exc.reason
                else "capability_not_granted"
                if "needs the capability" in exc.reason
                else "invalid_module"
            )
            self.store.set_pending(None)
            self._ack(
                DEPLOY, m.request_id, m.module, REFUSED, reason, exc.reason, version=m.version
            )
            return
        previous = self._current(m.module)
        new = Version(
            version=m.version,
            digest=job.digest,
            params=m.params,
            activated_at=time.time(),
            capabilities=m.capabilities,
        )
        self.store.set_active(m.module, Active(current=new, previous=previous))
        self.store.set_pending(None)
        self._start_probation(m.module, m.version, self.config.deploy.probation_seconds)
        if job.unsigned:
            log.warning("unsigned_module_activated", module=m.module, version=m.version)
        log.info(
            "module_activated",
            module=m.module,
            version=m.version,
            digest=job.digest,
            compile_s=round(time.monotonic() - job.started, 3),
        )
        self._ack(
            DEPLOY,
            m.request_id,
            m.module,
            ACTIVATED,
            None,
            None,
            version=m.version,
            digest=job.digest,
        )

    def _swap(
        self,
        name: str,
        module: WasmtimeModule,
        params: dict[str, Any] | None,
        why: str = "swap",
        capabilities: frozenset[str] | None = None,
    ) -> None:
        """Instantiate for every step that uses `name`, then swap them all at once, each new
        instance taking over the old one's state (edged.pipeline.carry).

        All-or-nothing: if any instance refuses (say its init rejects the params), nothing
        changes and ModuleError goes back to the caller.

        A rollback hands the version it goes back to the state of the one it leaves; when that
        is refused (a format the older version does not read), the state the older version
        itself had at the swap (docs/state.md).
        """
        fresh: list[tuple[Pipeline, int, Step]] = []
        for pipeline, pc in zip(self._pipelines(), self.config.pipelines, strict=True):
            for index, fc in enumerate(pc.filters):
                if fc.module == name:
                    step = make_step(self.config, pc, fc, module, params, capabilities=capabilities)
                    fresh.append((pipeline, index, step))
        at_swap = self._at_swap.pop(name, {}) if why == "rollback" else {}
        kept: dict[tuple[str, int], SavedState | None] = {}
        for pipeline, index, step in fresh:
            old = pipeline.steps[index]
            step.warning = old.warning
            kept[(pipeline.name, index)] = pipeline.replace_step(
                index, step, why=why, fallback=at_swap.get((pipeline.name, index))
            )
        if why == "swap":
            self._at_swap[name] = kept
        self.swaps += 1

    def _start_probation(self, name: str, version: int, seconds: float) -> None:
        steps = self._steps(name)
        self._probation[name] = _Probation(
            module=name,
            version=version,
            until=time.monotonic() + seconds,
            calls_needed=self.config.deploy.probation_messages,
            violations_at_start=sum(sum(s.guard.counts.values()) for s in steps),
            calls_at_start=sum(s.filter.stats.calls for s in steps),
        )

    def resume_probation(self) -> None:
        """After a restart, a version still inside its probation period stays on probation.

        Its time runs on from its activation; its message count starts again, since the
        messages it saw before the restart are not known any more.
        """
        d = self.config.deploy
        for name, entry in self.store.active().items():
            started = entry.current.activated_at
            if entry.previous is None or started is None or name not in self.config.modules:
                continue
            left = started + d.probation_seconds - time.time()
            if left > 0:
                self._start_probation(name, entry.current.version, left)

    def _watch_probation(self, now: float) -> None:
        for name, p in list(self._probation.items()):
            steps = self._steps(name)
            violations = sum(sum(s.guard.counts.values()) for s in steps)
            if violations > p.violations_at_start:
                del self._probation[name]
                reasons = sorted({r for s in steps for r in s.guard.counts})
                self._rollback(name, f"probation: {', '.join(reasons)}", None, failed=p.version)
                continue
            calls = sum(s.filter.stats.calls for s in steps) - p.calls_at_start
            if now >= p.until and calls >= p.calls_needed:
                del self._probation[name]
                self._at_swap.pop(name, None)
                log.info("probation_passed", module=name, version=p.version, calls=calls)
                self.publish_status()

    # -- rollback and remove ---------------------------------------------------------------

    def _rollback(
        self, name: str, why: str, request_id: str | None, failed: int | None = None
    ) -> None:
        entry = self.store.active().get(name)
        target = entry.previous if entry else None
        self._probation.pop(name, None)
        try:
            if target is None:
                if entry is None:
                    raise DeployRefused("no_previous", f"'{name}' runs the config's file")
                module = self.engine.load_file(name, self.config.modules[name].file)
                self._swap(name, module, None, why="rollback")
                self.store.set_active(name, None)
            else:
                wasm = self.store.get(target.digest)
                if wasm is None:
                    raise DeployRefused("no_previous", "the previous version's bytes are gone")
                self._swap(
                    name,
                    self.engine.load(name, wasm),
                    target.params,
                    why="rollback",
                    capabilities=frozenset(target.capabilities or ()),
                )
                self.store.set_active(name, Active(current=target))
        except DeployRefused as exc:
            self._ack(ROLLBACK, request_id, name, REFUSED, exc.reason, exc.detail)
            return
        except ModuleError as exc:
            log.error("rollback_failed", module=name, reason=exc.reason)
            self._ack(ROLLBACK, request_id, name, REFUSED, "invalid_module", exc.reason)
            return
        version = target.version if target else 0
        log.warning(
            "module_rolled_back", module=name, reason=why, to_version=version, failed_version=failed
        )
        self._ack(
            ROLLBACK,
            request_id,
            name,
            ROLLED_BACK,
            why,
            None,
            version=version,
            digest=target.digest if target else None,
            failed_version=failed,
        )

    def _remove(self, name: str, request_id: str | None) -> None:
        if name not in self.store.active():
            self._ack(
                REMOVE,
                request_id,
                name,
                REFUSED,
                "not_pushed",
                f"'{name}' already runs the config's file",
            )
            return
        try:
            self._swap(name, self.engine.load_file(name, self.config.modules[name].file), None)
        except ModuleError as exc:
            self._ack(REMOVE, request_id, name, REFUSED, "invalid_module", exc.reason)
            return
        self._probation.pop(name, None)
        self.store.set_active(name, None)
        self._ack(REMOVE, request_id, name, REMOVED, None, None, version=0)

    # -- status and acks -------------------------------------------------------------------

    def _current(self, name: str) -> Version | None:
        entry = self.store.active().get(name)
        return entry.current if entry else None

    def _steps(self, name: str) -> list[Step]:
        return [s for p in self._pipelines() for s in p.steps if s.module == name]

    def publish_status(self) -> None:
        active = self.store.active()
        modules: dict[str, ModuleState] = {}
        for name, mod in self.config.modules.items():
            entry = active.get(name)
            if entry is None:
                modules[name] = ModuleState.from_config(_file_digest(mod.file))
            else:
                prev = entry.previous
                modules[name] = ModuleState.pushed(
                    entry.current.version,
                    entry.current.digest,
                    (prev.version, prev.digest) if prev else None,
                    name in self._probation,
                )
        status = ModulesStatus(
            node_id=self.config.node_id,
            groups=tuple(self.config.deploy.groups),
            modules=modules,
            ts=int(time.time() * 1000),
        )
        self._publish(self.modules_topic, status.encode(), 1, True)

    def _ack(
        self,
        action: str,
        request_id: str | None,
        module: str | None,
        result: str,
        reason: str | None,
        detail: str | None,
        *,
        version: int | None = None,
        digest: str | None = None,
        failed_version: int | None = None,
    ) -> None:
        ack = Ack(
            node_id=self.config.node_id,
            request_id=request_id,
            action=action,
            module=module,
            result=result,
            reason=reason,
            detail=detail,
            version=version,
            digest=digest,
            failed_version=failed_version,
            ts=int(time.time() * 1000),
        )
        self.results[(result, reason or "")] += 1
        level = "info" if result in (ACTIVATED, ALREADY_ACTIVE, REMOVED) else "warning"
        getattr(log, level)("deploy_ack", **{k: v for k, v in ack.fields().items() if k != "ts"})
        self._publish(self.ack_topic, ack.encode(), 1, False)
        if result in (ACTIVATED, ROLLED_BACK, REMOVED):
            self.publish_status()


def _file_digest(path: Any) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None
