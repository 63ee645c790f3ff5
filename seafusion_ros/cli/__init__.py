"""Command-line tools. Started as a program, a tool takes SIGINT / SIGTERM quietly from here on, before
its library imports (see ``interrupts``)."""

from seafusion_ros.cli.interrupts import prepare_program, started_as_command

_PROGRAM = started_as_command()
if _PROGRAM is not None:
    prepare_program(_PROGRAM)
