"""The self-contained HTML report and the terminal summary of a run result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from rich.console import Console
from rich.table import Table

from benchmarks.charts import heatmap, line_chart
from shardline.limits import SHARD_WRITE_BYTES_PER_SEC

__all__ = ["print_summary", "render_html", "write_html"]


def render_html(result: dict[str, Any]) -> str:
    timeline = result["timeline"]
    charts = {
        "throughput": line_chart(
            "chart-throughput",
            "Throughput (records/s)",
            {
                "sent": timeline["sent_records"],
                "acknowledged": timeline["acked_records"],
                "consumed": timeline["consumed_records"],
                "throttles": timeline["throttles"],
            },
        ),
        "latency": line_chart(
            "chart-latency",
            "Send-to-ack latency per second (ms)",
            {"p50": timeline["ack_p50_ms"], "p99": timeline["ack_p99_ms"]},
            " ms",
        ),
        "iterator_age": line_chart(
            "chart-iterator-age",
            "Iterator age, MillisBehindLatest (ms)",
            timeline["iterator_age_ms"] or {"no consumer": []},
            " ms",
        ),
        "heatmap": heatmap(
            "chart-heatmap",
            "Bytes/s per shard per second (share of the 1 MiB/s write limit)",
            {shard: series["bytes"] for shard, series in sorted(result["shard_timeline"].items())},
            SHARD_WRITE_BYTES_PER_SEC,
        ),
    }
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("benchmarks", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2").render(r=result, s=result["summary"], charts=charts)


def write_html(result: dict[str, Any], path: Path) -> Path:
    path.write_text(render_html(result), encoding="utf-8")
    return path


def print_summary(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    s = result["summary"]
    table = Table(title=f"stream-bench {result['config']['target']} / {result['config']['stream']}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    ack, e2e = s["send_to_ack_ms"], s["end_to_end_ms"]
    for label, value in (
        ("records acked / sent", f"{s['records_acked']} / {s['records_sent']}"),
        ("producer records/s", f"{s['producer_records_per_sec']:.0f}"),
        ("producer MB/s", f"{s['producer_mb_per_sec']:.3f}"),
        ("consumer records/s", f"{s['consumer_records_per_sec']:.0f}"),
        ("throttles / retries", f"{s['throttles']} / {s['retries']}"),
        ("send-to-ack p50/p99/p99.9/max ms", f"{ack['p50']}/{ack['p99']}/{ack['p99_9']}/{ack['max']}"),
        ("end-to-end p50/p99/max ms", f"{e2e['p50']}/{e2e['p99']}/{e2e['max']}"),
        ("client CPU us/record", f"{s['client_cpu_us_per_record']:.1f}"),
        ("hot shards", ", ".join(h["shard_id"] for h in result["hot_shards"]) or "none"),
        ("bound by", result["bound_by"]["verdict"]),
    ):
        table.add_row(label, value)
    console.print(table)
    for hot in result["hot_shards"]:
        console.print(f"[bold]{hot['shard_id']}[/bold]: {hot['recommendation']}")
