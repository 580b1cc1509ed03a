"""`python -m forge_tui` runs the same entry point as the `forge-tui` script."""

from forge_tui.cli import main

raise SystemExit(main())
