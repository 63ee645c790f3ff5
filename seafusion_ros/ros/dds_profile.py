"""The Fast DDS profile for camera-sized images, applied by default to the seafusion processes.

Fast DDS's default shared-memory segment (512 KB) is smaller than one 640x480 RGB image, so images go
over fragmented UDP, where a lost fragment waits for a retransmission: measured here, 2.9 s instead of
0.6 s from camera stamp to the node's output, and lost best-effort frames. A segment that holds one
image but not several in flight drops frames too: 3840x2160 RGB at 5 Hz lost 3 of 10 with 16 MB. The
packaged profile's segment holds ``FRAMES_IN_FLIGHT`` images of the bound, ``MAX_IMAGE`` rgb8
(3840 x 2160, 24.9 MB); ``python3 -m seafusion_ros.ros.dds_profile --max-image WxH --out FILE`` writes
one for other bounds.

The profile must be in effect before rclpy.init(); a profile the user set with
FASTDDS_DEFAULT_PROFILES_FILE or FASTRTPS_DEFAULT_PROFILES_FILE is left alone. Fast DDS 3 (Kilted on)
reads the first name; Fast DDS 2 (Humble, Jazzy) reads only the second, which is set too when
ROS_DISTRO names one of those (Fast DDS 3 warns that it is deprecated). Other middlewares ignore both.

``python3 -m seafusion_ros.ros.dds_profile`` prints the packaged profile's path, for other processes of
the graph.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from seafusion_ros.imaging.image_files import write_bytes_atomic

PROFILE = Path(__file__).resolve().with_name("fastdds_large_images.xml")
ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
LEGACY_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
LEGACY_DISTROS = ("humble", "jazzy")  # Fast DDS 2.x
MAX_IMAGE = (3840, 2160)  # width, height: the largest rgb8 image the packaged profile is sized for
FRAMES_IN_FLIGHT = 4
SHARED_MEMORY = Path("/dev/shm")
_NS = {"dds": "http://www.eprosima.com"}


def use_large_image_profile() -> str:
    """Set the profile for this process (and its children) unless one is already set; returns the one in use."""
    for name in (ENV, LEGACY_ENV):
        if os.environ.get(name):
            return os.environ[name]
    os.environ[ENV] = str(PROFILE)
    if os.environ.get("ROS_DISTRO", "").lower() in LEGACY_DISTROS:
        os.environ[LEGACY_ENV] = str(PROFILE)
    return str(PROFILE)


def segment_bytes_for(width: int, height: int, bytes_per_pixel: int = 3) -> int:
    """Shared-memory segment for ``FRAMES_IN_FLIGHT`` images of this size, rounded up to whole MiB."""
    if width < 1 or height < 1 or bytes_per_pixel < 1:
        raise ValueError(f"image size and bytes per pixel must be positive, got {width}x{height}x{bytes_per_pixel}")
    mib = 1 << 20
    return -(-FRAMES_IN_FLIGHT * width * height * bytes_per_pixel // mib) * mib


def segment_bytes(profile: str | os.PathLike = PROFILE) -> int | None:
    """The largest shared-memory segment a Fast DDS profile file sets (None: none set, or unreadable)."""
    try:
        root = ET.parse(profile).getroot()
    except (OSError, ET.ParseError):
        return None
    sizes = [int(e.text) for e in root.iterfind(".//dds:transport_descriptor/dds:segment_size", _NS)
             if e.text and e.text.strip().isdigit()]
    return max(sizes) if sizes else None


def profile_text(segment: int) -> str:
    """The packaged profile with another segment size."""
    text = PROFILE.read_text()
    return re.sub(r"<segment_size>\d+</segment_size>", f"<segment_size>{segment}</segment_size>", text, count=1)


def shared_memory_problem(segment: int, participants: int = 1) -> str | None:
    """Why ``participants`` segments of this size may not fit in /dev/shm (a container's default is 64 MB,
    and a process writing past a full tmpfs is killed by SIGBUS), or None."""
    try:
        free = shutil.disk_usage(SHARED_MEMORY).free
    except OSError:
        return None  # no /dev/shm: not Linux, Fast DDS uses another mechanism
    if free >= segment * participants:
        return None
    return (f"{SHARED_MEMORY} has {free / 2**20:.0f} MiB free, less than {participants} x the Fast DDS shared-memory "
            f"segment of {segment / 2**20:.0f} MiB: give the container more (docker run --shm-size=1g) or use a "
            "profile with a smaller segment (python3 -m seafusion_ros.ros.dds_profile --max-image WxH --out FILE)")


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, e.g. 3840x2160, got {text!r}")
    return int(match[1]), int(match[2])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m seafusion_ros.ros.dds_profile",
        description="Print the packaged Fast DDS profile's path or, with --max-image, write a profile whose "
                    f"shared-memory segment holds {FRAMES_IN_FLIGHT} images of that size.")
    p.add_argument("--max-image", type=_size, metavar="WxH", help="largest image of the graph, e.g. 4096x3000")
    p.add_argument("--bytes-per-pixel", type=int, choices=(1, 2, 3, 4, 6, 8), default=3,
                   help="3: rgb8/bgr8, 4: rgba8/bgra8, 6: rgb16")
    p.add_argument("--out", type=Path, help="with --max-image: the profile file to write")
    args = p.parse_args(argv)
    if args.max_image is None:
        print(PROFILE)
        return 0
    if args.out is None:
        p.error("--max-image needs --out FILE")
    segment = segment_bytes_for(*args.max_image, args.bytes_per_pixel)
    try:
        write_bytes_atomic(args.out, profile_text(segment).encode())
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} (shared-memory segment {segment / 2**20:.0f} MiB); use it in every process:\n"
          f"export {ENV}={args.out.resolve()} {LEGACY_ENV}={args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
