"""seafusion-make-bag: write a thermal + RGB rosbag2 from an image-folder pair set or the synthetic scene."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from seafusion_ros.bags.recording import (
    DEFAULT_RGB_TOPIC,
    DEFAULT_THERMAL_TOPIC,
    STORAGES,
    THERMAL_ENCODINGS_OUT,
    StreamTiming,
    folder_frames,
    synthetic_frames,
    write_pair_bag,
)
from seafusion_ros.cli import interrupts
from seafusion_ros.cli.number_arguments import (
    finite_float,
    int_at_least,
    int_in_range,
    non_negative_float,
    non_negative_int,
    positive_float,
)
from seafusion_ros.cli.output_checks import BAG_WRITE_ERRORS, bag_write_failure, check_output_folder

PROG = "seafusion-make-bag"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write a rosbag2 (MCAP by default) of a thermal and an RGB camera. Source: --ir/--vis folders "
                    "(pairs matched by stem, one pair per frame at --rate) or, without them, the embedded synthetic "
                    "night street scene (thermal 16UC1 at --thermal-rate, RGB rgb8 at --rgb-rate, --duration s).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("out", type=Path, help="bag folder to create (must not exist)")
    p.add_argument("--ir", type=Path, help="infrared image folder (8- or 16-bit)")
    p.add_argument("--vis", type=Path, help="visible image folder")
    p.add_argument("--storage", choices=tuple(STORAGES), default="mcap")
    p.add_argument("--thermal-topic", default=DEFAULT_THERMAL_TOPIC)
    p.add_argument("--rgb-topic", default=DEFAULT_RGB_TOPIC)
    p.add_argument("--compressed", action="store_true",
                   help="record sensor_msgs/CompressedImage on TOPIC/compressed, as image_transport's compressed "
                        "plugin publishes it: thermal as lossless PNG (16-bit stays 16-bit), RGB as JPEG")
    p.add_argument("--jpeg-quality", type=int_in_range(1, 100), default=90, help="with --compressed: RGB JPEG quality")
    p.add_argument("--thermal-encoding", choices=THERMAL_ENCODINGS_OUT, default="16UC1",
                   help="folders only: 8-bit IR is scaled by 257 for 16-bit encodings; mono8 keeps it as is")
    p.add_argument("--rate", type=positive_float, default=10.0, help="folders: pairs per second")
    p.add_argument("--thermal-rate", type=positive_float, default=9.0, help="synthetic: thermal frames per second")
    p.add_argument("--rgb-rate", type=positive_float, default=30.0, help="synthetic: RGB frames per second")
    p.add_argument("--duration", type=positive_float, default=5.0, help="synthetic: seconds of recording")
    p.add_argument("--size", type=int_at_least(32), nargs=2, default=(640, 480), metavar=("WIDTH", "HEIGHT"),
                   help="synthetic: image size (at least 32 x 32)")
    p.add_argument("--thermal-offset", type=finite_float, default=0.0, help="constant thermal stamp offset, seconds")
    p.add_argument("--jitter", type=non_negative_float, default=0.002, help="stamp jitter (std), seconds, both cameras")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--no-progress", action="store_true")
    return p


@interrupts.command(PROG)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.ir is None) != (args.vis is None):
        print(f"{PROG}: error: give both --ir and --vis, or neither (synthetic scene)", file=sys.stderr)
        return 2
    try:
        check_output_folder(args.out)
        if args.ir is not None:
            total, frames = folder_frames(args.ir, args.vis, StreamTiming(args.rate, args.thermal_offset, args.jitter),
                                          args.thermal_encoding, seed=args.seed)
        else:
            thermal = StreamTiming(args.thermal_rate, args.thermal_offset, args.jitter)
            rgb = StreamTiming(args.rgb_rate, 0.0, args.jitter)
            total = max(int(args.duration * args.thermal_rate), 1) + max(int(args.duration * args.rgb_rate), 1)
            frames = synthetic_frames(args.duration, thermal, rgb, args.size[1], args.size[0], seed=args.seed)
        out = write_pair_bag(args.out, frames, args.storage, args.thermal_topic, args.rgb_topic, total=total,
                             progress=not args.no_progress, compressed=args.compressed,
                             jpeg_quality=args.jpeg_quality)
    except (ValueError, FileNotFoundError, FileExistsError) as exc:  # OutputError is a ValueError
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BAG_WRITE_ERRORS as exc:  # a full disk: the half-written bag is removed
        print(f"{PROG}: error: {bag_write_failure(args.out, exc)}; nothing was left behind", file=sys.stderr)
        return 1
    print(f"wrote {out} ({total} messages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
