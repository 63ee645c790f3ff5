"""The packaged Fast DDS profile for camera-sized images, and how the seafusion processes apply it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

from seafusion_ros.ros import dds_profile

NS = {"dds": "http://www.eprosima.com"}


def test_profile_gives_shared_memory_room_for_four_4k_rgb_images():
    root = ET.parse(dds_profile.PROFILE).getroot()
    sizes = [int(e.text) for e in root.iterfind(".//dds:transport_descriptor/dds:segment_size", NS)]
    assert sizes == [dds_profile.segment_bytes_for(*dds_profile.MAX_IMAGE)] == [dds_profile.segment_bytes()]
    assert sizes[0] >= dds_profile.FRAMES_IN_FLIGHT * 3840 * 2160 * 3
    default = root.find(".//dds:participant[@is_default_profile='true']", NS)
    assert default is not None


def test_a_profile_for_larger_images_is_written_with_a_larger_segment(tmp_path):
    out = tmp_path / "profile.xml"
    done = subprocess.run([sys.executable, "-m", "seafusion_ros.ros.dds_profile", "--max-image", "8000x6000",
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert dds_profile.segment_bytes(out) == dds_profile.segment_bytes_for(8000, 6000) >= 4 * 8000 * 6000 * 3
    assert dds_profile.ENV in done.stdout and str(out) in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["profile.xml"]  # no temporary file left
    refused = subprocess.run([sys.executable, "-m", "seafusion_ros.ros.dds_profile", "--max-image", "4k",
                              "--out", str(out)], capture_output=True, text=True)
    assert refused.returncode == 2 and "expected WIDTHxHEIGHT" in refused.stderr


def test_too_little_shared_memory_is_named(monkeypatch, tmp_path):
    monkeypatch.setattr(dds_profile, "SHARED_MEMORY", tmp_path)
    free = shutil.disk_usage(tmp_path).free
    assert dds_profile.shared_memory_problem(1 << 20) is None
    problem = dds_profile.shared_memory_problem(free + (1 << 30))
    assert problem is not None and str(tmp_path) in problem and "--shm-size" in problem


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
