"""The user's guide stays true: links resolve, every parameter and tool is documented where users look."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
         *sorted((ROOT / "seafusion_ros/weights").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {github_anchor(m[1]) for m in re.finditer(r"^#+ (.+)$", page.read_text(encoding="utf-8"), re.MULTILINE)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists() or (anchor and resolved.suffix == ".md" and anchor not in anchors(resolved)):
            broken.append(target)
    assert broken == [], f"{page.name}: broken links {broken}"


def test_github_anchor_matches_githubs_rule() -> None:
    assert github_anchor("Transport of large images (Fast DDS)") == "transport-of-large-images-fast-dds"
    assert github_anchor("Reproducing the tables in results.md") == "reproducing-the-tables-in-resultsmd"


def test_every_node_parameter_is_documented_and_in_the_config() -> None:
    from seafusion_ros.ros.parameters import PARAMETERS

    node_page = (ROOT / "docs/node.md").read_text(encoding="utf-8")
    config = (ROOT / "config/seafusion.yaml").read_text(encoding="utf-8")
    for spec in PARAMETERS:
        assert f"`{spec.name}`" in node_page, f"{spec.name} missing from docs/node.md"
        leaf = spec.name.rsplit(".", 1)[-1]
        assert re.search(rf"^\s+{re.escape(leaf)}:", config, re.MULTILINE), f"{spec.name} missing from the config"


def test_readme_names_every_console_script() -> None:
    setup = (ROOT / "setup.py").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    scripts = re.findall(r'"([a-z_-]+) = seafusion_ros\.', setup)
    assert len(scripts) >= 10
    for script in scripts:
        assert f"`{script}" in readme, f"{script} missing from README.md"


def test_readme_stays_a_short_guide() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 220
