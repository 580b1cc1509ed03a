"""The product without a screen: data, models, training, telemetry, benchmarks.

Nothing under this package imports textual or forge_tui.ui (a test enforces it).
"""
