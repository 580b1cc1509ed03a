"""Chat on a tiny trained run: the step-by-step decoder against transformers' own generate (base with
the adapter off, tuned with it on), interleaving, cancellation, sampling, the child's JSON-lines
protocol over real pipes, and the `chat` command's contract."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from forge_tui.config import load_config
from forge_tui.engine.chat import SIDES, Answer, ChatModel, Sampling, load_chat_model, merged_pair, pick
from forge_tui.engine.chat_child import Answered, ChatChild, Failed, Ready, Token, reply_from_json, reply_to_json, serve
from forge_tui.engine.children import forge_argv
from forge_tui.engine.generation import prompt_ids
from forge_tui.engine.plan import load_for_answers
from forge_tui.engine.runs import open_run
from forge_tui.errors import BadInput
from tests.helpers import run_cli

QUESTION = [{"role": "user", "content": "Which pump feeds the north reservoir?"}]


@pytest.fixture(scope="module")
def chat_model(tiny_run) -> ChatModel:
    run = open_run(tiny_run.path)
    return load_chat_model(run.config(), run)


def _amplified(tiny_run, merged: bool = False) -> ChatModel:
    """The tiny run's adapter amplified so that base and tuned differ from the first token: one PEFT
    model for both sides (the adapter switched off for base), or the base and a merged copy."""
    run = open_run(tiny_run.path)
    model, tokenizer, device = load_for_answers(run.config(), run.adapter)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(200)
    return ChatModel(merged_pair(model) if merged else {"base": model, "tuned": model}, tokenizer, device, run.name)


def _generate(model: ChatModel, tokens: int) -> list[int]:
    """transformers' greedy generate on the same prompt (no eos stop: the tiny model rarely ends)."""
    ids = torch.tensor([prompt_ids(model.tokenizer, QUESTION)])
    out = model.models["tuned"].generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=tokens, do_sample=False,
                               min_new_tokens=tokens, pad_token_id=model.tokenizer.eos_token_id)
    return out[0, ids.shape[1]:].tolist()


def test_each_side_decodes_as_transformers_generate_does(tiny_run) -> None:
    """The KV-cached loop gives generate's greedy tokens: with the adapter off for base, on for tuned."""
    chat_model = _amplified(tiny_run)
    texts: dict[str, str] = dict.fromkeys(SIDES, "")

    def heard(side: str, text: str) -> None:
        texts[side] += text

    answers = chat_model.answer(dict.fromkeys(SIDES, QUESTION), Sampling(max_new_tokens=12), heard, interleave=True)
    with chat_model.models["tuned"].disable_adapter():
        base = _generate(chat_model, 12)
    tuned = _generate(chat_model, 12)
    assert base != tuned  # the adapter changes the answer: the toggle is observable
    decode = chat_model.tokenizer.decode
    by_side = {a.side: a for a in answers}
    for side, ids in (("base", base), ("tuned", tuned)):
        expected = decode(ids[:by_side[side].tokens], skip_special_tokens=True)
        assert by_side[side].answer == expected.strip()
        assert texts[side].strip() == by_side[side].answer  # what streamed is the answer
        assert by_side[side].first_token_seconds is not None
        assert by_side[side].first_token_seconds <= by_side[side].seconds


def test_the_merged_copy_answers_as_the_adapter_does(tiny_run, chat_model: ChatModel) -> None:
    """On a CPU the tuned side is a merged copy (the base side the plain model): same greedy answers."""
    assert chat_model.models["base"] is not chat_model.models["tuned"]    # load_chat_model merged here
    assert not hasattr(chat_model.models["tuned"], "disable_adapter")
    both = dict.fromkeys(SIDES, QUESTION)
    merged = _amplified(tiny_run, merged=True).answer(both, Sampling(max_new_tokens=10), lambda side, text: None)
    toggled = _amplified(tiny_run).answer(both, Sampling(max_new_tokens=10), lambda side, text: None)
    assert merged[0].answer != merged[1].answer
    assert [(a.side, a.answer) for a in merged] == [(a.side, a.answer) for a in toggled]


def test_interleaved_and_sequential_answers_are_the_same(chat_model: ChatModel) -> None:
    heard: list[tuple[str, str]] = []
    together = chat_model.answer(dict.fromkeys(SIDES, QUESTION), Sampling(max_new_tokens=6),
                                 lambda side, text: heard.append(("token", side)), interleave=True)
    apart = chat_model.answer(dict.fromkeys(SIDES, QUESTION), Sampling(max_new_tokens=6), lambda side, text: None)
    assert [a.answer for a in together] == [a.answer for a in apart]
    assert heard[:2] == [("token", "base"), ("token", "tuned")]  # interleaved: the sides take turns from the first token
    events: list[tuple[str, str]] = []
    told = chat_model.answer(dict.fromkeys(SIDES, QUESTION), Sampling(max_new_tokens=6), lambda side, text: events.append(("token", side)),
                             on_answer=lambda answer: events.append(("answer", answer.side)))
    assert events.index(("answer", "base")) < events.index(("token", "tuned"))  # each side told as soon as it stops
    assert [e for e in events if e[0] == "answer"] == [("answer", "base"), ("answer", "tuned")]
    assert [a.answer for a in told] == [a.answer for a in apart]


def test_cancel_and_length_stop_an_answer(chat_model: ChatModel) -> None:
    heard: list[str] = []
    cancelled = chat_model.answer({"tuned": QUESTION}, Sampling(max_new_tokens=500), lambda side, text: heard.append(text),
                                  lambda: len(heard) >= 3)
    assert [a.stopped for a in cancelled] == ["cancelled"]
    assert cancelled[0].tokens < 10
    limited = chat_model.answer({"base": QUESTION}, Sampling(max_new_tokens=5), lambda side, text: None)
    assert (limited[0].stopped, limited[0].tokens) == ("length", 5)


def test_pick_greedy_top_p_and_seeded_sampling() -> None:
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0])
    assert pick(logits, Sampling(), torch.Generator()) == 1
    # top-p so small that only the most likely token is left: sampling must return it
    narrow = Sampling(temperature=1.0, top_p=0.01)
    assert {pick(logits, narrow, torch.Generator().manual_seed(s)) for s in range(20)} == {1}
    hot = Sampling(temperature=2.0)
    draws = [pick(logits, hot, torch.Generator().manual_seed(7)) for _ in range(3)]
    assert len(set(draws)) == 1  # the same seed, the same draw
    assert len({pick(logits, hot, torch.Generator().manual_seed(s)) for s in range(40)}) > 1


@pytest.mark.parametrize(("sampling", "message"), [
    (Sampling(max_new_tokens=0), "max new tokens 0"), (Sampling(temperature=-1), "temperature -1"),
    (Sampling(top_p=0.0), "top-p 0.0"),
])
def test_sampling_out_of_range_is_refused(sampling: Sampling, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        sampling.checked()


def test_replies_round_trip_through_json() -> None:
    answer = Answer("tuned", "Pump P-101.", 4, 0.2, 0.05, "eos")
    for reply in (Ready("run", ("base", "tuned"), "cpu", 1.5), Token(3, "base", "Pu"), Answered(3, answer), Failed(None, "no")):
        assert reply_from_json(json.loads(json.dumps(reply_to_json(reply)))) == reply
    assert reply_to_json(Answered(3, answer))["first_token_seconds"] == 0.05


def test_serve_answers_asks_reports_a_bad_one_and_ends_with_its_input(chat_model: ChatModel) -> None:
    requests = [{"ask": 1, "conversations": {"base": QUESTION, "tuned": QUESTION}, "sampling": Sampling(max_new_tokens=3).to_json()},
                {"ask": 2, "conversations": {"tuned": QUESTION}, "sampling": {"max_new_tokens": 0, "temperature": 0, "top_p": 1}},
                {"ask": 3, "conversations": {"tuned": QUESTION}, "sampling": Sampling(max_new_tokens=2).to_json()}]
    out = io.StringIO()
    serve(chat_model, 1.0, io.StringIO("".join(json.dumps(r) + "\n" for r in requests)), out)
    replies = [reply_from_json(json.loads(line)) for line in out.getvalue().splitlines()]
    assert isinstance(replies[0], Ready)
    assert replies[0].sides == ("base", "tuned")
    answered = [(r.ask, r.answer.side) for r in replies if isinstance(r, Answered)]
    assert answered == [(1, "base"), (1, "tuned"), (3, "tuned")]
    failed = [r for r in replies if isinstance(r, Failed)]
    assert [(f.ask, "max new tokens 0" in f.message) for f in failed] == [(2, True)]


def test_the_child_process_answers_cancels_and_exits_when_its_input_closes(tiny_run, tiny_config: Path, tmp_path: Path) -> None:
    config = load_config(tiny_config)
    child = ChatChild(forge_argv(config.source, "chat", str(tiny_run.path), "--serve"), tmp_path / "child.log")
    replies = child.replies()
    ready = next(replies)
    assert isinstance(ready, Ready)
    ask = child.ask({"base": QUESTION, "tuned": QUESTION}, Sampling(max_new_tokens=4000))
    first = next(replies)
    assert isinstance(first, Token)
    child.cancel(ask)
    answers = []
    for reply in replies:
        if isinstance(reply, Answered):
            answers.append(reply.answer)
        if len(answers) == 2:
            break
    assert {a.stopped for a in answers} == {"cancelled"}
    assert all(a.tokens < 4000 for a in answers)
    assert child.process.stdin is not None
    child.process.stdin.close()  # the console is gone: the child ends by itself
    assert child.process.wait(timeout=60) == 0


def test_chat_once_json_contract_and_bad_input(tiny_run, tiny_config: Path) -> None:
    done = run_cli("--config", str(tiny_config), "chat", str(tiny_run.path), "--once", "Which pump?", "--json",
                   "--max-new-tokens", "6")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    for side in SIDES:
        assert {"answer", "tokens", "seconds", "first_token_seconds"} <= set(record[side])
        assert 1 <= record[side]["tokens"] <= 6
    base_only = json.loads(run_cli("--config", str(tiny_config), "chat", "--base-only", "--once", "Which pump?", "--json",
                                   "--max-new-tokens", "3").stdout)
    assert "base" in base_only
    assert "tuned" not in base_only
    refused = run_cli("--config", str(tiny_config), "chat", "--once", "q")  # settings out of range: test_sampling_...
    assert refused.returncode == 2
    assert "name a finished run" in refused.stderr
    assert "Traceback" not in refused.stderr
