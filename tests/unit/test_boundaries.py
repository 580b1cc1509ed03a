"""Architecture rules that must hold: engine without UI, offline before transformers, no heavy imports."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import forge_tui.engine
from tests.helpers import ROOT

BLOCK_TEXTUAL = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "textual" or name.startswith(("textual.", "forge_tui.ui")):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import importlib
for name in NAMES:
    importlib.import_module(name)
print("ok")
"""


def _engine_modules() -> list[str]:
    return [m.name for m in pkgutil.walk_packages(forge_tui.engine.__path__, "forge_tui.engine.")]


def test_engine_imports_without_textual() -> None:
    names = _engine_modules()
    assert "forge_tui.engine.data" in names
    code = f"NAMES = {names!r}\n" + BLOCK_TEXTUAL
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok", result.stderr


def test_offline_variables_are_set_before_transformers_loads() -> None:
    code = ("import os\nos.environ['HF_HUB_OFFLINE'] = '0'\nimport forge_tui\nimport huggingface_hub.constants as c\n"
            "import transformers.utils.hub as h\nprint(c.HF_HUB_OFFLINE, os.environ['TRANSFORMERS_OFFLINE'], c.HF_HUB_DISABLE_TELEMETRY)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.stdout.split() == ["True", "1", "True"], result.stderr


def test_cli_start_does_not_import_torch() -> None:
    code = "import sys, forge_tui.cli\nprint('torch' in sys.modules, 'transformers' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.stdout.split() == ["False", "False"], result.stderr
