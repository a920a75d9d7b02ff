"""Write docs/benchmarks.md and its plots from the benches' result files.

Run: .venv/bin/python bench/report.py [--results DIR] [--docs DIR]

Reads build/bench/{tracking_throughput,converge_cost,footprint}.json (whichever exist) and
writes docs/benchmarks.md and docs/img/bench-*.png. Every section prints the machine, the
versions and the settings of its own run next to its figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _common as common
from matplotlib.figure import Figure

MAIN_CASES = ["a", "b_http", "b_tls", "c_ttl0", "c_ttl60", "d_guide"]
VARIANT_CASES = ["a", "a_w1", "b_tls", "b_tls_w1", "b_tls_keepalive", "b_tls_r1000"]
OPS = ["log_batch", "get_run", "search_runs", "artifact_upload", "artifact_download"]
RUN_LABELS = {
    "fresh": "fresh converge",
    "noop": "no-op reconverge",
    "check": "no-op --check --diff",
    "noop_nopipelining": "no-op reconverge, pipelining off",
}

TRACKING_INTRO = (
    "## 1. Tracking API throughput and latency",
    "`bench/tracking_throughput.py`: real PostgreSQL, mlflow servers and nginx on 127.0.0.1; "
    "client processes with keep-alive connections issue the REST calls the mlflow client makes. "
    "Cases run in a new random order every round; figures are medians over rounds, ratios "
    "are taken within a round, then the median.\n",
)

CONVERGE_INTRO = (
    "## 2. Converge cost",
    "`bench/converge_cost.py`: site.yml with every role on one systemd container, one fresh converge, "
    "then rounds of a no-op reconverge and a no-op `--check --diff` in random order; "
    "the profile_tasks and timer callbacks time each task.\n",
)

FOOTPRINT_INTRO = (
    "## 3. Footprint",
    "`bench/footprint.py`: one all-in-one stack per profile side by side on 127.0.0.1 (role defaults, a Pi "
    "profile and two variants of it), alternating bursts of mixed client load through nginx with TLS; memory from "
    "/proc/<pid>/smaps of each service's process tree. *resident* = private pages plus every "
    "shared mapping once (what the stack needs on a host of its own); RSS over-counts shared "
    "pages, PSS splits them with unrelated processes.\n",
)


def met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def fmt(value, digits: int = 1) -> str:
    if value is None or value != value:
        return "-"
    return f"{value:.{digits}f}"


def environment(result: dict) -> str:
    m, v = result["machine"], result["versions"]
    lines = [
        f"machine:  {m['cpus']} CPUs ({m['cpu']}), {m['ram_gib']} GiB RAM, kernel {m['kernel']}",
        f"          {m['distro']} {m['arch']}",
        f"          load average at start {m['loadavg_at_start']} (other jobs share this machine)",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        f"run:      {result['finished']}, {result['elapsed_s']:.0f} s"
        + (" (--tiny: not a measurement)" if result["tiny"] else ""),
    ]
    return "```text\n" + "\n".join(lines) + "\n```\n"


def save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def intro(title: str, result: dict, text: str) -> list[str]:
    """A section's heading, what its bench does, and the machine/versions of its run."""
    return [f"{title}\n", text, environment(result)]


def settings_block(settings: dict, keys: list[str]) -> str:
    lines = []
    for key in keys:
        value = settings.get(key)
        if isinstance(value, dict):
            lines.append(f"{key}:")
            lines += [f"  {k}: {val}" for k, val in value.items()]
        elif value is not None:
            lines.append(f"{key}: {value}")
    return "```text\n" + "\n".join(lines) + "\n```\n"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- tracking


def server_cpu(cpu: dict) -> float:
    return sum(cpu.get(k, 0.0) for k in ("nginx", "mlflow", "postgres"))


def plot_tracking(result: dict, cases: list[str], path: Path, title: str) -> None:
    table_ = result["summary"]["table"]
    cases = [c for c in cases if c in table_]
    clients = [str(c) for c in result["settings"]["clients"]]
    fig = Figure(figsize=(4 * len(OPS), 7.5))
    axes = fig.subplots(2, len(OPS), squeeze=False)
    width = 0.8 / max(len(cases), 1)
    for col, op in enumerate(OPS):
        for row, metric in enumerate(("rps", "p99_ms")):
            ax = axes[row][col]
            for i, case in enumerate(cases):
                values = [table_[case][op][c][metric] for c in clients]
                ax.bar([x + i * width for x in range(len(clients))], values, width, label=case)
            ax.set_xticks([x + width * (len(cases) - 1) / 2 for x in range(len(clients))], clients)
            ax.set_xlabel("concurrent clients")
            ax.set_title(f"{op}: {'requests/s' if metric == 'rps' else 'p99 latency (ms)'}", fontsize=10)
            if metric == "p99_ms":
                ax.set_yscale("log")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    save(fig, path)


def plot_tracking_cases(result: dict, img: Path) -> None:
    plot_tracking(result, MAIN_CASES, img / "bench-tracking.png", "Tracking API: median of rounds")
    plot_tracking(result, VARIANT_CASES, img / "bench-tracking-variants.png", "One default changed at a time")


def tracking_section(result: dict) -> tuple[str, list[list[str]]]:
    s, summary = result["settings"], result["summary"]
    table_, ratios, overhead = summary["table"], summary["ratios"], summary["p99_overhead_ms"]
    clients = [str(c) for c in s["clients"]]
    top = clients[-1]
    out = []
    out.append(settings_block(s, ["rounds", "burst_seconds", "artifact_burst_seconds", "clients", "client_kind"]))
    out.append(settings_block(s, ["cases", "ops", "mlflow_argv", "postgres", "nginx_main_conf", "tiny_note"]))
    out.append("![tracking throughput and p99](img/bench-tracking.png)\n")

    for op in OPS:
        rows = []
        for case in [c for c in table_ if c in MAIN_CASES + VARIANT_CASES]:
            cells = [case]
            for c in clients:
                m = table_[case][op][c]
                cells.append(
                    f"{fmt(m['rps'])} / {fmt(m['p50_ms'])} / {fmt(m['p99_ms'])}"
                    + (f" ({m['errors']} err)" if m["errors"] else "")
                )
            rows.append(cells)
        out.append(f"**{op}**: requests/s / p50 ms / p99 ms\n\n")
        out.append(table(["case", *[f"{c} clients" for c in clients]], rows))
        out.append("\n")

    out.append(
        "**Throughput ratios** (median of per-round ratios) / **p99 difference** (ms, numerator minus denominator)\n\n"
    )
    rows = []
    for key in ratios:
        for op in OPS:
            cells = [key, op]
            for c in clients:
                cells.append(f"{fmt(ratios[key][op][c], 2)} / {fmt(overhead[key.replace('/', '-')][op][c], 1)}")
            rows.append(cells)
    out.append(table(["ratio", "call", *[f"{c} clients" for c in clients]], rows))

    out.append(
        "\n**CPU per request** (ms, median over rounds) at the highest concurrency, where the machine is "
        "CPU-bound. *a / case* = the server-side CPU of case a over this case's: the throughput ratio "
        "that CPU alone predicts, free of the run-to-run noise of the throughput figures.\n\n"
    )
    rows = []
    for op in ("log_batch", "get_run", "artifact_upload", "artifact_download"):
        base = server_cpu(table_["a"][op][top]["cpu_ms_per_request"]) if "a" in table_ else None
        for case in table_:
            cpu = table_[case][op][top]["cpu_ms_per_request"]
            total = server_cpu(cpu)
            cells = [fmt(cpu.get(k), 2) for k in ("nginx", "mlflow", "postgres")] + [fmt(total, 2)]
            rows.append([case, op, *cells, fmt(base / total if base else None, 2), fmt(cpu.get("client"), 2)])
    out.append(
        table(["case", "call", "nginx", "mlflow", "postgres", "server total", "a / case", "client (generator)"], rows)
    )
    out.append(
        "\n**One htpasswd verify** with the system's crypt(3), as nginx runs it in its event loop on every request:\n\n"
    )
    out.append(table(["htpasswd file", "ms per verify"], [[k, fmt(v, 2)] for k, v in result["hash_verify_ms"].items()]))
    out.append("\n**GET /health** (does nothing) direct to each server, median ms: the transport alone\n\n")
    rows = [[k, fmt(v["keepalive_ms"], 2), fmt(v["new_connection_ms"], 2)] for k, v in result["health_probe"].items()]
    out.append(table(["server", "one keep-alive connection", "new connection per request"], rows))
    out.append("\n![one default changed at a time](img/bench-tracking-variants.png)\n")

    targets = []
    for key, t in result["targets"].items():
        where = f"log_batch at {t['clients']} clients"
        targets.append([f"{where}: {key} >= 0.90", fmt(t["rps_ratio"], 2), met(t["rps_ratio_met"])])
        diff = key.replace("/", " - ")
        targets.append([f"{where}: p99 {diff} <= 5 ms", fmt(t["p99_overhead_ms"]) + " ms", met(t["p99_overhead_met"])])
    return "\n".join(out), targets


# --------------------------------------------------------------------------- converge


def plot_converge(result: dict, img: Path) -> None:
    s = result["summary"]
    fig = Figure(figsize=(14, 5.5))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2.4]})
    kinds = ["fresh", "noop", "check"]
    walls = [s[k]["wall_s"] for k in kinds]
    left.bar(["fresh\nconverge", "no-op", "no-op\n--check --diff"], walls, color=["#888", "#3a7", "#37a"])
    for x, w in enumerate(walls):
        left.text(x, w, f"{w:.0f} s", ha="center", va="bottom")
    left.axhline(result["targets"]["noop_max_s"], color="red", linestyle="--", linewidth=1, label="no-op target 30 s")
    left.axhline(s["fresh"]["wall_s"] * 0.15, color="orange", linestyle=":", linewidth=1, label="15% of fresh")
    left.set_ylabel("wall time (s)")
    left.legend(fontsize=8)
    top = s["noop"]["top_tasks"][:12][::-1]
    right.barh([t["name"][:70] for t in top], [t["s"] for t in top], color="#3a7")
    right.set_xlabel("seconds in the no-op reconverge (median over rounds)")
    right.tick_params(axis="y", labelsize=7)
    fig.suptitle("Converge cost of the all-in-one stack")
    save(fig, img / "bench-converge.png")


def converge_section(result: dict) -> tuple[str, list[list[str]]]:
    s, t = result["summary"], result["targets"]
    out = []
    out.append(settings_block(result["settings"], ["target", "rounds", "callbacks", "checkout", "pip_cache"]))
    out.append("![converge cost](img/bench-converge.png)\n")
    rows = []
    for kind, label in RUN_LABELS.items():
        if kind not in s:
            continue
        r, recap = s[kind], s[kind]["recap"]
        ratio = "1.00" if kind == "fresh" else fmt(r["over_fresh"], 2)
        per_task = "" if kind == "fresh" else f"{fmt(r['task_median_s'], 2)} / {fmt(r['task_sum_s'])}"
        rows.append(
            [
                label,
                fmt(r["wall_s"]),
                ratio,
                r["tasks_timed"],
                recap["ok"],
                recap["changed"],
                recap["skipped"],
                per_task,
            ]
        )
    header = ["run", "wall s (median)", "x fresh", "tasks timed", "ok", "changed", "skipped", "task median / sum s"]
    out.append(table(header, rows))
    rounds = "; ".join(f"{RUN_LABELS[k]} {s[k]['wall_s_all']}" for k in RUN_LABELS if k != "fresh" and k in s)
    out.append(f"\nWall times per round (s): {rounds}.\n")
    out.append("\n**Slowest tasks of the no-op reconverge** (median over rounds)\n\n")
    out.append(table(["task", "s"], [[x["name"], fmt(x["s"], 2)] for x in s["noop"]["top_tasks"]]))
    out.append("\n**No-op time by role** (sum of its tasks; `(play)` = fact gathering and play-level tasks)\n\n")
    out.append(table(["role", "s"], [[k, fmt(v, 1)] for k, v in s["noop"]["by_role_s"].items()]))
    out.append("\n**Slowest tasks of the no-op `--check --diff`**\n\n")
    out.append(table(["task", "s"], [[x["name"], fmt(x["s"], 2)] for x in s["check"]["top_tasks"][:10]]))
    targets = [
        ["no-op reconverge < 15% of fresh", fmt(t["noop_over_fresh"] * 100, 0) + " %", met(t["noop_over_fresh_met"])],
        ["no-op reconverge < 30 s", fmt(t["noop_s"]) + " s", met(t["noop_s_met"])],
        ["no-op reconverge changed=0", "yes" if t["noop_changed_zero"] else "no", met(t["noop_changed_zero"])],
    ]  # fmt: skip
    return "\n".join(out), targets


# --------------------------------------------------------------------------- footprint


def plot_footprint(result: dict, img: Path) -> None:
    s = result["summary"]
    services = ["postgres", "mlflow", "nginx", "seaweedfs"]
    labels, bottoms = [], []
    bars = [(p, phase) for p in s for phase in ("idle", "load_peak")]
    fig = Figure(figsize=(max(9.0, 1.5 * len(bars)), 5.5))
    ax = fig.subplots()
    bottoms = [0.0] * len(bars)
    for service in services:
        values = [s[p][phase][service]["resident_mib"] for p, phase in bars]
        ax.bar(range(len(bars)), values, bottom=bottoms, label=service)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    totals = [s[p][phase]["stack"]["resident_mib"] for p, phase in bars]
    ax.plot(range(len(bars)), totals, "k_", markersize=30, label="stack, shared pages once")
    for x, total in enumerate(totals):
        ax.text(x, total, f"{total:.0f} MiB", ha="center", va="bottom", fontsize=8)
    labels = [f"{p}\n{'idle' if phase == 'idle' else 'load (peak)'}" for p, phase in bars]
    ax.set_xticks(range(len(bars)), labels)
    ax.axhline(result["targets"]["limit_mib"], color="red", linestyle="--", linewidth=1, label="1 GiB")
    ax.set_ylabel("resident memory (MiB)")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(f"Resident memory per service ({result['settings']['clients']} clients under load)")
    save(fig, img / "bench-footprint.png")


def footprint_section(result: dict) -> tuple[str, list[list[str]]]:
    s, settings = result["summary"], result["settings"]
    out = []
    profiles = {
        p: f"{v['role_vars'] or 'role defaults'}, SeaweedFS {v['seaweedfs']}" for p, v in settings["profiles"].items()
    }
    argv = {p: v["mlflow_argv"] for p, v in settings["profiles"].items()}
    postgres = {p: v["postgres"] for p, v in settings["profiles"].items()}
    keys = ["profiles", "mlflow_argv", "postgres", "clients", "burst_seconds", "rounds", "mix", "artifact_kib"]
    blocks = settings | {"profiles": profiles, "mlflow_argv": argv, "postgres": postgres}
    out.append(settings_block(blocks, [*keys, "seaweedfs", "nginx_main_conf"]))
    out.append("![footprint](img/bench-footprint.png)\n")
    rows = [
        [
            p,
            fmt(d["idle"]["stack"]["resident_mib"], 0),
            fmt(d["load_median_stack_resident_mib"], 0),
            fmt(d["load_peak"]["stack"]["resident_mib"], 0),
            ", ".join(f"{k} {fmt(v, 0)}" for k, v in d["per_service_peak_resident_mib"].items()),
        ]
        for p, d in s.items()
    ]
    out.append(
        table(["profile", "idle MiB", "under load, median MiB", "under load, peak MiB", "peak per service MiB"], rows)
    )
    out.append("\n")
    rows = []
    for profile, data in s.items():
        for phase in ("idle", "load_peak"):
            for service, m in data[phase].items():
                rows.append(
                    [
                        profile,
                        phase,
                        service,
                        m["processes"],
                        fmt(m["resident_mib"]),
                        fmt(m["rss_mib"]),
                        fmt(m["pss_mib"]),
                    ]
                )
    out.append(table(["profile", "phase", "service", "processes", "resident MiB", "RSS sum MiB", "PSS sum MiB"], rows))
    out.append("\n")
    rows = []
    for profile, bursts in result["load"].items():
        errors = sum(b["errors"] for b in bursts)
        first = next((b["first_error"] for b in bursts if b["first_error"]), "")
        rows.append(
            [
                profile,
                fmt(common.median(b["rps"] for b in bursts)),
                errors,
                s[profile]["pg_connections_peak"],
                first[:120],
            ]
        )
    out.append(
        table(["profile", "requests/s (mix, median)", "errors", "peak PostgreSQL connections", "first error"], rows)
    )
    out.append("\nRatios: " + ", ".join(f"{k} {fmt(v, 2)}" for k, v in result["ratios"].items()) + "\n")
    t = result["targets"]
    targets = [["Pi profile under load fits in 1 GiB (peak)", fmt(t["pi_under_load_mib"], 0) + " MiB", met(t["met"])]]
    for profile, peak in t.get("peak_by_profile_mib", {}).items():
        if profile not in ("pi", "default"):
            targets.append([f"... {profile} (variant)", fmt(peak, 0) + " MiB", met(peak <= t["limit_mib"])])
    return "\n".join(out), targets


# --------------------------------------------------------------------------- document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=common.RESULTS_DIR)
    parser.add_argument("--docs", type=Path, default=common.REPO / "docs")
    parser.add_argument(
        "--notes", type=Path, default=Path(__file__).with_name("findings.md"), help="hand-written findings"
    )
    args = parser.parse_args()
    img = args.docs / "img"
    img.mkdir(parents=True, exist_ok=True)
    sections, targets = [], []
    for name, (title, text), plot, render in (
        ("tracking_throughput", TRACKING_INTRO, plot_tracking_cases, tracking_section),
        ("converge_cost", CONVERGE_INTRO, plot_converge, converge_section),
        ("footprint", FOOTPRINT_INTRO, plot_footprint, footprint_section),
    ):
        path = args.results / f"{name}.json"
        if not path.exists():
            sections.append(f"## {name}\n\nNo result yet: run `make bench`.\n")
            continue
        result = json.loads(path.read_text())
        plot(result, img)
        body, rows = render(result)
        sections.append("\n".join(intro(title, result, text)) + "\n" + body)
        targets += rows
    head = [
        "# Benchmarks\n",
        "<!-- Generated by bench/report.py from `make bench` results; edit bench/findings.md, not this file. -->\n",
        "`make bench` runs the three benches below and regenerates this page and its plots. None of "
        "them is a timed test: CI runs each once on tiny sizes (tests/test_bench_smoke.py) only to "
        "keep them working. The machine is shared with other jobs, so every comparison is measured "
        "side by side in one run: cases interleaved in random order, rounds repeated, medians "
        "reported, ratios taken within a round.\n",
        "## Targets\n",
        table(["target", "measured", ""], targets),
    ]
    notes = args.notes.read_text() if args.notes.exists() else ""
    (args.docs / "benchmarks.md").write_text("\n".join(head) + "\n" + notes + "\n" + "\n".join(sections))
    print(f"wrote {args.docs / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
