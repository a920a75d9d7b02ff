"""Write docs/benchmarks.md and its plots from the benches' result files.

Run: .venv/bin/python bench/report.py [--results DIR] [--docs DIR]

Reads build/bench/{tracking_throughput,converge_cost,footprint}.json (whichever exist) and
writes docs/benchmarks.md and docs/img/bench-*.png. Every section prints the machine, the
versions and the settings of its own run next to its figure.
"""

from __future__ import annotations

import argparse
import importlib
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
    "`bench/converge_cost.py`: the user's path: the collection tarball built from the working tree and "
    "installed with `ansible-galaxy collection install`, `ansible-playbook mlops.mlflow.site -i inventory` "
    "from the inventory's own directory with no ansible.cfg, every role on one systemd container reached "
    "over docker and over SSH. One fresh converge (docker, defaults: what `make demo` runs), then rounds of "
    "a no-op reconverge and a no-op `--check --diff` for each connection and variant (defaults, "
    "ansible_pipelining, mitogen) in random order. The only ANSIBLE_* set are ANSIBLE_COLLECTIONS_PATH and "
    "the measurement callbacks (profile_tasks, timer; mitogen adds its strategy). Targets (issue #19) are "
    "evaluated on defaults and pipelining over both connections.\n",
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
    variants = s["variants"]
    fig = Figure(figsize=(15, 6))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.6, 2]})
    names = list(variants)
    width = 0.4
    for offset, kind, color in ((-width / 2, "noop", "#3a7"), (width / 2, "check", "#37a")):
        walls = [variants[v][kind]["wall_s"] if kind in variants[v] else 0.0 for v in names]
        bars = left.bar([x + offset for x in range(len(names))], walls, width, color=color, label=RUN_LABELS[kind])
        for bar, wall in zip(bars, walls, strict=True):
            if wall:
                left.text(bar.get_x() + width / 2, wall, f"{wall:.0f}", ha="center", va="bottom", fontsize=7)
    left.set_xticks(range(len(names)), [n.replace("/", "\n") for n in names], fontsize=8)
    t = result["targets"]
    left.axhline(t["max_s"], color="red", linestyle="--", linewidth=1, label=f"target {t['max_s']:.0f} s")
    fresh = s["fresh"]["wall_s"]
    left.axhline(fresh * t["over_fresh_max"], color="orange", linestyle=":", linewidth=1, label="10% of fresh")
    left.set_ylabel(f"wall time (s, median); fresh converge {fresh:.0f} s")
    left.legend(fontsize=8)
    key = _converge_reference(variants)
    top = variants[key]["noop"]["top_tasks"][:12][::-1] if key else []
    right.barh([x["name"][:70] for x in top], [x["s"] for x in top], color="#3a7")
    right.set_xlabel(f"seconds in the no-op reconverge, {key} (median over rounds)")
    right.tick_params(axis="y", labelsize=7)
    fig.suptitle("Converge cost of the all-in-one stack, installed collection (the user's path)")
    save(fig, img / "bench-converge.png")


def _converge_reference(variants: dict) -> str | None:
    """The variant whose slow tasks the page details: docker/defaults (what the demo runs), else the first."""
    with_noop = [k for k, v in variants.items() if "noop" in v]
    return "docker/defaults" if "docker/defaults" in with_noop else (with_noop[0] if with_noop else None)


def converge_section(result: dict) -> tuple[str, list[list[str]]]:
    s, t, settings = result["summary"], result["targets"], result["settings"]
    keys = ["target", "path", "env_additions", "connections", "variants", "rounds", "check_rounds"]
    keys += ["rounds_completed", "stopped_by_budget", "callbacks", "checkout", "pip_cache"]
    out = [
        settings_block(settings, keys),
        "![converge cost](img/bench-converge.png)\n",
        f"Fresh converge ({s['fresh']['variant']}): {fmt(s['fresh']['wall_s'])} s, "
        f"{s['fresh']['tasks_timed']} tasks timed, changed={s['fresh']['recap']['changed']}.\n",
    ]
    if settings.get("failures"):
        out.append("Failed runs: " + "; ".join(f"{f['variant']} {f['kind']}" for f in settings["failures"]) + ".\n")
    rows = []
    for key, entry in s["variants"].items():
        for kind in ("noop", "check"):
            if kind not in entry:
                continue
            r = entry[kind]
            rows.append(
                [
                    key,
                    RUN_LABELS[kind],
                    fmt(r["wall_s"]),
                    fmt(r["over_fresh"], 2),
                    ",".join(str(c) for c in r["changed"]),
                    r["tasks_timed"],
                    f"{fmt(r['task_median_s'], 2)} / {fmt(r['task_sum_s'])}",
                    fmt(entry.get("module_call_floor_s"), 2),
                    ", ".join(str(w) for w in r["wall_s_all"]),
                ]
            )
    header = ["connection/variant", "run", "wall s (median)", "x fresh", "changed", "tasks timed"]
    header += ["task median / sum s", "module call floor s", "wall s per round"]
    out.append(table(header, rows))
    for key, entry in s["variants"].items():
        for kind in ("noop", "check"):
            if kind not in entry:
                continue
            r = entry[kind]
            slow = ", ".join(f"{x['name']} {fmt(x['s'], 2)}" for x in r["top_tasks"][:8])
            roles = ", ".join(f"{k} {fmt(v, 1)}" for k, v in r["by_role_s"].items())
            out.append(f"\n**{key}, {RUN_LABELS[kind]}**: slowest tasks (s) {slow}. By role (s): {roles}.\n")
    targets = []
    for row in t["rows"]:
        label = f"{row['variant']}: {RUN_LABELS[row['kind']]}"
        targets.append([f"{label} <= {t['max_s']:.0f} s", fmt(row["wall_s"]) + " s", met(row["s_met"])])
        share = f"{label} <= {t['over_fresh_max'] * 100:.0f}% of fresh"
        targets.append([share, fmt(row["over_fresh"] * 100, 0) + " %", met(row["over_fresh_met"])])
        targets.append([f"{label} changed=0", "yes" if row["changed_zero"] else "no", met(row["changed_zero"])])
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


SECTION_TITLES = {
    "model_load": "Model loads (`runs:/` URIs)",
    "artifact_throughput": "Artifact transfers (multi-GB)",
    "demo_time": "make demo on a fresh machine",
}
# The Targets rows of a bench whose section is kept from an earlier run (by their first words).
EARLIER_TARGETS = {
    "tracking_throughput": ("log_batch",),
    "converge_cost": ("no-op",),
    "footprint": ("Pi profile", "..."),
}
# Where results of the last run are kept with the docs, so a page regenerated after one bench
# still shows the others' figures from their own (dated) runs.
KEPT = "bench-results"


def load_result(args: argparse.Namespace, name: str) -> dict | None:
    """build/bench/<name>.json (copied to docs/bench-results/), else the copy kept from a run before."""
    fresh, kept = args.results / f"{name}.json", args.docs / KEPT / f"{name}.json"
    if fresh.exists():
        result = json.loads(fresh.read_text())
        if not result.get("tiny"):
            kept.parent.mkdir(parents=True, exist_ok=True)
            kept.write_text(fresh.read_text())
        return result
    return json.loads(kept.read_text()) if kept.exists() else None


def earlier_section(page: str, title: str, prefixes: tuple[str, ...]) -> tuple[str, list[list[str]]]:
    """The section `title` and its Targets rows as the current page has them (an earlier run's)."""
    start = page.find(f"\n{title}\n")
    if start < 0:
        return f"{title}\n\nNo result yet: run `make bench`.\n", []
    end = page.find("\n## ", start + 1)
    body = page[start + 1 : end if end > 0 else len(page)].rstrip() + "\n"
    rows = []
    for line in page.split("## Targets", 1)[-1].split("\n## ", 1)[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith(prefixes):
            rows.append(cells)
    return body, rows


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
    previous = args.docs / "benchmarks.md"
    previous = previous.read_text() if previous.exists() else ""
    for name, (title, text), plot, render in (
        ("tracking_throughput", TRACKING_INTRO, plot_tracking_cases, tracking_section),
        ("converge_cost", CONVERGE_INTRO, plot_converge, converge_section),
        ("footprint", FOOTPRINT_INTRO, plot_footprint, footprint_section),
    ):
        result = load_result(args, name)
        if result is None:
            body, rows = earlier_section(previous, title, EARLIER_TARGETS[name])
            sections.append(body)
            targets += rows
            continue
        plot(result, img)
        body, rows = render(result)
        sections.append("\n".join(intro(title, result, text)) + "\n" + body)
        targets += rows
    # Benches that render their own section: bench/<name>.py report_section() and targets().
    for number, name in enumerate(("model_load", "artifact_throughput", "demo_time"), start=4):
        bench = importlib.import_module(name)
        result = load_result(args, name)
        title = f"## {number}. {SECTION_TITLES[name]}"
        if result is None:
            sections.append(f"{title}\n\nNo result yet: run `.venv/bin/python bench/{name}.py`.\n")
            continue
        lines = bench.report_section(result)
        if lines and lines[0].startswith("## "):
            lines = lines[1:]
        sections.append("\n".join([title, *lines]) + "\n")
        targets += [[target, measured, met(ok)] for target, measured, ok in bench.targets(result)]
    head = [
        "# Benchmarks\n",
        "<!-- Generated by bench/report.py from `make bench` results; edit bench/findings.md, not this file. -->\n",
        "`make bench` runs the benches below and regenerates this page and its plots (a section whose "
        "bench did not run this time keeps its earlier, dated figures). None of them is a timed test: "
        "CI runs each once on tiny sizes (tests/test_bench_smoke.py) only to "
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
