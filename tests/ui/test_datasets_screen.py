"""Pilot tests of the Datasets screen: the check arrives without blocking, problems are shown."""

from __future__ import annotations

import json

from textual.widgets import ListView, Select

from forge_tui.config import Config, DataConfig
from forge_tui.ui.app import ForgeApp
from forge_tui.ui.screens import train as train_screen
from forge_tui.ui.screens.columns import ColumnsScreen
from forge_tui.ui.screens.datasets import DatasetsScreen
from tests.helpers import SAMPLE, shown, text_of, wait_for
from tests.ui.test_snapshots import DRY_RUN


async def test_opens_on_the_given_dataset_and_shows_its_check(embedded_model) -> None:
    app = ForgeApp(Config(), SAMPLE / "train.jsonl")
    async with app.run_test(size=(80, 24)) as pilot:
        shown(app, DatasetsScreen)
        await wait_for(pilot, lambda: "samples" in text_of(app, "#check"))
        check = text_of(app, "#check")
        assert "OK" in check
        assert "623" in check
        assert "tokens" in check
        await pilot.press("p")
        await wait_for(pilot, lambda: "assistant" in text_of(app, "#preview"))
        assert "waterworks/train.jsonl:1" in text_of(app, "#preview")


async def test_a_broken_dataset_in_a_configured_folder_shows_its_problems(tmp_path) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    bad = folder / "broken.jsonl"
    bad.write_text(json.dumps({"text": "fine"}) + "\n{nope\n")
    app = ForgeApp(Config(data=DataConfig(dirs=(str(folder),))), bad)
    async with app.run_test(size=(80, 24)) as pilot:
        listing = app.screen.query_one(ListView)
        assert any(item.name == str(bad) for item in listing.children)
        await wait_for(pilot, lambda: "problem" in text_of(app, "#check"))
        check = text_of(app, "#check")
        assert f"{bad}:2" in check
        assert "cannot be used for training" in check


async def test_help_opens_and_closes() -> None:
    app = ForgeApp(Config())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert app.screen.__class__.__name__ == "HelpScreen"
        await pilot.press("escape")
        shown(app, DatasetsScreen)


async def test_screening_findings_are_shown_with_their_lines(embedded_model) -> None:
    demo = SAMPLE.parent / "screening-demo" / "train.jsonl"
    app = ForgeApp(Config(), demo)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "warnings" in text_of(app, "#check"), tries=600)
        check = text_of(app, "#check")
        assert "8 warnings" in check
        assert check.index("warnings") < check.index("information 1 near duplicate")
        assert "screening-demo/train.jsonl:31: secret: AWS access key AKIA…LE" in check
        assert "'per protocol zq-7' is in 6 prompts" in check


async def test_a_file_in_no_known_format_is_mapped_and_the_mapping_reaches_training(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "site"
    folder.mkdir()
    table = folder / "faq.csv"
    table.write_text("question,answer,site\nWhich pump feeds line 1?,P-101.,north\nIts spare?,P-102.,north\n")
    asked: list[list[str]] = []

    def dry_run(_config: Config, _dataset: object, _preset: str, settings: list[str]) -> object:
        asked.append(settings)
        return DRY_RUN

    monkeypatch.setattr(train_screen, "preflight", dry_run)
    app = ForgeApp(Config(data=DataConfig(dirs=(str(folder),))), table)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "problem" in text_of(app, "#check"), tries=600)
        assert "record has keys [answer, question, site]" in text_of(app, "#check")
        assert text_of(app, "#check").startswith("2 problem(s): a shape Forge does not know; m maps its columns")
        await pilot.press("m")
        await wait_for(pilot, lambda: isinstance(app.screen, ColumnsScreen))
        assert [str(label.render()) for label in app.screen.query(".columns-key")] == ["question", "answer", "site"]
        app.screen.query_one("#columns-0", Select).value = "instruction"
        app.screen.query_one("#columns-1", Select).value = "output"
        await pilot.press("ctrl+s")
        shown(app, DatasetsScreen)
        assert app.mappings == {table: {"question": "instruction", "answer": "output"}}
        await wait_for(pilot, lambda: "OK" in text_of(app, "#check"), tries=600)
        assert "columns     question -> instruction, answer -> output" in text_of(app, "#check")
        await pilot.press("p")
        await wait_for(pilot, lambda: "Which pump feeds line 1?" in text_of(app, "#preview"))
        await pilot.press("2")
        await wait_for(pilot, lambda: bool(asked), tries=300)
    assert asked[-1][-2:] == ["--map=question=instruction", "--map=answer=output"]


def test_the_mapping_is_offered_as_the_config_line_that_reads_back_the_same() -> None:
    from forge_tui.config import toml_loads
    from forge_tui.ui.screens.columns import columns_toml

    chosen = {"question": "instruction", "the answer": "output", 'odd"key': "system"}
    line = columns_toml(chosen)
    assert line.startswith("[data] columns = {")
    assert toml_loads(line.replace("[data] ", "[data]\n"))["data"]["columns"] == chosen
