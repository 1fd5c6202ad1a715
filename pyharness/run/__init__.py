"""One run: what it is (spec), how it is done (runner), what it gives
(record), and which scenarios exist (scenarios)."""
