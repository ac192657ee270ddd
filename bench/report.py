"""BENCHMARKS.md and its plots, from the figures the benchmarks keep for each kind of CPU.

Each command writes its figures to bench/KIND/NAME.json (KIND: what torch runs on, such as
avx512-bf16 or avx2: `classifier.cpu`), so that a run on one kind never overwrites another's;
the report has a part for each kind, the tuned one first, and a comparison of them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from bench import BASELINE, LITSERVE, SERVICE, SERVICE_2W, SERVICE_EAGER

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "BENCHMARKS.md"


# the kinds in the order the report shows them; any other comes after, by name
KINDS = {
    "avx512-bf16": "AVX-512 with BF16 (AMD EPYC Zen 4 here): bf16",
    "amx": "AMX (Intel Xeon Sapphire Rapids and newer): bf16",
    "avx512": "AVX-512 without BF16: fp32",
    "avx2": "AVX2 only, no AVX-512, no bf16 (AMD EPYC Zen 3 class): fp32",
}


def current_kind() -> str:
    from classifier.cpu import describe_cpu

    return describe_cpu().kind


def data_file(report: Path, name: str, kind: str | None = None) -> Path:
    """Where the figures behind `report` live: bench/KIND/NAME beside it, KIND this process's
    kind of CPU unless given (bench/avx2/results.json, ...)."""
    path = report.parent / "bench" / (kind or current_kind()) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def kinds_measured(report: Path) -> list[str]:
    """The kinds of CPU with figures beside `report`, in the report's order."""
    found = [
        folder.name
        for folder in (report.parent / "bench").iterdir()
        if (folder / "results.json").exists()
    ]
    return sorted(found, key=lambda kind: (list(KINDS).index(kind) if kind in KINDS else 99, kind))


def record(report: Path, name: str, result: dict, plot: Callable[[dict, Path], None]) -> None:
    """bench/NAME.json and bench/NAME.png beside `report`, then `report` re-rendered."""
    data_file(report, f"{name}.json").write_text(json.dumps(result, indent=1))
    plot(result, data_file(report, f"{name}.png"))
    rerender(report)


@contextlib.contextmanager
def two_panels(path: Path, title: str, xlabel: str):
    """Two plots over one x axis, saved to `path` as the block ends: `with ... as (top, bottom)`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    yield top, bottom
    for axis in (top, bottom):
        axis.grid(alpha=0.3)
    top.set_title(title)
    bottom.set_xlabel(xlabel)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


PARTS = (
    "precision",
    "sweep",
    "overload",
    "soak",
    "container",
    "rolling_update",
    "profile",
    "bulk",
    "explain",
    "demo",
    "training",
)


def kind_results(report: Path, kind: str) -> dict:
    """Everything measured on one kind of CPU: results.json and whichever parts exist."""
    results = json.loads(data_file(report, "results.json", kind).read_text())
    for part in PARTS:
        if (path := data_file(report, f"{part}.json", kind)).exists():
            results[part] = json.loads(path.read_text())
    return results


def rerender(report: Path = REPORT) -> None:
    """`report` and its plots from the figures of every kind of CPU measured."""
    kinds = {kind: kind_results(report, kind) for kind in kinds_measured(report)}
    lines = [
        "# Benchmarks",
        "",
        "Written by `python -m bench` and the commands below (do not edit by hand): every "
        "figure comes from one run on one machine, one contender at a time, so ratios between "
        "them are fair; absolute figures move with the machine and its neighbours. These "
        "machines come with one of two kinds of CPU, and so do users: each has a part of its "
        "own below. `--emulate avx2` measures the older kind on a newer CPU.",
        "",
        *comparison_section(kinds),
    ]
    for kind, results in kinds.items():
        figures = Path(os.path.relpath(data_file(report, "", kind), report.parent))
        plot = data_file(report, "throughput.png", kind)
        plot_levels(results, plot)
        lines += ["", f"# {KINDS.get(kind, kind)}", "", *render(results, figures)]
    report.write_text("\n".join(lines) + "\n")


def render(results: dict, figures: Path) -> list[str]:
    """One kind of CPU's part of the report; its plots are in `figures`."""
    machine, raw, raw_fp32 = results["machine"], results["raw"], results["raw_fp32"]
    plot = figures / "throughput.png"
    lines = [
        f"- Machine: {machine_line(machine)}; {machine['date']}",
        f"- Python {machine['python']}, torch {machine['torch']}, bentoml {machine['bentoml']}",
        f"- Model: ResNet50 (random weights, same speed as trained ones), 224x224 input, "
        f"service precision **{raw['precision']}**",
        "- Inputs: JPEG photographs generated by `bench/inputs.py`, 640x480 to 4000x3000, sent as "
        "multipart uploads by closed-loop clients (each sends, waits for the answer, repeats)",
        "",
        "## The model's own limit (in process, prepared 224x224 pixels, no HTTP, no decoding)",
        "",
        *model_limit_table(results),
        "",
        f"Eager: best batch {raw['best_batch_size']}, **{raw['best_throughput']:.1f} images/s**; "
        f"one image alone {raw['single_latency_ms']:.1f} ms (p50). For comparison, fp32 batch 1: "
        f"{raw_fp32['best_throughput']:.1f} images/s, {raw_fp32['single_latency_ms']:.1f} ms.",
        *compiled_lines(results),
        *contiguous_line(results),
        "",
        "## Over HTTP",
        "",
        "| contender | clients | images/s | p50 ms | p95 ms | p99 ms | errors | server CPU % | "
        "load generator CPU % | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, contender in results["contenders"].items():
        for level in contender["levels"]:
            errors = errors_text(level["errors"])
            client = level.get("client_cpu_percent")
            lines.append(
                f"| {name} | {level['concurrency']} | {level['throughput']:.1f} | "
                f"{level['p50_ms']:.0f} | {level['p95_ms']:.0f} | {level['p99_ms']:.0f} | "
                f"{errors} | {level['cpu_percent']:.0f} | "
                f"{'-' if client is None else f'{client:.0f}'} | {level['peak_rss_mb']:.0f} |"
            )
    lines += [
        "",
        f"![throughput and p99 latency against concurrency]({plot})",
        "",
        *where_the_time_goes(results),
        *profile_section(results.get("profile")),
        "",
        *start_table(results),
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
        *(f"| {t} | {m} | {'yes' if ok else '**no**'} |" for t, m, ok in targets(results)),
        "",
        *target_notes(results),
        *precision_section(results.get("precision")),
        *sweep_section(results.get("sweep")),
        *overload_section(results.get("overload"), figures),
        *soak_section(results.get("soak"), figures),
        *container_section(results.get("container")),
        *rolling_update_section(results.get("rolling_update")),
        *bulk_section(results.get("bulk")),
        *explain_section(results.get("explain")),
        *demo_section(results.get("demo")),
        *training_section(results.get("training")),
    ]
    return lines


def machine_line(machine: dict) -> str:
    """The CPU with its features and what torch used of them (older records: model and cores)."""
    return machine.get("summary") or f"{machine['cpu']}, {machine['cores']} cores"


# Measured on a real AMD EPYC Zen 3 (AVX2 and FMA, no AVX-512, no bf16), 2 cores, on 2026-12-03
# (issue 27; ../shared/ENVIRONMENT.md): what emulating that kind on a newer CPU is held against
REAL_ZEN3 = {
    "eager_b1": 10.8,
    "eager_b8": 11.8,
    "compiled_b1": 14.1,
    "compiled_b8": 14.2,
    "compile_s_per_graph": 20,
    "demo_steps_per_s_64px_full": 0.55,
}


def comparison_section(kinds: dict[str, dict]) -> list[str]:
    """The kinds side by side: the model's own limit, the service, starting, refusing, the demo."""
    if not kinds:
        return []
    names = list(kinds)

    def row(label: str, cell) -> str:
        values = []
        for results in kinds.values():
            try:
                values.append(cell(results))
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                values.append("-")
        return f"| {label} | " + " | ".join(values) + " |"

    def level(results: dict, clients: int) -> str:
        [found] = [
            lvl for lvl in results["contenders"][SERVICE]["levels"] if lvl["concurrency"] == clients
        ]
        return f"{found['throughput']:.1f} (p99 {found['p99_ms']:.0f} ms)"

    def compiled(results: dict) -> dict:
        return results["raw_compiled"]

    def burst(results: dict) -> str:
        refusals = results["burst"]["refusal_ms"]
        return (
            f"p99 {ms(refusals['p99'])}, max {ms(refusals['max'])}; "
            f"{results['burst']['refused_after_2s']} after 2 s"
        )

    def demo(results: dict) -> str:
        found = results["demo"]
        where = found["machine"]
        elsewhere = (  # measured on another day's machine of that kind than the rest
            f" ({machine_line(where)}, {where['date']})"
            if where.get("summary") != results["machine"].get("summary")
            else ""
        )
        return (
            f"{found['ready_s']:.0f} s to ready; {found['steps']} steps of {found['batch_size']} "
            f"at {found['image_size']} px; {found['field_shapes_accuracy']:.1%}{elsewhere}"
        )

    lines = [
        "## The kinds side by side",
        "",
        "| | " + " | ".join(KINDS.get(kind, kind).split(":")[0] for kind in names) + " |",
        "|---|" + "---:|" * len(names),
        row("measured on", lambda r: f"{machine_line(r['machine'])}, {r['machine']['date']}"),
        row("precision the service picks", lambda r: r["raw"]["precision"]),
        row(
            "eager model, best batch: images/s",
            lambda r: f"{r['raw']['best_throughput']:.1f} (batch {r['raw']['best_batch_size']})",
        ),
        row("eager model, one image", lambda r: f"{r['raw']['single_latency_ms']:.1f} ms"),
        row(
            "compiled model, best batch: images/s",
            lambda r: (
                f"{compiled(r)['best_throughput']:.1f} (batch {compiled(r)['best_batch_size']})"
            ),
        ),
        row("compiled model, one image", lambda r: f"{compiled(r)['single_latency_ms']:.1f} ms"),
        row(
            "compiling every batch size, empty cache",
            lambda r: f"{compiled(r)['compile']['seconds']:.0f} s",
        ),
        *(
            row(f"service at {clients} clients: images/s", lambda r, c=clients: level(r, c))
            for clients in (1, 16, 64)
        ),
        row(
            "service start to ready (eager answers)",
            lambda r: f"{r['contenders'][SERVICE]['cold_start_s']:.1f} s",
        ),
        row(
            "service start to compiled",
            lambda r: f"{r['contenders'][SERVICE]['compiled_s']:.1f} s",
        ),
        row(
            f"burst of {next(iter(kinds.values())).get('burst', {}).get('clients', '')} "
            "clients: refusals",
            burst,
        ),
        row(
            "overload spike: refusals p99",
            lambda r: ms(r["overload"]["refusal_ms"]["p99"]),
        ),
        row("the demo from an empty store (`python -m bench.demo`)", demo),
    ]
    if "avx2" in kinds and kinds["avx2"]["machine"].get("cpu_info", {}).get("switches"):
        lines += ["", *emulation_lines(kinds["avx2"])]
    return lines


def emulation_lines(results: dict) -> list[str]:
    """How the emulated older kind compares with a real one, on the figures measured on both."""
    raw, compiled = results["raw"]["throughput"], results.get("raw_compiled", {})
    mine = {
        "eager, batch 1": raw.get("1"),
        "eager, batch 8": raw.get("8"),
        "compiled, batch 1": compiled.get("throughput", {}).get("1"),
        "compiled, batch 8": compiled.get("throughput", {}).get("8"),
    }
    real = dict(
        zip(
            mine,
            (
                REAL_ZEN3["eager_b1"],
                REAL_ZEN3["eager_b8"],
                REAL_ZEN3["compiled_b1"],
                REAL_ZEN3["compiled_b8"],
            ),
        )
    )
    rows = [
        f"| {name} | {value:.1f} | {real[name]:.1f} | {value / real[name]:.2f}x |"
        for name, value in mine.items()
        if value
    ]
    return [
        "How close emulation comes: the avx2 part was measured on a newer CPU with oneDNN's and "
        "ATen's switches (`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`), which keep torch "
        "to AVX2 and fp32 (the profile shows AVX2 kernels only; oneDNN reports no bf16). Its "
        "cores are faster per clock than a real Zen 3's, so absolute figures come out higher; "
        "ratios between figures of one run carry over. Against a real AMD EPYC Zen 3 "
        "(2 cores, measured 2026-12-03), ResNet50 at 224 pixels, in process, fp32:",
        "",
        "| images/s | emulated here | real Zen 3 | emulated / real |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        "Training the demo's network (all sixteen blocks, 64 pixels, 64 a step) ran at "
        f"{REAL_ZEN3['demo_steps_per_s_64px_full']} steps a second on the real Zen 3; "
        "emulated here, at about 1.0 (`python -m bench.demo` records the demo's own steps). "
        "So a real Zen 3 trains about half to three quarters as many steps in the demo's "
        'budget as the emulated one: see "The demo" below for what that costs in accuracy.',
    ]


def demo_section(result: dict | None) -> list[str]:
    if not result:
        return []
    return [
        "",
        "## The demo from an empty model store (`python -m bench.demo`)",
        "",
        f"`bash scripts/serve.sh` with an empty model store and no way to download "
        f"({machine_line(result['machine'])}, {result['machine']['date']}): it trains the demo "
        f"model in its budget of "
        f"{result['time_budget_s']:.0f} s and serves it.",
        "",
        f"- Ready to answer **{result['ready_s']:.0f} s** after the command started "
        f"(the compiled model {result['compiled_s']:.0f} s after); training took "
        f"{result['training_seconds']:.0f} s of it, drawing {result['drawing_s']:.0f} s.",
        f"- Planned: {result['plan']['image_size']} pixels, {result['plan']['batch_size']} "
        f"images a step, about {result['plan']['steps']} steps on "
        f"{5 * result['plan']['per_class']:,} images; trained {result['steps']} steps of "
        f"{result['batch_size']} ({result['seconds_per_step']:.3f} s each, measured on real "
        f"steps) in {result['precision']}.",
        f"- Validation accuracy {result['validation_accuracy']:.1%}; on the second renderer's "
        f"500 shapes **{result['field_shapes_accuracy']:.1%}** on the card, "
        f"{result['evaluated_accuracy']:.1%} by `evaluate` against the served model.",
        *served_blocks_lines(result.get("blocks")),
    ]


def served_blocks_lines(blocks: dict | None) -> list[str]:
    """The demo in process, its identity blocks skipped as served, and computed."""
    if not blocks:
        return []
    counts = blocks["residual_blocks"]
    speeds = ", ".join(
        f"{'a batch ' if n == 0 else ''}of {batch} in {found['ms']['skipped']:.1f} ms against "
        f"{found['ms']['computed']:.1f}{' with all of them' if n == 0 else ''} "
        f"(**{found['speedup']:.2f}x**)"
        for n, (batch, found) in enumerate(blocks["batches"].items())
    )
    return [
        f"- Served, it computes {counts['skipped']} of its {counts['computed']} residual blocks "
        "(the others are identities, `classifier/identity_blocks.py`); in process, eager, "
        f"{blocks['precision']} (the median of alternating rounds): {speeds}."
    ]


def training_section(result: dict | None) -> list[str]:
    """`python -m bench.training`: a step of the demo's network, both ways."""
    if not result:
        return []
    ways = list(next(iter(result["sizes"].values()))["ms"])
    rows = [
        f"| {size} | "
        + " | ".join(f"{found['ms'][way]:.0f}" for way in ways)
        + f" | {found['speedup']:.2f}x |"
        for size, found in result["sizes"].items()
    ]
    return [
        "",
        "## Training the demo's network (`python -m bench.training`)",
        "",
        f"A step of the first block of each stage of a fresh ResNet50, in {result['precision']} "
        f"({machine_line(result['machine'])}, {result['machine']['date']}): the median of "
        f'{result["rounds"]} alternating rounds of {result["steps"]} steps each. "As the demo '
        'trains" runs the smallest strided convolutions as matmuls where the CPU has no bf16 '
        "(`train/steps.py`); with bf16 it keeps oneDNN's, and the two are the same there.",
        "",
        "| input | " + " | ".join(f"{way}, ms" for way in ways) + " | speedup |",
        "|---|" + "---:|" * (len(ways) + 1),
        *rows,
    ]


def served_raw(results: dict) -> dict:
    """The in-process measurement of the model the service serves: compiled, unless it is not."""
    compiled = results.get("raw_compiled", {})
    service = results["contenders"].get(SERVICE, {}).get("compile") or {}
    if "throughput" in compiled and service.get("compiled", True):
        return compiled
    return results["raw"]


def model_limit_table(results: dict) -> list[str]:
    raw, compiled = results["raw"], results.get("raw_compiled", {}).get("throughput", {})
    rows = []
    for size, rate in raw["throughput"].items():
        faster = compiled.get(size)
        cells = "- | -" if faster is None else f"{faster:.1f} | {faster / rate:.2f}x"
        rows.append(f"| {size} | {rate:.1f} | {cells} |")
    return [
        "| batch size | eager images/s | compiled images/s | compiled / eager |",
        "|---:|---:|---:|---:|",
        *rows,
    ]


def compiled_lines(results: dict) -> list[str]:
    """What compiling gives and costs, or why the model was not compiled."""
    raw, compiled = results["raw"], results.get("raw_compiled")
    if not compiled:
        return []
    info = compiled["compile"]
    if not info["compiled"]:
        return ["", f"Compiled: not measured, the model did not compile here ({info['reason']})."]
    return [
        "",
        f"Compiled (`torch.compile`, inductor, frozen weights, one graph per batch size "
        f"{', '.join(map(str, info['batch_sizes']))}): best batch {compiled['best_batch_size']}, "
        f"**{compiled['best_throughput']:.1f} images/s** "
        f"({compiled['best_throughput'] / raw['best_throughput']:.2f}x eager); one image alone "
        f"**{compiled['single_latency_ms']:.1f} ms** against {raw['single_latency_ms']:.1f} ms. "
        f"Compiling every batch size took {info['seconds']:.0f} s with an empty cache, in process.",
    ]


def start_table(results: dict) -> list[str]:
    """Start to ready per contender (the service also with a warm compile cache) and idle RSS.
    The service answers with the eager model from ready on and compiles meanwhile (records from
    before it did have no time to compiled: ready waited for compiling then)."""
    lines = [
        "| contender | start to ready | to the compiled model | compiling took | RSS at idle |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, contender in results["contenders"].items():
        compiling = seconds((contender.get("compile") or {}).get("seconds"))
        lines.append(
            f"| {name} | {contender['cold_start_s']:.1f} s | "
            f"{seconds(contender.get('compiled_s'))} | {compiling} | "
            f"{contender['idle_rss_mb']:.0f} MB |"
        )
        if "warm_start_s" in contender:
            warm = contender["warm_compile"]
            lines.append(
                f"| {name}, restarted with the warm compile cache | "
                f"{seconds(contender['warm_start_s'])} | "
                f"{seconds(contender.get('warm_compiled_s'))} | {seconds(warm['seconds'])} "
                f"({warm['graphs_from_cache']} graphs from the cache) | - |"
            )
    return lines


def contiguous_line(results: dict) -> list[str]:
    """What channels_last (NHWC) is worth: the same model in the default NCHW layout."""
    if not (plain := results.get("raw_contiguous")):
        return []
    raw = results["raw"]
    best = raw["best_batch_size"]
    rate = plain["throughput"][str(best)]  # results come back from JSON: string keys
    return [
        "",
        f"Without channels_last (NCHW, torch's default layout): batch {best} "
        f"{rate:.1f} images/s against {raw['best_throughput']:.1f}, one image "
        f"{plain['single_latency_ms']:.1f} ms against {raw['single_latency_ms']:.1f} ms.",
    ]


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} MB"


def overload_section(result: dict | None, figures: Path) -> list[str]:
    if not result:
        return []
    seconds, steady = result["seconds"], result["steady"]
    refusal, accepted = result["refusal_ms"], result["accepted_during_spike_ms"]
    others = errors_text(result["other_statuses"])
    recovered = result["recovered_after_s"]
    rows = [
        f"| {name} | {phase['ok_per_s']:.1f} | {ms(phase['p50_ms'])} | {ms(phase['p99_ms'])} | "
        f"{phase['refused']} |"
        for name, phase in steady.items()
    ]
    return [
        "",
        "## Overload",
        "",
        f"`python -m bench.overload` ({result['machine']['date']}): {result['steady_clients']} "
        f"steady clients throughout; for {seconds['during']:.0f} s, {result['spike_clients']} more "
        f"({result['spike_clients'] / result['max_concurrency']:g}x the "
        f"{result['max_concurrency']} requests a worker admits at once, "
        "`CLASSIFIER_MAX_CONCURRENCY`). Clients wait as long as Retry-After says before trying "
        "again.",
        "",
        f"- Requests: {result['requests']}; answered 200: {result['accepted']}, of which wrong: "
        f"**{result['wrong_answers']}**; refused with 503: {result['refused']} "
        f"({result['refused_with_retry_after']} with Retry-After); anything else: {others}",
        f"- Photos of {result['photo_bytes']['min'] // 1000} to "
        f"{result['photo_bytes']['max'] // 1000} KB; CPU over the run: server "
        f"{result['cpu_percent']['server']:.0f} %, load generator (same machine) "
        f"{result['cpu_percent']['load_generator']:.0f} % of one core",
        f"- Refusals took {ms(refusal['p50'])} (p50), {ms(refusal['p99'])} (p99), "
        f"{ms(refusal['max'])} at most; accepted requests during the spike: "
        f"{ms(accepted['p50'])} (p50), {ms(accepted['p99'])} (p99)",
        "- Back to normal throughput and latency "
        + (f"**{recovered:.0f} s** after the spike ended" if recovered is not None else "**never**")
        + f"; server RSS {result['rss_mb']['idle']:.0f} MB idle, {result['rss_mb']['peak']:.0f} MB "
        f"at peak, {result['rss_mb']['end']:.0f} MB at the end; server "
        + ("still running" if result["server_alive"] else "**crashed**"),
        "",
        "| steady clients | answered per s | p50 | p99 | refused |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        f"![answers, refusals and latency per second through the spike]({figures}/overload.png)",
    ]


def soak_section(result: dict | None, figures: Path) -> list[str]:
    if not result:
        return []
    rss, windows = result["rss_mb"], result["windows"]
    p99s = [w["p99_ms"] for w in windows if w["p99_ms"] is not None]
    settled = [mb for seconds, mb in result["rss_samples"] if seconds >= 60] or [rss["last"]]
    trend = rss["trend_mb_per_10_min"]
    return [
        "",
        "## Soak",
        "",
        f"`python -m bench.soak` ({result['machine']['date']}): {result['requests']} requests in "
        f"{result['seconds'] / 60:.1f} minutes from {result['clients']} clients "
        f"({result['requests_per_s']:.0f} per s), good and bad interleaved.",
        "",
        "| class | requests |",
        "|---|---:|",
        *(f"| {name} | {count} |" for name, count in sorted(result["classes"].items())),
        "",
        "| kind | answers |",
        "|---|---|",
        *(f"| {kind} | {errors_text(statuses)} |" for kind, statuses in result["by_kind"].items()),
        "",
        f"- Server RSS: {rss['first']:.0f} MB at the start, {mb(rss['after_1_min'])} after a "
        f"minute, then between {min(settled):.0f} and {max(settled):.0f} MB (sampled every 5 s), "
        f"{rss['last']:.0f} MB at the end; fitted trend after the first minute "
        + ("-" if trend is None else f"**{trend:+.1f} MB per 10 minutes**"),
        (
            f"- p99 of good requests per 30 s: {min(p99s):.0f} to {max(p99s):.0f} ms "
            f"(first {p99s[0]:.0f}, last {p99s[-1]:.0f}); server "
            if p99s
            else "- no good request was answered; server "
        )
        + ("still running" if result["server_alive"] else "**crashed**"),
        "",
        f"![server RSS and latency over the soak]({figures}/soak.png)",
    ]


def container_section(result: dict | None) -> list[str]:
    if not result:
        return []
    lines = [
        "",
        "## Container image",
        "",
        f"`bash scripts/container-smoke.sh` ({result['machine']['date']}): the service's OCI "
        f"image, built by `bentoml containerize --backend buildah` on `{result['base']}` "
        "(Debian 12, made by `scripts/base-image.sh`), with CUDA-enabled torch from the package "
        "index.",
        "",
        "| image size | build (containerize) | start to ready | start to ready, warm compile "
        "cache | SIGTERM to exit |",
        "|---:|---:|---:|---:|---:|",
        f"| {result['image_mb'] / 1000:.2f} GB | {result['build_s']:.0f} s | "
        f"{result['ready_s']:.1f} s | {seconds(result.get('warm_ready_s'))} | "
        f"{result['stop_s']:.1f} s |",
    ]
    if "kube_play" in result:
        kube = result["kube_play"]
        lines += [
            "",
            "Built behind this machine's TLS-intercepting proxy with no settings: the build "
            "borrowed the machine's CA bundle (`scripts/containerize.sh`), and the image's own "
            "trust store holds none of the machine's extra CAs (`classifier.testing.trust_store`)."
            f" `podman kube play` of `deploy/kubernetes` (`classifier.testing.kube_play`): ready "
            f"through the manifest's probe paths in {kube['ready_s']:.1f} s (empty compile cache),"
            " user 1034, 200 with the Secret's key and 401 without, exit code 0 "
            f"{kube['stop_s']:.1f} s after the stop (grace period 45 s).",
        ]
    if "contents" in result:
        lines += image_contents_lines(result)
    return lines


def rolling_update_section(record: dict | None) -> list[str]:
    if not record:
        return []
    result, unwarned = record["warned"], record["no_warning"]
    rows = [
        f"| {name} | {phase['answers']} | {ms(phase['p50_ms'])} | {ms(phase['p99_ms'])} |"
        for name, phase in (
            ("before", result["before"]),
            ("during the update", result["during"]),
            ("after", result["after"]),
        )
    ]
    steps = [
        f"| {step['replica']} | {step['new_ready_s']:.1f} s | {step['old_stop_s']:.1f} s "
        f"| {step['old_exit_code']} |"
        for step in result["steps"]
    ]
    return [
        "",
        "## Rolling update",
        "",
        f"`bash scripts/rolling-update.sh` ({record['machine']['date']}): {result['replicas']} "
        "replicas of the container image behind HAProxy (Debian's, health checks on `/readyz` "
        f"every second), {result['clients']} clients classifying a photo without a pause. Each "
        "replica in turn is replaced by one of an image with a newer model, as "
        "`deploy/kubernetes` has a cluster do it: the new one starts and becomes ready, then the "
        "old one leaves the load balancer (drained), pauses 5 s (the preStop pause) and gets "
        "SIGTERM.",
        "",
        f"- **{result['failed']} failed** of {result['requests']:,} requests "
        f"({errors_text(result['statuses'])}).",
        f"- {result['models'][result['old_model']]:,} answers from the old model "
        f"(`{result['old_model']}`) and {result['models'][result['new_model']]:,} from the new "
        f"(`{result['new_model']}`). The first from the new model came at "
        f"{result['first_new_answer_s']:.1f} s and the last from the old at "
        f"{result['last_old_answer_s']:.1f} s; {result['old_answers_after_last_stop']} came from "
        "the old model once the last old replica had stopped.",
        "",
        "| period | answers | p50 | p99 |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        "| replica | new one up in HAProxy after start | old one's SIGTERM to exit | exit code |",
        "|---:|---:|---:|---:|",
        *steps,
        "",
        f"The same with no warning before SIGTERM (no drain, no pause: `--no-warning`): "
        f"**{unwarned['failed']} failed** of {unwarned['requests']:,} "
        f"({errors_text({k: v for k, v in unwarned['statuses'].items() if k != '200'})}). "
        "The stopping service refuses new connections, and HAProxy sent "
        f"{unwarned['haproxy']['redispatches']} refused connections to the other replica. "
        + (
            "HAProxy's log has every request it received answered 200: the failed ones never "
            "reached it. Each was sent on a keep-alive connection to HAProxy that closed at that "
            "moment (httpx: 'Server disconnected without sending a response'). A client cannot "
            "know whether such a request was handled, and a POST is not retried. "
            if not unwarned["haproxy"].get("unanswered")
            else f"HAProxy's log of those it did not answer 200: "
            f"{errors_text(unwarned['haproxy']['unanswered'])}. "
        )
        + "The drain and the pause close that window.",
    ]


def bulk_section(result: dict | None) -> list[str]:
    if not result:
        return []
    from classifier.client.sending import DEFAULT_IMAGES_PER_REQUEST

    models = result["models"]
    levels = {
        name: {level["images_per_request"]: level for level in model["levels"]}
        for name, model in models.items()
    }
    rows = []
    for images, first in next(iter(levels.values())).items():
        cells = "".join(
            f"| {by_images[images]['images_per_s']:.1f} ({by_images[images]['ratio_to_one']:.2f}x) "
            for by_images in levels.values()
        )
        rows.append(f"| {images} | {first['concurrency']} {cells}|")
    heading = "".join(
        f"| {name}: {model['model_input']}x{model['model_input']} input, images/s "
        for name, model in models.items()
    )
    return [
        "",
        "## Bulk client",
        "",
        f"`python -m bench.bulk` ({result['machine']['date']}, {result['machine']['cpu']}, "
        f"{result['machine']['cores']} cores): `python -m classifier.client DIR "
        f"--output ...` classifies {result['photos']['imagenet']} phone-sized photos "
        f"({result['photos']['demo']} for the demo-sized model) "
        f"({', '.join(f'{w}x{h}' for w, h in result['photo_sizes'])}), with the service's "
        "default settings, at each number of images per request (1 sends `/predict`, more "
        "`/predict_batch`) and the concurrency the client derives from `/info`. Each figure is "
        "the mean of runs in opposite orders; the ratio is to one image per request.",
        "",
        f"| images per request | requests in flight {heading}|",
        "|---:|---:|" + "---:|" * len(models),
        *rows,
        "",
        f"The client's default, {DEFAULT_IMAGES_PER_REQUEST} images per request, against the "
        "fastest here: "
        + "; ".join(
            f"{name} {by_images[DEFAULT_IMAGES_PER_REQUEST]['images_per_s'] / best:.0%}"
            for name, by_images in levels.items()
            if (best := max(level["images_per_s"] for level in by_images.values()))
        )
        + ".",
    ]


def explain_section(result: dict | None) -> list[str]:
    if not result:
        return []
    models, machine = result["models"], result["machine"]
    predict_rows, light_rows, explain_rows, ratios = [], [], [], []
    for name, model in models.items():
        alone, loaded = model["phases"]["alone"], model["phases"]["with explanations"]
        explain, idle = loaded["explain"], model["idle"]
        label = f"{name} ({model['model_input']}x{model['model_input']})"
        runs = {
            phase: ", ".join(f"{run['images_per_s']:.1f}" for run in model["runs"][phase])
            for phase in model["runs"]
        }
        predict_rows.append(
            f"| {label} | {alone['images_per_s']:.1f} ({runs['alone']}) | {ms(alone['p50_ms'])} "
            f"| {ms(alone['p99_ms'])} | {loaded['images_per_s']:.1f} "
            f"({runs['with explanations']}) | {ms(loaded['p50_ms'])} | {ms(loaded['p99_ms'])} | "
            f"**{model['throughput_ratio']:.2f}** | {explain['answered']} | {explain['refused']} |"
        )
        light = model["light"]
        quiet, busy = light["phases"]["alone"], light["phases"]["with explanations"]
        light_rows.append(
            f"| {label} | {quiet['images_per_s']:.1f} | {ms(quiet['p50_ms'])} | "
            f"{ms(quiet['p99_ms'])} | {busy['images_per_s']:.1f} | {ms(busy['p50_ms'])} | "
            f"{ms(busy['p99_ms'])} | {busy['explain']['answered']} | "
            f"{busy['explain']['refused']} | {ms(busy['explain']['p50_ms'])} |"
        )
        explain_rows.append(
            f"| {label} | {idle['method']} | {ms(idle['p50_ms'])} | {ms(idle['p99_ms'])} | "
            f"{ms(idle['model_ms_mean'])} |"
        )
        ratios.append(f"{name} {model['throughput_ratio']:.2f}x")
    first = next(iter(models.values()))
    light = first["light"]
    # recorded since 2026-12-07; the runs before were all bf16
    precision = " and ".join(sorted({model.get("precision", "bf16") for model in models.values()}))
    return [
        "",
        "## Explanations (`python -m bench.explain`)",
        "",
        f"`python -m bench.explain` ({machine['date']}, {machine['cpu']}, {machine['cores']} "
        f"cores), the service with its default settings (compiled, {precision}): closed-loop "
        "clients send `/predict` (phone-sized photos), alone, then with one more client sending "
        "`/explain` back to back (after a 503 it waits as Retry-After says, at most 5 s); "
        f"{result['rounds']} rounds of {result['seconds']:g} s per phase, alone and with in turn, "
        "each answer checked against the idle service's. Images/s is the mean, each round's in "
        "parentheses.",
        "",
        f"Saturated ({result['clients']} clients):",
        "",
        "| model | alone: images/s | p50 | p99 | with /explain: images/s | p50 | p99 | "
        "with / alone | explanations answered | refused (503) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *predict_rows,
        "",
        f"A light load ({light['clients']} clients, each pausing {light['pause_s']:g} s between "
        "requests), where the model has idle moments:",
        "",
        "| model | alone: images/s | p50 | p99 | with /explain: images/s | p50 | p99 | "
        "explanations answered | refused (503) | their p50 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *light_rows,
        "",
        f"On the idle service, {first['idle']['requests']} explanations one at a time (the "
        "model's own time is `classifier_explain_seconds`; the rest is the upload, decoding, "
        "the classification, what is left of the 50 ms quiet spell, the heatmap and the JSON):",
        "",
        "| model | explanation | p50 | p99 | model time (mean) |",
        "|---|---|---:|---:|---:|",
        *explain_rows,
        "",
        f"Predictions' throughput with an explanation always asked for, against alone: "
        f"{', '.join(ratios)}. An explanation starts once the model has been idle for 50 ms, or "
        "before the next batch once it has waited `CLASSIFIER_EXPLAIN_WAIT_S` (10 s). Saturated, "
        "the model is never idle: each explanation waits its 10 s, then takes one turn. Under a "
        "light load they run in the gaps, and a prediction that arrives meanwhile waits for at "
        "most one explanation's model time.",
    ]


def image_contents_lines(result: dict) -> list[str]:
    """What the image holds (bench/image_contents.py), and the CPU and GPU variants' sizes."""
    contents = result["contents"]
    packages = dict(contents["python_packages"])
    mb = 1e6
    cuda = sum(
        packages.pop(name) for name in list(packages) if name.startswith(("nvidia-", "cuda-"))
    )
    torch, torch_cuda = packages.pop("torch"), contents["torch_cuda_libraries"]
    big = {name: size for name, size in packages.items() if size >= 20 * mb}
    rest = {name: size for name, size in packages.items() if name not in big}
    rows = [
        ("CUDA libraries: the nvidia-\\* and cuda-\\* packages torch needs", cuda),
        (f"torch (of which {torch_cuda / mb:,.0f} MB its own CUDA libraries)", torch),
        *((name, size) for name, size in big.items()),
        (f"{len(rest)} other Python packages (bentoml, pydantic, ...)", sum(rest.values())),
        ("the model (weights and card, in the Bento)", contents["model"]),
        ("the system: Debian, Python 3.11, uv", contents["system"]),
    ]
    cpu_only = contents["total"] - cuda - torch_cuda
    python = sum(contents["python_packages"].values())
    return [
        "",
        "### What is in it (`python -m bench.image_contents IMAGE`)",
        "",
        "| part | MB |",
        "|---|---:|",
        *(f"| {name} | {size / mb:,.0f} |" for name, size in rows),
        f"| **all files** | **{contents['total'] / mb:,.0f}** |",
        "",
        f"`scripts/image-cleanup.sh` (bentofile.yaml's `docker.setup_script`) removed "
        f"{result['cleanup_removed_mb']:,} MB during the build: uv's package cache (BentoML "
        "keeps it out of the image only with Docker's BuildKit), triton (torch.compile's GPU "
        "compiler, which the service never uses), and the git and gnupg BentoML's Debian setup "
        "installs, with apt's caches. It keeps the C++ compiler and the headers that compiling "
        "the model at start needs.",
        "",
        "### Variants",
        "",
        "| image | build it with | size |",
        "|---|---|---|",
        f"| CUDA torch on Debian (above): runs on CPUs, and on GPUs with NVIDIA's container "
        f"toolkit | `bentofile.yaml` | {result['image_mb'] / 1000:.2f} GB, measured |",
        "| CPU-only: PyTorch's CPU builds of torch and torchvision | `deploy/bentofile.cpu.yaml` "
        f"| about {cpu_only / 1e9:.1f} GB: the files above less the CUDA libraries and torch's "
        "own (estimated: PyTorch's index is unreachable from the benchmark machine) |",
        "| GPU: NVIDIA's CUDA base image, `resources.gpu: 1` | `deploy/bentofile.gpu.yaml` | "
        f"these {python / 1e9:.1f} GB of Python packages on `nvidia/cuda:13.0.0-base-ubuntu24.04`"
        " instead of Debian (not built here: no registry to pull the base from) |",
    ]


def errors_text(errors: dict[str, int]) -> str:
    """Errors by status, e.g. "503: 9, timeout: 1", or 0."""
    return ", ".join(f"{status}: {count}" for status, count in errors.items()) or "0"


def sweep_section(sweep: list | None) -> list[str]:
    if not sweep:
        return ["Settings sweep: run `python -m bench.sweep`.", ""]
    if "config" not in sweep[0]:
        return ["Settings sweep: out of date, run `python -m bench.sweep` again.", ""]
    lines = [
        "## Tuning (`python -m bench.sweep`)",
        "",
        "The defaults, then one setting changed at a time (same photos, closed-loop clients).",
        "",
        "| setting | clients | images/s | mean batch | p50 ms | p99 ms | errors | server CPU % "
        "| peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in sweep:
        batch = f"{row['mean_batch']:.1f}" if row.get("mean_batch") else "-"
        lines.append(
            f"| {row['config']} | {row['concurrency']} | {row['throughput']:.1f} | {batch} | "
            f"{row['p50_ms']:.0f} | {row['p99_ms']:.0f} | {errors_text(row['errors'])} | "
            f"{row['cpu_percent']:.0f} | {row['peak_rss_mb']:.0f} |"
        )
    return [*lines, ""]


def precision_section(precision: dict | None) -> list[str]:
    if not precision:
        return ["Precision against fp32: run `python -m bench.precision`.", ""]
    lines = [
        "## Precision against fp32, and compiled against eager (`python -m bench.precision`)",
        "",
        "Each precision run eagerly against fp32; then the model compiled as the service compiles "
        "it against the same precision run eagerly.",
        "",
        "| model and images | precision | top-1 agreement with fp32 | max abs probability "
        "difference | mean abs difference | fp32 mean top-1 probability | compiled vs eager: "
        "top-1 agreement | compiled vs eager: max abs probability difference |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in precision.items():
        for precision_name, row in rows.items():
            compiled = row.get("compiled_vs_eager") or {"not compiled": "not measured"}
            if "top1_agreement" in compiled:
                against_eager = (
                    f"{compiled['top1_agreement']:.1%} | "
                    f"{compiled['max_abs_probability_difference']:.4f}"
                )
            else:
                against_eager = f"{compiled['not compiled']} | -"
            vs_fp32 = (
                "(the reference) | - | -"
                if precision_name == "fp32"
                else f"{row['top1_agreement']:.1%} | {row['max_abs_probability_difference']:.4f} "
                f"| {row['mean_abs_probability_difference']:.6f}"
            )
            lines.append(
                f"| {name} | {precision_name} | {vs_fp32} | "
                f"{row['fp32_top1_probability_mean']:.3f} | {against_eager} |"
            )
    return [*lines, ""]


PHASES = {
    "prepare": "prepare (wait for a decode thread + decode, resize, crop)",
    "queue": "queue (wait for the model)",
    "model": "model (the whole batch)",
    "batch": "batch (BentoML's client hop, queue and model)",
}


def where_the_time_goes(results: dict) -> list[str]:
    """The ceiling once decoding shares the cores with the model, what the service's own
    pipeline reaches without HTTP, and each phase of a request from its Server-Timing header."""
    prep = results.get("preprocessing")
    if not prep:
        return []
    cores, raw = results["machine"]["cores"], served_raw(results)["best_throughput"]
    ceiling = cores / (cores / raw + prep["mean_ms"] / 1000)
    best = max(lvl["throughput"] for lvl in results["contenders"][SERVICE]["levels"])
    lines = [
        "## Where the time goes",
        "",
        f"Decoding, validating, resizing and cropping one input photo costs "
        f"{prep['mean_ms']:.1f} ms of one core on average (at most {prep['max_ms']:.1f} ms, for "
        f"the 4000x3000 ones), measured in process. The model uses every core for "
        f"{1000 * cores / raw:.1f} core-ms per image at its best batch size. So even with "
        f"perfect overlap, nothing can serve more than {cores} / ({cores} / {raw:.1f} + "
        f"{prep['mean_ms'] / 1000:.4f}) = **{ceiling:.1f} images/s** of these photos on this "
        f"machine ({ceiling / raw:.2f} of the raw limit).",
        "",
    ]
    if pipeline := results.get("pipeline"):
        rates = ", ".join(
            f"{p['throughput']:.1f} images/s with {p['clients']} callers" for p in pipeline
        )
        top = max(p["throughput"] for p in pipeline)
        lines += [
            f"The service's own decoding pool and continuous batcher, driven in one process "
            f"without any HTTP (`bench/pipeline.py`), reach {rates}: **{top / raw:.2f} of the raw "
            f"limit**, because decode threads and the model's threads take turns on the same "
            f"{cores} cores. The service over HTTP reaches {best:.1f} images/s, "
            f"**{best / top:.0%} of that pipeline**; the rest is the request path: receiving "
            "and parsing the upload, BentoML's request handling, the response, and the load "
            "generator on the same cores.",
            "",
            *cpu_per_image(results),
        ]
    lines += phase_table(results)
    if small := results.get("small_photos"):
        width, height = small["size"]
        lines += [
            f"With only {width}x{height} photos (cheap to decode), the service serves "
            f"{small['throughput']:.1f} images/s at {small['concurrency']} clients "
            f"({small['throughput'] / raw:.2f} of the raw limit; p50 {small['p50_ms']:.0f} ms, "
            f"errors: {errors_text(small['errors'])}).",
            "",
        ]
    return lines


def profile_section(profiles: dict | None) -> list[str]:
    """The worker's CPU per image by category, from `python -m bench.profile` runs."""
    if not profiles:
        return ["Profile of the request path: run `python -m bench.profile`.", ""]
    own = ("model", "decode + preprocess")
    categories = list(dict.fromkeys(c for p in profiles.values() for c in p["categories"]))
    categories = [*own, *(c for c in categories if c not in own)]
    runs = list(profiles.values())
    lines = [
        "### Profile of the worker under load (`python -m bench.profile`)",
        "",
        f"py-spy samples the service's worker for {runs[-1]['sampled_s']:.0f} s while "
        f"{runs[-1]['clients']} clients upload these photos; each thread's samples share out the "
        "CPU time the kernel counted for it, and OpenMP's threads (no Python in them) are the "
        "model's. Core-milliseconds per image answered, one column per run, oldest first; each "
        "run on its own, so compare the columns' shares rather than their last digits.",
        "",
        "| category | " + " | ".join(profiles) + " |",
        "|---|" + "---:|" * len(runs),
    ]
    for category in categories:
        cells = [
            f"{p['categories'].get(category, {}).get('core_ms_per_image', 0):.2f}" for p in runs
        ]
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    http = [p["core_ms_per_image"] - sum(p["categories"].get(c, {}).get("core_ms_per_image", 0)
                                         for c in own) for p in runs]  # fmt: skip
    lines += [
        "| **HTTP and framework (all but model and decoding)** | "
        + " | ".join(f"**{ms:.2f}**" for ms in http)
        + " |",
        "| **the worker** | "
        + " | ".join(f"**{p['core_ms_per_image']:.1f}**" for p in runs)
        + " |",
        "| images/s while sampled | " + " | ".join(f"{p['images_per_s']:.1f}" for p in runs) + " |",
        "",
    ]
    return lines


def pipeline_core_ms(results: dict) -> tuple[dict, float] | None:
    """The in-process pipeline run with the most callers, and its core-milliseconds per image."""
    measured = [p for p in results.get("pipeline", []) if p.get("cpu_percent")]
    if not measured:
        return None
    busiest = max(measured, key=lambda p: p["clients"])
    return busiest, 10 * busiest["cpu_percent"] / busiest["throughput"]


def cpu_per_image(results: dict) -> list[str]:
    """Core-milliseconds per image: the service over HTTP against the same work in process."""
    if not (pipeline := pipeline_core_ms(results)):
        return []
    alone, in_process = pipeline
    levels = results["contenders"][SERVICE]["levels"]
    service = max(levels, key=lambda level: level["concurrency"])
    over_http = 10 * service["cpu_percent"] / service["throughput"]
    return [
        f"CPU per image at {service['concurrency']} clients: the service spends "
        f"{over_http:.0f} core-ms, the same decoding and batching without HTTP "
        f"{in_process:.0f} core-ms ({alone['clients']} callers), so HTTP and BentoML's request "
        f"handling cost about {over_http - in_process:.0f} core-ms per image here, on the "
        "cores the model and the decoders need. (The load generator's own share is in the "
        "table above.)",
        "",
    ]


def phase_table(results: dict) -> list[str]:
    """Mean milliseconds per phase of a request, from the services' Server-Timing headers."""
    rows = [
        (name, level)
        for name, contender in results["contenders"].items()
        for level in contender["levels"]
        if level.get("phases_ms")
    ]
    if not rows:
        return []
    phases = [p for p in PHASES if any(p in level["phases_ms"] for _, level in rows)]
    lines = [
        "Each request's phases as the service reports them in its `Server-Timing` header (means, "
        "ms); *other* is the client's mean latency minus those phases: sending the upload, "
        "HTTP and multipart parsing, the response.",
        "",
        "| contender | clients | images/s | mean batch | "
        + " | ".join(PHASES[p] for p in phases)
        + " | other | mean latency |",
        "|---|---:|---:|---:|" + "---:|" * (len(phases) + 2),
    ]
    for name, level in rows:
        measured = level["phases_ms"]
        other = level["mean_ms"] - sum(measured.values())
        batch = f"{level['mean_batch']:.1f}" if level.get("mean_batch") else "-"
        cells = " | ".join(f"{measured[p]:.0f}" if p in measured else "-" for p in phases)
        lines.append(
            f"| {name} | {level['concurrency']} | {level['throughput']:.1f} | {batch} | {cells} "
            f"| {other:.0f} | {level['mean_ms']:.0f} |"
        )
    return [*lines, ""]


# the service at its top concurrency against the served model's own best-batch throughput
SHARE_OF_MODEL = 0.70
MAX_HTTP_CORE_MS = 6  # HTTP and framework per image at the top concurrency


def http_core_ms(results: dict) -> float | None:
    """Core-ms per image of the service at its top concurrency, less the same decoding and
    batching in process (`bench/pipeline.py`) with the most callers."""
    if not (pipeline := pipeline_core_ms(results)):
        return None
    service = max(results["contenders"][SERVICE]["levels"], key=lambda lvl: lvl["concurrency"])
    return 10 * service["cpu_percent"] / service["throughput"] - pipeline[1]


def targets(results: dict) -> list[tuple[str, str, bool]]:
    raw = served_raw(results)
    contenders = results["contenders"]
    service = {lvl["concurrency"]: lvl for lvl in contenders[SERVICE]["levels"]}
    top = max(service)
    rows = []

    def compare(name: str, other: str, concurrency: int, factor: float) -> None:
        mine = {lvl["concurrency"]: lvl for lvl in contenders[name]["levels"]}.get(concurrency)
        theirs = {lvl["concurrency"]: lvl for lvl in contenders[other]["levels"]}.get(concurrency)
        if mine and theirs:
            ratio = mine["throughput"] / max(theirs["throughput"], 1e-9)
            rows.append(
                (
                    f"{name} >= {factor:g} x {other} at {concurrency} clients",
                    f"{mine['throughput']:.1f} / {theirs['throughput']:.1f} = {ratio:.2f}x",
                    ratio >= factor,
                )
            )

    if 1 in service:
        budget = raw["single_latency_ms"] + 10
        rows.append(
            (
                "p50 at 1 client <= the served model's single-image latency + 10 ms",
                f"{service[1]['p50_ms']:.0f} ms vs {raw['single_latency_ms']:.0f} + 10 ms",
                service[1]["p50_ms"] <= budget,
            )
        )
    if SERVICE_EAGER in contenders:
        compare(SERVICE, SERVICE_EAGER, top, 1.25)
    if LITSERVE in contenders:
        for concurrency in (16, 32, 64):
            compare(SERVICE, LITSERVE, concurrency, 1.5)
    if (recompiled := contenders[SERVICE].get("recompilations")) is not None:
        rows.append(("zero recompiles after warm-up", f"{recompiled}", recompiled == 0))
    errors = sum(service[top]["errors"].values())
    rows.append((f"zero errors at {top} clients", f"{errors} errors", errors == 0))
    if (compiled := contenders[SERVICE].get("compile")) and compiled.get("compiled"):
        cold, warm = contenders[SERVICE]["cold_start_s"], contenders[SERVICE].get("warm_start_s")
        rows.append(("start to ready <= 90 s, empty compile cache", f"{cold:.1f} s", cold <= 90))
        if warm is not None:
            rows.append(("start to ready <= 20 s, warm compile cache", f"{warm:.1f} s", warm <= 20))
    if (http := http_core_ms(results)) is not None:
        rows.append(
            (
                f"HTTP and framework at {top} clients <= {MAX_HTTP_CORE_MS} core-ms per image "
                "(service less the same work in process)",
                f"{http:.1f} core-ms",
                http <= MAX_HTTP_CORE_MS,
            )
        )
    if slow := results.get("slow_senders"):
        answered = slow["statuses"].get("200", 0)
        rows.append(
            (
                f"with {slow['slow_senders']} slow senders connected, normal uploads answered 200 "
                "with p99 < 2 s; each slow sender gets 408",
                f"{answered} of {slow['requests']} answered 200, p99 {slow['ms']['p99']:.0f} ms; "
                f"slow senders got {slow['slow_statuses']}",
                answered == slow["requests"]
                and slow["ms"]["p99"] < 2000
                and slow["slow_statuses"] == {"408": slow["slow_senders"]},
            )
        )
    if burst := results.get("burst"):
        refused = sum(n for status, n in burst["statuses"].items() if status in ("503", "429"))
        rows.append(
            (
                f"a burst of {burst['clients']} clients: every refusal within 2 s",
                f"{burst['refused_after_2s']} of {refused} refusals after 2 s (max "
                f"{ms(burst['refusal_ms']['max'])})",
                burst["refused_after_2s"] == 0,
            )
        )
    for name in (SERVICE, SERVICE_2W):
        if name not in contenders:
            continue
        levels = {lvl["concurrency"]: lvl for lvl in contenders[name]["levels"]}
        ratio = levels[top]["throughput"] / raw["best_throughput"]
        rows.append(
            (
                f"{name} at {top} clients >= {SHARE_OF_MODEL:.2f} x the served model's own limit",
                f"{levels[top]['throughput']:.1f} / {raw['best_throughput']:.1f} = {ratio:.2f}",
                ratio >= SHARE_OF_MODEL,
            )
        )
        if BASELINE in contenders:
            for concurrency in (32, 64):
                compare(name, BASELINE, concurrency, 4)
    return rows


def target_notes(results: dict) -> list[str]:
    """What each unmet target would need, from this run's own figures."""
    raw, fp32 = served_raw(results), results["raw_fp32"]
    service = {lvl["concurrency"]: lvl for lvl in results["contenders"][SERVICE]["levels"]}
    top, limit = max(service), raw["best_throughput"]
    notes = []
    pipeline = max((p["throughput"] for p in results.get("pipeline", [])), default=None)
    share = SHARE_OF_MODEL
    if service[top]["throughput"] < share * limit and pipeline is not None:
        note = (
            f"- {share:.2f} x raw is {share * limit:.1f} images/s; the service's own decoding and "
            f"batching without HTTP reach {pipeline:.1f} ({pipeline / limit:.2f} x raw) on this "
            "machine"
        )
        if pipeline < share * limit:
            note += (
                f", so over HTTP the target is out of reach here: decoding these photos takes "
                f"{results['preprocessing']['mean_ms']:.1f} ms of a core each, on the same cores "
                "the model needs. It needs cores for decoding beyond the model's (the model on a "
                "GPU, or more cores than torch threads) or cheaper inputs"
            )
        else:
            note += (
                ", so what is missing is the cost of HTTP on the same 2 cores: receiving the "
                "uploads, multipart parsing, responses"
            )
            if measured := pipeline_core_ms(results):
                budget = 1000 * results["machine"]["cores"] / (share * limit)
                note += (
                    f". At {share:.2f} x raw every image may cost {budget:.0f} core-ms in all, "
                    f"which leaves {budget - measured[1]:.0f} core-ms for HTTP, the framework and "
                    "the load generator together (measured above: more than that)"
                )
            note += ". Cheaper inputs show it"
        if small := results.get("small_photos"):
            note += (
                f": with {small['size'][0]}x{small['size'][1]} photos the service reaches "
                f"{small['throughput'] / limit:.2f} x raw"
            )
        notes.append(note + ".")
    baseline = results["contenders"].get(BASELINE)
    if baseline:
        base = max(lvl["throughput"] for lvl in baseline["levels"])
        if 4 * base > 0.9 * limit:
            notes.append(
                f"- 4 x the tutorial baseline is about {4 * base:.0f} images/s, "
                f"{4 * base / limit:.2f} x the raw model limit itself ({limit:.1f}): no server "
                f"can reach it on this CPU. Here bf16 at batch {raw['best_batch_size']} is "
                f"{limit / fp32['best_throughput']:.1f}x fp32 at batch 1 (the baseline's model "
                "call); the 4x expectation assumed a CPU with AMX, where bf16 gains more."
            )
    phases = service.get(1, {}).get("phases_ms")
    if phases and service[1]["p50_ms"] > raw["single_latency_ms"] + 10:
        parts = ", ".join(f"{name} {ms:.0f}" for name, ms in phases.items())
        other = service[1]["mean_ms"] - sum(phases.values())
        notes.append(
            f"- At one client a request's mean {service[1]['mean_ms']:.0f} ms is {parts} and "
            f"{other:.0f} ms of HTTP (from Server-Timing), against {raw['single_latency_ms']:.0f} "
            "ms for the model alone in process: decoding the photo alone uses most of the 10 ms "
            "allowance."
        )
    notes += compiled_notes(results)
    return [*notes, ""] if notes else []


def compiled_notes(results: dict) -> list[str]:
    """What the compiled model's unmet targets would need, from this run's own figures."""
    contenders, raw, compiled = results["contenders"], results["raw"], results.get("raw_compiled")
    service = contenders[SERVICE]
    if not compiled or "best_throughput" not in compiled or SERVICE_EAGER not in contenders:
        return []
    notes = []
    gain = compiled["best_throughput"] / raw["best_throughput"]
    eager = max(contenders[SERVICE_EAGER]["levels"], key=lambda level: level["concurrency"])
    mine = max(service["levels"], key=lambda level: level["concurrency"])
    if mine["throughput"] < 1.25 * eager["throughput"]:
        # Amdahl: only the model's share of the eager service's CPU per image gets faster
        cores = results["machine"]["cores"]
        per_image = 10 * eager["cpu_percent"] / eager["throughput"]
        model_share = min(1.0, 1000 * cores / raw["best_throughput"] / per_image)
        bound = 1 / ((1 - model_share) + model_share / gain)
        notes.append(
            f"- Compiled against eager, the model alone is {gain:.2f}x at its best batch on this "
            f"CPU. The eager service spends {per_image:.0f} core-ms per image at "
            f"{eager['concurrency']} clients, {model_share:.0%} of it in the model; the rest "
            f"(decoding, HTTP) does not get faster, so compiling can make the service at most "
            f"{bound:.2f}x faster here. 1.25x needs a CPU where compiling gains more (the issue "
            "measured 1.4-1.7x on one where the eager model ran at half this speed), or a "
            "cheaper request path."
        )
    if LITSERVE in contenders:
        prep = results.get("preprocessing", {}).get("mean_ms")
        theirs = {lvl["concurrency"]: lvl for lvl in contenders[LITSERVE]["levels"]}
        short = [
            lvl["concurrency"]
            for lvl in service["levels"]
            if lvl["concurrency"] in theirs
            and lvl["concurrency"] >= 16
            and lvl["throughput"] < 1.5 * theirs[lvl["concurrency"]]["throughput"]
        ]
        if short and prep:
            cores, best = results["machine"]["cores"], compiled["best_throughput"]
            ceiling = cores / (cores / best + prep / 1000)
            wanted = max(1.5 * theirs[c]["throughput"] for c in short)
            notes.append(
                f"- 1.5x LitServe at {', '.join(map(str, short))} clients means up to "
                f"{wanted:.1f} images/s; with the compiled model and these photos' decoding "
                f"({prep:.1f} core-ms each) nothing can serve more than {ceiling:.1f} images/s on "
                f"{cores} cores"
                + (
                    ", so it is out of reach on this machine whatever the server does."
                    if wanted > ceiling
                    else ": the gap is the service's own request path (the next issue cuts it)."
                )
            )
    warm = service.get("warm_start_s")
    if warm is not None and warm > 20:
        compiling = service["warm_compile"]["seconds"] or 0
        graphs = max(1, service["warm_compile"]["graphs_from_cache"])
        notes.append(
            f"- With a warm cache, start to ready is {warm:.1f} s, {compiling:.1f} s of it "
            f"loading {graphs} compiled graphs: inductor's cache skips code generation and the "
            f"C++ compiler, but each graph is still traced again by dynamo and AOTAutograd "
            f"(about {compiling / graphs:.0f} s each), whose own cache torch 2.14 turns off for "
            "frozen weights. 20 s needs fewer graphs or a precompiled artifact loaded without "
            "tracing (AOTInductor, or torch's experimental `aot_compile`)."
        )
    return notes


def plot_levels(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, contender in results["contenders"].items():
        clients = [lvl["concurrency"] for lvl in contender["levels"]]
        left.plot(clients, [lvl["throughput"] for lvl in contender["levels"]], "o-", label=name)
        right.plot(clients, [lvl["p99_ms"] for lvl in contender["levels"]], "o-", label=name)
    for raw, label, style in (
        (results["raw"], "eager model's limit", ":"),
        (results.get("raw_compiled", {}), "compiled model's limit", "--"),
    ):
        if "best_throughput" in raw:
            left.axhline(raw["best_throughput"], color="grey", linestyle=style, label=label)
    for axis, title, unit in ((left, "Throughput", "images/s"), (right, "p99 latency", "ms")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    right.set_yscale("log")
    figure.suptitle(
        f"ResNet50 on {results['machine']['cpu']} ({results['machine']['cores']} cores)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m bench.report", description="Re-render the report from bench/KIND/*.json."
    )
    parser.add_argument(
        "--output", type=Path, default=REPORT, help="its figures are in bench/ beside it"
    )
    rerender(parser.parse_args().output)
