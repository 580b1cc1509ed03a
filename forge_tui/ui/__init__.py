"""The Textual operator console. It drives the engine through the CLI's subprocesses and the
engine's pure-Python readers; it never imports torch or transformers."""
