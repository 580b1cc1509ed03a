"""`forge-tui bench` end to end on a tiny trained run: the JSON contract, events, the report,
repeatability, and every bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from forge_tui.engine.events import read_events
from tests.helpers import SAMPLE, run_cli

SETS = ("--eval", str(SAMPLE / "eval.jsonl"), "--retention", str(SAMPLE / "retention.jsonl"))


def _bench(config: Path, run: Path, *extra: str):
    return run_cli("--config", str(config), "bench", str(run), *extra)


def test_json_contract_events_report_and_repeatability(tiny_config: Path, trained: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.md"
    first = _bench(tiny_config, trained, *SETS, "--limit", "3", "--json", "--report", str(report))
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    for side in ("base", "tuned"):
        assert 0 <= result[side]["composite"] <= 100
        assert set(result[side]["subscores"]) == {"facts", "similarity", "perplexity", "retention"}
        assert all(0 <= v <= 100 for v in result[side]["subscores"].values())
    assert result["delta"]["composite"] == pytest.approx(result["tuned"]["composite"] - result["base"]["composite"], abs=0.011)
    assert len(result["ci95"]["delta"]) == 2
    assert result["ci95"]["delta"][0] <= result["ci95"]["delta"][1]
    assert set(result["categories"]) == {"assets", "retention"}
    assert len(result["items"]) == 6
    assert {i["kind"] for i in result["items"]} == {"eval", "retention"}
    item = result["items"][0]
    assert item["facts"] == ["P-101"]
    assert {"answer", "facts", "similarity"} <= set(item["tuned"])
    assert set(result["hashes"]) >= {"adapter", "config", "dataset", "model", "eval", "retention"}
    kinds = [e["type"] for e in read_events(trained / "events.jsonl")]
    assert kinds[kinds.index("bench_started"):].count("bench_item") == 6
    assert kinds[-1] == "bench_result"
    text = report.read_text()
    assert "| **composite** (0-100) |" in text
    assert "## Improved" in text
    assert "## Provenance" in text
    events = read_events(trained / "events.jsonl")
    cost = result["cost"]   # the training's, from its events and telemetry record
    assert cost["tokens"] == sum(e["tokens"] for e in events if e["type"] == "step")
    assert f"| tokens trained | {cost['tokens']:,} |" in text
    metered = cost["energy_j"] is not None   # RAPL where the machine exposes it to this user; absent otherwise
    assert ("| energy | not measured (no power meter) |" in text) != metered
    assert text.index("## Cost") < text.index("## Provenance")
    assert (trained / "bench" / "result.json").is_file()
    assert (trained / "bench" / "report.md").is_file()
    again = json.loads(_bench(tiny_config, trained, *SETS, "--limit", "3", "--json").stdout)
    assert [i["tuned"]["answer"] for i in again["items"]] == [i["tuned"]["answer"] for i in result["items"]]
    assert (again["base"], again["tuned"], again["ci95"]) == (result["base"], result["tuned"], result["ci95"])


def test_bad_inputs_exit_2(tiny_config: Path, trained: Path, tmp_path: Path, embedded_model: Path) -> None:
    broken = tmp_path / "eval.jsonl"
    broken.write_text('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n{"messages": [\n')
    wrong = _bench(tiny_config, trained, "--eval", str(broken))
    assert wrong.returncode == 2
    assert f"{broken}:2:" in wrong.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert _bench(tiny_config, trained, "--eval", str(empty)).returncode == 2
    assert _bench(tiny_config, trained).returncode == 2  # no eval set beside the tiny run's data: says --eval
    unfinished = tmp_path / "unfinished"
    shutil.copytree(trained, unfinished)
    shutil.rmtree(unfinished / "adapter")
    stopped = _bench(tiny_config, unfinished, *SETS)
    assert stopped.returncode == 2
    assert "has not finished" in stopped.stderr
    other = tmp_path / "other-base"
    shutil.copytree(trained, other, ignore=shutil.ignore_patterns("bench"))
    config = json.loads((other / "config.json").read_text())
    config["sections"]["model"]["name"] = str(embedded_model)  # the adapter was trained on the tiny model
    (other / "config.json").write_text(json.dumps(config))
    mismatch = _bench(tiny_config, other, *SETS, "--limit", "1")
    assert mismatch.returncode == 2
    assert "trained on another model" in mismatch.stderr
    for result in (wrong, stopped, mismatch):
        assert "Traceback" not in result.stderr
