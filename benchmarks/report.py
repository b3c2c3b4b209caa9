"""The results as Markdown tables and a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import endpoint
from benchmarks.contenders import CONTENDERS, LABELS, WORKLOADS

Results = dict[str, Any]
GOAL_CEILING = 0.95
GOAL_NODE_RED = 3.0
GOAL_RSS_MIB = 32.0


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _size(row: dict[str, Any]) -> str:
    return "1 KiB" if row["payload_bytes"] >= 1000 else f"{row['payload_bytes']} B"


def by_case(results: Results) -> dict[tuple[str, int, int], dict[str, dict[str, Any]]]:
    """(workload, qos, payload bytes) -> contender -> row."""
    cases: dict[tuple[str, int, int], dict[str, dict[str, Any]]] = {}
    for row in results.get("matrix", []):
        key = (row["workload"], row["qos"], row["payload_bytes"])
        cases.setdefault(key, {})[row["contender"]] = row
    return dict(sorted(cases.items(), key=lambda kv: (WORKLOADS.index(kv[0][0]), kv[0][1:])))


def goals(results: Results) -> list[tuple[str, str, bool | None]]:
    """Each goal of the hot path: (what, measured, met)."""
    out: list[tuple[str, str, bool | None]] = []
    for (workload, qos, size), rows in by_case(results).items():
        if workload != "threshold":
            continue
        label = f"threshold, QoS {qos}, {size} B"
        # Each by msgs/s and by CPU per message: a flood shares two cores between broker, load
        # and contender, so msgs/s flatten near what the broker carries; CPU does not.
        checks = (
            (f"edged ≥ {GOAL_CEILING:.0%} of ceiling 2 (msgs/s)", _rate, "ceiling-wasm", "{:.2f}"),
            (
                f"edged's CPU per message ≤ ceiling 2's ÷ {GOAL_CEILING:.2f}",
                _cpu,
                "ceiling-wasm",
                "{:.2f}",
            ),
            (f"edged ≥ {GOAL_NODE_RED:.0f}x Node-RED (msgs/s)", _rate, "node-red", "{:.2f}x"),
            (
                f"edged uses ≤ 1/{GOAL_NODE_RED:.0f} of Node-RED's CPU per message",
                _cpu,
                "node-red",
                "1/{:.2f}",
            ),
        )
        for what, pair, other, shown in checks:
            r = _ratio(*pair(rows, other))
            goal = GOAL_CEILING if other == "ceiling-wasm" else GOAL_NODE_RED
            out.append(
                (
                    f"{label}: {what}",
                    "—" if r is None else shown.format(r),
                    None if r is None else r >= goal,
                )
            )
    for row in results.get("scale", []):
        if row["modules"] == 4:
            rss = row["steady_rss_mib"]
            out.append(
                (
                    f"steady RSS with 4 modules ≤ {GOAL_RSS_MIB:.0f} MiB",
                    f"{rss:.1f} MiB",
                    rss <= GOAL_RSS_MIB,
                )
            )
    return out


def _rate(rows: dict[str, dict[str, Any]], other: str) -> tuple[float | None, float | None]:
    """(edged's msgs/s, other's): their ratio is how many times faster edged is."""
    return rows.get("edged", {}).get("msgs_per_s"), rows.get(other, {}).get("msgs_per_s")


def _cpu(rows: dict[str, dict[str, Any]], other: str) -> tuple[float | None, float | None]:
    """(other's CPU per message, edged's): their ratio is how many times leaner edged is."""
    return rows.get(other, {}).get("cpu_s_per_100k"), rows.get("edged", {}).get("cpu_s_per_100k")


def summary_table(results: Results) -> list[str]:
    """msgs/s of every contender per case, and edged's ratios to ceiling 2 and Node-RED."""
    lines = [
        "| workload | QoS | payload | ceiling 1 | ceiling 2 | edged | Node-RED "
        "| edged ÷ ceiling 2 | edged ÷ Node-RED |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (workload, qos, _), rows in by_case(results).items():
        rates = {name: rows.get(name, {}).get("msgs_per_s") for name in CONTENDERS}
        size = _size(next(iter(rows.values())))
        to_ceiling = _ratio(rates["edged"], rates["ceiling-wasm"])
        to_red = _ratio(rates["edged"], rates["node-red"])
        lines.append(
            f"| {workload} | {qos} | {size} | "
            + " | ".join(_num(rates[name]) for name in CONTENDERS)
            + f" | {_num(to_ceiling, 2)} | {_num(to_red, 2)}{'x' if to_red else ''} |"
        )
    return lines


def detail_table(results: Results) -> list[str]:
    lines = [
        "| workload | QoS | payload | contender | msgs/s | p50 ms | p99 ms | steady RSS MiB "
        "| peak RSS MiB | CPU s / 100k msgs | broker CPU s / 100k |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (workload, qos, _), rows in by_case(results).items():
        for name in CONTENDERS:
            row = rows.get(name)
            if row is None:
                continue
            lat = row.get("latency_ms") or {}
            rate = _num(row.get("msgs_per_s"))
            if not row.get("complete", True):
                rate += f" ({row['outputs']}/{row['expected_outputs']} outputs)"
            lines.append(
                f"| {workload} | {qos} | {_size(row)} | {LABELS[name]} | {rate} | "
                f"{_num(lat.get('p50'), 2)} | {_num(lat.get('p99'), 2)} | "
                f"{_num(row.get('steady_rss_mib'), 1)} | {_num(row.get('peak_rss_mib'), 1)} | "
                f"{_num(row.get('cpu_s_per_100k'), 2)} | "
                f"{_num(row.get('broker_cpu_s_per_100k'), 2)} |"
            )
    return lines


def _rates(row: dict[str, Any]) -> str:
    """The median msgs/s, with the range over the alternated floods when there are several."""
    text = _num(row["msgs_per_s"])
    rounds = row["msgs_per_s_rounds"]
    if len(rounds) > 1 and all(rounds):
        text += f" ({min(rounds):,} to {max(rounds):,})"
    if not row["complete"]:
        text += " (outputs missing)"
    return text


def _busy(row: dict[str, Any]) -> str:
    return f"{_num(row['cores_busy'], 2)} / {_num(row['machine_cores_busy'], 2)}"


def brokers_tables(section: dict[str, Any]) -> list[str]:
    """The two-broker and the shared-subscription measurements."""
    cpu = "CPU s / 100k inputs"
    out = [
        "",
        f"## Several brokers ({section['workload']}, QoS {section['qos']}, "
        f"{section['payload_bytes']} B)",
        "",
        f"Floods of {section['messages']:,} messages, {section['rounds']} per setup, alternated "
        "between the setups; medians (range of msgs/s). CPU per 100k inputs of the flood; "
        "load + receiver is the harness process; cores busy: the CPU seconds of all of them per "
        "second of the flood, then of the whole machine (2.0 is both cores).",
        "",
        f"| setup | msgs/s | edged {cpu} | local broker {cpu} | cloud broker {cpu} "
        f"| load + receiver {cpu} | cores busy (ours / machine) |",
        "|---|---|---|---|---|---|---|",
    ]
    two = section["two_brokers"]
    for name in ("one broker", "two brokers"):
        row = two[name]
        shares = row["cpu_s_per_100k"]
        out.append(
            f"| {name} | {_rates(row)} | {_num(row['edged_cpu_s_per_100k'], 2)} | "
            f"{_num(shares.get('broker local'), 2)} | {_num(shares.get('broker cloud'), 2)} | "
            f"{_num(shares.get('harness'), 2)} | {_busy(row)} |"
        )
    ratio = two["two ÷ one"]
    out.append(
        f"| two ÷ one | {_num(ratio['msgs_per_s'], 2)} | "
        f"{_num(ratio['edged_cpu_s_per_100k'], 2)} | | | | |"
    )
    if section["shared"] is None:
        return out
    out += [
        "",
        "Shared subscription `$share/bench/<prefix>/in/#` on one mosquitto, the same floods. "
        "Per node: CPU per 100k of the inputs that node took (its metrics, "
        "`pipelines.bench.in`), and its share of all inputs.",
        "",
        f"| setup | msgs/s in | outputs/s | per node {cpu} | split | edged total {cpu} "
        f"| broker {cpu} | load + receiver {cpu} | cores busy (ours / machine) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("one node", "two nodes"):
        row = section["shared"][name]
        nodes = row["nodes"].values()
        shares = row["cpu_s_per_100k"]
        out.append(
            f"| {name} | {_rates(row)} | {_num(row['outputs_per_s'])} | "
            + " / ".join(_num(n["cpu_s_per_100k"], 2) for n in nodes)
            + " | "
            + " / ".join(f"{n['share']:.1%}" for n in nodes)
            + f" | {_num(row['edged_cpu_s_per_100k'], 2)} | "
            f"{_num(shares.get('broker local'), 2)} | {_num(shares.get('harness'), 2)} | "
            f"{_busy(row)} |"
        )
    return out


def implementations_tables(section: dict[str, Any]) -> list[str]:
    """edged on each broker implementation, with its ratios to the baseline (mosquitto)."""
    cpu = "CPU s / 100k inputs"
    base = section["baseline"]
    out = [
        "",
        f"## Broker implementations ({section['workload']}, QoS {section['qos']}, "
        f"{section['payload_bytes']} B, edged on MQTT {section['mqtt_version']})",
        "",
        f"edged with its input and output on one broker, each broker its own process with its "
        f"limits off. Floods of {section['messages']:,} messages, {section['rounds']} per "
        f"broker, alternated between the brokers after an unmeasured first flood of "
        f"{section['warm_up']:,} each; medians (range of msgs/s). Ratios: to {base}'s.",
        "",
        f"| broker | msgs/s | edged {cpu} | broker {cpu} | load + receiver {cpu} "
        f"| cores busy (ours / machine) | msgs/s ÷ {base} | edged CPU ÷ {base} "
        f"| broker CPU ÷ {base} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in section["brokers"].values():
        if not row["complete_floods"]:
            when = f"in flood {row['floods']}" if row["floods"] else "in its first flood"
            out.append(f"| {row['broker']} | stalled {when} (none complete) | | | | | | | |")
            continue
        ratio = row["ratio"]
        rates = _rates(row)
        if row["stalled"]:
            rates += (
                f" (stalled in flood {row['floods']}; medians of the "
                f"{row['complete_floods']} before)"
            )
        out.append(
            f"| {row['broker']} | {rates} | {_num(row['edged_cpu_s_per_100k'], 2)} | "
            f"{_num(row['broker_cpu_s_per_100k'], 2)} | "
            f"{_num(row['cpu_s_per_100k'].get('harness'), 2)} | {_busy(row)} | "
            f"{_num(ratio['msgs_per_s'], 2)} | {_num(ratio['edged_cpu_s_per_100k'], 2)} | "
            f"{_num(ratio['broker_cpu_s_per_100k'], 2)} |"
        )
    for name, change in section["changes"].items():
        label = section["brokers"].get(name, {}).get("broker", name)
        out += ["", f"Changed for {label}: {change}."]
    for name, why in section["skipped"].items():
        out += ["", f"Left out: {name}: {why}."]
    return out


def endpoint_tables(section: dict[str, Any]) -> list[str]:
    """The HTTP endpoint: floods without it, with it, with it scraped; one idle scrape; RSS."""
    floods, idle, rss = section["floods"], section["idle"], section["rss_mib"]
    every = section["scrape_interval_s"]
    out = [
        "",
        f"## HTTP endpoint ({section['workload']}, QoS {section['qos']}, "
        f"{section['payload_bytes']} B)",
        "",
        f"Three edged side by side: (a) without `http:`, (b) with it, never scraped, (c) with it, "
        f"GET /metrics every {every:g} s through each flood. Floods of "
        f"{section['messages']:,} messages, {section['rounds']} per variant, alternated "
        "(A B C, C B A, ...); medians (range).",
        "",
        "| edged | msgs/s | edged CPU s / 100k msgs | broker CPU s / 100k | edged cores busy "
        "| scrapes (200 and parsed) |",
        "|---|---|---|---|---|---|",
    ]
    for label, name in zip(("(a)", "(b)", "(c)"), endpoint.NAMES, strict=True):
        row = floods[name]
        cpu = row["edged_cpu_s_per_100k_rounds"]
        cpu_text = _num(row["edged_cpu_s_per_100k"], 2)
        if len(cpu) > 1:
            cpu_text += f" ({min(cpu):.2f} to {max(cpu):.2f})"
        scrapes = f"{row['scrapes_ok']} of {row['scrapes']}" if row["scrapes"] else "—"
        out.append(
            f"| {label} {name} | {_rates(row)} | {cpu_text} | "
            f"{_num(row['broker_cpu_s_per_100k'], 2)} | {_num(row['edged_cores_busy'], 2)} | "
            f"{scrapes} |"
        )
    for label, key in (("(b) ÷ (a)", "b ÷ a"), ("(c) ÷ (a)", "c ÷ a")):
        ratio = floods[key]
        out.append(
            f"| {label} | {_num(ratio['msgs_per_s'], 3)} | "
            f"{_num(ratio['edged_cpu_s_per_100k'], 3)} | | | |"
        )
    idle_cpu = idle["idle_cpu_ms_per_s"]
    share = section["scrape_share_of_flood_cpu"]
    pairs = idle["scrape_cpu_ms_pairs"]
    out += [
        "",
        f"One scrape, idle: (c)'s CPU over {idle['window_s']:g} s windows with a scrape every "
        f"{every:g} s, minus the same windows without, alternated ({idle['pairs']} pair"
        f"{'s' if idle['pairs'] != 1 else ''}, "
        f"{idle['scrapes_ok']} of {idle['scrapes']} scrapes 200 and parsed): "
        f"**{_num(idle['scrape_cpu_ms'], 2)} ms of edged CPU a scrape** (per pair: "
        + ", ".join(f"{ms:.2f}" for ms in pairs)
        + f"); answered in {_num(idle['scrape_wall_ms'], 1)} ms (median), "
        f"{_num(idle['scrape_bytes'])} bytes of text. Idle edged CPU ms/s, unscraped: "
        + ", ".join(f"{name} {_num(idle_cpu[name], 2)}" for name in endpoint.NAMES)
        + f"; (c) scraped: {_num(idle['scraped_idle_cpu_ms_per_s'], 2)}.",
        "",
        "| edged | RSS after warm-up MiB | RSS after the floods MiB | added vs (a) MiB |",
        "|---|---|---|---|",
    ]
    for label, name in zip(("(a)", "(b)", "(c)"), endpoint.NAMES, strict=True):
        added = rss["added_vs_no_http"].get(name)
        out.append(
            f"| {label} {name} | {_num(rss['after_warm_up'][name], 1)} | "
            f"{_num(rss['after_floods'][name], 1)} | "
            f"{'—' if added is None else f'{added:+.1f}'} |"
        )
    worst = max(rss["added_vs_no_http"].values())
    goal = endpoint.GOAL_SCRAPE_SHARE
    out += [
        "",
        "| goal | measured | met |",
        "|---|---|---|",
        f"| one scrape every {every:g} s ≤ {goal:.0%} of a flooded edged's CPU "
        f"(idle scrape ÷ (a)'s CPU per second of flood) | "
        f"{'—' if share is None else f'{share:.3%}'} | "
        f"{'—' if share is None else 'yes' if share <= goal else 'no'} |",
        f"| RSS with the endpoint ≤ (a) + {endpoint.GOAL_RSS_MIB:g} MiB | {worst:+.1f} MiB | "
        f"{'yes' if worst <= endpoint.GOAL_RSS_MIB else 'no'} |",
    ]
    return out


def faults_tables(section: dict[str, Any]) -> list[str]:
    """A clean stream against one with a poison output in `every`, per cloud link version."""
    cpu = "CPU s / 100k inputs"
    out = [
        "",
        f"## A poison output ({section['workload']}, QoS {section['qos']}, "
        f"{section['payload_bytes']} B)",
        "",
        f"edged from the local mosquitto to a second one (`broker: cloud`, `max_packet_size "
        f"{section['limit']}`); the poison stream pads one input in {section['every']:,} to "
        f"{section['poison_bytes']:,} B, so its output is over the cloud's limit. Floods "
        "alternated between clean and poison; medians (range of msgs/s). msgs/s: inputs per "
        "second until every other output (each once) and every dead letter arrived. "
        "Reconnects and dead letters: edged's own counters (`links.cloud`), totals over the "
        "floods; repeats: outputs that arrived more than once.",
        "",
        f"| cloud link | stream | messages a flood | msgs/s | edged {cpu} "
        f"| cloud broker {cpu} | dead-lettered | reconnects | repeats |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, what in (("announced", "limit announced"), ("unannounced", "not announced")):
        measured = section[key]
        for name in ("clean", "poison"):
            row = measured[name]
            out.append(
                f"| MQTT {measured['mqtt_version']}, {what} | {name} | "
                f"{measured['messages']:,}, {measured['rounds']} floods | {_rates(row)} | "
                f"{_num(row['edged_cpu_s_per_100k'], 2)} | "
                f"{_num(row['cpu_s_per_100k'].get('broker cloud'), 2)} | "
                f"{row['dead_lettered']} of {row['poison']} | {row['reconnects']} | "
                f"{row['repeats']:,} |"
            )
        ratio = measured["poison ÷ clean"]
        out.append(
            f"| MQTT {measured['mqtt_version']}, {what} | poison ÷ clean | | "
            f"{_num(ratio['msgs_per_s'], 3)} | {_num(ratio['edged_cpu_s_per_100k'], 2)} "
            "| | | | |"
        )
    return out


def state_tables(section: dict[str, Any]) -> list[str]:
    """Swaps that hand a state over, by its size; a checkpoint's cost; the per-call cost."""
    out = [
        "",
        f"## Filter state (hot swap at {section['stream_rate']:,} msg/s QoS 1; checkpoints; "
        "per call)",
        "",
        "Each row: signed pushes alternating two versions of a forwarding module whose state is "
        "that many bytes; state loads: swaps that handed it over.",
        "",
        "| state | swaps | push → ack median ms | max ms | longest output gap ms "
        "| during a swap | elsewhere | state loads | lost | duplicated |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in section["swaps"]:
        latency = row["swap_latency_ms"]
        out.append(
            f"| {row['state']} | {row['swaps']} | {_num(latency['median'], 1)} | "
            f"{_num(latency['max'], 1)} | {_num(row['longest_output_gap_ms'], 1)} | "
            f"{_num(row['swap_gap_ms'], 1)} | {_num(row['gap_elsewhere_ms'], 1)} | "
            f"{row['state_loads']} | {row['lost']} | {row['duplicated']} |"
        )
    cp = section["checkpoint"]
    out += [
        "",
        f"Checkpoint of {cp['filters']} filters of {cp['state_bytes'] // 1024} KiB, each "
        f"changed ({cp['checkpoints']} checkpoints): CPU {cp['cpu_ms']['median']:.2f} ms "
        f"(max {cp['cpu_ms']['max']:.2f}), wall {cp['wall_ms']['median']:.2f} ms "
        f"(max {cp['wall_ms']['max']:.2f}, with the fsync), "
        f"{cp['bytes_per_checkpoint'] / 1024:.1f} KiB handed to write(): "
        f"{cp['mib_per_hour']:.2f} MiB an hour at one every {cp['interval_s']:.0f} s.",
        "",
        "| WasmtimeFilter.on_message, same work | µs / message |",
        "|---|---|",
    ]
    out += [f"| {name} | {us:.2f} |" for name, us in section["call_us"].items()]
    return out


def markdown(results: Results) -> str:
    meta = results["meta"]
    out = [
        f"# edged benchmarks ({meta['mode']} run)",
        "",
        f"{meta['date']}, {meta['machine']}. {meta['software']}.",
        f"Broker: private mosquitto on loopback, queue limits off. edged and the ceilings speak "
        f"MQTT {meta['mqtt_version']}; Node-RED its default, 3.1.1.",
        f"Node-RED: {meta['node_red']}.",
        "",
        "Sustained msgs/s: a flood of "
        + ", ".join(f"{n:,} messages of {s} B" for s, n in meta["flood"].items())
        + ", inputs handled per second from the first publish to the last output. Latency: "
        f"end to end at a fixed {meta['rate']:,} msgs/s (send time carried in each payload). "
        "Steady RSS: at the end of the fixed-rate phase; peak RSS: during the flood. CPU: the "
        "contender's user + system time over the flood, and the broker's in the same window.",
        "",
        "## Goals (threshold workload; RSS with 4 modules from the scale run)",
        "",
        "| goal | measured | met |",
        "|---|---|---|",
    ]
    for what, measured, met in goals(results):
        out.append(f"| {what} | {measured} | {'—' if met is None else 'yes' if met else 'no'} |")
    out += ["", "## Sustained msgs/s", "", *summary_table(results)]
    out += ["", "## Every figure", "", *detail_table(results)]
    if cold := results.get("cold_start"):
        out += [
            "",
            "## Cold start (process start → READY=1 on NOTIFY_SOCKET, 4 modules)",
            "",
            "| compiled-module cache | median s | max s |",
            "|---|---|---|",
            f"| empty | {cold['no_cache_s']['median']:.3f} | {cold['no_cache_s']['max']:.3f} |",
            f"| warm | {cold['cache_s']['median']:.3f} | {cold['cache_s']['max']:.3f} |",
            "",
            f"RSS at READY (warm cache): {cold['rss_at_ready_mib']} MiB; "
            f"{cold['repeats']} starts each.",
        ]
    if swap := results.get("hot_swap"):
        lat = swap["swap_latency_ms"]
        out += [
            "",
            f"## Hot swap (signed pushes during a {swap['stream_rate']:,} msg/s QoS 1 stream)",
            "",
            "| swaps | push → ack median ms | max ms | longest output gap ms | during a swap "
            "| elsewhere | messages | lost | duplicated |",
            "|---|---|---|---|---|---|---|---|---|",
            f"| {swap['swaps']} | {_num(lat['median'], 1)} | {_num(lat['max'], 1)} | "
            f"{_num(swap['longest_output_gap_ms'], 1)} | {_num(swap.get('swap_gap_ms'), 1)} | "
            f"{_num(swap.get('gap_elsewhere_ms'), 1)} | {swap['messages']:,} | {swap['lost']} | "
            f"{swap['duplicated']} |",
            "",
            f"Acks: {dict(swap['acks'])}; stream achieved {swap['achieved_rate']:,} msgs/s. "
            "During a swap: the longest gap that overlaps a push's time to its ack (+50 ms); "
            "elsewhere: the longest of the others, what a busy machine makes of a steady stream.",
        ]
    if scale := results.get("scale"):
        out += [
            "",
            "## Scale (threshold; one module per pipeline, the load spread over all)",
            "",
            "| pipelines / modules | msgs/s | steady RSS MiB | peak RSS MiB | CPU s / 100k msgs |",
            "|---|---|---|---|---|",
        ]
        for row in scale:
            out.append(
                f"| {row['pipelines']} | {_num(row['msgs_per_s'])} | {row['steady_rss_mib']:.1f} | "
                f"{row['peak_rss_mib']:.1f} | {row['cpu_s_per_100k']:.2f} |"
            )
    if section := results.get("brokers"):
        out += brokers_tables(section)
    if section := results.get("implementations"):
        out += implementations_tables(section)
    if section := results.get("endpoint"):
        out += endpoint_tables(section)
    if section := results.get("faults"):
        out += faults_tables(section)
    if section := results.get("state"):
        out += state_tables(section)
    if section := results.get("properties"):
        from benchmarks.properties import table

        out += ["", *table(section)]
    if section := results.get("sparkplug"):
        from benchmarks import sparkplug

        out += ["", *sparkplug.table(section)]
    if calls := results.get("call_cost"):
        out += [
            "",
            "## Per-call cost of the filter (threshold, in process, no MQTT)",
            "",
            "| path | µs / message |",
            "|---|---|",
        ]
        out += [f"| {name} | {us:.2f} |" for name, us in calls.items()]
    if floor := results.get("memory_floor"):
        out += [
            "",
            "## Memory floor (RSS after each import, each in a fresh process)",
            "",
            "| step | RSS MiB | added MiB |",
            "|---|---|---|",
        ]
        out += [f"| {r['step']} | {r['rss_mib']:.1f} | {r['added_mib']:+.1f} |" for r in floor]
    if results.get("notes"):
        out += ["", "## Notes", "", *(f"- {note}" for note in results["notes"])]
    return "\n".join(out) + "\n"


def chart(results: Results, path: Path) -> str | None:
    """Draw the PNG; returns why not when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    cases = by_case(results)
    labels = [f"{w[:5]} q{q}\n{'1K' if s >= 1000 else s}" for w, q, s in cases]
    fig, axes = plt.subplots(2, 2, figsize=(15, 9))
    width = 0.2
    for panel, key, title in (
        (axes[0][0], "msgs_per_s", "sustained msgs/s"),
        (axes[0][1], "p99", "p99 latency at a fixed rate, ms (log)"),
        (axes[1][0], "steady_rss_mib", "steady RSS, MiB"),
    ):
        for index, name in enumerate(CONTENDERS):
            values = []
            for rows in cases.values():
                row = rows.get(name, {})
                value = (row.get("latency_ms") or {}).get("p99") if key == "p99" else row.get(key)
                values.append(value or 0)
            xs = [x + (index - 1.5) * width for x in range(len(labels))]
            panel.bar(xs, values, width, label=LABELS[name])
        panel.set_xticks(range(len(labels)), labels, fontsize=7)
        panel.set_title(title)
        if key == "p99":
            panel.set_yscale("log")
    axes[0][0].legend(fontsize=8)
    scale = results.get("scale", [])
    if scale:
        ax = axes[1][1]
        xs = [row["pipelines"] for row in scale]
        ax.plot(xs, [row["msgs_per_s"] or 0 for row in scale], "o-", label="msgs/s")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [str(x) for x in xs])
        ax.set_xlabel("pipelines / modules")
        ax.set_ylabel("msgs/s")
        ax.set_title("edged scale (threshold)")
        rss_axis = ax.twinx()
        rss_axis.plot(xs, [row["steady_rss_mib"] for row in scale], "s--", color="tab:red")
        rss_axis.set_ylabel("steady RSS, MiB", color="tab:red")
    meta = results["meta"]
    fig.suptitle(f"edged benchmarks, {meta['date']}, {meta['machine']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
