"""`chat`: ask a run's base and tuned model from the command line (a REPL, or `--once`), and the
console's chat child (`--serve`, see engine/chat_child.py)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from forge_tui.cli.common import config_flag, json_flag, print_json
from forge_tui.config import Config
from forge_tui.errors import EXIT_OK, BadInput

if TYPE_CHECKING:
    from forge_tui.cli.common import Commands
    from forge_tui.engine.chat import Answer, ChatModel, Messages, Sampling

NEW, QUIT = "/new", "/quit"


def cmd_chat(args: argparse.Namespace, config: Config) -> int:
    from forge_tui.engine.chat import Sampling, load_chat_model
    from forge_tui.engine.runs import find_run

    if args.run is None and not args.base_only:
        raise BadInput("name a finished run to chat with (forge-tui runs lists them), or --base-only for the base model")
    sampling = Sampling(args.max_new_tokens, args.temperature, args.top_p, config.train.seed).checked()
    run = find_run(args.run, config) if args.run and not args.base_only else None
    started = time.monotonic()
    model = load_chat_model(config, run)
    loaded = time.monotonic() - started
    if args.serve:
        from forge_tui.engine.chat_child import serve

        serve(model, loaded, sys.stdin, sys.stdout)
    elif args.once is not None:
        _once(model, _turns(args.system, args.once), sampling, args.json, loaded)
    else:
        _repl(model, args.system, sampling, loaded)
    return EXIT_OK


def _turns(system: str | None, question: str) -> list[dict[str, str]]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]


def _once(model: ChatModel, turns: Messages, sampling: Sampling, as_json: bool, loaded: float) -> None:
    if not as_json:
        _stream(model, dict.fromkeys(model.sides, turns), sampling)
        return
    answers = model.answer(dict.fromkeys(model.sides, turns), sampling, lambda side, text: None)
    record: dict[str, Any] = {"model": model.name, "load_seconds": round(loaded, 2), "question": turns[-1]["content"]}
    for answer in answers:
        record[answer.side] = {**answer.to_json(), "tokens_per_second": _rate(answer)}
        del record[answer.side]["side"]
    print_json(record)


def _rate(answer: Answer) -> float | None:
    rate = answer.tokens_per_second
    return None if rate is None else round(rate, 1)


def _stream(model: ChatModel, conversations: Mapping[str, Messages], sampling: Sampling) -> list[Answer]:
    """Each side printed as it is generated, one after the other, then their timings."""
    current: list[str] = []

    def show(side: str, text: str) -> None:
        if current != [side]:
            print(f"{'' if not current else chr(10)}{side}> ", end="")
            current[:] = [side]
        print(text, end="", flush=True)

    answers = model.answer(conversations, sampling, show)
    print()
    print("  " + " | ".join(_timing(answer) for answer in answers), file=sys.stderr)
    return answers


def _timing(answer: Answer) -> str:
    first = "-" if answer.first_token_seconds is None else f"{answer.first_token_seconds:.2f} s"
    rate = _rate(answer)
    stopped = "" if answer.stopped == "eos" else f", {answer.stopped}"
    return f"{answer.side}: {answer.tokens} tokens, {rate or 0:.1f} tok/s, first token {first}{stopped}"


def _repl(model: ChatModel, system: str | None, sampling: Sampling, loaded: float) -> None:
    """Questions until end of input or /quit; each side keeps its own history; /new forgets both."""
    print(f"{model.name}: {' and '.join(model.sides)} loaded in {loaded:.1f} s. {NEW} starts over, {QUIT} or Ctrl-D ends.",
          file=sys.stderr)
    histories: dict[str, list[dict[str, str]]] = {side: _turns(system, "")[:-1] for side in model.sides}
    while True:
        try:
            question = input("you> ").strip()
        except EOFError:
            print()
            return
        if question == QUIT:
            return
        if question == NEW:
            histories = {side: _turns(system, "")[:-1] for side in model.sides}
            continue
        if question:
            for history in histories.values():
                history.append({"role": "user", "content": question})
            for answer in _stream(model, histories, sampling):
                histories[answer.side].append({"role": "assistant", "content": answer.answer})


def register(commands: Commands) -> None:
    chat = commands.add_parser("chat", parents=[config_flag(), json_flag()],
                               help="ask a run's base and tuned model side by side (a REPL, or --once)")
    chat.add_argument("run", nargs="?", help="a finished run's name or directory")
    chat.add_argument("--once", metavar="QUESTION", help="ask one question, print both answers and their timings, exit")
    chat.add_argument("--base-only", action="store_true", help="the base model alone (no run needed)")
    chat.add_argument("--system", help="a system prompt for the conversation")
    chat.add_argument("--max-new-tokens", type=int, default=256, help="longest answer, in tokens (default 256)")
    chat.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (the default); above 0 samples")
    chat.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling share when sampling (default 1)")
    chat.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # the console's child: JSON lines on stdin/stdout
    chat.set_defaults(handler=cmd_chat)
