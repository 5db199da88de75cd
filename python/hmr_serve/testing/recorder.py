"""What each test (and each fixture wider than a function) ran and read, while it ran.

A recording is the set of code objects that started running and the data files opened for
reading. Recordings nest: a session fixture set up in the middle of a test's setup records into
its own, and the test's resumes after it.

- Python 3.12+: `sys.monitoring`, the PY_START and PY_RESUME events, each disabled for a code
  object once it has reported, so a loop calling a function a million times costs one event
  per recording. Events are re-enabled (`restart_events`) whenever the recording changes.
- Python 3.10-3.11: a trace function in C (src/testing/calls.rs; a thread the test starts gets
  it too) that notes each new frame's code and asks for no line events. The interpreter runs
  slower while any trace function is installed, so it is installed only while a test runs or
  a fixture is set up, not during pytest's own setup work. When a tracer is already installed
  (coverage, a debugger) it is installed as the profile function instead, which leaves the
  tracer in place.

Data files come from the `open` audit event (open, `io.open`, `Path.read_text`, `os.open`),
passed on by an audit hook in C (src/testing/opens.rs) so that the many other audited events
cost no Python call: files under the watched directories that are not code; each is also
handed to the watcher, which otherwise sees only `*.py`.
"""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Callable
from typing import Any

from hmr_serve import _core
from hmr_serve.reload.tracker import FOREIGN_DIRS
from hmr_serve.testing import fingerprints

_MONITORING = sys.version_info >= (3, 12)
_CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyd", ".so", ".pth")
_WRITE_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_OWN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "")


class Recording:
    """What one test or fixture setup ran (code objects, maybe repeated) and read (real
    paths)."""

    __slots__ = ("codes", "files")

    def __init__(self) -> None:
        self.codes: list[types.CodeType] = []
        self.files: set[str] = set()


class Summary:
    """A finished recording, reduced to what selection compares: fingerprints of the
    first-party code that ran; the names that code reads as globals and as attributes, each
    with the real path of the file it is in; and the files read."""

    __slots__ = ("fingerprints", "globals", "attributes", "files", "_names")

    def __init__(
        self,
        prints: frozenset[int],
        globals_: frozenset[tuple[str, str]],
        attributes: frozenset[tuple[str, str]],
        files: frozenset[str],
    ) -> None:
        self.fingerprints = prints
        self.globals = globals_
        self.attributes = attributes
        self.files = files
        self._names: tuple[frozenset[str], frozenset[str]] | None = None

    @property
    def attribute_names(self) -> frozenset[str]:
        return self._split()[1]

    @property
    def global_names(self) -> frozenset[str]:
        return self._split()[0]

    def _split(self) -> tuple[frozenset[str], frozenset[str]]:
        if self._names is None:
            self._names = (
                frozenset(name for _, name in self.globals),
                frozenset(name for _, name in self.attributes),
            )
        return self._names

    def merged(self, other: Summary) -> Summary:
        return Summary(
            self.fingerprints | other.fingerprints,
            self.globals | other.globals,
            self.attributes | other.attributes,
            self.files | other.files,
        )


class Recorder:
    def __init__(self, roots: tuple[str, ...], watch_file: Callable[[str], Any]) -> None:
        self.roots = roots  # real paths ending in a separator
        self.watch_file = watch_file
        self._stack: list[tuple[Recording, bool]] = []  # (recording, whether code counts)
        self._verdicts: dict[str, bool] = {}
        self._real: dict[str, str] = {}
        # id(code) -> (code, what summarise needs of it, or None for code not the project's):
        # the code is kept so its id is not reused.
        self._known: dict[int, tuple[types.CodeType, Any]] = {}
        #: real path -> the fingerprints of its code that any recording saw.
        self.by_file: dict[str, set[int]] = {}
        #: fingerprint -> real path (to say where a change was).
        self.file_of: dict[int, str] = {}
        #: Files tests or fixtures opened for writing: their changes are the tests' own output,
        #: never a reason to run tests (a test that writes a file it reads would run forever).
        self.written: set[str] = set()
        self._audit_installed = False
        self._tool: int | None = None
        self._profiling = False
        self._current: Recording | None = None  # the recording code goes to now
        self._tracing: Recording | None = None  # 3.10-3.11: the one the C tracer fills
        self._target: list[Any] = [None]  # 3.12+: the list the monitoring callback fills
        self._monitored: Recording | None = None  # 3.12+: the last one events restarted for

    # -- first-party code ----------------------------------------------------------------------

    def first_party(self, filename: str) -> bool:
        verdict = self._verdicts.get(filename)
        if verdict is None:
            verdict = (
                filename.endswith(".py")
                and filename.startswith(self.roots)
                and not filename.startswith(_OWN_DIR)
                and not FOREIGN_DIRS.intersection(filename.split(os.sep))
            )
            if not verdict and filename.endswith(".py") and not filename.startswith(self.roots):
                # A relative or symlinked path as the code object carries it.
                real = os.path.realpath(filename)
                verdict = (
                    real.startswith(self.roots)
                    and not real.startswith(_OWN_DIR)
                    and not FOREIGN_DIRS.intersection(real.split(os.sep))
                )
            self._verdicts[filename] = verdict
        return verdict

    # -- recordings ----------------------------------------------------------------------------

    def push(self, recording: Recording, code: bool = True) -> None:
        """Records into `recording` (inside the current one, if any) until `pop`; without
        `code`, only the files read (the code that runs then is known not to matter)."""
        self._stack.append((recording, code))
        self._switch(recording if code else None)

    def pop(self, recording: Recording) -> None:
        """Stops recording into `recording`; the one around it resumes."""
        for index in range(len(self._stack) - 1, -1, -1):
            if self._stack[index][0] is recording:
                del self._stack[index]
                break
        if self._stack:
            outer, code = self._stack[-1]
            self._switch(outer if code else None)
        else:
            self._switch(None)

    def summarise(self, recording: Recording) -> Summary:
        prints: set[int] = set()
        globals_: set[tuple[str, str]] = set()
        attributes: set[tuple[str, str]] = set()
        seen: set[int] = set()
        known = self._known
        for code in recording.codes:
            key = id(code)
            if key in seen:
                continue
            seen.add(key)
            cached = known.get(key)
            if cached is None or cached[0] is not code:
                cached = known[key] = (code, self._describe(code))
            info = cached[1]
            if info is None:
                continue  # not the project's code
            value, as_globals, as_attributes = info
            prints.add(value)
            globals_ |= as_globals
            attributes |= as_attributes
        return Summary(
            frozenset(prints),
            frozenset(globals_),
            frozenset(attributes),
            frozenset(recording.files),
        )

    def _describe(
        self, code: types.CodeType
    ) -> tuple[int, frozenset[tuple[str, str]], frozenset[tuple[str, str]]] | None:
        """A code object's fingerprint and reads, None for code that is not the project's."""
        filename = code.co_filename
        if not self.first_party(filename):
            return None
        real = self._real.get(filename)
        if real is None:
            real = self._real[filename] = os.path.realpath(filename)
        value = fingerprints.of(code)
        if value not in self.file_of:
            self.file_of[value] = real
            self.by_file.setdefault(real, set()).add(value)
        return (value, *fingerprints.reads_of(code, real))

    @property
    def active(self) -> bool:
        return bool(self._stack)

    # -- the hooks -----------------------------------------------------------------------------

    def _switch(self, recording: Recording | None) -> None:
        if recording is self._current:
            return
        self._current = recording
        if not self._audit_installed:
            _core.on_open(self._opened)
            self._audit_installed = True
        if _MONITORING and self._monitor(recording):
            return
        self._trace(recording)

    def _monitor(self, recording: Recording | None) -> bool:
        """False when no monitoring tool id is free (then the trace function is used)."""
        monitoring = sys.monitoring  # type: ignore[attr-defined]
        events = monitoring.events
        if self._tool is None:
            tool = _free_tool(monitoring)
            if tool is None:
                return False
            monitoring.use_tool_id(tool, "hmr-serve test")
            target = self._target
            disable = monitoring.DISABLE

            def started(code: types.CodeType, offset: int) -> Any:
                target[0].append(code)
                return disable

            monitoring.register_callback(tool, events.PY_START, started)
            monitoring.register_callback(tool, events.PY_RESUME, started)
            self._tool = tool
        if recording is None:
            monitoring.set_events(self._tool, 0)
            return True
        self._target[0] = recording.codes
        monitoring.set_events(self._tool, events.PY_START | events.PY_RESUME)
        if recording is not self._monitored:
            # Codes disabled while another recording ran must report to this one again.
            monitoring.restart_events()
            self._monitored = recording
        return True

    def _trace(self, recording: Recording | None) -> None:
        # What ran since the last switch belongs to the recording that was active.
        taken = _core.take_calls()
        if self._tracing is not None:
            self._tracing.codes.extend(taken)
        self._tracing = recording
        profile = self._profiling
        if recording is None:
            _core.stop_tracing_calls(profile)
            threading.settrace(None)  # type: ignore[arg-type]
            threading.setprofile(None)  # type: ignore[arg-type]
            return
        if sys.gettrace() is not None:  # coverage or a debugger: leave it in place
            profile = self._profiling = True
        _core.trace_calls(profile)

        def start(frame: types.FrameType, event: str, arg: Any) -> None:
            _core.trace_calls(profile)  # a thread the test started: trace it from C too

        if profile:
            threading.setprofile(start)
        else:
            threading.settrace(start)

    # -- data files ----------------------------------------------------------------------------

    def _opened(self, path: Any = None, mode: Any = None, flags: Any = None, *_: Any) -> None:
        """The `open` audit event (forwarded by src/testing/opens.rs)."""
        if not self._stack or isinstance(path, int) or path is None:
            return
        try:
            self._read(path, mode, flags)
        except Exception:  # never break the test's open()
            pass

    def _read(self, path: Any, mode: Any, flags: Any) -> None:
        if isinstance(mode, str):
            writes = any(c in mode for c in "wax+")
            reads = "r" in mode or "+" in mode
        else:
            writes = isinstance(flags, int) and bool(flags & (_WRITE_FLAGS | os.O_RDWR))
            reads = not (isinstance(flags, int) and flags & _WRITE_FLAGS and not flags & os.O_RDWR)
        name = os.fsdecode(os.fspath(path))
        if not writes and name.endswith(_CODE_SUFFIXES):
            return  # an import reading a module
        real = os.path.realpath(name)
        if not real.startswith(self.roots) or FOREIGN_DIRS.intersection(real.split(os.sep)):
            return
        if writes:
            self.written.add(real)
        if not reads or name.endswith(_CODE_SUFFIXES) or not os.path.isfile(real):
            return
        files = self._stack[-1][0].files
        if real not in files:
            files.add(real)
            self.watch_file(real)


def _free_tool(monitoring: Any) -> int | None:
    # 0-5 exist; 0 debugger, 1 coverage, 2 profiler, 5 optimizer by convention.
    for tool in (4, 3, 5, 2):
        if monitoring.get_tool(tool) is None:
            return tool
    return None
