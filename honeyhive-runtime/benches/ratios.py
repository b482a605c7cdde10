#!/usr/bin/env python3
"""Prints the figures of the `overhead` bench as a markdown table: ns per request, ns per
span, the ratio to the raw OpenTelemetry SDK in the same group and, for sampled peers, the
share of their spans that reached the exporter (from `overhead-delivery.json`, written by the
bench); then the goal ratios.

Run after `cargo bench -p honeyhive-runtime --bench overhead`:

    python3 honeyhive-runtime/benches/ratios.py [path/to/target/criterion]

The default path is `$CARGO_TARGET_DIR/criterion`, else `target/criterion` of this workspace.
Figures are criterion's point estimates of the last run (the slope where there is one, as
criterion prints it, else the mean). Python 3 standard library only.
"""

import json
import os
import sys
from pathlib import Path

# Spans in one request of the bench (a root and five children).
SPANS = 6
# The raw SDK peer each group is compared against.
BASELINE = {"sampled": "otel_sdk", "unsampled": "otel_sdk_ratio_0"}
# Peers in the order the table lists them (others follow, sorted).
ORDER = [
    "plain_fn",
    "tracing_instrument_no_subscriber",
    "honeyhive_trace_no_pipeline",
    "honeyhive_trace_always_off",
    "honeyhive_trace",
    "fastrace_trace_no_properties",
    "fastrace_trace",
    "otel_sdk_ratio_0",
    "otel_sdk",
    "tracing_instrument_otel",
]


def criterion_dir():
    if len(sys.argv) > 1:
        return Path(sys.argv[1])
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return Path(target) / "criterion"
    return Path(__file__).resolve().parents[2] / "target" / "criterion"


def load(root):
    """{group: {peer: ns per request}} from every `<group>/<peer>/new/` of the last run."""
    figures = {}
    for estimates_path in sorted(root.glob("*/*/new/estimates.json")):
        new = estimates_path.parent
        with open(new / "benchmark.json") as f:
            bench = json.load(f)
        with open(estimates_path) as f:
            estimates = json.load(f)
        estimate = estimates.get("slope") or estimates["mean"]
        group = bench["group_id"]
        peer = bench.get("function_id") or bench.get("value_str") or new.parent.name
        figures.setdefault(group, {})[peer] = estimate["point_estimate"]
    return figures


def load_delivery(root):
    """{peer: (made, delivered)} from the last run, if the bench wrote it."""
    try:
        with open(root / "overhead-delivery.json") as f:
            raw = json.load(f)
    except (OSError, ValueError):
        return {}
    return {peer: (v["made"], v["delivered"]) for peer, v in raw.items()}


def rank(peer):
    return (ORDER.index(peer), peer) if peer in ORDER else (len(ORDER), peer)


def fmt(ns):
    return f"{ns:,.0f}" if ns >= 100 else f"{ns:.1f}"


def main():
    root = criterion_dir()
    figures = load(root)
    if not figures:
        sys.exit(f"no criterion results under {root}; run the bench first")
    delivery = load_delivery(root)
    print("| group | peer | ns/request | ns/span | ns/span over plain fn | vs raw SDK | spans exported |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for group in sorted(figures, key=lambda g: (g != "unsampled", g)):
        peers = figures[group]
        plain = peers.get("plain_fn")
        base = peers.get(BASELINE.get(group, ""))
        for peer in sorted(peers, key=rank):
            ns = peers[peer]
            per_span = ns / SPANS
            over = "" if plain is None else fmt((ns - plain) / SPANS)
            ratio = "" if base is None or peer == "plain_fn" else f"{ns / base:.3f}x"
            made, delivered = delivery.get(peer, (0, 0)) if group == "sampled" else (0, 0)
            exported = f"{100 * delivered / made:.0f}%" if made else ""
            print(f"| {group} | {peer} | {fmt(ns)} | {fmt(per_span)} | {over} | {ratio} | {exported} |")

    sampled = figures.get("sampled", {})
    unsampled = figures.get("unsampled", {})
    print()
    print("| goal | figure | met |")
    print("|---|---|---|")
    ours = sampled.get("honeyhive_trace")
    if ours is not None and "otel_sdk" in sampled:
        r = ours / sampled["otel_sdk"]
        print(f"| sampled `#[trace]` <= 0.2x raw SDK per span | {r:.3f}x | {'yes' if r <= 0.2 else 'no'} |")
    for peer, label in (
        ("fastrace_trace_no_properties", "fastrace without properties"),
        ("fastrace_trace", "fastrace with properties"),
    ):
        if ours is not None and peer in sampled:
            r = ours / sampled[peer]
            print(f"| sampled `#[trace]` faster than {label} | {r:.3f}x | {'yes' if r < 1 else 'no'} |")
    tracing = unsampled.get("tracing_instrument_no_subscriber")
    for peer in ("honeyhive_trace_always_off", "honeyhive_trace_no_pipeline"):
        if peer in unsampled and tracing is not None:
            d = (unsampled[peer] - tracing) / SPANS
            # "a few ns": within 3 ns per span of tracing without a subscriber.
            print(
                f"| `{peer}` within a few ns of tracing, no subscriber | "
                f"{d:+.1f} ns/span | {'yes' if d <= 3 else 'no'} |"
            )
    sdk_unsampled = unsampled.get("otel_sdk_ratio_0")
    off = unsampled.get("honeyhive_trace_always_off")
    if off is not None and sdk_unsampled is not None:
        r = off / sdk_unsampled
        print(f"| unsampled `#[trace]` far below unsampled raw SDK | {r:.3f}x | {'yes' if r <= 0.1 else 'no'} |")


if __name__ == "__main__":
    main()
