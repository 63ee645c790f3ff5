"""seafusion-eval like for like: several --weights fused in one mode, pairs chosen by a data set's split,
and argument mistakes refused before any model loads. Real MSRS and RoadScene pairs from ../shared."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from seafusion_ros.cli.eval import main
from seafusion_ros.inference.engine import FusionEngine, resolve_backend
from seafusion_ros.weights import DEFAULT_FUSION_WEIGHTS

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ROADSCENE = SHARED / "data" / "roadscene_train"
MSRS_VALIDATION = ["00416D", "00466D", "01106N", "01152N"]  # also in msrs_dev/seafusion_reference
MSRS_TRAINING = ["00004N", "00119D"]
CROP = (slice(200, 264), slice(300, 380))  # 64 x 80 keeps CPU fusion cheap


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} not found: ../shared data is absent beside the checkout")
    return path


def _data_root(source: Path, root: Path, stems: list[str], crop: tuple[slice, slice] | None = CROP) -> Path:
    """A data set folder (ir/ + vi/) holding ``stems`` of ``source``, cropped, or linked when ``crop`` is None."""
    for sub in ("ir", "vi"):
        (root / sub).mkdir(parents=True)
        for stem in stems:
            path = next((source / sub).glob(f"{stem}.*"))
            if crop is None:
                (root / sub / path.name).symlink_to(path)
            else:
                image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                cv2.imwrite(str(root / sub / f"{stem}.png"), image[crop])
    return root


def _report(out: Path) -> tuple[dict, str, dict[str, list[str]]]:
    """summary.json, summary.md and the stems of per_image.csv by method."""
    with open(out / "per_image.csv", newline="") as handle:
        stems: dict[str, list[str]] = {}
        for row in csv.DictReader(handle):
            stems.setdefault(row["method"], []).append(row["stem"])
    return json.loads((out / "summary.json").read_text()), (out / "summary.md").read_text(), stems


COMMON = ["--precision", "fp32", "--device", "cpu", "--jobs", "1", "--examples", "0", "--quiet"]


def test_two_weights_are_fused_in_one_mode_and_scored_side_by_side(msrs_dev, released_weights, tmp_path):
    root = _data_root(msrs_dev, tmp_path / "msrs", MSRS_VALIDATION + MSRS_TRAINING)
    out = tmp_path / "report"
    assert main(["--data", str(root), "--split", "val", "--weights", f"bundled={DEFAULT_FUSION_WEIGHTS}",
                 "--weights", f"released={released_weights}", "--normalize", "none", "--out", str(out),
                 *COMMON]) == 0
    summary, markdown, stems = _report(out)
    assert list(summary["methods"]) == ["bundled", "released"]
    assert all(stats["n"] == len(MSRS_VALIDATION) for stats in summary["methods"].values())
    assert stems == {"bundled": MSRS_VALIDATION, "released": MSRS_VALIDATION}  # the training frames are left out
    assert summary["data"] == {"root": str(root), "family": "msrs", "split": "val",
                               "rule": "MSRS frames 400-520 and 1100-1199 are validation"}
    mode = summary["output_mode"]
    assert mode["fused_here"] == {"bundled": str(DEFAULT_FUSION_WEIGHTS), "released": str(released_weights)}
    default_backend = resolve_backend("auto", torch.device("cpu"))  # the tools' default: openvino when installed
    assert mode["settings"] == {"normalize": "none", "precision": "fp32", "backend": default_backend, "device": "cpu",
                                "internal_scale": 1.0, "thermal_gain": "percentile 1-99"}
    assert mode["folder_methods"] == [] and mode["folder_note"] is None
    assert ("- Output mode: all --weights methods (bundled, released) fused with --normalize none, precision fp32, "
            f"backend {default_backend}, device cpu.") in markdown
    assert f"- Pairs: validation split of the msrs data set at {root} (MSRS frames 400-520" in markdown
    assert "Note:" not in markdown
    assert summary["methods"]["bundled"]["mean"] != summary["methods"]["released"]["mean"]

    stem = MSRS_VALIDATION[0]
    ir = cv2.imread(str(root / "ir" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    visible = cv2.imread(str(root / "vi" / f"{stem}.png"), cv2.IMREAD_COLOR)
    for name, weights in (("bundled", DEFAULT_FUSION_WEIGHTS), ("released", released_weights)):
        fused = sorted(p.stem for p in (out / "fused" / name).iterdir())
        assert fused == MSRS_VALIDATION
        engine = FusionEngine(weights, device="cpu", precision="fp32", normalize="none", backend=default_backend)
        expected = engine.fuse(ir, visible, visible_order="bgr", output_order="bgr").image
        assert np.array_equal(cv2.imread(str(out / "fused" / name / f"{stem}.png")), expected), name


def test_released_weights_with_minmax_against_the_authors_outputs_carry_the_folder_note(msrs_dev, released_weights,
                                                                                         tmp_path):
    validation = MSRS_VALIDATION[:2]
    root = _data_root(msrs_dev, tmp_path / "msrs", [*validation, MSRS_TRAINING[0]], crop=None)
    out = tmp_path / "report"
    assert main(["--data", str(root), "--split", "val", "--method", f"authors={msrs_dev / 'seafusion_reference'}",
                 "--weights", f"released={released_weights}", "--normalize", "minmax", "--out", str(out),
                 *COMMON]) == 0
    summary, markdown, stems = _report(out)
    assert stems == {"authors": validation, "released": validation}
    assert summary["output_mode"]["settings"]["normalize"] == "minmax"
    assert summary["output_mode"]["folder_methods"] == ["authors"]
    note = "--method folder(s) authors were produced elsewhere; their output mode is not known to this tool."
    assert summary["output_mode"]["folder_note"] == note
    assert f"- Note: {note}" in markdown
    unused = summary["unused_fused"]["authors"]
    assert MSRS_TRAINING[0] not in unused, "a fused image of the other split is expected, not unused"
    assert "00051N" in unused  # a reference image of a frame this data folder lacks
    ours, theirs = (summary["methods"][name]["mean"] for name in ("released", "authors"))
    for metric in ("EN", "SD", "SF", "AG", "MI", "VIF", "Qabf", "SSIM"):  # same mode: within one grey level per pixel
        assert ours[metric] == pytest.approx(theirs[metric], rel=1e-3), metric


def test_data_split_picks_the_roadscene_validation_or_training_pairs(released_weights, tmp_path, capsys):
    validation, training = ["FLIR_08721", "FLIR_08749"], ["FLIR_04607", "FLIR_video_04215"]
    root = _data_root(_require(ROADSCENE), tmp_path / "roadscene", validation + training)
    for split, expected in (("val", validation), ("train", training)):
        out = tmp_path / split
        assert main(["--data", str(root), "--split", split, "--weights", str(released_weights), "--out", str(out),
                     *COMMON]) == 0
        summary, markdown, stems = _report(out)
        assert stems == {"seafusion_official_fusion": expected}
        assert (summary["data"]["family"], summary["data"]["split"]) == ("roadscene", split)
        assert "FLIR_08700 and later are validation" in markdown

    only_training = _data_root(ROADSCENE, tmp_path / "training_only", training)
    capsys.readouterr()
    assert main(["--data", str(only_training), "--split", "val", "--weights", str(tmp_path / "missing.pt"),
                 "--out", str(tmp_path / "none"), *COMMON]) == 2
    assert "no val pairs (roadscene: FLIR_08700 and later are validation)" in capsys.readouterr().err


@pytest.mark.parametrize(("arguments", "message"), [
    (["--data", "D", "--ir", "D", "--vis", "D", "--method", "a=D"], "--data ROOT replaces --ir/--vis"),
    (["--ir", "D", "--method", "a=D"], "give --ir DIR and --vis DIR, or --data ROOT"),
    (["--ir", "D", "--vis", "D", "--split", "val", "--method", "a=D"], "--split selects pairs of --data ROOT"),
    (["--data", "D", "--split", "test", "--method", "a=D"], "invalid choice: 'test'"),
    (["--data", "D"], "give at least one --method NAME=DIR or --weights [NAME=]PATH"),
    (["--data", "D", "--weights", "a=x.pt", "--weights", "a=y.pt"], "method name 'a' given twice"),
    (["--data", "D", "--weights", "one/model.pt", "--weights", "two/model.pt"], "method name 'model' given twice"),
    (["--data", "D", "--weights", "runs/lr=0.1/model.pt", "--weights", "model=b.pt"], "'model' given twice"),
    (["--data", "D", "--method", "x=D", "--weights", "x.pt"], "method name 'x' given twice"),
    (["--data", "D", "--method", "a=D", "--method", "a=E"], "method name 'a' given twice in --method"),
    (["--data", "D", "--weights", "a.pt", "--weights", "b.pt", "--name", "n"], "--name names a single --weights"),
    (["--data", "D", "--weights", "a=x.pt", "--name", "n"], "--name and --weights NAME=PATH both name"),
    (["--data", "D", "--weights", "=x.pt"], "expected [NAME=]PATH"),
])
def test_argument_mistakes_are_refused_before_anything_loads(arguments, message, tmp_path, capsys):
    argv = [str(tmp_path) if a == "D" else a for a in arguments]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: seafusion-eval") and message in err, err
    assert not (tmp_path / "out").exists()
