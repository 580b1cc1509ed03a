"""Rehearsal: general conversations mixed into the training split against forgetting."""

from __future__ import annotations

import json
from pathlib import Path

from forge_tui.engine.data import load_samples
from forge_tui.engine.events import read_events
from forge_tui.engine.rehearsal import BUILTIN_REHEARSAL, whole_sentences
from forge_tui.engine.scoring import fact_score
from tests.helpers import SAMPLE, run_dir, train

GENERAL = [{"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": f"Answer {i}."}]}
           for i in range(3)]


def _with_rehearsal(config: Path, rehearsal: str) -> Path:
    text = config.read_text().replace("[data]\n", f'[data]\nrehearsal = "{rehearsal}"\nrehearsal_share = 0.5\n')
    path = config.with_name("rehearsal.toml")
    path.write_text(text)
    return path


def test_rehearsal_joins_the_training_split_and_is_recorded(tiny_config: Path, tiny_run, tmp_path: Path) -> None:
    general = tmp_path / "general.jsonl"
    general.write_text("".join(json.dumps(row) + "\n" for row in GENERAL))
    plain = read_events(tiny_run.path / "events.jsonl")[0]  # the same data without rehearsal
    result = train(_with_rehearsal(tiny_config, str(general)), "--max-steps", "1")
    assert result.returncode == 0, result.stderr
    run = run_dir(result)
    started = read_events(run / "events.jsonl")[0]
    # a share of 0.5: as many rehearsal conversations as domain ones (the 3 repeated in order)
    assert started["train_samples"] == 2 * plain["train_samples"]
    assert started["eval_samples"] == plain["eval_samples"]
    assert json.loads((run / "config.json").read_text())["sections"]["data"]["rehearsal"] == str(general.resolve())
    assert json.loads((run / "dataset.json").read_text())["rehearsal"]["path"] == str(general.resolve())
    # self-distilled: the base model's own answers, written once into the run for an exact resume
    answers = (run / "rehearsal-answers.jsonl").read_text().splitlines()
    assert len(answers) == 3
    assert all(json.loads(line)["answer"] != f"Answer {i}." for i, line in enumerate(answers))


def test_answers_cut_by_the_token_limit_end_at_their_last_sentence() -> None:
    assert whole_sentences("The sky is blue. It scatters light and the") == "The sky is blue."
    assert whole_sentences("Short and cut") == "Short and cut"
    assert whole_sentences("Done!") == "Done!"


def test_a_bad_rehearsal_file_is_refused_before_the_run_exists(tiny_config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(GENERAL[0]) + "\n{oops\n")
    result = train(_with_rehearsal(tiny_config, str(bad)))
    assert result.returncode == 2
    assert f"{bad}:2:" in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _topic(question: str) -> set[str]:
    return {w.strip("?.,'").lower() for w in question.split() if len(w.strip("?.,'")) >= 4} - {"what", "which", "does", "many"}


def test_the_built_in_set_is_clean_and_stays_clear_of_the_retention_questions() -> None:
    general = load_samples(BUILTIN_REHEARSAL["general"])
    retention = load_samples(SAMPLE / "retention.jsonl")
    openings = {" ".join(s.messages[0].content.lower().split()[:4]) for s in retention}
    for sample in general:
        question, answer = sample.messages[0].content, sample.messages[-1].content
        assert " ".join(question.lower().split()[:4]) not in openings, question
        for item in retention:  # no retention question is answered: same topic and its fact in the answer
            same_topic = _topic(question) & _topic(item.messages[0].content)
            assert not (same_topic and fact_score(answer, item.meta["facts"])), (question, item.meta["facts"])
    assert len(general) >= 60
