"""Forge TUI: on-device fine-tuning console.

Importing the package switches the Hugging Face libraries to offline mode before any of them can be
imported, and installs the egress guard, so every entry point (CLI, TUI, runner, tests) loads local
paths only and can send nothing out.
"""

from forge_tui.offline import enforce_offline_environment, install_egress_guard

__version__ = "0.1.0"

enforce_offline_environment()
install_egress_guard()
