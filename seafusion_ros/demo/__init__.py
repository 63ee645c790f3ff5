"""The demo behind ``make demo``: its report and contact sheet (the run itself is ``seafusion_ros.cli.demo``)."""
