"""rosbag2 tools without ROS: write sample bags, replay a bag through the engine offline, report.

Uses ``rosbags`` (pure Python, sqlite3 and MCAP) with a pinned type store, so bags written here
open in ``ros2 bag`` and the other way round.
"""
