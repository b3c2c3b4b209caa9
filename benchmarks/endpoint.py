"""The HTTP endpoint (`http:`): what having it, and being scraped, costs edged.

Three edged processes side by side, each with its own state dir, node id and topic prefix, on
the matrix's threshold workload at QoS 0 with 64-byte payloads:

- (a) without `http:`;
- (b) with `http:`, never scraped (only /readyz, once, to know it is up);
- (c) with `http:`, scraped by a thread of the harness (GET /metrics once a second, the first
  at once) through each of its floods.

1. Floods alternate between them (A B C, C B A, ...), so a drift of the machine falls on every
   variant alike; msgs/s and edged's CPU per 100k messages are the medians.
2. A flood's noise hides a cost of 1 %: on two cores edged's CPU per 100k ranged 1.8 to 3.1 s
   over the floods of one variant (edged at ~0.97 cores in each). So the CPU of one scrape is
   taken idle: (c)'s CPU over windows scraped once a second against the same windows
   unscraped, alternated, the difference divided by the scrapes.
3. RSS after the floods of each, (b) and (c) scraped by then, against (a).

Every scrape must answer 200 with text that prometheus_client's own parser reads; the bodies
are parsed after each window, so the parsing does not take the harness's CPU (and the GIL) from
the load generator during a flood.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import statistics
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from benchmarks import contenders as c
from benchmarks import procfs
from benchmarks.brokers import _machine_busy, _node_run
from benchmarks.load import PacketMaker, Payloads, Publisher, Receiver, sensor_topics
from benchmarks.scenarios import Context, Row, _warm_up, expected_weight
from edged.mqtt.mosquitto import free_port

WORKLOAD = "threshold"
QOS = 0
SCRAPE_INTERVAL = 1.0  # seconds: far more often than Prometheus' default 15 s, a worst case
# A family every scrape must hold (the parser names a counter without `_total`).
MUST_HAVE = "edged_messages_received"
# Loopback only: an http_proxy in the environment must not take the scrapes elsewhere.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
GOAL_SCRAPE_SHARE = 0.01
GOAL_RSS_MIB = 2.0


@dataclass(frozen=True)
class Counts:
    """Messages per flood and floods per variant; the idle windows for the cost of a scrape."""

    messages: int
    rounds: int
    idle_seconds: float  # one window
    idle_pairs: int  # (scraped, unscraped) pairs, alternated in order
    rss_scrapes: int  # scrapes of (b) before the RSS is read

    @classmethod
    def full(cls) -> Counts:
        # 100k, as the brokers section; at QoS 0 2 to 3 s a flood (35k to 50k msgs/s on two
        # cores), 3 scrapes of (c) in each. Six rounds, as their noise is ±20 %; ~2 minutes in all.
        return cls(messages=100_000, rounds=6, idle_seconds=10.0, idle_pairs=3, rss_scrapes=3)

    @classmethod
    def quick(cls) -> Counts:
        return cls(messages=400, rounds=1, idle_seconds=1.0, idle_pairs=1, rss_scrapes=1)


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, every thread included (the ended ones too: the endpoint
    serves each request on a thread of its own), to the nanosecond: /proc/<pid>/stat counts in
    10 ms ticks, three scrapes' worth (~3.4 ms each). procfs's figure where the process CPU
    clock cannot be read."""
    clock = ctypes.c_int()
    now = _Timespec()
    if _LIBC.clock_getcpuclockid(pid, ctypes.byref(clock)) == 0 and (
        _LIBC.clock_gettime(clock.value, ctypes.byref(now)) == 0
    ):
        return int(now.tv_sec) + int(now.tv_nsec) / 1e9
    return procfs.cpu_seconds(pid)


@dataclass(frozen=True)
class Scrape:
    status: int | None  # None: no answer
    body: bytes
    seconds: float
    error: str = ""


def get(url: str, timeout: float = 10.0) -> Scrape:
    began = time.monotonic()
    try:
        with _OPENER.open(url, timeout=timeout) as answer:
            body = answer.read()
            return Scrape(answer.status, body, time.monotonic() - began)
    except urllib.error.HTTPError as exc:
        return Scrape(exc.code, exc.read(), time.monotonic() - began, str(exc))
    except OSError as exc:  # URLError, refused, timed out
        return Scrape(None, b"", time.monotonic() - began, str(exc))


def parsed(scrape: Scrape) -> bool:
    """A 200 whose body prometheus_client's parser reads, with edged's families in it."""
    if scrape.status != 200:
        return False
    try:
        names = {family.name for family in text_string_to_metric_families(scrape.body.decode())}
    except (ValueError, UnicodeDecodeError, IndexError, KeyError):
        return False
    return MUST_HAVE in names


class Scraper:
    """GET /metrics every `interval` seconds on a thread of its own, from `start()` to
    `stop()`; the first at once, then on a fixed cadence (a slow answer does not shift it)."""

    def __init__(self, url: str, interval: float = SCRAPE_INTERVAL) -> None:
        self.url = url
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scrapes: list[Scrape] = []

    def start(self) -> None:
        self._stop.clear()
        self._scrapes = []
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        began = time.monotonic()
        done = 0
        while True:
            self._scrapes.append(get(self.url))
            done += 1
            if self._stop.wait(max(0.0, began + done * self.interval - time.monotonic())):
                return

    def stop(self) -> list[Scrape]:
        """Stop (after the scrape in flight, if any) and hand over the scrapes taken."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        self._thread = None
        return self._scrapes


@dataclass
class Variant:
    name: str
    run: c.Run
    proc: c.Process
    pub: Publisher
    recv: Receiver
    url: str | None  # http://host:port, None for (a)
    scraped: bool  # during its floods
    floods: list[Row] = field(default_factory=list)
    scrapes: list[Scrape] = field(default_factory=list)  # every /metrics of the section

    def close(self) -> None:
        self.proc.stop()
        self.pub.close()
        self.recv.close()


def _start(ctx: Context, name: str, *, http: bool, scraped: bool) -> Variant:
    run = ctx.run(WORKLOAD, QOS)
    node = run.prefix.replace("/", "-")
    node_run = _node_run(ctx, run, node)  # its own state dir: one daemon per state dir
    modules: dict[str, dict[str, object]] = {WORKLOAD: {"file": str(c.FILTERS / "threshold.wasm")}}
    url, extra = None, {}
    if http:
        listen = f"127.0.0.1:{free_port()}"
        url, extra = f"http://{listen}", {"http": {"listen": listen}}
    config = c.edged_config(node_run, [c.workload_pipeline(node_run)], modules, **extra)
    recv = Receiver(ctx.host, ctx.port, f"recv-{uuid.uuid4().hex[:8]}", f"{run.prefix}/out/#", QOS)
    pub = Publisher(ctx.host, ctx.port, f"pub-{uuid.uuid4().hex[:8]}")
    return Variant(name, node_run, c.start_edged(node_run, config), pub, recv, url, scraped)


def _wait_ready(variant: Variant, timeout: float = 60) -> None:
    """Until /readyz answers 200 (the broker link up, the subscription acknowledged)."""
    assert variant.url is not None
    deadline = time.monotonic() + timeout
    while (answer := get(f"{variant.url}/readyz", 2)).status != 200:
        if not variant.proc.alive() or time.monotonic() > deadline:
            raise RuntimeError(
                f"{variant.name}: /readyz {answer.status} {answer.body[:300]!r} {answer.error}\n"
                + variant.proc.log_tail()
            )
        time.sleep(0.1)


def _take(ctx: Context, variant: Variant, scrapes: list[Scrape], where: str) -> None:
    variant.scrapes += scrapes
    bad = [s for s in scrapes if not parsed(s)]
    if bad:
        first = bad[0]
        ctx.notes.append(
            f"endpoint, {variant.name}, {where}: {len(bad)} of {len(scrapes)} scrapes failed "
            f"(first: {first.status} {first.error or first.body[:200]!r})"
        )


def _flood(ctx: Context, variant: Variant, count: int, broker_pid: int) -> Row:
    """One flood through a variant (scraped through it when the variant is): the rate, and the
    CPU of edged, the broker and the harness over it."""
    maker = PacketMaker(variant.pub, sensor_topics(variant.run.prefix), Payloads(64), QOS)
    packets = [maker(i, i) for i in range(count)]
    want = expected_weight(WORKLOAD, 0, count)
    scraper = Scraper(f"{variant.url}/metrics") if variant.scraped else None
    pid = variant.proc.pid
    edged0, broker0, harness0 = (
        cpu_seconds(pid),
        procfs.cpu_seconds(broker_pid),
        time.process_time(),
    )
    machine0 = _machine_busy()
    if scraper is not None:
        scraper.start()
    started = variant.pub.flood(packets)
    complete = variant.recv.wait_for(want, 30 + count / 300)
    finished = variant.recv.last
    scrapes = scraper.stop() if scraper is not None else []
    edged = cpu_seconds(pid) - edged0
    broker = procfs.cpu_seconds(broker_pid) - broker0
    harness = time.process_time() - harness0
    machine = _machine_busy() - machine0
    if not complete:
        variant.recv.wait_quiet(1.0, 10)
    got = variant.recv.weight
    variant.recv.reset()
    complete = complete and got == want
    if not complete:
        ctx.notes.append(f"endpoint, {variant.name}: {got} of {want} outputs arrived")
    _take(ctx, variant, scrapes, "flood")
    seconds = finished - started
    return {
        "seconds": seconds,
        "complete": complete,
        "outputs": got,
        "expected_outputs": want,
        "edged_cpu_s": edged,
        "broker_cpu_s": broker,
        "harness_cpu_s": harness,
        "machine_cpu_s": machine,
        "scrapes": len(scrapes),
        "scrapes_ok": sum(parsed(s) for s in scrapes),
    }


def _median(values: Iterable[float], digits: int = 2) -> float:
    return round(statistics.median(values), digits)


def _per_100k(seconds: float, messages: int) -> float:
    return seconds / messages * 100_000


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def _summary(variant: Variant, count: int) -> Row:
    floods = variant.floods
    rates = [
        round(count / f["seconds"]) if f["complete"] and f["seconds"] > 0 else 0 for f in floods
    ]
    timed = [f for f in floods if f["seconds"] > 0]
    return {
        "variant": variant.name,
        "complete": all(f["complete"] for f in floods),
        "msgs_per_s": round(statistics.median(rates)) if all(rates) else None,
        "msgs_per_s_rounds": rates,
        "edged_cpu_s_per_100k": _median(_per_100k(f["edged_cpu_s"], count) for f in floods),
        "edged_cpu_s_per_100k_rounds": [
            round(_per_100k(f["edged_cpu_s"], count), 2) for f in floods
        ],
        "broker_cpu_s_per_100k": _median(_per_100k(f["broker_cpu_s"], count) for f in floods),
        "harness_cpu_s_per_100k": _median(_per_100k(f["harness_cpu_s"], count) for f in floods),
        # edged's CPU seconds per second of the flood: what one scrape a second is a share of
        "edged_cores_busy": _median((f["edged_cpu_s"] / f["seconds"] for f in timed), 3)
        if timed
        else None,
        "machine_cores_busy": _median(f["machine_cpu_s"] / f["seconds"] for f in timed)
        if timed
        else None,
        "scrapes": sum(f["scrapes"] for f in floods),
        "scrapes_ok": sum(f["scrapes_ok"] for f in floods),
    }


def _idle(ctx: Context, variants: Sequence[Variant], scraped: Variant, counts: Counts) -> Row:
    """The CPU of one scrape: `scraped`'s CPU over idle windows with a scrape a second against
    the same windows without, alternated (S Q, Q S, ...); every variant's idle CPU besides."""
    assert scraped.url is not None
    windows: list[Row] = []
    for pair in range(counts.idle_pairs):
        for scraping in (True, False) if pair % 2 == 0 else (False, True):
            ctx.say(
                f"endpoint: idle, {'scraped' if scraping else 'unscraped'}, "
                f"pair {pair + 1} of {counts.idle_pairs}"
            )
            scraper = Scraper(f"{scraped.url}/metrics")
            cpu0 = {v.name: cpu_seconds(v.proc.pid) for v in variants}
            began = time.monotonic()
            if scraping:
                scraper.start()
            time.sleep(counts.idle_seconds)
            scrapes = scraper.stop() if scraping else []
            cpu = {v.name: cpu_seconds(v.proc.pid) - cpu0[v.name] for v in variants}
            seconds = time.monotonic() - began
            _take(ctx, scraped, scrapes, "idle")
            windows.append(
                {
                    "scraped": scraping,
                    "seconds": seconds,
                    "cpu_s": cpu,
                    "scrapes": len(scrapes),
                    "scrapes_ok": sum(parsed(s) for s in scrapes),
                }
            )
    on = [w for w in windows if w["scraped"]]
    off = [w for w in windows if not w["scraped"]]

    def rate(ws: list[Row], name: str) -> float:
        """CPU seconds per second of `name` over the windows."""
        return float(sum(w["cpu_s"][name] for w in ws) / sum(w["seconds"] for w in ws))

    per_pair = []
    for pair in range(counts.idle_pairs):
        s, q = sorted(windows[2 * pair : 2 * pair + 2], key=lambda w: not w["scraped"])
        if s["scrapes"]:
            extra = s["cpu_s"][scraped.name] - rate([q], scraped.name) * s["seconds"]
            per_pair.append(round(extra / s["scrapes"] * 1000, 2))
    scrapes = sum(w["scrapes"] for w in on)
    # Pooled over every window: the ends of each window cost the same, fewer differences.
    extra = (rate(on, scraped.name) - rate(off, scraped.name)) * sum(w["seconds"] for w in on)
    bodies = [len(s.body) for s in scraped.scrapes if s.status == 200]
    return {
        "window_s": counts.idle_seconds,
        "pairs": counts.idle_pairs,
        "scrapes": scrapes,
        "scrapes_ok": sum(w["scrapes_ok"] for w in on),
        "scrape_cpu_ms": round(extra / scrapes * 1000, 2) if scrapes else None,
        "scrape_cpu_ms_pairs": per_pair,
        # what the harness waited for an answer, and the size of it
        "scrape_wall_ms": _median(s.seconds * 1000 for s in scraped.scrapes)
        if scraped.scrapes
        else None,
        "scrape_bytes": round(statistics.median(bodies)) if bodies else None,
        # every variant's idle CPU, unscraped windows only: what the endpoint costs just by
        # being there (its server thread looks for a stop request five times a second)
        "idle_cpu_ms_per_s": {v.name: round(rate(off, v.name) * 1000, 3) for v in variants},
        "scraped_idle_cpu_ms_per_s": round(rate(on, scraped.name) * 1000, 3),
    }


def _rss(ctx: Context, variants: Sequence[Variant], counts: Counts) -> dict[str, float]:
    for variant in variants:
        if variant.url is not None and not variant.scraped:
            scrapes = [get(f"{variant.url}/metrics") for _ in range(counts.rss_scrapes)]
            _take(ctx, variant, scrapes, "before the RSS")
    time.sleep(0.5)
    return {v.name: round(procfs.rss_mib(v.proc.pid), 2) for v in variants}


NAMES = ("no http", "http, not scraped", "http, scraped 1/s")


def measure(ctx: Context, counts: Counts) -> Row:
    """All three measurements on three edged processes started side by side."""
    assert ctx.broker_pid is not None
    variants: list[Variant] = []
    try:
        for name, http, scraped in zip(
            NAMES, (False, True, True), (False, False, True), strict=True
        ):
            variants.append(_start(ctx, name, http=http, scraped=scraped))
        for variant in variants:
            if variant.url is not None:
                _wait_ready(variant)
            _warm_up(ctx, variant.proc, variant.run, variant.pub, variant.recv, 30)
        rss_before = {v.name: round(procfs.rss_mib(v.proc.pid), 2) for v in variants}
        for round_ in range(counts.rounds):
            for variant in variants if round_ % 2 == 0 else reversed(variants):
                ctx.say(f"endpoint: {variant.name}, flood {round_ + 1} of {counts.rounds}")
                variant.floods.append(_flood(ctx, variant, counts.messages, ctx.broker_pid))
        rows = {v.name: _summary(v, counts.messages) for v in variants}
        idle = _idle(ctx, variants, variants[2], counts)
        rss_after = _rss(ctx, variants, counts)
        for v in variants:
            if not v.proc.alive():
                ctx.notes.append(f"endpoint, {v.name}: edged exited\n{v.proc.log_tail()}")
    finally:
        for variant in variants:
            variant.close()
    a, b, s = (rows[n] for n in NAMES)
    for name, row in (("b ÷ a", b), ("c ÷ a", s)):
        rows[name] = {
            "msgs_per_s": _ratio(row["msgs_per_s"], a["msgs_per_s"]),
            "edged_cpu_s_per_100k": _ratio(row["edged_cpu_s_per_100k"], a["edged_cpu_s_per_100k"]),
        }
    cost = idle["scrape_cpu_ms"]
    busy = a["edged_cores_busy"]
    return {
        "workload": WORKLOAD,
        "qos": QOS,
        "payload_bytes": len(Payloads(64).example),
        "messages": counts.messages,
        "rounds": counts.rounds,
        "scrape_interval_s": SCRAPE_INTERVAL,
        "floods": rows,
        "idle": idle,
        # one scrape a second, from the idle figure, as a share of (a)'s CPU in a flood
        "scrape_share_of_flood_cpu": round(cost / 1000 / SCRAPE_INTERVAL / busy, 5)
        if cost is not None and busy
        else None,
        "rss_mib": {
            "after_warm_up": rss_before,
            "after_floods": rss_after,
            "added_vs_no_http": {
                n: round(rss_after[n] - rss_after[NAMES[0]], 2) for n in NAMES[1:]
            },
        },
    }
