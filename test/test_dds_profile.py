"""The packaged Fast DDS profile for camera-sized images, and how the seafusion processes apply it."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from seafusion_ros.ros import dds_profile

NS = {"dds": "http://www.eprosima.com"}


def test_profile_gives_shared_memory_room_for_a_640x480_rgb_image():
    root = ET.parse(dds_profile.PROFILE).getroot()
    sizes = [int(e.text) for e in root.iterfind(".//dds:transport_descriptor/dds:segment_size", NS)]
    assert sizes and min(sizes) >= 4 * 640 * 480 * 3  # room for several frames in flight
    default = root.find(".//dds:participant[@is_default_profile='true']", NS)
    assert default is not None


def test_a_profile_set_by_the_user_is_kept(monkeypatch):
    monkeypatch.delenv(dds_profile.LEGACY_ENV, raising=False)
    monkeypatch.setenv(dds_profile.ENV, "/etc/my_profile.xml")
    assert dds_profile.use_large_image_profile() == "/etc/my_profile.xml"
    monkeypatch.delenv(dds_profile.ENV)
    assert dds_profile.use_large_image_profile() == str(dds_profile.PROFILE)


def test_a_profile_set_under_the_fast_dds_2_name_is_kept(monkeypatch):
    monkeypatch.delenv(dds_profile.ENV, raising=False)
    monkeypatch.setenv(dds_profile.LEGACY_ENV, "/etc/my_profile.xml")
    assert dds_profile.use_large_image_profile() == "/etc/my_profile.xml"
    assert dds_profile.ENV not in os.environ


def test_humble_and_jazzy_also_get_the_fast_dds_2_name(monkeypatch):
    for distro, legacy in (("humble", True), ("jazzy", True), ("kilted", False)):
        monkeypatch.delenv(dds_profile.ENV, raising=False)
        monkeypatch.delenv(dds_profile.LEGACY_ENV, raising=False)
        monkeypatch.setenv("ROS_DISTRO", distro)
        assert dds_profile.use_large_image_profile() == str(dds_profile.PROFILE)
        assert os.environ[dds_profile.ENV] == str(dds_profile.PROFILE)
        assert (os.environ.get(dds_profile.LEGACY_ENV) == str(dds_profile.PROFILE)) is legacy, distro


def test_module_prints_the_path_for_other_processes():
    out = subprocess.run([sys.executable, "-m", "seafusion_ros.ros.dds_profile"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == str(dds_profile.PROFILE)
