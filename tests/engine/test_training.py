"""The training engine end to end on a tiny real model: events, checkpoints, exact resume after
kill -9, states, locks, refusals, export."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from forge_tui.engine.children import Launched
from forge_tui.engine.events import read_events
from forge_tui.engine.status import RunStatus
from forge_tui.errors import ErrorRecord
from tests.helpers import ROOT, adapter_tensors, run_cli, train, wait_for_event


def test_a_run_writes_events_checkpoints_and_a_peft_adapter(tiny_run, trained, tiny_config, tiny_model) -> None:
    result, run = tiny_run.trained, tiny_run.path
    events = read_events(run / "events.jsonl")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "run_started"
    assert kinds[-1] == "finished"
    assert kinds.count("step") == 8
    started = events[0]
    assert (started["mode"], started["device"], started["precision"]) == ("lora", "cpu", "fp32")
    assert "lora on cpu (fp32)" in result.stdout
    steps = [e for e in events if e["type"] == "step"]
    assert all(e["tokens_per_second"] > 0 and e["lr"] > 0 for e in steps)
    assert {e["step"] for e in events if e["type"] == "checkpoint"} == {2, 4, 6, 8}
    assert json.loads((run / "config.json").read_text())["sections"]["lora"]["r"] == 4
    assert json.loads((run / "dataset.json").read_text())["manifest"]["samples"] == 96

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), run / "adapter")
    assert any("lora_A" in name for name, _ in loaded.named_parameters())

    listed = json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)  # its copy, in this test's folder
    statuses = [RunStatus.from_json(record) for record in listed]  # the contract the console reads
    assert [(s.name, s.state, s.step, s.total_steps) for s in statuses] == [(trained.name, "finished", 8, 8)]
    assert [s.to_json() for s in statuses] == listed
    assert statuses[0].adapter == str(trained / "adapter")


def test_kill_9_then_resume_gives_the_bit_identical_adapter(tiny_run, tiny_config, tmp_path) -> None:
    run = tmp_path / "runs" / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "forge_tui", "--config", str(tiny_config), "train", "--run-dir", str(run)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_event(run, "step", lambda e: e["step"] == 5)  # after checkpoint 4, in the middle of the next steps
    process.send_signal(signal.SIGKILL)
    process.wait()
    log = run / "events.jsonl"
    os.truncate(log, log.stat().st_size - 10)  # as if the kill had landed in the middle of writing an event
    status = json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)
    assert {r["name"]: r["state"] for r in status}["killed"] == "interrupted"

    resumed = run_cli("--config", str(tiny_config), "resume", str(run))
    assert resumed.returncode == 0, resumed.stderr
    restarted = [e for e in read_events(log) if e["type"] == "run_started"]
    assert len(restarted) == 2  # the resumed runner's first event is not lost on the torn line
    assert restarted[-1]["start_step"] in (4, 6)
    a, b = adapter_tensors(tiny_run.path), adapter_tensors(run)  # the same config, never interrupted
    assert a.keys() == b.keys()
    assert all((a[k] == b[k]).all() for k in a)


def test_a_torn_checkpoint_is_never_chosen(tiny_config, tmp_path) -> None:
    run = tmp_path / "torn"
    result = train(tiny_config, "--run-dir", str(run), "--max-steps", "4")
    assert result.returncode == 0
    latest = run / "checkpoints" / "step-000004"
    (latest / "optimizer.pt").write_bytes(b"torn")        # damaged newest checkpoint
    (run / "checkpoints" / ".tmp-step-000006").mkdir()    # and a half-written one
    from forge_tui.engine.checkpoint import latest_checkpoint

    assert latest_checkpoint(run / "checkpoints") == run / "checkpoints" / "step-000002"

    (run / "checkpoints" / "step-000002" / "state.json").write_text("{")  # now none is complete
    (run / "adapter" / "adapter_config.json").unlink()
    (run / "events.jsonl").write_text("".join(line for line in (run / "events.jsonl").read_text().splitlines(keepends=True)
                                              if '"finished"' not in line))
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    result = run_cli("--config", str(tiny_config), "resume", str(run))
    assert result.returncode == 2
    assert "no complete checkpoint left" in result.stderr
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_resume_refuses_a_changed_dataset_and_a_finished_run(tiny_config, tmp_path) -> None:
    run = tmp_path / "r"
    assert train(tiny_config, "--run-dir", str(run), "--max-steps", "2").returncode == 0
    finished = run_cli("--config", str(tiny_config), "resume", str(run))
    assert finished.returncode == 2
    assert "already finished" in finished.stderr

    (run / "events.jsonl").write_text("")  # pretend it never finished
    (run / "adapter" / "adapter_config.json").unlink()
    dataset = Path(json.loads((run / "dataset.json").read_text())["path"])
    before = dataset.read_text()
    dataset.write_text(before + before.splitlines(keepends=True)[0])
    changed = run_cli("--config", str(tiny_config), "resume", str(run))
    assert changed.returncode == 2
    assert "dataset changed" in changed.stderr
    assert "samples 96 -> 97" in changed.stderr

    dataset.write_text(before)  # the same bytes again, but the run's manifest as an earlier Forge wrote it
    recorded = json.loads((run / "dataset.json").read_text())
    assert recorded["manifest"].pop("samples_sha256")
    (run / "dataset.json").write_text(json.dumps(recorded))
    earlier = run_cli("--config", str(tiny_config), "resume", str(run))
    assert earlier.returncode == 2
    assert "started by an earlier Forge, which did not fingerprint the samples" in earlier.stderr


def test_bad_inputs_exit_2_and_create_nothing(tiny_config, tmp_path, write) -> None:
    bad_data = write("bad.jsonl", "{oops\n")
    result = train(tiny_config, "--dataset", str(bad_data), "--run-dir", str(tmp_path / "y"))
    assert result.returncode == 2
    assert f"{bad_data}:1:" in result.stderr
    assert not (tmp_path / "y").exists()

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04")
    (pickled / "config.json").write_text("{}")
    config = write("p.toml", tiny_config.read_text().replace("[model]\nname", f'[model]\nname = "{pickled}"\nold_name', 1))
    assert "old_name" in config.read_text()
    unknown = train(config, "--run-dir", str(tmp_path / "z"))
    assert unknown.returncode == 2
    assert "unknown key 'old_name'" in unknown.stderr
    config.write_text(config.read_text().replace("old_name", "# old_name"))
    result = train(config, "--run-dir", str(tmp_path / "z"))
    assert result.returncode == 2
    assert "pickle" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "z").exists()


def test_two_runners_cannot_share_a_run(tiny_config, tmp_path) -> None:
    run = tmp_path / "runs" / "locked"
    detached = train(tiny_config, "--run-dir", str(run), "--max-steps", "400", "--detach", "--json")
    assert detached.returncode == 0
    launched = Launched.from_json(json.loads(detached.stdout))
    assert launched.run == str(run)
    wait_for_event(run, "step")
    second = run_cli("--config", str(tiny_config), "resume", str(run), "--json")
    assert second.returncode == 2
    assert "already running" in second.stderr
    refused = ErrorRecord.from_json(json.loads(second.stdout))  # a script asking for JSON gets the refusal as JSON
    assert refused.exit_code == 2
    assert refused.error == f"{run}: already running (pid {launched.pid})"
    listed = {r["name"]: r for r in json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)}
    assert listed["locked"]["state"] == "running"
    assert listed["locked"]["pid"] == launched.pid
    stop = run_cli("--config", str(tiny_config), "stop", str(run))
    assert stop.returncode == 0
    stopped = wait_for_event(run, "stopped")
    assert Path(stopped["checkpoint"]).is_dir()
    for _ in range(100):
        listed = {r["name"]: r for r in json.loads(run_cli("--config", str(tiny_config), "runs", "--json").stdout)}
        if listed["locked"]["state"] == "stopped":
            break
        time.sleep(0.2)
    assert listed["locked"]["state"] == "stopped"


def test_export_writes_a_merged_model_that_generates(tiny_config, trained, tmp_path) -> None:
    run = trained
    out = tmp_path / "merged"
    result = run_cli("--config", str(tiny_config), "export", str(run), "--merged", str(out))
    assert result.returncode == 0, result.stderr
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("hello", return_tensors="pt")
    assert model.generate(**ids, max_new_tokens=3, do_sample=False).shape[1] == ids["input_ids"].shape[1] + 3
    assert not any(p.suffix == ".bin" for p in out.iterdir())
    again = run_cli("--config", str(tiny_config), "export", str(run), "--merged", str(out))
    assert again.returncode == 2
    assert "not an empty folder" in again.stderr


def test_two_steps_on_sharegpt_and_on_a_mapped_csv_and_tool_use_refused(tiny_config, tmp_path, write) -> None:
    formats = ROOT / "sample_data" / "formats"
    result = train(tiny_config, "--dataset", str(formats / "sharegpt.json"), "--max-steps", "2", "--run-dir", str(tmp_path / "sg"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "sg" / "adapter" / "adapter_config.json").is_file()
    assert json.loads((tmp_path / "sg" / "dataset.json").read_text())["manifest"]["format"] == "sharegpt"

    refused = train(tiny_config, "--dataset", str(formats / "faq.csv"), "--run-dir", str(tmp_path / "no"))
    assert refused.returncode == 2
    assert f"{formats / 'faq.csv'}:2: record has keys [answer, question]" in refused.stderr
    assert not (tmp_path / "no").exists()
    mapped = train(tiny_config, "--dataset", str(formats / "faq.csv"), "--map", "question=instruction", "--map", "answer=output",
                   "--max-steps", "2", "--run-dir", str(tmp_path / "csv"))
    assert mapped.returncode == 0, mapped.stderr
    columns = {"question": "instruction", "answer": "output"}
    assert json.loads((tmp_path / "csv" / "config.json").read_text())["sections"]["data"]["columns"] == columns
    assert json.loads((tmp_path / "csv" / "dataset.json").read_text())["manifest"]["columns"] == columns

    call = json.dumps({"name": "get_level", "arguments": {"tank": "T-1"}})
    tools = write("tools.jsonl", json.dumps({"conversations": [
        {"from": "human", "value": "Level of T-1?"}, {"from": "function_call", "value": call},
        {"from": "observation", "value": "72%"}, {"from": "gpt", "value": "72 percent."}]}) + "\n")
    refused = train(tiny_config, "--dataset", str(tools), "--run-dir", str(tmp_path / "tools"))
    assert refused.returncode == 2
    assert f"{tools}:1: this conversation uses tools" in refused.stderr
    assert "has no tool support" in refused.stderr
    assert not (tmp_path / "tools").exists()
