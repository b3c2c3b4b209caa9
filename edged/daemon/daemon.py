"""The daemon's lifecycle and its one loop: build from the config, run until told to stop.

One thread does everything, in rounds: read what the brokers have sent into the bounded intake
queue (`edged.pipeline.intake`), run the filters on a time slice of it, then ticks, quarantine
releases, summaries and metrics (`edged.daemon.timers`). Why one thread: see `edged.mqtt.link`.
There is one `BrokerLink` per configured broker; the control broker's carries the node's status,
metrics, deploys and dead letters. A reload (`edged.daemon.reload`) rebuilds the pipelines and
keeps what did not change.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import gc
import select
import signal
import threading
import time
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

import edged
from edged.config import BrokerConfig, Config, load_config
from edged.daemon import health, reports
from edged.daemon.reload import plan_reload
from edged.daemon.statelock import lock_state_dir
from edged.daemon.statestore import StateStore
from edged.daemon.systemd import Notifier
from edged.daemon.timers import Tick, Timers, next_due, run_due, ticks_of
from edged.engine import SavedState, WasmtimeEngine
from edged.errors import EdgedError, OutputRefused
from edged.mqtt.acks import AckWindow, next_token
from edged.mqtt.link import BrokerLink
from edged.mqtt.message import Message, TopicSubscription, Unacked, payload_fields
from edged.mqtt.outbox import Outbox
from edged.mqtt.poison import packet_size
from edged.pipeline import Pipeline, carry
from edged.pipeline.assembly import build_pipelines, make_engine, state_dir, step_keys
from edged.pipeline.carry import StateRecord
from edged.pipeline.intake import Intake
from edged.pipeline.router import Router
from edged.statedir import StateDir

if TYPE_CHECKING:
    from edged.daemon.http import HttpEndpoint
    from edged.deploy.manager import DeployManager

log = structlog.get_logger("edged.daemon")

# The longest the loop waits for messages before it looks at ticks, timers and signals again.
_MAX_WAIT = 0.25
# At most this many packets are read per round, and filters run at most this long per round.
_READ_BATCH = 1000
_SLICE = 0.02
# While a link holds more outputs in memory than it may (its outbox cannot be written), every
# broker is read at most this many packets a round, and rounds are this far apart: ~200 packets
# a second a link, which keeps acknowledgements and keep-alives flowing.
_TRICKLE = 10
_TRICKLE_WAIT = 0.05
# What a dead letter keeps of a payload its control broker would refuse whole.
_LETTER_HEAD = 256
# A checkpoint's states, saved at one moment, are written once every input applied before that
# moment is acknowledged, so that no input whose effect they hold is ever delivered again; at
# most this long after, else it is put off by `_CHECKPOINT_RETRY` (docs/state.md).
_CHECKPOINT_DRAIN = 1.0
_CHECKPOINT_RETRY = 5.0


@dataclass(slots=True)
class _Snapshot:
    """Filters' states saved at one moment (`mark` of `window`), to be written once every input
    applied before it is acknowledged."""

    why: str
    rows: list[tuple[StateRecord, str, str, str, SavedState]]  # record, key, module, digest
    window: AckWindow
    mark: tuple[int, int]
    by: float  # put off if the inputs are not acknowledged by then


class Daemon:
    """Everything `edged run` does, ready to `run()` until `stop()` or SIGTERM."""

    def __init__(self, config: Config, *, config_path: Path | None = None) -> None:
        self.config_path = config_path
        self.notifier = Notifier()
        self.internal_errors = 0
        self.started_at = self.loop_at = time.monotonic()  # loop_at: the loop's last round
        self.stopping = False
        self.http: HttpEndpoint | None = None
        self._stop = threading.Event()
        self._reload_requested = False
        self.engine = make_engine(config)
        if self.engine.cache is not None and not self.engine.cache.usable:
            log.warning("compiled_cache_off", reason=self.engine.cache.problem)
        self.deploy: DeployManager | None = None
        self.pipelines: list[Pipeline] = []
        self._ticks: list[Tick] = []
        self._apply(config, *self._build(config, self.engine, first_ident=1))
        if self.deploy is not None:
            self.deploy.resume_probation()
        self.states = StateStore(StateDir.of(config).filter_state)
        self._restore_states()
        # why a checkpoint is wanted (None: none is), and the states saved for one
        self._checkpoint_wanted: str | None = None
        self._snapshot: _Snapshot | None = None
        self.checkpoints_deferred = 0
        self.intake: Intake[Message] = Intake(config.daemon.queue_size, config.daemon.overload)
        # the QoS 1/2 outputs of the QoS 1/2 input being filtered, still waiting for a broker;
        # None outside such an input (ticks, QoS 0 inputs): nothing waits for those outputs
        self._outputs: list[int] | None = None
        self._make_links(config)
        if self.deploy is not None:
            self.deploy.resume_pending()  # its ack goes out once the control link is up

    def _build(
        self, config: Config, engine: WasmtimeEngine, *, first_ident: int
    ) -> tuple[list[Pipeline], Router]:
        pushed = {}
        if config.deploy.enabled:
            # imported here: with its compile worker's thread pool it costs ~0.5 MiB of RSS, and
            # only a node that takes deploys needs it
            from edged.deploy.manager import DeployManager
            from edged.deploy.store import ModuleStore

            store = ModuleStore(StateDir.of(config).modules)
            manager = DeployManager(
                config, engine, store, lambda: self.pipelines, self._publish_control
            )
            pushed = manager.restore()
        pipelines = build_pipelines(
            config,
            engine,
            self._publish,
            dead_letter=self._dead_letter,
            on_change=self._quarantine_changed,
            pushed=pushed,
            previous=self.pipelines,
        )
        if self.deploy is not None:
            self.deploy.close()
        self.deploy = manager if config.deploy.enabled else None
        for pipeline in pipelines:
            pipeline.debug = config.log.level == "debug"
        by_name = {p.name: p for p in pipelines}
        router = Router(
            [(by_name[pc.name], pc.subscribe) for pc in config.pipelines],
            first_ident=first_ident,
            brokers=tuple(config.brokers),
        )
        return pipelines, router

    def _apply(self, config: Config, pipelines: list[Pipeline], router: Router) -> None:
        self.config = config
        self.pipelines = pipelines
        self.router = router
        # a filter kept whole by a reload keeps its tick phase too
        self._ticks = ticks_of(pipelines, time.monotonic(), previous=self._ticks)

    def _subscriptions(self, broker: str) -> list[TopicSubscription]:
        subs = self.router.for_broker(broker)
        if self.deploy is not None and broker == self.config.control_broker:
            subs += self.deploy.subscriptions(self.router.next_ident)
        return subs

    def _make_links(self, config: Config) -> None:
        """One link per broker, in the config's order (a message's `source` is its index)."""
        self.links = [
            self._make_link(config, index, broker)
            for index, broker in enumerate(config.brokers.values())
        ]
        self._link_by_name = {link.name: link for link in self.links}
        self.control = self._link_by_name[config.control_broker]
        self.window = AckWindow(self._ack, sources=len(self.links))
        # per link: inputs dropped from the intake with its connection, which its broker resends
        self.left_to_broker = [0] * len(self.links)
        self._catching_up = [False] * len(self.links)  # replaying what waited in the outbox
        self._health: tuple[str, str | None] = ("online", None)

    def _make_link(self, config: Config, index: int, broker: BrokerConfig) -> BrokerLink:
        settings = broker.outbox
        outbox = Outbox(
            StateDir.of(config).outbox(broker),
            max_bytes=settings.max_bytes,
            max_age=settings.max_age,
            when_full=settings.when_full,
        )
        return BrokerLink(
            broker,
            index=index,
            client_id=broker.client_id_for(config.node_id),
            status_topic=config.status_topic,
            status={
                "node_id": config.node_id,
                "version": edged.__version__,
                "pipelines": [p.name for p in self.pipelines],
                "quarantined": [],
            },
            subscriptions=self._subscriptions(broker.name),
            on_message=self._received,
            on_ready=functools.partial(self._ready, index),
            on_acked=self._output_acked,
            on_lost=functools.partial(self._connection_lost, index),
            on_refused=self._output_refused,
            outbox=outbox,
            # Unacknowledged QoS 1/2 outputs; never below 1000, so a small intake queue does not
            # also throttle publishing to one round trip per few messages.
            max_queued_publishes=max(config.daemon.queue_size, 1000),
        )

    def request_reload(self) -> None:
        self._reload_requested = True

    def _reload(self) -> None:
        """Re-read the config; on any error keep running the old one and say why."""
        self._reload_requested = False
        if self.config_path is None:
            log.warning("reload_ignored", reason="the daemon was not started from a config file")
            return
        self.notifier.reloading()
        try:
            config = load_config(self.config_path)
            plan = plan_reload(self.config, config)
            engine = make_engine(config) if plan.new_engine else self.engine
            built = self._build(config, engine, first_ident=self.router.next_ident)
        except EdgedError as exc:
            log.error("reload_failed", reason=str(exc), keeping="the previous config")
            self.notifier.ready("reload failed; running the previous config")
            return
        self.engine = engine
        self._apply(config, *built)
        if self.deploy is not None:
            self.deploy.resume_probation()
        if plan.new_engine:  # the state directory may have moved
            path = StateDir.of(config).filter_state
            if path != self.states.path:
                self.states.close()
                self.states = StateStore(path)
        self.want_checkpoint("reload")
        if plan.new_intake:
            fresh: Intake[Message] = Intake(config.daemon.queue_size, config.daemon.overload)
            fresh.items.extend(self.intake.items)  # nothing already taken in is dropped
            self.intake = fresh
        if plan.new_link:
            self._orphan_inputs(range(len(self.links)))
            self._close_links()
            self._make_links(config)
        else:
            for link in self.links:
                link.replace_subscriptions(self._subscriptions(link.name))
                link.publish_status(pipelines=[p.name for p in self.pipelines], quarantined=[])
                # a renewed certificate or password in the same files: reconnect with it
                link.refresh_credentials()
        if self.deploy is not None:
            self.deploy.resume_pending()  # a compile the old manager's worker dropped
        if config.http != (self.http.settings if self.http is not None else None):
            if self.http is not None:
                self.http.close()
                self.http = None
            try:
                self._start_http()
            except EdgedError as exc:
                log.error("http_not_listening", reason=str(exc))
        log.info("reloaded", pipelines=[p.name for p in self.pipelines])
        self.notifier.ready(f"{len(self.pipelines)} pipelines (reloaded)")

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
            signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        log.info(
            "starting",
            node_id=self.config.node_id,
            pipelines=len(self.pipelines),
            modules=len(self.config.modules),
            compiled_cache_hits=self.engine.cache_hits,
            brokers={b.name: f"{b.host}:{b.port}" for b in self.config.brokers.values()},
        )
        timers = self.timers = Timers(self.config, self.notifier.watchdog_interval())
        timers.next_tick = next_due(self._ticks)
        lock = lock_state_dir(state_dir(self.config))
        try:
            self._start_http()
        except BaseException:
            lock.close()
            raise
        # What start-up made (modules of wasmtime, paho, cryptography, the config, the engine:
        # ~44,000 objects) lives as long as the process: out of the collector's sight, a full
        # collection no longer walks it. Such a collection, which comes every few seconds at
        # 10,000 msgs/s, stopped the loop for 15 to 75 ms on a busy 2-core VM (12 to 23 ms for
        # that heap alone, measured); it now walks only what the messages made. The cost: a
        # reference cycle among these objects that a reload later drops is never freed.
        gc.collect()  # (what is garbage already is freed, not frozen)
        gc.freeze()
        try:
            while not self._stop.is_set():
                intake = self.intake
                now = self.loop_at = time.monotonic()
                if now >= timers.next_watchdog:
                    # Only a loop that comes round says it is alive; a stuck one gets restarted.
                    self.notifier.watchdog()
                    timers.next_watchdog = now + timers.watchdog_every
                if self._reload_requested:
                    self._reload()
                    timers.next_tick = next_due(self._ticks)
                    continue
                deploy = self.deploy
                links = self.links
                self._checkpoint_due(now)
                if intake.items and not self._awaiting_acks():
                    for link in links:
                        link.service()
                else:
                    # Nothing to filter, or outputs wait for the broker's acks: wait for either.
                    wait = min(_MAX_WAIT, timers.next_due() - now)
                    if deploy is not None and deploy.busy:
                        wait = min(wait, 0.02)  # look often for the compile to finish
                    self._wait(max(0.0, wait))
                # Under `block` read only what fits: the rest waits at the broker. Outputs held
                # for an outbox that cannot be written slow every link down to a trickle.
                trickle = any(link.holding for link in links)
                if trickle:
                    time.sleep(_TRICKLE_WAIT)
                for link in links:
                    room = (
                        intake.size - len(intake.items)
                        if intake.overload == "block"
                        else _READ_BATCH
                    )
                    if trickle:
                        room = min(room, _TRICKLE)
                    if room > 0:
                        link.drain(room)
                if intake.items and not self._awaiting_acks():
                    self._process_slice()
                for index, link in enumerate(links):
                    link.flush_outbox()
                    if link.replay_pending:
                        link.replay()
                    elif self._catching_up[index]:
                        self._catching_up[index] = False  # the last entries were acknowledged
                        self._update_health()
                self._periodic(timers, time.monotonic())
        finally:
            self.stopping = True
            self.notifier.stopping()
            if not all(link.persistent for link in self.links):
                # A clean session ends with the connection: take in what the broker had queued.
                self._take_in_the_rest()
            # Take nothing new, finish what was taken, wait for the outputs' acknowledgements
            # (which release the inputs' own), then say offline and disconnect. With a persistent
            # session the broker keeps queueing for the next start, and sends again what is
            # still unacknowledged.
            intake = self.intake
            intake.close()
            while intake.items:
                self._process_slice()
            self._await_outputs()
            for link in self.links:
                link.service()  # the acknowledgements go out before the state that holds them
            self._checkpoint("stop")
            if timers.metrics_every:
                self._publish_metrics()
            self._close_links()
            self.states.close()
            if self.deploy is not None:
                self.deploy.close()
            self._summary()
            if self.http is not None:
                self.http.close()
                self.http = None
            lock.close()
            log.info("stopped")

    def _periodic(self, timers: Timers, now: float) -> None:
        """Everything the loop does on a clock rather than for a message, in one place: deploys
        under way, ticks, quarantine releases, outbox expiry and health, checkpoints,
        summaries, metrics (`edged.daemon.timers` keeps when each is due)."""
        deploy = self.deploy
        if deploy is not None:
            swaps = deploy.swaps
            deploy.poll(now)
            if deploy.swaps != swaps:
                self.want_checkpoint("swap")
        if now >= timers.next_tick:
            timers.next_tick = run_due(self._ticks, now)
        if now >= timers.next_housekeeping:
            timers.next_housekeeping = now + 1.0
            for pipeline in self.pipelines:
                pipeline.release_due(now)
            for link in self.links:
                if link.outbox is not None:
                    link.outbox.expire()
            self._update_health()  # a link that never got through is down too
        if now >= timers.next_checkpoint:
            timers.next_checkpoint = now + self.config.state.checkpoint_interval
            self.want_checkpoint("interval")
        if now >= timers.next_summary:
            timers.next_summary = now + self.config.log.summary_interval
            self._summary()
        if timers.metrics_every and now >= timers.next_metrics:
            timers.next_metrics = now + timers.metrics_every
            self._publish_metrics()

    # -- filter state ----------------------------------------------------------------------

    def want_checkpoint(self, why: str) -> None:
        """Save the filters' changed states at the start of the next round, and write them once
        every input applied before is acknowledged (`_checkpoint_due`)."""
        if self._checkpoint_wanted is None:
            self._checkpoint_wanted = why

    def _checkpoint_due(self, now: float) -> None:
        """Take a wanted checkpoint's states; write them once the inputs they hold the effect
        of are acknowledged.

        A checkpoint holding the effect of an input its broker may still send again (not yet
        acknowledged) would have that input applied twice after a crash. So the states are
        saved at one moment, between two messages, and written only once every input applied
        before that moment is acknowledged and its PUBACK written: one round trip of the
        outputs' acknowledgements, a few milliseconds on a LAN. The filters go on meanwhile; the
        inputs they take then are in the next checkpoint. Inputs not acknowledged within
        `_CHECKPOINT_DRAIN` put the checkpoint off.

        Why not stop filtering until the window is empty, as this did at first: after a swap
        at 10,000 msgs/s QoS 1 that stopped the stream for 0.2 to over 1 s (the window then
        holds every input that waited behind the deploy request, and under a steady stream it is
        never empty), the largest part of the swap's output gap (docs/deploy.md)."""
        snapshot = self._snapshot
        if snapshot is None:
            why = self._checkpoint_wanted
            if why is None:
                return
            self._checkpoint_wanted = None
            rows = self._save_states()
            if not rows:
                return  # no filter with a changed state: nothing to wait for
            window = self.window
            snapshot = _Snapshot(why, rows, window, window.mark(), now + _CHECKPOINT_DRAIN)
            self._snapshot = snapshot
        if snapshot.window is self.window and self.window.passed(snapshot.mark):
            self._snapshot = None
            for link in self.links:
                link.service()  # the acknowledgements go out before the state that holds them
            self._write_states(snapshot.why, snapshot.rows)
            return
        if now < snapshot.by:
            return
        self._snapshot = None
        self.checkpoints_deferred += 1
        log.info(
            "checkpoint_deferred",
            why=snapshot.why,
            inputs_unacknowledged=len(self.window),
            retry_in_s=_CHECKPOINT_RETRY,
        )
        timers = getattr(self, "timers", None)
        if timers is not None:
            timers.next_checkpoint = min(timers.next_checkpoint, now + _CHECKPOINT_RETRY)

    def _checkpoint(self, why: str) -> int:
        """Save every stateful filter called since its last save, and write those whose state
        changed (one transaction) now; how many were written."""
        self._snapshot = None  # these states are newer
        rows = self._save_states()
        if rows and self.window and why == "stop":
            log.warning(
                "checkpoint_with_inputs_unacknowledged",
                inputs=len(self.window),
                hint="their broker sends them again: their effect may count twice",
            )
        return self._write_states(why, rows)

    def _save_states(self) -> list[tuple[StateRecord, str, str, str, SavedState]]:
        """Save every stateful filter called since its last save; those whose state differs
        from what the store holds. A quarantined filter keeps its last state saved while it
        served."""
        rows = []
        for key, step in step_keys(self.pipelines):
            record = step.state
            if not step.filter.has_state or step.guard.out:
                continue
            if record.saved is None or record.changed_since_save(step.filter):
                carry.save(step.filter, record, pipeline=key.split("/", 1)[0], module=step.module)
            state = record.saved
            if state is None or state == record.written:
                continue
            digest = step.identity[0] if isinstance(step.identity, tuple) else ""
            rows.append((record, key, step.module, str(digest), state))
        return rows

    def _write_states(
        self, why: str, rows: list[tuple[StateRecord, str, str, str, SavedState]]
    ) -> int:
        """Write saved states in one transaction; how many (0 when the disk refused)."""
        if not rows:
            return 0
        now = time.time()
        if not self.states.put([(k, m, d, state) for _, k, m, d, state in rows], now):
            return 0
        for record, _, _, _, state in rows:
            record.written = state
            record.checkpoints += 1
            record.checkpoint_at = now
        log.debug("checkpoint", why=why, filters=len(rows), bytes=sum(len(r[4].data) for r in rows))
        return len(rows)

    def _restore_states(self) -> None:
        """At start, every stateful filter takes its last checkpoint (docs/state.md)."""
        for key, step in step_keys(self.pipelines):
            if not step.filter.has_state:
                continue
            state = self.states.get(key)
            if state is None:
                continue
            if step.renew is None:
                continue
            step.filter = carry.resume(
                step.renew,
                [state],
                step.state,
                pipeline=key.split("/", 1)[0],
                module=step.module,
                why="restart",
                instance=step.filter,
            )
            if step.state.saved is state:
                step.state.written = state

    def _orphan_inputs(self, sources: Container[int]) -> int:
        """QoS 1/2 inputs in the intake that came over a connection now gone (of these link
        indexes) can never be acknowledged on another: their message ids mean other messages
        there. With a persistent session their broker sends them again, so they are dropped
        (and counted); with a clean one they are still processed, as QoS 0. Returns how many
        were dropped."""
        items = self.intake.items
        kept: list[Message] = []
        for message in items:
            if message.qos and message.source in sources:
                if self.links[message.source].persistent:
                    self.left_to_broker[message.source] += 1
                    continue
                message.qos = 0
            kept.append(message)
        dropped = len(items) - len(kept)
        items.clear()
        items.extend(kept)
        return dropped

    def _start_http(self) -> None:
        """Listen on `http.listen` when the config has `http:` (the import costs RSS only
        then); SetupError when it cannot bind."""
        settings = self.config.http
        if settings is None:
            return
        from edged.daemon.http import HttpEndpoint

        endpoint = HttpEndpoint(settings, self, self.notifier.watchdog_interval())
        endpoint.start()
        self.http = endpoint

    def _wait(self, timeout: float) -> None:
        """Wait at most `timeout` seconds for any link's socket, then run each link's network."""
        links = self.links
        now = time.monotonic()
        for link in links:
            timeout = min(timeout, link.next_event(now))
            if link.readable_now():
                timeout = 0.0
        timeout = max(0.0, timeout)
        if len(links) == 1:
            links[0].step(timeout)
            return
        readers = [sock for link in links if (sock := link.socket()) is not None]
        writers = [s for link in links if link.wants_write() and (s := link.socket()) is not None]
        if readers or writers:
            # a socket closed under us: the link's own step finds out and reconnects
            with contextlib.suppress(OSError, ValueError):
                select.select(readers, writers, [], timeout)
        else:
            time.sleep(timeout)
        for link in links:
            link.step(0)

    def _await_outputs(self, timeout: float = 5.0) -> None:
        """Read acknowledgements until every output an input waits for has one."""
        deadline = time.monotonic() + timeout
        while self.window and any(link.connected for link in self.links):
            if self.deploy is not None:
                self.deploy.poll(time.monotonic())  # a deploy under way releases its request
            if time.monotonic() >= deadline:
                log.warning(
                    "shutdown_acks_timeout",
                    seconds=timeout,
                    inputs_left_to_the_broker=len(self.window),
                )
                break
            self._wait(0.02)  # what arrives now finds the intake closed: the broker keeps it
            for link in self.links:
                link.flush_outbox()

    def _close_links(self) -> None:
        for link in self.links:
            link.close()
            outbox = link.outbox
            if outbox is not None:
                link.flush_outbox(now=True)
                outbox.close()

    def _take_in_the_rest(self, timeout: float = 2.0) -> None:
        """Unsubscribe the links with a clean session, and keep reading and filtering until
        their brokers confirm it.

        Everything published before the shutdown began is then processed, not lost.
        """
        pending = {
            link: mid
            for link in self.links
            if not link.persistent and (mid := link.unsubscribe_all()) is not None
        }
        deadline = time.monotonic() + timeout
        while any(not link.unsubscribed(mid) for link, mid in pending.items()):
            if time.monotonic() >= deadline:
                log.warning("shutdown_drain_timeout", seconds=timeout)
                break
            self._wait(0.02)
            for link in self.links:
                link.drain(_READ_BATCH)
            if self.intake.items:
                self._process_slice()

    def _awaiting_acks(self) -> bool:
        """Outputs fill a link's queue of unacknowledged QoS 1/2 publishes: filtering more now
        would only have them refused. While connected the acks are on their way, so the loop
        reads them first; with the broker gone, outputs for it go to its outbox instead.
        """
        return any(link.backlogged and link.connected for link in self.links)

    def _process_slice(self) -> None:
        """Run the filters on queued messages for at most one time slice, oldest first.

        The slice keeps a slow filter from holding off the broker: after it, the loop reads
        again, so overload shows up in the intake's counters rather than at the broker.
        """
        items = self.intake.items
        deliver = self._deliver
        clock = time.monotonic
        until = clock() + _SLICE
        with contextlib.ExitStack() as batches:
            for link in self.links:
                batches.enter_context(link.batched_writes())
            backlogged = self._awaiting_acks if len(self.links) > 1 else None
            link = self.links[0]
            while items:
                deliver(items.popleft())
                if clock() >= until or (link.backlogged if backlogged is None else backlogged()):
                    break

    # -- reading ---------------------------------------------------------------------------

    def _received(self, message: Message) -> None:
        _, evicted = self.intake.put(message)
        if evicted is not None and evicted.qos:
            # Dropped by the overload policy and counted: acknowledged (in its turn), or it
            # would come back.
            self.window.finished(evicted.mid, evicted.qos, source=evicted.source)

    def _ack(self, source: int, mid: int, qos: int) -> None:
        self.links[source].ack(mid, qos)

    def _output_acked(self, key: int) -> None:
        self.window.output_done(key)

    def _connection_lost(self, index: int, unacked: list[Unacked]) -> None:
        """Link `index`'s connection went with these outputs unacknowledged.

        With a persistent session its broker sends every unacknowledged input again after the
        reconnect, and the filters make their outputs again: so an output an input of this same
        link stands behind is let go, and so is every QoS 1/2 input of this link still in the
        intake (it would only be a duplicate; with a clean session it is processed, never
        acknowledged: see `_orphan_inputs`). What no redelivery makes again goes to the
        outbox: ticks' outputs, everything with a clean session, and the outputs of inputs from
        another broker, whose connection is still up and which are acknowledged once those
        outputs are committed.
        """
        link = self.links[index]
        window = self.window
        redelivered = link.persistent
        kept = 0
        for u in unacked:
            source = window.source_of(u.mid)
            if redelivered and source == index:
                continue
            kept += 1
            token = 0
            if source is not None:
                # An input of another link waits for it: now for its commit to the outbox
                # (the message id will mean another publish on the next connection).
                token = next_token()
                window.rename(u.mid, token)
            kept = link.keep_for_outbox(u.topic, u.payload, u.qos, u.retain, token, u.properties)
            if not kept and token:
                window.output_done(token)  # dead-lettered instead (edged.mqtt.poison)
        link.flush_outbox(now=True)  # nothing else holds them now
        waiting = window.forget(index)
        dropped = self._orphan_inputs((index,))
        if self.stopping:
            # Our own goodbye, not a lost connection: worth a line only when it left work.
            if unacked or waiting or dropped:
                log.info(
                    "stopped_with_outputs_unacknowledged",
                    broker=link.name,
                    to_outbox=kept,
                    made_again_on_redelivery=len(unacked) - kept,
                    inputs_left_to_the_broker=waiting + dropped,
                )
            return
        log.info(
            "connection_lost_outputs",
            broker=link.name,
            to_outbox=kept,
            made_again_on_redelivery=len(unacked) - kept,
            inputs_awaiting_redelivery=waiting + dropped,
        )
        self._update_health()

    def _ready(self, index: int) -> None:
        link = self.links[index]
        log.info(
            "ready",
            broker=link.name,
            subscriptions=[s.topic for s in self.router.for_broker(link.name)],
        )
        outbox = link.outbox
        self._catching_up[index] = outbox is not None and outbox.entries > 0
        self._update_health()
        # Sent again after each reconnect; systemd takes the first READY and the fresh STATUS.
        up = [
            f"{broker.host}:{broker.port}"
            for broker, other in zip(self.config.brokers.values(), self.links, strict=True)
            if other.connected
        ]
        self.notifier.ready(f"{len(self.pipelines)} pipelines, connected to {', '.join(up)}")
        if self.deploy is not None and link is self.control:
            self.deploy.publish_status()

    def catching_up(self, index: int) -> bool:
        """Link `index` is replaying what waited in its outbox (after an outage)."""
        return index < len(self._catching_up) and self._catching_up[index]

    def _update_health(self) -> None:
        """Say in every link's retained status whether the node is `online` or `degraded`, and
        why (`edged.daemon.health`): a link that is down (`<name> unreachable`), one replaying
        its outbox, one whose outbox cannot be written."""
        state, reason, down = health.status(self)
        if (state, reason) == self._health:
            return
        self._health = (state, reason)
        for link in self.links:
            link.set_health(state, reason, links_down=down)

    # -- filtering -------------------------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        outputs: list[int] | None = [] if message.qos else None
        self._outputs = outputs
        try:
            deploy = self.deploy
            if (
                deploy is not None
                and message.source == self.control.index
                and deploy.is_control(message.topic)
            ):
                done = None
                if outputs is not None:
                    # The request's message is acknowledged once it is carried out (a deploy
                    # compiles in the background): a stand-in output until then. Done at once,
                    # the window knows not to wait for it.
                    token = next_token()
                    outputs.append(token)
                    done = functools.partial(self.window.output_done, token)
                deploy.handle(message.topic, message.payload, done)
            else:
                self.router.deliver(message)
        except Exception:
            # A bug of ours must cost one message, never the daemon; it is counted and logged.
            self.internal_errors += 1
            log.exception("internal_error", topic=message.topic.decode(errors="replace"))
        self._outputs = None
        if outputs is not None:
            self.window.finished(message.mid, message.qos, outputs, message.source)

    def _publish(
        self,
        topic: str,
        payload: bytes,
        qos: int,
        retain: bool,
        broker: str,
        properties: bytes = b"",
    ) -> bool:
        outputs = self._outputs
        key = self._link_by_name[broker].publish(
            topic, payload, qos, retain, outputs is not None, properties
        )
        if key and outputs is not None:
            outputs.append(key)  # the input being filtered waits for it
        return key is not None

    def _publish_control(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        try:
            return self._publish(topic, payload, qos, retain, self.config.control_broker)
        except OutputRefused as refused:
            log.error("control_message_refused", topic=topic, reason=refused.reason,
                      detail=refused.detail)  # fmt: skip
            return False

    def _dead_letter(self, record: dict[str, object]) -> None:
        topic = self.config.dead_letter_topic
        qos = self.config.violations.dead_letter_qos
        body = reports.dead_letter_body(self.config.node_id, record)
        limit = self.control.max_packet
        if limit is not None and packet_size(len(topic.encode()), len(body), qos, True) > limit:
            # The control broker would refuse the letter whole: it keeps the payload's head.
            raw = record.pop("payload", None)
            data = (
                raw.encode()
                if isinstance(raw, str)
                else base64.b64decode(str(record.pop("payload_b64", "")))
            )
            record["payload_size"] = len(data)
            record["payload_truncated"] = True
            record.update(payload_fields(data[:_LETTER_HEAD]))
            body = reports.dead_letter_body(self.config.node_id, record)
        self._publish_control(topic, body, qos, False)

    def _output_refused(self, refused: OutputRefused, topic: str, payload: bytes, qos: int) -> None:
        """An output its broker will never take, found outside a pipeline (kept for the outbox,
        or replayed from it): dead-lettered, counted by its link."""
        log.warning("output_refused", broker=refused.broker, topic=topic,
                    reason=refused.reason, detail=refused.detail)  # fmt: skip
        if topic == self.config.dead_letter_topic:
            return  # a dead letter of a dead letter would never end
        self._dead_letter(
            {
                "reason": refused.reason,
                "detail": refused.detail,
                "broker": refused.broker,
                "output_topic": topic,
                "qos": qos,
                **payload_fields(payload),
                "ts": int(time.time() * 1000),
            }
        )

    def _quarantine_changed(self) -> None:
        quarantined = [q for p in self.pipelines for q in p.quarantined]
        for link in self.links:
            link.publish_status(quarantined=quarantined)

    def metrics(self) -> dict[str, object]:
        record = reports.metrics_record(
            self.config.node_id, self.intake, self.router, self.pipelines, self.internal_errors
        )
        record["links"] = {
            link.name: {
                **link.snapshot(),
                "unacked_inputs": self.window.waiting(index),
                "inputs_left_to_broker": self.left_to_broker[index],
            }
            for index, link in enumerate(self.links)
        }
        return record

    def _publish_metrics(self) -> None:
        try:
            self.control.publish(
                self.config.metrics_topic, reports.to_json(self.metrics()), 0, True
            )
        except OutputRefused as refused:
            log.error("metrics_refused", reason=refused.reason, detail=refused.detail)

    def _summary(self) -> None:
        reports.log_summary(
            self.intake,
            self.router,
            self.pipelines,
            self.internal_errors,
            all(link.connected for link in self.links),
        )
