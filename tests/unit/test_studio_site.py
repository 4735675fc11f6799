"""The studio's static site (shared/studio.py) and its stylesheet: what is served, what never is, and
colours that stay readable. No I/O beyond a temporary folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.studio import SECURITY_HEADERS, STUDIO_ROOT, StudioSite, is_safe_path


@pytest.fixture
def site(tmp_path: Path) -> StudioSite:
    root = tmp_path / "studio"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>studio</title>")
    (root / "js" / "app.js").write_text("export {};")
    (root / "tests").mkdir()
    (root / "tests" / "model.test.mjs").write_text("// not served")
    (root / ".secret.js").write_text("hidden")
    (root / "notes.md").write_text("not a served type")
    (tmp_path / "outside.js").write_text("outside the folder")
    (root / "link.js").symlink_to(tmp_path / "outside.js")
    (root / "linked").symlink_to(tmp_path, target_is_directory=True)
    return StudioSite(root)


def test_the_page_is_served_for_the_empty_path_with_its_security_headers(site: StudioSite) -> None:
    reply = site.get("")
    assert reply.status == 200 and reply.body.startswith(b"<!doctype html>")
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers[name] == value
    assert reply.headers["Cache-Control"] == "no-cache"
    assert site.get("index.html").body == reply.body


def test_only_plain_files_of_served_types_inside_the_folder_are_served(site: StudioSite) -> None:
    assert site.names() == ["index.html", "js/app.js"]
    assert site.get("js/app.js").headers["Content-Type"] == "text/javascript; charset=utf-8"
    for path in ("tests/model.test.mjs", ".secret.js", "notes.md", "link.js", "linked/outside.js", "missing.js"):
        assert site.get(path).status == 404, path


@pytest.mark.parametrize(
    "path",
    ["../index.html", "js/../index.html", "js/./app.js", "/index.html", "js//app.js", "js\\app.js", ".git/config",
     "js/.app.js", "%2e%2e/x.js", "js/app.js%00", "js/app.js\x00", "js/app.js/", "a" * 300, "ïndex.html"],
)  # fmt: skip
def test_paths_that_could_leave_the_folder_or_hide_a_name_are_never_resolved(site: StudioSite, path: str) -> None:
    assert not is_safe_path(path)
    assert site.get(path).status == 404


def test_an_unchanged_file_is_revalidated_with_its_etag(site: StudioSite) -> None:
    etag = site.get("js/app.js").headers["ETag"]
    assert site.get("js/app.js", if_none_match=etag).status == 304
    assert site.get("js/app.js", if_none_match=f'"other", {etag}').status == 304
    assert site.get("js/app.js", if_none_match='"stale"').status == 200
    assert site.get("index.html").headers["ETag"] != etag


def test_a_folder_without_its_page_is_a_deployment_fault(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="index.html"):
        StudioSite(tmp_path)


def test_the_shipped_studio_serves_its_page_scripts_and_styles_and_not_its_tests() -> None:
    names = StudioSite(STUDIO_ROOT).names()
    assert {"index.html", "studio.css", "js/app.js", "js/model.js"} <= set(names)
    assert not [n for n in names if n.startswith("tests/")]
    # Every module the page imports is served (a typo would be a blank page in production).
    for name in [n for n in names if n.endswith(".js")]:
        source = (STUDIO_ROOT / name).read_text()
        for imported in re.findall(r'from "\./([\w.]+)"', source):
            assert f"js/{imported}" in names, f"{name} imports {imported}, which is not served"


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_contrast_ratio_matches_wcag_reference_values() -> None:
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0
    assert round(contrast("#767676", "#ffffff"), 2) == 4.54  # the classic AA grey


def test_every_text_colour_of_the_stylesheet_is_readable_on_the_backgrounds_it_is_used_on() -> None:
    css = (STUDIO_ROOT / "studio.css").read_text()
    colours = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", css))
    texts = ["fg", "muted", "link", "finished", "failed", "running", "waiting", "canceled"]
    for background in ("bg", "panel"):
        for text in texts:
            ratio = contrast(colours[text], colours[background])
            assert ratio >= 4.5, f"--{text} on --{background}: {ratio:.2f}:1 (AA needs 4.5:1)"
    assert contrast("#ffffff", colours["failed"]) >= 4.5  # the danger button's label
    for background in ("bg", "panel"):  # borders of inputs and cards, graph edges: 3:1 (WCAG 1.4.11)
        ratio = contrast(colours["line"], colours[background])
        assert ratio >= 3, f"--line on --{background}: {ratio:.2f}:1 (non-text contrast needs 3:1)"
    assert contrast("#e6edf3", "#0d1117") >= 4.5  # the log
