"""The daemon's lifecycle and its one loop: build from the config, run until told to stop.

One thread does everything, in rounds: read what the broker has sent into the bounded intake
queue (`edged.pipeline.intake`), run the filters on a time slice of it, then ticks, quarantine
releases, summaries and metrics (`edged.daemon.timers`). Why one thread: see `edged.mqtt.link`.
A reload (`edged.daemon.reload`) rebuilds the pipelines and keeps what did not change.
"""

from __future__ import annotations

import functools
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

import edged
from edged.config import Config, load_config
from edged.daemon import reports
from edged.daemon.reload import plan_reload
from edged.daemon.systemd import Notifier
from edged.daemon.timers import Timers, next_due, run_due, ticks_of
from edged.engine import WasmtimeEngine
from edged.errors import EdgedError
from edged.mqtt._paho import Unacked
from edged.mqtt.acks import AckWindow, next_token
from edged.mqtt.link import BrokerLink
from edged.mqtt.message import Message, TopicSubscription
from edged.mqtt.outbox import Outbox
from edged.pipeline import Pipeline
from edged.pipeline.assembly import build_pipelines, make_engine, state_dir
from edged.pipeline.intake import Intake
from edged.pipeline.router import Router

if TYPE_CHECKING:
    from edged.deploy.manager import DeployManager

log = structlog.get_logger("edged.daemon")

# The longest the loop waits for messages before it looks at ticks, timers and signals again.
_MAX_WAIT = 0.25
# At most this many packets are read per round, and filters run at most this long per round.
_READ_BATCH = 1000
_SLICE = 0.02


class Daemon:
    """Everything `edged run` does, ready to `run()` until `stop()` or SIGTERM."""

    def __init__(self, config: Config, *, config_path: Path | None = None) -> None:
        self.config_path = config_path
        self.notifier = Notifier()
        self.internal_errors = 0
        self._stop = threading.Event()
        self._reload_requested = False
        self.engine = make_engine(config)
        if self.engine.cache is not None and not self.engine.cache.usable:
            log.warning("compiled_cache_off", reason=self.engine.cache.problem)
        self.deploy: DeployManager | None = None
        self._apply(config, *self._build(config, self.engine, first_ident=1))
        if self.deploy is not None:
            self.deploy.resume_probation()
        self.intake: Intake[Message] = Intake(config.daemon.queue_size, config.daemon.overload)
        # the QoS 1/2 outputs of the input being filtered, still waiting for the broker
        self._outputs: list[int] = []
        self.left_to_broker = 0  # inputs dropped from the intake with the connection: redelivered
        self.link = self._make_link(config)
        self.window = AckWindow(self.link.ack)

    def _build(
        self, config: Config, engine: WasmtimeEngine, *, first_ident: int
    ) -> tuple[list[Pipeline], Router]:
        pushed = {}
        if config.deploy.enabled:
            # imported here: with its compile worker's thread pool it costs ~0.5 MiB of RSS, and
            # only a node that takes deploys needs it
            from edged.deploy.manager import DeployManager
            from edged.deploy.store import ModuleStore

            store = ModuleStore(state_dir(config) / "modules")
            manager = DeployManager(config, engine, store, lambda: self.pipelines, self._publish)
            pushed = manager.restore()
        pipelines = build_pipelines(
            config,
            engine,
            self._publish,
            dead_letter=self._dead_letter,
            on_change=self._quarantine_changed,
            pushed=pushed,
        )
        if self.deploy is not None:
            self.deploy.close()
        self.deploy = manager if config.deploy.enabled else None
        for pipeline in pipelines:
            pipeline.debug = config.log.level == "debug"
        by_name = {p.name: p for p in pipelines}
        router = Router(
            [(by_name[pc.name], pc.subscribe) for pc in config.pipelines], first_ident=first_ident
        )
        return pipelines, router

    def _apply(self, config: Config, pipelines: list[Pipeline], router: Router) -> None:
        self.config = config
        self.pipelines = pipelines
        self.router = router
        self._ticks = ticks_of(pipelines, time.monotonic())

    def _subscriptions(self) -> list[TopicSubscription]:
        subs = list(self.router.subscriptions)
        if self.deploy is not None:
            subs += self.deploy.subscriptions(self.router.next_ident)
        return subs

    def _make_link(self, config: Config) -> BrokerLink:
        outbox = Outbox(
            state_dir(config) / "outbox.sqlite3",
            max_bytes=config.outbox.max_bytes,
            max_age=config.outbox.max_age,
            when_full=config.outbox.when_full,
        )
        return BrokerLink(
            config.broker,
            client_id=config.client_id,
            status_topic=config.status_topic,
            status={
                "node_id": config.node_id,
                "version": edged.__version__,
                "pipelines": [p.name for p in self.pipelines],
                "quarantined": [],
            },
            subscriptions=self._subscriptions(),
            on_message=self._received,
            on_ready=self._ready,
            on_acked=self._output_acked,
            on_lost=self._connection_lost,
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
        if plan.new_intake:
            fresh: Intake[Message] = Intake(config.daemon.queue_size, config.daemon.overload)
            fresh.items.extend(self.intake.items)  # nothing already taken in is dropped
            self.intake = fresh
        if plan.new_link:
            self.link.close()
            self._close_outbox()
            self.link = self._make_link(config)
            self.window = AckWindow(self.link.ack)
        else:
            self.link.replace_subscriptions(self._subscriptions())
            self.link.publish_status(pipelines=[p.name for p in self.pipelines], quarantined=[])
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
            broker=f"{self.config.broker.host}:{self.config.broker.port}",
        )
        timers = Timers(self.config, self.notifier.watchdog_interval())
        timers.next_tick = next_due(self._ticks)
        try:
            while not self._stop.is_set():
                intake = self.intake
                now = time.monotonic()
                if now >= timers.next_watchdog:
                    # Only a loop that comes round says it is alive; a stuck one gets restarted.
                    self.notifier.watchdog()
                    timers.next_watchdog = now + timers.watchdog_every
                if self._reload_requested:
                    self._reload()
                    timers.next_tick = next_due(self._ticks)
                    continue
                deploy = self.deploy
                if intake.items and not self._awaiting_acks():
                    self.link.service()
                else:
                    # Nothing to filter, or outputs wait for the broker's acks: wait for either.
                    wait = min(_MAX_WAIT, timers.next_due() - now)
                    if deploy is not None and deploy.busy:
                        wait = min(wait, 0.02)  # look often for the compile to finish
                    self.link.step(max(0.0, wait))
                # Under `block` read only what fits: the rest waits at the broker.
                room = (
                    intake.size - len(intake.items) if intake.overload == "block" else _READ_BATCH
                )
                if room > 0:
                    self.link.drain(room)
                if intake.items and not self._awaiting_acks():
                    self._process_slice()
                link = self.link
                link.flush_outbox()
                if link.replay_pending:
                    link.replay()
                    if not link.replay_pending:
                        link.set_health("online")
                now = time.monotonic()
                if deploy is not None:
                    deploy.poll(now)
                if now >= timers.next_tick:
                    timers.next_tick = run_due(self._ticks, now)
                if now >= timers.next_housekeeping:
                    timers.next_housekeeping = now + 1.0
                    for pipeline in self.pipelines:
                        pipeline.release_due(now)
                    if link.outbox is not None:
                        link.outbox.expire()
                if now >= timers.next_summary:
                    timers.next_summary = now + self.config.log.summary_interval
                    self._summary()
                if timers.metrics_every and now >= timers.next_metrics:
                    timers.next_metrics = now + timers.metrics_every
                    self._publish_metrics()
        finally:
            self.notifier.stopping()
            if not self.link.persistent:
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
            if timers.metrics_every:
                self._publish_metrics()
            self.link.close()
            self._close_outbox()
            if self.deploy is not None:
                self.deploy.close()
            self._summary()
            log.info("stopped")

    def _await_outputs(self, timeout: float = 5.0) -> None:
        """Read acknowledgements until every output an input waits for has one."""
        deadline = time.monotonic() + timeout
        while self.window and self.link.connected:
            if self.deploy is not None:
                self.deploy.poll(time.monotonic())  # a deploy under way releases its request
            if time.monotonic() >= deadline:
                log.warning(
                    "shutdown_acks_timeout",
                    seconds=timeout,
                    inputs_left_to_the_broker=len(self.window),
                )
                break
            self.link.step(0.02)  # what arrives now finds the intake closed: the broker keeps it

    def _close_outbox(self) -> None:
        outbox = self.link.outbox
        if outbox is not None:
            self.link.flush_outbox(now=True)
            outbox.close()

    def _take_in_the_rest(self, timeout: float = 2.0) -> None:
        """Unsubscribe, and keep reading and filtering until the broker confirms it.

        Everything published before the shutdown began is then processed, not lost.
        """
        mid = self.link.unsubscribe_all()
        deadline = time.monotonic() + timeout
        while mid is not None and not self.link.unsubscribed(mid):
            if time.monotonic() >= deadline:
                log.warning("shutdown_drain_timeout", seconds=timeout)
                break
            self.link.step(0.02)
            self.link.drain(_READ_BATCH)
            if self.intake.items:
                self._process_slice()

    def _awaiting_acks(self) -> bool:
        """Outputs fill paho's queue of unacknowledged QoS 1/2 publishes: filtering more now would
        only have them refused. While connected the acks are on their way, so the loop reads them
        first; with the broker gone, filtering goes on and refused outputs count as publish_failed.
        """
        return self.link.backlogged and self.link.connected

    def _process_slice(self) -> None:
        """Run the filters on queued messages for at most one time slice, oldest first.

        The slice keeps a slow filter from holding off the broker: after it, the loop reads
        again, so overload shows up in the intake's counters rather than at the broker.
        """
        items = self.intake.items
        deliver = self._deliver
        link = self.link
        clock = time.monotonic
        until = clock() + _SLICE
        with self.link.batched_writes():
            while items:
                deliver(items.popleft())
                if clock() >= until or link.backlogged:
                    break

    # -- reading ---------------------------------------------------------------------------

    def _received(self, message: Message) -> None:
        _, evicted = self.intake.put(message)
        if evicted is not None and evicted.qos:
            # Dropped by the overload policy and counted: acknowledged (in its turn), or it
            # would come back.
            self.window.finished(evicted.mid, evicted.qos)

    def _output_acked(self, mid: int) -> None:
        self.window.output_done(mid)

    def _connection_lost(self, unacked: list[Unacked]) -> None:
        """The connection went with these outputs unacknowledged.

        With a persistent session the broker sends every unacknowledged input again after the
        reconnect, and the filters make its outputs again: so an output an input stands behind
        is let go, and so is every QoS 1/2 input still in the intake (it would only be a
        duplicate). What no redelivery makes again goes to the outbox. With a clean session
        nothing is sent again: every unacknowledged output goes to the outbox.
        """
        link = self.link
        window = self.window
        redelivered = link.persistent
        keep = [u for u in unacked if not (redelivered and window.backed(u.mid))]
        for u in keep:
            link.keep_for_outbox(u.topic, u.payload, u.qos, u.retain)
        link.flush_outbox(now=True)  # nothing else holds them now
        waiting = window.forget()
        dropped = 0
        if redelivered:
            items = self.intake.items
            kept_items = [m for m in items if not m.qos]
            dropped = len(items) - len(kept_items)
            items.clear()
            items.extend(kept_items)
            self.left_to_broker += dropped
        log.info(
            "connection_lost_outputs",
            to_outbox=len(keep),
            made_again_on_redelivery=len(unacked) - len(keep),
            inputs_awaiting_redelivery=waiting + dropped,
        )

    def _ready(self) -> None:
        log.info("ready", subscriptions=[s.topic for s in self.router.subscriptions])
        outbox = self.link.outbox
        if outbox is not None and outbox.entries:
            self.link.set_health("degraded", f"replaying {outbox.entries} outbox entries")
        # Sent again after each reconnect; systemd takes the first READY and the fresh STATUS.
        broker = self.config.broker
        self.notifier.ready(
            f"{len(self.pipelines)} pipelines, connected to {broker.host}:{broker.port}"
        )
        if self.deploy is not None:
            self.deploy.publish_status()

    # -- filtering -------------------------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        outputs: list[int] = []
        self._outputs = outputs
        try:
            deploy = self.deploy
            if deploy is not None and deploy.is_control(message.topic):
                done = None
                if message.qos:
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
        if message.qos:
            self.window.finished(message.mid, message.qos, outputs)

    def _publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> bool:
        mid = self.link.publish(topic, payload, qos, retain)
        if mid:
            self._outputs.append(mid)  # the input being filtered waits for it
        return mid is not None

    def _dead_letter(self, record: dict[str, object]) -> None:
        self._publish(
            self.config.dead_letter_topic,
            reports.dead_letter_body(self.config.node_id, record),
            self.config.violations.dead_letter_qos,
            False,
        )

    def _quarantine_changed(self) -> None:
        self.link.publish_status(quarantined=[q for p in self.pipelines for q in p.quarantined])

    def metrics(self) -> dict[str, object]:
        record = reports.metrics_record(
            self.config.node_id, self.intake, self.router, self.pipelines, self.internal_errors
        )
        record["link"] = {
            **self.link.snapshot(),
            "unacked_inputs": len(self.window),
            "inputs_left_to_broker": self.left_to_broker,
        }
        return record

    def _publish_metrics(self) -> None:
        self.link.publish(self.config.metrics_topic, reports.to_json(self.metrics()), 0, True)

    def _summary(self) -> None:
        reports.log_summary(
            self.intake, self.router, self.pipelines, self.internal_errors, self.link.connected
        )
