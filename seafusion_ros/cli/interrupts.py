"""Ctrl-C (SIGINT) and SIGTERM for every command-line tool: exit status 130 / 143 within about two seconds,
one line on stderr instead of a traceback, and nothing half-written left behind.

``command`` wraps a tool's ``main``. Its handler raises ``Interrupted`` (a KeyboardInterrupt) in the main
thread, so the ``finally`` and ``except BaseException`` clean-ups of the tools run as they do for Ctrl-C.
Python runs a signal handler only between bytecodes, and one torch operation on a 4K frame takes seconds
on a CPU; so a watchdog thread, woken by the signal itself (``signal.set_wakeup_fd``), ends the process
``GRACE_S`` after the signal if the command has not returned by then, once the clean-ups registered with
``on_forced_exit`` have run.

Tools that stop on their own terms (seafusion-play, -record, -demo) use ``SignalStop`` instead: the signal
sets an event their loops watch, and they exit with the same status once stopped.

Started as a program, the tools call ``prepare_program`` from ``seafusion_ros.cli``'s ``__init__``, before
the seconds of library imports, so an early Ctrl-C ends them quietly too.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 1.5  # the main thread's time to unwind after a signal; the forced exit then takes well under 0.5 s

Main = Callable[[list[str] | None], int]


def exit_status(signum: int) -> int:
    """What a shell reports for a process ended by ``signum``: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + signum


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while a command ran."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal_name(signum))
        self.signum = signum


def started_as_command() -> str | None:
    """The program name when this process was started as one of the tools (console script or
    ``python -m seafusion_ros.cli.NAME``), else None (a test, the node, a multiprocessing worker)."""
    argv = list(getattr(sys, "orig_argv", []))  # the real command line: a spawned worker inherits sys.argv only
    if len(argv) > 1 and Path(argv[1]).name.startswith("seafusion-"):
        return Path(argv[1]).name
    for flag, module in zip(argv[1:], argv[2:], strict=False):
        if flag == "-m":
            return module if module.startswith("seafusion_ros.cli.") else None
    return None


def prepare_program(prog: str) -> None:
    """For a process started as a tool, before its library imports: until a command's own handling takes over
    (and again after it returns), SIGINT and SIGTERM end the process at once, since nothing has been written
    yet (or everything has); and an interrupted command skips the interpreter's teardown (see
    ``_end_interrupted_program``)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        os.write(2, f"{prog}: interrupted by {signal_name(signum)}\n".encode())
        os._exit(exit_status(signum))

    for signum in SIGNALS:
        signal.signal(signum, handle)
    atexit.register(_end_interrupted_program)  # registered before the libraries' own handlers, so run after them


_interrupted_status: int | None = None


def _end_interrupted_program() -> None:
    """After an interruption, exit once the other atexit handlers ran: tearing down torch after a 4K frame
    takes over a second, and every clean-up of the command has run already."""
    if _interrupted_status is not None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(_interrupted_status)


class _Guard:
    """Signal handling of one running command; see the module docstring."""

    def __init__(self, prog: str) -> None:
        self.prog = prog
        self.signum: int | None = None
        self.cleanups: list[Callable[[], object]] = []
        self._returned = threading.Event()

    def __enter__(self) -> _Guard:
        self._previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)
        self._previous_wakeup = signal.set_wakeup_fd(self._wake_write, warn_on_full_buffer=False)
        threading.Thread(target=self._watch, name="signal-watchdog", daemon=True).start()
        for signum in SIGNALS:
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._returned.set()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_wakeup)
        os.close(self._wake_write)  # the watchdog reads end-of-file and closes its end

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:  # a second signal must not cut the first one's clean-up short
            self.signum = signum
            raise Interrupted(signum)

    def _watch(self) -> None:
        try:
            signum = None
            while signum is None:
                data = os.read(self._wake_read, 64)
                if not data:
                    return
                signum = next((value for value in data if value in SIGNALS), None)
            if not self._returned.wait(GRACE_S):
                self._force_exit(signum)
        finally:
            os.close(self._wake_read)

    def _force_exit(self, signum: int) -> None:
        """The main thread is still busy (in one long native operation): clean up from here and exit."""
        for cleanup in reversed(self.cleanups):
            with contextlib.suppress(Exception):
                cleanup()
        with contextlib.suppress(OSError):
            os.write(2, f"{self.prog}: interrupted by {signal_name(signum)}\n".encode())
        os._exit(exit_status(signum))


_running: _Guard | None = None


def on_forced_exit(cleanup: Callable[[], object]) -> None:
    """Run ``cleanup`` (from the watchdog thread) if the running command must be ended before it returns."""
    if _running is not None:
        _running.cleanups.append(cleanup)


def command(prog: str) -> Callable[[Main], Main]:
    """Decorate a tool's ``main(argv) -> int`` with this module's signal handling (see the docstring)."""

    def decorate(main: Main) -> Main:
        @functools.wraps(main)
        def run(argv: list[str] | None = None) -> int:
            global _running, _interrupted_status
            if _running is not None or threading.current_thread() is not threading.main_thread():
                return main(argv)  # a sub-command (seafusion-eval task) or a caller's thread: no handlers
            guard = _Guard(prog)
            _running = guard
            try:
                with guard:
                    return main(argv)
            except Interrupted as exc:
                with contextlib.suppress(OSError, ValueError):  # stderr may be a closed pipe
                    print(f"{prog}: interrupted by {signal_name(exc.signum)}", file=sys.stderr)
                _interrupted_status = exit_status(exc.signum)
                return _interrupted_status
            finally:
                _running = None

        return run

    return decorate


class SignalStop(threading.Event):
    """An event set by the first SIGINT or SIGTERM while in its ``with`` block; ``signum`` says which."""

    def __init__(self) -> None:
        super().__init__()
        self.signum: int | None = None

    def __enter__(self) -> SignalStop:
        self._previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
        for signum in SIGNALS:
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        self.set()

    def exit_status(self, otherwise: int) -> int:
        """130 / 143 when a signal stopped the tool, else ``otherwise``."""
        return otherwise if self.signum is None else exit_status(self.signum)
