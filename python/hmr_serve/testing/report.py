"""What each run prints: pytest's own progress and failure sections, then one summary line,
`app/services.py changed → 4 of 612 tests affected: 4 passed in 38 ms (reload 3 ms)`.

pytest's terminal reporter counts a session's results until it ends; here each run starts it
afresh (its counters, progress and current file), so its sections describe the run only."""

from __future__ import annotations

import sys
from typing import Any

import pytest

_ARROW = "→"


def arrow() -> str:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        _ARROW.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return "->"
    return _ARROW


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class RunReport:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.tr: Any = config.pluginmanager.get_plugin("terminalreporter")
        self.said_since_prompt = True  # whether anything was printed since "watching ..."

    @property
    def colors(self) -> bool:
        return bool(self.tr is not None and self.tr.hasmarkup)

    def line(self, text: str, **markup: bool) -> None:
        self.said_since_prompt = True
        if self.tr is not None:
            self._end_line()
            self.tr.write_line(text, **markup)
        else:
            print(text, flush=True)

    def _end_line(self) -> None:
        """Ends the line the reporter is on (progress dots, a file's results), if any."""
        tr = self.tr
        if tr._tw.width_of_current_line:
            tr._tw.line()
        tr.currentfspath = None

    def reset(self) -> None:
        """Forgets the last run's results: what follows (collecting again, running) is the new
        run's."""
        tr = self.tr
        if tr is None:
            return
        tr.stats = {}
        tr._progress_nodeids_reported = set()
        tr._timing_nodeids_reported = set()
        tr._main_color = None
        tr._known_types = None
        tr._already_displayed_warnings = None

    def start(self, session: pytest.Session, count: int, header: str | None) -> None:
        """A run of `count` tests begins."""
        self.said_since_prompt = True
        session.testscollected = count
        tr = self.tr
        if tr is None:
            return
        tr.currentfspath = None
        if header:
            self._end_line()
            if count and tr.showfspath:
                tr.write(header, bold=True)  # the reporter starts each file's line with one
            else:
                tr.write_line(header, bold=True)

    def finish(self) -> None:
        """pytest's sections for the run: the 100% mark, errors, failures, warnings and the
        short summary (as `-r` asks)."""
        tr = self.tr
        if tr is None:
            return
        if tr.config.get_verbosity() <= 0 and tr._show_progress_info and tr.reported_progress:
            tr._write_progress_information_filling_space()
        self._end_line()
        if not tr.no_summary:
            tr.summary_errors()
            tr.summary_failures()
            tr.summary_warnings()
            tr.short_test_summary()

    def counts(self) -> tuple[str, str]:
        """ "3 passed, 1 failed" for the run, and its colour."""
        tr = self.tr
        if tr is None:
            return "", "green"
        parts, color = tr.build_summary_stats_line()
        shown = [
            tr._tw.markup(text, **markup) if self.colors else text
            for text, markup in parts
            if not text.endswith("deselected")
        ]
        return ", ".join(shown), color

    def summary(self, text: str, color: str) -> None:
        markup = {color: True, "bold": True} if color in ("red", "green", "yellow") else {}
        self.line(text, **markup)
