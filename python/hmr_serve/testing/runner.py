"""Runs a selection of tests in the one pytest session, keeping wider fixtures alive between
runs.

pytest tears fixtures down along its collection tree: after each test, every node the next
test does not descend from is torn down (with the fixtures scoped to it), and after the last
test (`nextitem=None`) everything is, session fixtures included. Here the last test of a run is
followed by a placeholder item under the same parent, so only that test's own fixtures go: the
session, its directories, the module and the class stay set up with their fixtures until the
next run starts with a test elsewhere. `-x`/`--maxfail` are applied here, per run, because
pytest's own stop tears everything down.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from hmr_serve.testing.report import plural


class _Waiting(pytest.Item):
    """Stands for "the next test" after a run's last one: a child of its parent, never run."""

    def runtest(self) -> None:  # pragma: no cover - never scheduled
        raise RuntimeError("hmr-serve's placeholder item is never run")


class _Chain:
    """What `SetupState.teardown_exact` needs of the next item: its chain of nodes."""

    def __init__(self, chain: list[Any]) -> None:
        self._chain = chain

    def listchain(self) -> list[Any]:
        return self._chain


@dataclass
class RunResult:
    ran: int = 0
    elapsed: float = 0.0  # seconds
    interrupted: bool = False
    stopped: str | None = None  # why the run stopped early (--maxfail)
    teardown_errors: list[tuple[str, BaseException]] = field(default_factory=list)


class Runner:
    def __init__(self, session: pytest.Session, maxfail: int) -> None:
        self.session = session
        self.maxfail = maxfail

    def run(self, items: Sequence[pytest.Item], failures: Callable[[], int]) -> RunResult:
        """Runs `items` in order; `failures()` says how many failed so far (for --maxfail)."""
        result = RunResult()
        state = self.session._setupstate
        started = time.perf_counter()
        try:
            self._forget_failed_setups(result)
            if items:
                self._teardown_towards(items[0].listchain(), result)
            for index, item in enumerate(items):
                if index + 1 < len(items):
                    nextitem: pytest.Item = items[index + 1]
                else:
                    nextitem = _waiting_after(item)
                item.config.hook.pytest_runtest_protocol(item=item, nextitem=nextitem)
                result.ran += 1
                failed = failures()
                if self.maxfail and failed >= self.maxfail and index + 1 < len(items):
                    result.stopped = f"stopping after {plural(failed, 'failure')}"
                    self._teardown_towards(item.listchain()[:-1], result)
                    break
        except KeyboardInterrupt:
            result.interrupted = True
            # The test that was running may still be set up: tear it down (not its parents).
            stack = list(state.stack)
            if stack and isinstance(stack[-1], pytest.Item):
                self._teardown_towards(stack[:-1], result)
        result.elapsed = time.perf_counter() - started
        return result

    def teardown_all(self) -> None:
        """Everything, session fixtures included (quitting, restarting)."""
        self.session._setupstate.teardown_exact(None)

    def _teardown_towards(self, chain: list[Any], result: RunResult) -> None:
        """Tears down what `chain` does not descend from. An error in a fixture's teardown is
        what pytest would have reported for the last test before it: it is kept to be shown."""
        state = self.session._setupstate
        leaving = [node for node in state.stack if node not in chain]
        try:
            state.teardown_exact(_Chain(chain))  # type: ignore[arg-type]
        except Exception as exc:  # every finalizer ran; the first error is raised at the end
            where = leaving[0].nodeid if leaving else "the session"
            result.teardown_errors.append((where or "the session", exc))

    def _forget_failed_setups(self, result: RunResult) -> None:
        """pytest keeps a collector's setup error and raises it again for every test below it,
        for good; the code may have been fixed since: such nodes are torn down to run again."""
        state = self.session._setupstate
        kept = []
        for node, (_, exc) in state.stack.items():
            if exc is not None:
                break
            kept.append(node)
        if len(kept) < len(state.stack):
            self._teardown_towards(kept, result)


def _waiting_after(item: pytest.Item) -> pytest.Item:
    parent = item.parent if item.parent is not None else item.session
    return _Waiting.from_parent(parent, name="<hmr-serve: waiting for changes>")
