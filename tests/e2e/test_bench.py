"""The benchmark commands run end to end (briefly) and write a complete report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from bench.report import KINDS, current_kind
from tests import ROOT

KIND = current_kind()  # each kind of CPU keeps its figures in bench/KIND/

# Every command serves the model eagerly here, warmed up at a batch of 2 rather than 16 (seconds
# a start on CPUs without bf16): only `python -m bench`'s in-process measurement of the compiled
# model compiles (graphs for batches of 1 and 2). The compiled server, from an empty and a warm
# cache, is test_compiled.py's. Here it cost 2 to 3 minutes on a Zen 3: the pipeline, the service
# and its restart each traced its graphs again (30 to 45 s a graph from an empty cache, about 14 s
# from a warm one).
EAGER = {"CLASSIFIER_COMPILE": "off", "CLASSIFIER_MAX_BATCH_SIZE": "2"}
OTHER_KIND = "avx2" if KIND == "avx512-bf16" else "avx512-bf16"  # the kinds with figures recorded
# and the benchmarks' random models shaped as the demo is, one block a stage at work: a third of
# the work of every server, warm-up and compilation here, whose figures are not what is tested
DEMO_SHAPED = {"BENCH_BLOCKS_PER_STAGE": "1"}


def run(*command: str, **env: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **DEMO_SHAPED, **env},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_bench_and_sweep_write_the_report(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    run("bench", "--seconds", "2", "--concurrency", "1", "4", "--images", "6",
        "--pipeline-clients", "4", "--contenders", "service", "--output", str(report),
        "--slow-senders", "4", "--burst", "8", CLASSIFIER_BODY_TIMEOUT_S="3", **EAGER)  # fmt: skip
    figures = tmp_path / "bench" / KIND
    results = json.loads((figures / "results.json").read_text())
    assert results["raw"]["best_throughput"] > 0
    compiled = results["raw_compiled"]
    assert compiled["compile"]["batch_sizes"] == [1, 2] and compiled["best_throughput"] > 0
    service = results["contenders"]["service"]
    assert service["compile"]["mode"] == "off" and not service["compile"]["compiled"]
    assert service["compiled_s"] >= service["cold_start_s"] > 0
    # nothing to restart with: an eager service leaves no compile cache behind
    assert "warm_start_s" not in service and service["recompilations"] == 0
    assert results["machine"]["kind"] == KIND and results["machine"]["cpu_info"]["features"]
    assert [p["clients"] for p in results["pipeline"]] == [4]
    levels = results["contenders"]["service"]["levels"]
    assert [level["concurrency"] for level in levels] == [1, 4]
    for level in levels:
        assert level["ok"] > 0 and not level["errors"], level
        assert set(level["phases_ms"]) == {"prepare", "queue", "model"}
        assert level["mean_batch"] >= 1
    assert results["small_photos"]["ok"] > 0
    assert results["slow_senders"]["slow_statuses"] == {"408": 4}
    assert results["slow_senders"]["statuses"] == {"200": results["slow_senders"]["requests"]}
    assert results["burst"]["statuses"].get("200", 0) > 0 and not results["burst"]["wrong_answers"]
    assert (figures / "throughput.png").stat().st_size > 10_000

    run("bench.sweep", "--configs", "defaults", "--concurrency", "2", "--seconds", "2",
        "--output", str(report), **EAGER)  # fmt: skip
    text = report.read_text()
    for heading in ("## The model's own limit", "## Over HTTP", "## Where the time goes",
                    "## Targets", "## Tuning"):  # fmt: skip
        assert heading in text, heading
    assert "| defaults | 2 |" in text

    run("bench.overload", "--steady", "2", "--times", "0.25", "--before", "2", "--during", "3",
        "--after", "2", "--output", str(report), **EAGER)  # fmt: skip
    overload = json.loads((figures / "overload.json").read_text())
    assert overload["accepted"] > 0 and overload["wrong_answers"] == 0
    assert overload["server_alive"] and not overload["other_statuses"], overload["other_statuses"]
    run("bench.soak", "--seconds", "6", "--requests", "60", "--clients", "2",
        "--output", str(report), **EAGER)  # fmt: skip
    soak = json.loads((figures / "soak.json").read_text())
    assert soak["requests"] >= 60 and set(soak["classes"]) == {"2xx as expected", "4xx as expected"}
    run("bench.profile", "--eager", "--clients", "4", "--seconds", "2", "--warmup", "1",
        "--label", "brief", "--output", str(figures / "profile.json"), **EAGER)  # fmt: skip
    profile = json.loads((figures / "profile.json").read_text())["brief"]
    assert profile["samples"] > 0 and profile["images_per_s"] > 0
    assert profile["categories"]["model"]["core_ms_per_image"] > 0
    run("bench.training", "--rounds", "1", "--steps", "2", "--output", str(report))
    training = json.loads((figures / "training.json").read_text())
    assert list(training["sizes"]) == ["64 px, 64 a step", "48 px, 32 a step"]
    for size in training["sizes"].values():
        assert size["speedup"] > 0 and all(ms > 0 for ms in size["ms"].values()), size
    # and the figures `scripts/container-smoke.sh` records (too slow to run here), and the other
    # kind's recorded figures, whose service compiled: its restart with a warm cache, its
    # recompiles and the two kinds side by side are rendered from them
    shutil.copy(ROOT / "bench" / "avx512-bf16" / "container.json", figures / "container.json")
    shutil.copytree(ROOT / "bench" / OTHER_KIND, tmp_path / "bench" / OTHER_KIND)
    run("bench.report", "--output", str(report))
    text = report.read_text()
    assert "restarted with the warm compile cache" in text and "zero recompiles" in text
    assert f"# {KINDS[OTHER_KIND]}" in text
    assert "## Overload" in text and "## Soak" in text and "## Container image" in text
    assert "### Profile of the worker under load" in text and "| brief |" in text
    assert "## Training the demo's network" in text and "| 48 px, 32 a step |" in text
    assert (figures / "soak.png").stat().st_size > 10_000
    assert f"# {KINDS.get(KIND, KIND)}" in text and "## The kinds side by side" in text


def test_explain_measures_predictions_with_and_without_explanations(tmp_path):
    report = tmp_path / "BENCHMARKS.md"
    figures = tmp_path / "bench" / KIND
    figures.mkdir(parents=True)
    shutil.copy(ROOT / "bench" / "avx512-bf16" / "results.json", figures / "results.json")
    run("bench.explain", "--models", "demo", "--seconds", "2", "--warmup", "1", "--rounds", "1",
        "--concurrency", "2", "--explanations", "2", "--output", str(report),
        CLASSIFIER_EXPLAIN_WAIT_S="1", **EAGER)  # fmt: skip
    demo = json.loads((figures / "explain.json").read_text())["models"]["demo"]
    for phase in demo["phases"].values():
        assert phase["images_per_s"] > 0 and phase["wrong_answers"] == 0, phase
    assert demo["throughput_ratio"] > 0
    # with idle moments between predictions, explanations run in them
    assert demo["light"]["phases"]["with explanations"]["explain"]["answered"] >= 1, demo
    assert demo["idle"]["statuses"] == {"200": 2} and demo["idle"]["model_ms_mean"] > 0
    assert demo["idle"]["method"] == "integrated-gradients"
    assert "## Explanations (`python -m bench.explain`)" in report.read_text()
