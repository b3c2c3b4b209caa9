"""`edged stats`: read a node's retained metrics from the broker and show them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from edged.errors import EdgedError

if TYPE_CHECKING:
    from edged.config import Config


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = commands.add_parser("stats", help="show a node's metrics, read from the broker")
    stats.add_argument("--config", "-c", required=True, type=Path, help="for the broker settings")
    stats.add_argument("--node", help="the node to show (default: the config's node_id)")
    stats.add_argument("--json", action="store_true", help="print the metrics JSON as it is")
    stats.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
    stats.set_defaults(handler=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    from edged.config import load_config

    config = load_config(args.config)
    metrics = fetch_metrics(config, args.node or config.node_id, args.timeout)
    if args.json:
        print(json.dumps(metrics))
    else:
        render(metrics, sys.stdout)
    return 0


def fetch_metrics(config: Config, node_id: str, timeout: float) -> dict[str, Any]:
    """The latest metrics the node published (they are retained).

    BrokerError if the broker cannot be reached; EdgedError if it holds no metrics of the node,
    which is a wrong --node or config more often than a node that is down.
    """
    from edged.mqtt.session import Session

    topic = f"{config.topic_prefix}/{node_id}/metrics"
    with Session(config.broker, "stats", min(timeout, 10.0) + 5.0) as session:
        session.subscribe(topic, 0)
        message = session.next(timeout)
    if message is None:
        raise EdgedError(
            f"no metrics on {topic} within {timeout:g} s: is node '{node_id}' running, "
            "with metrics.interval > 0?"
        )
    try:
        data = json.loads(message.payload)
    except ValueError:
        raise EdgedError(f"{topic} does not hold edged metrics") from None
    if not isinstance(data, dict):
        raise EdgedError(f"{topic} does not hold edged metrics")
    return data


def render(metrics: dict[str, Any], out: TextIO) -> None:
    from edged.sizes import format_bytes

    q = metrics.get("queue", {})
    print(
        f"node {metrics.get('node_id')}  rss {format_bytes(int(metrics.get('rss_bytes', 0)))}  "
        f"queue {q.get('depth', 0)}/{q.get('size', '?')} ({q.get('overload', '?')}, "
        f"dropped {q.get('dropped_oldest', 0)} oldest, {q.get('dropped_newest', 0)} newest)",
        file=out,
    )
    links = metrics.get("links")
    if isinstance(links, dict):
        for name, link in links.items():
            if isinstance(link, dict):
                print(_link_line(name, link, format_bytes), file=out)
    print(f"{'pipeline / filter':<28} {'in':>8} {'out':>8} {'filtered':>9}  dropped", file=out)
    for name, p in metrics.get("pipelines", {}).items():
        dropped = ", ".join(f"{k} {v}" for k, v in p.get("dropped", {}).items()) or "-"
        print(
            f"{name:<28} {p.get('in', 0):>8} {p.get('out', 0):>8} {p.get('filtered', 0):>9}"
            f"  {dropped}",
            file=out,
        )
        for f in p.get("filters", []):
            lat = f.get("latency_us", {})
            violations = ", ".join(f"{k} {v}" for k, v in f.get("violations", {}).items())
            state = "QUARANTINED" if f.get("quarantined") else "ok"
            print(
                f"  {f.get('module', '?'):<26} calls {f.get('calls', 0)}, "
                f"p50 <{lat.get('p50', 0)} µs, p99 <{lat.get('p99', 0)} µs, "
                f"fuel {f.get('fuel_used', 0)}, {state}"
                + (f", violations: {violations}" if violations else "")
                + _state_text(f.get("state"), format_bytes),
                file=out,
            )


def _state_text(state: object, format_bytes: Any) -> str:
    """`; state 4 KiB, 12 checkpoints (last 31 s ago)` for a stateful filter, else nothing."""
    if not isinstance(state, dict):
        return ""
    age = state.get("checkpoint_age_s")
    text = (
        f"; state {format_bytes(int(state.get('bytes', 0)))}, "
        f"{state.get('checkpoints', 0)} checkpoints"
        + (f" (last {age:g} s ago)" if age is not None else "")
    )
    if state.get("loads_refused"):
        text += f", {state['loads_refused']} LOADS REFUSED"
    if state.get("violations"):
        text += f", {state['violations']} STATE VIOLATIONS"
    return text


def _link_line(name: str, link: dict[str, Any], format_bytes: Any) -> str:
    """`broker cloud connected, 2 reconnects; unacked 12 out / 3 in; outbox 0 entries` etc."""
    state = "connected" if link.get("connected") else "DISCONNECTED"
    if link.get("down"):
        state += f" ({link['down']})"
    line = (
        f"broker {name} {state}, {link.get('reconnects', 0)} reconnects"
        f"; unacknowledged {link.get('unacked_outputs', 0)} outputs,"
        f" {link.get('unacked_inputs', 0)} inputs"
    )
    if link.get("session_lost"):
        line += f"; SESSION LOST {link['session_lost']}x"
    if link.get("rate_limited"):
        line += f"; {link['rate_limited']} QoS 0 over the rate limit"
    outbox = link.get("outbox")
    if isinstance(outbox, dict):
        age = outbox.get("oldest_age_s")
        line += (
            f"; outbox {outbox.get('entries', 0)} entries"
            f" ({format_bytes(int(outbox.get('bytes', 0)))}"
            + (f", oldest {age:g} s" if age is not None else "")
            + f"), replayed {outbox.get('replayed', 0)}, expired {outbox.get('expired', 0)},"
            f" dropped {outbox.get('dropped_oldest', 0)} oldest"
            f" {outbox.get('dropped_newest', 0)} newest"
        )
        if outbox.get("write_errors"):
            line += f", WRITE ERRORS {outbox['write_errors']}"
        if outbox.get("unstored"):
            line += f", {outbox['unstored']} LOST UNSTORED"
    if link.get("outbox_write_failing"):
        line += f"; OUTBOX WRITE FAILING ({link['outbox_write_failing']})"
    never = (link.get("over_packet_size") or 0) + (link.get("poison_outputs") or 0)
    if never:
        line += f"; {never} outputs the broker would never take, dead-lettered"
    return line
