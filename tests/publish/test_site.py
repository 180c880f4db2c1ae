"""Tests of medbench.publish.site: reproducible, escaped, self-contained, accessible pages."""

from __future__ import annotations

import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

from medbench.errors import MedbenchError, RecordError
from medbench.publish.reading import read_record
from medbench.publish.record import Record
from medbench.publish.site import build_site
from medbench.publish.writing import write_record
from medbench.score.scoring import score_answers
from medbench.spec.loading import load_specs
from tests.leaderboard_data import (
    FAMILIES,
    TASKS,
    answer_keys,
    make_answers,
    make_layout,
    model_spec,
    provenance,
    publish_many,
    publish_synthetic,
)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
TWO_TASKS = ["brain_tumor_mri", "pneumonia_cxr"]


class Page(HTMLParser):
    """Tags with their attributes, the text of every element, tables and their headers."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def links(self) -> list[str]:
        return [v for _, a in self.tags for k, v in a.items() if k in ("href", "src") and v]


@pytest.fixture(scope="module")
def board(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three records (a pair and a test model whose title tries to inject a script); the
    medical and the test model answer image variants too (severity curves, four quadrants)."""
    folder = tmp_path_factory.mktemp("board") / "leaderboard"
    specs = [
        model_spec("gen", title="General 4B"),
        model_spec("med", title="Medical 4B", base="gen", medical=True),
        model_spec("tiny", title=SCRIPT, test_model=True),
    ]
    dates = {"gen": "2026-01-15", "med": "2026-02-01", "tiny": "2026-01-20"}
    publish_synthetic(
        folder,
        specs,
        TWO_TASKS,
        dates=dates,
        task_titles={"pneumonia_cxr": ATTRIBUTE},
        image_models=["med", "tiny"],
    )
    return folder


@pytest.fixture(scope="module")
def site(board: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site") / "_site"
    build_site(board, out)
    return out


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def pages(folder: Path) -> dict[str, Page]:
    return {
        p.relative_to(folder).as_posix(): Page(p.read_text())
        for p in sorted(folder.rglob("*.html"))
    }


def test_build_site_writes_every_page(site: Path) -> None:
    assert sorted(p for p in pages(site) if not p.startswith("compare/")) == [
        *(f"flips/quickstart~{m}~{t}.html" for m in ("gen", "med", "tiny") for t in TWO_TASKS),
        "index.html",
        "methods.html",
        "models/gen.html",
        "models/med.html",
        "models/tiny.html",
        "tasks/brain_tumor_mri.html",
        "tasks/pneumonia_cxr.html",
    ]
    assert sorted(p.name for p in (site / "static").iterdir()) == [
        "favicon.svg",
        "sort.js",
        "style.css",
        "view.js",
    ]
    assert sorted(p.name for p in (site / "charts").iterdir()) == [
        *(f"quickstart~chart~{t}.svg" for t in TWO_TASKS),
        "quickstart~gen.svg",
        "quickstart~med.svg",
        "quickstart~tiny.svg",
    ]


def test_build_site_twice_gives_byte_identical_trees(
    board: Path, site: Path, tmp_path: Path
) -> None:
    build_site(board, tmp_path / "again")
    assert tree(tmp_path / "again") == tree(site)


def test_build_site_build_date_is_the_newest_record_date(site: Path) -> None:
    assert "records of 2026-02-01 with medbench" in (site / "index.html").read_text()


def test_build_site_titles_render_as_text(site: Path) -> None:
    for name, page in pages(site).items():
        assert not any(tag == "script" and "src" not in attrs for tag, attrs in page.tags), name
        assert not any("onerror" in attrs for _, attrs in page.tags), name
        assert not any(tag == "img" and attrs.get("src") == "x" for tag, attrs in page.tags), name
    index = (site / "index.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in index
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in index
    assert SCRIPT in "".join(Page(index).text) and ATTRIBUTE in "".join(Page(index).text)
    task = (site / "tasks" / "pneumonia_cxr.html").read_text()
    assert f"<h1>{ATTRIBUTE}</h1>" not in task and "<h1>&#34;&gt;&lt;img" in task
    model = (site / "models" / "tiny.html").read_text()
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in model
    svg = (site / "charts" / "quickstart~tiny.svg").read_text()
    assert "<script" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg


def test_build_site_every_link_resolves_to_a_file(site: Path) -> None:
    homepages = {f"https://example.org/{t}" for t in TWO_TASKS}
    for name, page in pages(site).items():
        for link in page.links():
            if name.startswith("tasks/") and link in homepages:
                continue  # the dataset's homepage: the one link that leaves the site
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc and not link.startswith("/"), (name, link)
            if parts.path:
                target = (site / name).parent / parts.path
                assert target.resolve().is_file(), (name, link)


def test_build_site_makes_no_external_reference(site: Path) -> None:
    homepages = {f"https://example.org/{t}" for t in TWO_TASKS}
    for name, page in pages(site).items():
        attributes = [v or "" for _, attrs in page.tags for v in attrs.values()]
        outside = [v for v in attributes if "http" in v or v.startswith("//")]
        # Only a task page links out, to its dataset's homepage (a link loads nothing).
        assert set(outside) <= (homepages if name.startswith("tasks/") else set()), name
        text = (site / name).read_text()
        assert set(re.findall(r"https?://[^\s<\"']+", text)) <= homepages, name
    for path in [*site.glob("static/*.js"), *site.glob("static/*.css")]:
        assert not re.search(r"https?:|['\"(]//", path.read_text()), path
    for path in site.rglob("*.svg"):  # an SVG names its XML namespace by address: no request
        links = re.findall(r"(?:href|src)=\"([^\"]*)\"", path.read_text())
        assert all(link.startswith(("#", "data:")) for link in links), path


def test_build_site_tables_have_captions_scopes_and_downloads(site: Path) -> None:
    for name, page in pages(site).items():
        # Each table is labelled by a caption above its scroll box, never cut by the box.
        ids = {attrs.get("id") for _, attrs in page.tags}
        tables = [attrs for tag, attrs in page.tags if tag == "table"]
        assert all(a.get("aria-labelledby") in ids for a in tables), name
        assert all(
            attrs.get("scope") in ("col", "row") for tag, attrs in page.tags if tag == "th"
        ), name
        downloads = [
            link for link in page.links() if "/data/" in f"/{link}" and "/all." not in f"/{link}"
        ]
        sortable = [a for t, a in page.tags if t == "table" and a.get("class") == "sortable"]
        assert len(downloads) == 2 * len(sortable), name
    index = Page((site / "index.html").read_text())
    assert [a.get("aria-sort") for t, a in index.tags if t == "th" and a.get("aria-sort")] == [
        "descending",
        "ascending",
        "ascending",
    ]


def test_build_site_index_ranks_skilled_models_by_all_variants_kappa(
    board: Path, site: Path
) -> None:
    records = [read_record(p) for p in sorted(board.glob("*/*.json"))]

    def key(record: Record) -> tuple[bool, float]:
        # with skill: by the headline; without: by the mean kappa of single wordings
        row = record.models[0]
        skilled = float(row["all_variants_kappa_lo"]) > 0  # type: ignore[arg-type]
        return not skilled, -float(row["all_variants_kappa" if skilled else "mean_kappa"])  # type: ignore[arg-type]

    expected = sorted(records, key=key)
    rows = json.loads((site / "data" / "quickstart~ranking.json").read_text())
    assert [row["model"] for row in rows] == [r.model_id for r in expected]
    assert [row["rank"] for row in rows] == [1, 2, 3]
    for row in rows:  # the range its 95% interval allows, shown where it is not one rank
        best, worst = row["rank_best"], row["rank_worst"]
        assert row["rank_range"] == (str(best) if best == worst else f"{best}–{worst}")
    assert [row["all_variants_kappa"] for row in rows] == [
        r.models[0]["all_variants_kappa"] for r in expected
    ]
    for row, record in zip(rows, expected, strict=True):  # no fragility without skill
        skilled = float(record.models[0]["all_variants_kappa_lo"]) > 0  # type: ignore[arg-type]
        shown = record.models[0]["fragility_index"] if skilled else None
        assert row["fragility_index"] == shown
    index = (site / "index.html").read_text()
    table = index[index.index('id="quickstart~ranking"') :].split("</table>")[0]
    linked = re.findall(r'href="models/([^"]+)\.html"', table)
    assert linked == [r.model_id for r in expected]


def test_build_site_marks_test_models(site: Path) -> None:
    note = "test model: random or demonstration weights, not a real result"
    assert note in (site / "index.html").read_text()
    assert note in (site / "models" / "tiny.html").read_text()
    assert note not in (site / "models" / "gen.html").read_text()
    rows = json.loads((site / "data" / "quickstart~ranking.json").read_text())
    assert {row["model"]: row["test_model"] for row in rows} == {
        "gen": False,
        "med": False,
        "tiny": True,
    }


def test_build_site_model_page_shows_heatmap_pairs_and_rates(site: Path) -> None:
    page = (site / "models" / "med.html").read_text()
    assert '<img src="../charts/quickstart~med.svg" alt="Heatmap of f1_all of Medical 4B' in page
    for caption in (
        "scores per task and prompt variant",
        "fragility across the variants",
        "medical model minus its base",
    ):
        assert caption in page
    assert "Refusal rate" in page and "Unparseable rate" in page
    svg = (site / "charts" / "quickstart~med.svg").read_text()
    assert "<title>Heatmap of f1_all of Medical 4B" in svg
    assert "dc:date" not in svg and "<!DOCTYPE" not in svg
    assert "medical model minus its base" in (site / "models" / "gen.html").read_text()


def test_build_site_task_page_uses_specs_when_given(board: Path, tmp_path: Path) -> None:
    specs = load_specs(REPO / "specs")
    build_site(board, tmp_path / "out", specs=specs)
    page = (tmp_path / "out" / "tasks" / "brain_tumor_mri.html").read_text()
    task = specs.tasks["brain_tumor_mri"]
    assert f"<h1>{task.title}</h1>" in page
    assert f"<dt>Difficulty</dt><dd>{task.difficulty} (1 = easiest)</dd>" in page
    sample = task.data["sample"]
    assert f"<dt>Licence</dt><dd>{sample.license or '–'}</dd>" in page.replace("&#39;", "'")


def test_build_site_task_page_without_specs_uses_the_records(site: Path) -> None:
    page = (site / "tasks" / "brain_tumor_mri.html").read_text()
    assert "<h1>Brain tumor mri</h1>" in page
    assert "<dt>Licence</dt><dd>CC BY 4.0</dd>" in page
    assert (
        'Dataset homepage: <a class="external" href="https://example.org/brain_tumor_mri" '
        'rel="noopener noreferrer">https://example.org/brain_tumor_mri</a>'
    ) in page


def test_build_site_shows_the_knowledge_ladder_when_recorded(tmp_path: Path) -> None:
    answers = make_answers(["gen"], TWO_TASKS, n_images=6)
    layout = make_layout(TWO_TASKS, [], n_boot=10)
    ladder = [
        {
            "task": t,
            "closed_f1_all": 0.5,
            "describe_f1_all": 0.55,
            "probe_f1": 0.8,
            "chance_f1": 0.4,
        }
        for t in TWO_TASKS
    ]
    write_record(
        tmp_path / "board",
        suite="quickstart",
        spec=model_spec("gen"),
        answers=answers,
        answer_keys=answer_keys(answers, "gen"),
        tables=score_answers(answers, layout),
        layout=layout,
        provenance=provenance(TWO_TASKS),
        ladder=ladder,
    )
    build_site(tmp_path / "board", tmp_path / "out")
    page = (tmp_path / "out" / "models" / "gen.html").read_text()
    assert "quickstart: knowledge ladder" in page and "probe f1" in page
    assert "knowledge ladder" not in (tmp_path / "out" / "index.html").read_text()


def test_build_site_malformed_record_fails_and_leaves_out_untouched(
    board: Path, site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(board, tmp_path / "leaderboard")
    shutil.copytree(site, tmp_path / "_site")
    monkeypatch.chdir(tmp_path)
    path = Path("leaderboard/quickstart/tiny.json")
    data = json.loads(path.read_text())
    del data["dataset"]["fingerprint"]
    data["date"] = 20260115
    path.write_text(json.dumps(data))
    before = tree(Path("_site"))
    message = (
        r"leaderboard/quickstart/tiny\.json:1:\d+: dataset\.fingerprint: field required\n"
        r"leaderboard/quickstart/tiny\.json:1:\d+: date: input should be a valid string, "
        r"got 20260115"
    )
    with pytest.raises(RecordError, match=f"^{message}$"):
        build_site(Path("leaderboard"), Path("_site"))
    assert tree(Path("_site")) == before


def test_build_site_refuses_to_replace_the_working_directory(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("keep")
    message = ".: refusing to replace this folder; build into a folder of its own, e.g. _site."
    with pytest.raises(MedbenchError, match=f"^{re.escape(message)}$"):
        build_site(board, Path("."))
    assert (tmp_path / "keep.txt").read_text() == "keep"


def test_build_site_empty_leaderboard_explains_how_to_submit(tmp_path: Path) -> None:
    (tmp_path / "leaderboard").mkdir()
    build_site(tmp_path / "leaderboard", tmp_path / "out")
    index = (tmp_path / "out" / "index.html").read_text()
    assert "No results yet" in index
    assert "medbench publish --suite paper --model YOUR-MODEL" in index
    assert "pull request" in index
    assert "<table" not in index


@pytest.mark.slow
def test_build_site_index_is_under_200_kb_for_50_models_and_4_tasks(tmp_path: Path) -> None:
    publish_many(tmp_path / "board", 25, list(TASKS))
    build_site(tmp_path / "board", tmp_path / "out")
    size = (tmp_path / "out" / "index.html").stat().st_size
    print(f"index.html for 50 models x 4 tasks: {size} bytes")
    assert size < 200_000
    rows = json.loads((tmp_path / "out" / "data" / "quickstart~ranking.json").read_text())
    assert len(rows) == 50


SAFE_MAP = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
    b'xmlns:xlink="http://www.w3.org/1999/xlink"><title>map</title>'
    b'<use xlink:href="#m0"/></svg>\n'
)


def _record_with_maps(tmp_path: Path, svg: bytes) -> Path:
    answers = make_answers(["gen"], TWO_TASKS, n_images=6)
    layout = make_layout(TWO_TASKS, [], n_boot=10)
    record = write_record(
        tmp_path / "board",
        suite="quickstart",
        spec=model_spec("gen"),
        answers=answers,
        answer_keys=answer_keys(answers, "gen"),
        tables=score_answers(answers, layout),
        layout=layout,
        provenance=provenance(TWO_TASKS),
    )
    maps = record.with_name("gen.tsne")
    maps.mkdir()
    (maps / "pneumonia_cxr.svg").write_bytes(svg)
    return record


def test_build_site_shows_published_tsne_maps_on_the_model_page(tmp_path: Path) -> None:
    _record_with_maps(tmp_path, SAFE_MAP)
    build_site(tmp_path / "board", tmp_path / "out")
    page = Page((tmp_path / "out" / "models" / "gen.html").read_text())
    maps = [a["src"] for tag, a in page.tags if tag == "img" and "tsne" in (a.get("src") or "")]
    assert maps == ["../charts/quickstart~gen~tsne~pneumonia_cxr.svg"]
    assert (tmp_path / "out" / "charts" / "quickstart~gen~tsne~pneumonia_cxr.svg").read_bytes() == (
        b'<?xml version="1.0" encoding="utf-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" '
        b'xmlns:xlink="http://www.w3.org/1999/xlink"><title>map</title>'
        b'<use xlink:href="#m0" /></svg>\n'
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"<script>alert(1)</script>", "element 'script' is not allowed"),
        (b'<image href="https://example.org/x.png"/>', "element 'image' is not allowed"),
        (b'<rect onload="alert(1)"/>', "attribute 'onload'='alert(1)' on 'rect' is not allowed"),
        (
            b'<use xlink:href="javascript:alert(1)"/>',
            "attribute 'xlink:href'='javascript:alert(1)' on 'use' is not allowed",
        ),
        (
            b'<x:script xmlns:x="http://www.w3.org/2000/svg">alert(1)</x:script>',
            "element 'script' is not allowed",
        ),
        (
            b'<h:script xmlns:h="http://www.w3.org/1999/xhtml">alert(1)</h:script>',
            "element '{http://www.w3.org/1999/xhtml}script' is not an SVG element",
        ),
        (
            b"<style>*{fill: url(//evil.example/x)}</style>",
            "style value 'url(//evil.example/x)' of 'fill' is not allowed",
        ),
        (
            b"<style>@import url(//evil.example/a.css);</style>",
            "the style sheet holds more than rules",
        ),
        (
            b'<rect style="background: url(//evil.example/x)"/>',
            "style property 'background' is not allowed",
        ),
    ],
)
def test_build_site_refuses_a_map_that_could_run_script(
    tmp_path: Path, payload: bytes, reason: str
) -> None:
    record = _record_with_maps(tmp_path, SAFE_MAP.replace(b"<title>", payload + b"<title>"))
    path = record.with_name("gen.tsne") / "pneumonia_cxr.svg"
    message = f"{os.path.relpath(path)}: refusing the SVG: {reason}"
    with pytest.raises(RecordError, match=f"^{re.escape(message)}$"):
        build_site(tmp_path / "board", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_build_site_refuses_a_map_that_is_a_link(tmp_path: Path) -> None:
    record = _record_with_maps(tmp_path, SAFE_MAP)
    secret = tmp_path / "secret.svg"
    secret.write_bytes(SAFE_MAP.replace(b"map", b"secret"))
    link = record.with_name("gen.tsne") / "skin_lesion.svg"
    link.symlink_to(secret)
    message = f"{os.path.relpath(link)}: refusing a map that is a link or not a file"
    with pytest.raises(RecordError, match=f"^{re.escape(message)}$"):
        build_site(tmp_path / "board", tmp_path / "out")


def test_build_site_refuses_a_reliability_diagram_that_could_run_script(tmp_path: Path) -> None:
    record = _record_with_maps(tmp_path, SAFE_MAP)
    folder = record.with_name("gen.reliability")
    folder.mkdir()
    path = folder / "pneumonia_cxr.svg"
    path.write_bytes(SAFE_MAP.replace(b"<title>", b"<script>alert(1)</script><title>"))
    message = f"{os.path.relpath(path)}: refusing the SVG: element 'script' is not allowed"
    with pytest.raises(RecordError, match=f"^{re.escape(message)}$"):
        build_site(tmp_path / "board", tmp_path / "out")
    path.write_bytes(SAFE_MAP)
    build_site(tmp_path / "board", tmp_path / "out")
    page = Page((tmp_path / "out" / "models" / "gen.html").read_text())
    srcs = [a["src"] for tag, a in page.tags if tag == "img" and "reliab" in (a.get("src") or "")]
    assert srcs == ["../charts/quickstart~gen~reliability~pneumonia_cxr.svg"]
    chart = tmp_path / "out" / "charts" / "quickstart~gen~reliability~pneumonia_cxr.svg"
    assert (
        chart.read_bytes()
        == (tmp_path / "out" / "charts" / "quickstart~gen~tsne~pneumonia_cxr.svg").read_bytes()
    )


def test_clean_svg_keeps_a_real_reliability_diagram_and_escapes_its_title() -> None:
    import numpy as np

    from medbench.publish.svgsafe import clean_svg
    from medbench.score.likelihood.reliability import reliability_svg

    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    truth = np.array([0, 0, 1, 1])
    svg = reliability_svg([("<b>family</b>", probs, truth)], "<script>x</script>").encode()
    cleaned = clean_svg(svg)
    assert clean_svg(cleaned) == cleaned
    assert b"<title>&lt;script&gt;x&lt;/script&gt;</title>" in cleaned
    assert b"<script" not in cleaned and b"<b>" not in cleaned


def test_clean_svg_keeps_a_real_tsne_map_and_is_idempotent() -> None:
    import numpy as np

    from medbench.publish.svgsafe import clean_svg
    from medbench.score.probe.tsne import MARKS, _draw

    positions = np.random.default_rng(0).normal(size=(6, 2))
    marks = [next(iter(MARKS))] * 6
    svg = _draw(positions, ["a", "b"] * 3, marks, "<script>x</script>").encode()
    cleaned = clean_svg(svg)
    assert clean_svg(cleaned) == cleaned
    assert cleaned.count(b"<use ") == svg.count(b"<use ") == 6 + 3
    assert b"&lt;script&gt;x&lt;/script&gt;" in cleaned and b"<script" not in cleaned


# The index chart, the one rule for what the site shows, the flip viewer and task pages.


def test_build_site_chart_has_one_mark_per_ranked_model_and_an_arrow_per_pair(
    tmp_path: Path,
) -> None:
    hf = {"backend": "hf", "baseline": None, "repo": "org/model"}
    specs = [
        model_spec("gen", title="General 4B").model_copy(update=hf),
        model_spec("med", title="Medical 4B", base="gen", medical=True).model_copy(update=hf),
        model_spec("chance", title="Baseline: chance"),
    ]
    publish_synthetic(tmp_path / "board", specs, TWO_TASKS, n_images=12, n_boot=20)
    build_site(tmp_path / "board", tmp_path / "out")
    index = (tmp_path / "out" / "index.html").read_text()
    svg = index[index.index('<svg class="chart"') : index.index("</svg>")]
    rows = json.loads((tmp_path / "out" / "data" / "quickstart~ranking.json").read_text())
    marks = re.findall(r'<g class="mark (model|baseline)" data-model="([^"]+)"><title>([^<]+)', svg)
    assert sorted(m for _, m, _ in marks) == sorted(str(r["model"]) for r in rows)
    assert {m: kind for kind, m, _ in marks} == {
        "gen": "model",
        "med": "model",
        "chance": "baseline",
    }
    assert svg.count("<circle") == 2 and svg.count("<rect") == 1
    med = next(r for r in rows if r["model"] == "med")
    tip = next(t for _, m, t in marks if m == "med")
    fragility = (
        f"{med['fragility_index']:.3f} "
        f"[{med['fragility_index_lo']:.3f}, {med['fragility_index_hi']:.3f}]"
        if med["all_variants_kappa_lo"] > 0
        else "– (no skill: never changing an uninformative answer is no robustness)"
    )
    assert tip == (
        f"Medical 4B: all-variants kappa {med['all_variants_kappa']:.3f} "
        f"[{med['all_variants_kappa_lo']:.3f}, {med['all_variants_kappa_hi']:.3f}], "
        f"fragility index {fragility}"
    )
    assert svg.count('class="pair"') == 1
    assert "<title>General 4B to its medical fine-tune Medical 4B</title>" in svg


def test_build_site_pair_summary_tones_differences_whose_interval_excludes_zero(
    site: Path,
) -> None:
    rows = json.loads((site / "data" / "quickstart~pairs.json").read_text())
    index = (site / "index.html").read_text()
    table = index[index.index('id="quickstart~pairs"') :].split("</table>")[0]
    cells = re.findall(r'<td data-sort="[^"]*"(?: class="(better|worse)")?>', table)
    expected = []
    for row in rows:
        for name, better in (
            ("f1_diff", "higher"),
            ("mcnemar_p_holm", None),
            ("fragility_diff", "lower"),
        ):
            lo, hi = row.get(f"{name}_lo"), row.get(f"{name}_hi")
            tone = ""
            if better and lo is not None and hi is not None and (lo > 0 or hi < 0):
                tone = "better" if (lo > 0) == (better == "higher") else "worse"
            expected.append(tone)
    assert cells == expected
    assert any(expected)


def test_build_site_shows_local_records_beside_published_ones(tmp_path: Path) -> None:
    published, results = tmp_path / "leaderboard", tmp_path / "results"
    gen, med = model_spec("gen", title="General 4B"), model_spec("med", base="gen", medical=True)
    publish_synthetic(published, [gen, med], TWO_TASKS, n_images=8, n_boot=10)
    publish_synthetic(published, [model_spec("x")], TWO_TASKS, suite="other", n_images=8, n_boot=10)
    local = results / "quickstart" / "leaderboard"
    fresh = [model_spec("gen", title="General 4B, fresh"), model_spec("tiny", test_model=True)]
    publish_synthetic(local, fresh, TWO_TASKS, n_images=8, n_boot=10, seed=3)
    build_site(published, tmp_path / "out", results=results)
    index = (tmp_path / "out" / "index.html").read_text()
    ranked = {
        suite: [
            r["model"]
            for r in json.loads((tmp_path / "out" / "data" / f"{suite}~ranking.json").read_text())
        ]
        for suite in ("quickstart", "other")
    }
    assert sorted(ranked["quickstart"]) == ["gen", "med", "tiny"]
    assert ranked["other"] == ["x"]
    table = index[index.index('id="quickstart~ranking"') :].split("</table>")[0]
    local_rows = re.findall(
        r'href="models/([^"]+)\.html"[^>]*>[^<]*</a>((?: <strong class="badge">[^<]+</strong>)*)',
        table,
    )
    assert {m: "local, unpublished" in badges for m, badges in local_rows} == {
        "gen": True,
        "med": False,
        "tiny": True,
    }
    assert "General 4B, fresh" in index
    assert "fresh results of <code>medbench run</code>" in index
    build_site(published, tmp_path / "published", results=None)
    assert "local, unpublished" not in (tmp_path / "published" / "index.html").read_text()


def test_build_site_flip_viewer_lists_every_flipped_image_with_prompts(
    board: Path, tmp_path: Path
) -> None:
    specs = load_specs(REPO / "specs")
    build_site(board, tmp_path / "out", specs=specs)
    page = (tmp_path / "out" / "flips" / "quickstart~gen~pneumonia_cxr.html").read_text()
    answers = make_answers(["gen", "med", "tiny"], TWO_TASKS)
    mine = answers[
        (answers.model == "gen") & (answers.task == "pneumonia_cxr") & (answers.status != "error")
    ]
    flipped = set()
    for (_family, sample), group in mine.groupby(["family", "sample"]):
        outcomes = {
            p if s == "answer" else s for s, p in zip(group.status, group.parsed, strict=True)
        }
        if len(outcomes) > 1:
            flipped.add(sample)
    shown = set(re.findall(r'<article class="flip" aria-label="Image ([^"]+)">', page))
    assert shown == flipped and flipped
    plain = next(v for v in specs.families["closed_diagnosis"].variants if v.id == "plain")
    from medbench.spec.prompts import render

    text = render(specs.families["closed_diagnosis"], plain, specs.tasks["pneumonia_cxr"], ())
    assert f"<pre>{text.messages.text}</pre>" in page
    assert "<pre>I cannot diagnose this.</pre>" in page and ">refusal</td>" in page
    model = (tmp_path / "out" / "models" / "gen.html").read_text()
    assert 'href="../flips/quickstart~gen~pneumonia_cxr.html"' in model


def test_build_site_flip_viewer_shows_each_closed_vqa_samples_own_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from markupsafe import escape
    from typer.testing import CliRunner

    from medbench.cli import app
    from medbench.run.plan import make_plan
    from tests.spec_tree import vqa_project

    project = vqa_project(tmp_path, ("baseline-chance",))
    monkeypatch.chdir(project)
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "answers.sqlite"))
    done = CliRunner().invoke(app, ["run", "specs", "--suite", "t"])
    assert done.exit_code == 0, done.output
    specs = load_specs(Path("specs"))
    build_site(Path("results/t/leaderboard"), tmp_path / "out", specs=specs)
    plan = make_plan(specs, "t", models_dir=tmp_path / "models")
    variants = [v.id for v in specs.families["closed_vqa"].variants]
    checked = 0
    for task in ("pmc_vqa_choice", "vqa_rad_yes_no"):
        page = (tmp_path / "out" / "flips" / f"t~baseline-chance~{task}.html").read_text()
        assert "option A" not in page and specs.tasks[task].question not in page
        for sample in re.findall(r'<article class="flip" aria-label="Image ([^"]+)">', page):
            article = page.split(f'aria-label="Image {sample}">', 1)[1].split("</article>")[0]
            for variant in variants:
                text = plan.prompt("closed_vqa", variant, task, sample).rendered.messages.text
                assert f"<pre>{escape(text)}</pre>" in article, (task, sample, variant)
                checked += 1
    assert checked > 0


def test_build_site_task_page_shows_question_classes_wordings_and_examples(
    board: Path, tmp_path: Path
) -> None:
    specs = load_specs(REPO / "specs")
    build_site(board, tmp_path / "out", specs=specs)
    page = (tmp_path / "out" / "tasks" / "pneumonia_cxr.html").read_text()
    task = specs.tasks["pneumonia_cxr"]
    assert f"<strong>Question:</strong> {task.question}</p>" in page
    for label in task.labels:
        assert f"<strong>{label.name}</strong> (<code>{label.id}</code>)" in page
        assert all(sign in page for sign in label.signs)
    n_variants = sum(len(specs.families[f].variants) for f in FAMILIES)
    rows = re.findall(r'<tr><th scope="row">[a-z0-9_.-]+/[a-z0-9_.-]+</th>', page)
    assert len(rows) == n_variants
    examples = re.findall(r'<img src="\.\./(img/pneumonia_cxr/[^"]+)" alt="Example of', page)
    assert len(examples) == 2 * len(task.labels)
    assert all((tmp_path / "out" / src).is_file() for src in examples)
    homepage = task.data["full"].homepage
    assert f'<a class="external" href="{homepage}" rel="noopener noreferrer">' in page


def test_build_site_marks_fragility_within_the_noise_floor(tmp_path: Path) -> None:
    from medbench.publish.verify import verify_records

    answers = make_answers(["gen"], TWO_TASKS, n_images=20)
    first = answers[(answers["variant"] == "plain") & (answers["status"] != "error")]
    again = first.assign(replicate=1)
    # the replicate disagrees with the first answer on every other image: a high noise floor
    flipped = again["sample"].str[-1].isin(list("02468"))
    again.loc[flipped, ["status", "parsed", "correct"]] = ["refusal", None, False]
    answers = pd.concat([answers, again], ignore_index=True)
    layout = make_layout(TWO_TASKS, [], n_boot=50)
    write_record(
        tmp_path / "board",
        suite="quickstart",
        spec=model_spec("gen"),
        answers=answers,
        answer_keys=answer_keys(answers, "gen"),
        tables=score_answers(answers, layout),
        layout=layout,
        provenance=provenance(TWO_TASKS),
    )
    assert verify_records(tmp_path / "board") == []
    build_site(tmp_path / "board", tmp_path / "out")
    page = (tmp_path / "out" / "models" / "gen.html").read_text()
    assert "Noise floor [95% CI]" in page
    assert "no: within the noise floor" in page


def test_build_site_task_key_outside_the_site_is_a_located_record_error(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(board, tmp_path / "leaderboard")
    monkeypatch.chdir(tmp_path)
    path = Path("leaderboard/quickstart/tiny.json")
    text = path.read_text().replace(
        '"pneumonia_cxr": {\n      "difficulty"', '"../../../x": {\n      "difficulty"'
    )
    path.write_text(text)
    line = text[: text.index('"../../../x"')].count("\n") + 1
    message = (
        f'leaderboard/quickstart/tiny.json:{line}:5: tasks["../../../x"]: not a valid id '
        "(a-z, 0-9, '.', '_', '-'), got \"../../../x\""
    )
    with pytest.raises(RecordError, match=f"^{re.escape(message)}$"):
        build_site(Path("leaderboard"), Path("_site"))
    assert not Path("x.html").exists() and not Path("_site").exists()


@pytest.mark.parametrize("name", ["../x.html", "/tmp/x.html", "data/a\0b.csv", "a/../../x"])
def test_build_site_refuses_to_write_outside_its_folder(tmp_path: Path, name: str) -> None:
    from medbench.publish.site.build import _check_name

    message = f"{tmp_path / '_site'}: refusing to write {name!r}, which is not inside the folder."
    with pytest.raises(MedbenchError, match=f"^{re.escape(message)}$"):
        _check_name(tmp_path / "_site", name)
    _check_name(tmp_path / "_site", "models/gen.html")


def test_ladder_keys_order_the_columns_by_rung_then_the_reading() -> None:
    from medbench.publish.site.pages import ladder_keys

    rows: list[dict[str, float | str | None]] = [
        {
            "task": "t",
            "reading": "r",
            "probe_vision_f1": 0.9,
            "pixel_f1": 0.6,
            "described_f1": 0.4,
            "likelihood_f1_mean": 0.7,
            "direct_f1_mean": 0.5,
            "no_image_f1": 0.3,
            "chance_f1": 0.25,
            "probe_projected_f1": 0.8,
        }
    ]
    assert ladder_keys(rows) == [
        "task",
        "chance_f1",
        "no_image_f1",
        "direct_f1_mean",
        "likelihood_f1_mean",
        "described_f1",
        "probe_vision_f1",
        "probe_projected_f1",
        "pixel_f1",
        "reading",
    ]


def test_build_site_marks_records_made_with_older_specs(tmp_path: Path) -> None:
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    current = tmp_path / "current"
    build_site(REPO / "leaderboard", current, specs=load_specs(tmp_path / "specs"))
    assert "made with older specs" not in (current / "index.html").read_text()
    task = tmp_path / "specs" / "tasks" / "pneumonia_cxr.yaml"
    task.write_text(task.read_text().replace("title: ", "title: Edited - ", 1))
    edited = tmp_path / "edited"
    build_site(REPO / "leaderboard", edited, specs=load_specs(tmp_path / "specs"))
    assert "made with older specs" in (edited / "index.html").read_text()
    page = (edited / "models" / "baseline-chance.html").read_text()
    assert (
        "<dt>Specs changed since</dt><dd>task/pneumonia_cxr (today&#39;s specs differ or are "
        "gone)</dd>"
    ) in page


def test_noise_mark_says_when_the_floor_cannot_be_told_apart() -> None:
    from medbench.publish.site.pages import _noise_mark

    row = {"disagreement_lo": 0.1, "noise_floor": 0.0, "noise_floor_hi": 0.369, "noise_floor_n": 8}
    assert _noise_mark({**row, "above_noise_floor": True}) == "yes"
    assert _noise_mark({**row, "above_noise_floor": False}) == (
        "cannot tell: the floor, measured on 8 images, may reach 0.37"
    )
    assert _noise_mark({**row, "noise_floor": 0.2, "above_noise_floor": False}) == (
        "no: within the noise floor"
    )
    assert _noise_mark({**row, "above_noise_floor": None}) is None
    assert _noise_mark({**row, "noise_floor_n": 16.0, "above_noise_floor": False}) == (
        "cannot tell: the floor, measured on 16 images, may reach 0.37"
    )


def test_build_site_pair_tables_show_raw_and_holm_adjusted_p(site: Path) -> None:
    page = (site / "models" / "med.html").read_text()
    table = page[page.index('id="quickstart~med~pairs"') :].split("</table>")[0]
    assert "p (raw)" in table and "p (Holm, across tasks)" in table
    index = (site / "index.html").read_text()
    summary = index[index.index('id="quickstart~pairs"') :].split("</table>")[0]
    assert "p (Holm, across tasks)" in summary and "p (raw)" not in summary


def test_build_site_pair_tables_say_which_interval_and_test_few_clusters_get(site: Path) -> None:
    index = (site / "index.html").read_text()
    caption = index[index.index('id="quickstart~pairs-caption"') :].split("</p>")[0]
    assert (
        "for clustered images in fewer than 30 clusters, the Δ f1_all CI of the exact cluster "
        "swap test" in caption
    )
    assert "the exact cluster permutation test (cluster_permutation) below" in caption


def _degenerate(answers: pd.DataFrame, model: str, kind: str, seed: int) -> pd.DataFrame:
    """A copy of `answers`' first model answering as a degenerate (or a skilled) model."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = answers[answers["model"] == answers["model"].iloc[0]].copy()
    rows["model"] = model
    options = rows["truth"].map(lambda t: ["yes", "no"] if t in ("yes", "no") else None)
    rows["error"], rows["text"], rows["rule"] = None, "x", "rule"
    choices = [o if o is not None else TASKS[t] for o, t in zip(options, rows["task"], strict=True)]
    if kind == "refuse":
        rows["status"], rows["parsed"] = "refusal", None
    elif kind == "constant":
        rows["status"], rows["parsed"] = "answer", [c[0] for c in choices]
    elif kind == "stable_coin_flip":  # one pick per image, kept under every wording
        pick = {s: rng.random() for s in rows["sample"].unique()}
        rows["status"] = "answer"
        rows["parsed"] = [
            c[int(pick[s] * len(c))] for c, s in zip(choices, rows["sample"], strict=True)
        ]
    else:  # right 80% of the time under every wording, errors independent
        right = rng.random(len(rows)) < 0.8
        wrong = [c[1] if c[0] == t else c[0] for c, t in zip(choices, rows["truth"], strict=True)]
        rows["status"] = "answer"
        rows["parsed"] = np.where(right, rows["truth"], wrong)
    rows["correct"] = rows["parsed"] == rows["truth"]
    return rows


def test_build_site_no_sort_puts_a_degenerate_model_first(tmp_path: Path) -> None:
    tasks = list(TASKS)
    base = make_answers(["m"], tasks, n_images=24)
    kinds = {"skilled": "right_80", "refuse": "refuse", "constant": "constant"}
    kinds["coin"] = "stable_coin_flip"
    answers = pd.concat(
        [_degenerate(base, name, kind, i) for i, (name, kind) in enumerate(kinds.items())],
        ignore_index=True,
    )
    layout = make_layout(tasks, [], n_boot=200)
    tables = score_answers(answers, layout)
    for name in kinds:
        write_record(
            tmp_path / "board",
            suite="quickstart",
            spec=model_spec(name),
            answers=answers,
            answer_keys=answer_keys(answers, model_spec(name).id),
            tables=tables,
            layout=layout,
            provenance=provenance(tasks, n_images=24),
            allow_test_models=True,
        )
    build_site(tmp_path / "board", tmp_path / "out")
    rows = json.loads((tmp_path / "out" / "data" / "quickstart~ranking.json").read_text())
    assert rows[0]["model"] == "skilled"
    for row in rows[1:]:
        assert row["fragility_index"] is None, row["model"]  # shown as "–", sorted last
    for column in ("all_variants_kappa", "mean_kappa", "mean_worst_kappa", "fragility_index"):
        present = [r for r in rows if r[column] is not None]
        best = (min if column == "fragility_index" else max)(present, key=lambda r: r[column])
        assert best["model"] == "skilled", column


METHODS = Path(__file__).resolve().parents[2] / "site" / "templates" / "methods.html"


def methods_ids() -> set[str]:
    return set(re.findall(r'\bid="([^"]+)"', METHODS.read_text()))


def test_glossary_anchors_exist_on_the_methods_page() -> None:
    from medbench.publish.site.glossary import DEFINED

    assert sorted(set(DEFINED.values()) - methods_ids()) == []


def test_every_column_the_site_can_show_has_a_definition() -> None:
    from medbench.publish.site.glossary import definition
    from medbench.publish.site.layout import FAMILY_METRICS, RANKED
    from medbench.publish.site.likelihood import CALIBRATION_COLUMNS
    from medbench.publish.site.reliance import (
        IMAGE_VARIANT_COLUMNS,
        RELIANCE_COLUMNS,
        RELIANCE_PAIR_COLUMNS,
    )
    from medbench.publish.site.robustness import QUADRANT_COLUMNS, SEVERITY_COLUMNS
    from medbench.score.probe.ladder import LADDER_COLUMNS, NO_IMAGE_COLUMN

    keys = [*FAMILY_METRICS, *RANKED, "visual_reliance", NO_IMAGE_COLUMN, "noise_floor"]
    keys += [c.key for c in [*CALIBRATION_COLUMNS, *IMAGE_VARIANT_COLUMNS, *RELIANCE_COLUMNS]]
    keys += [c.key for c in [*RELIANCE_PAIR_COLUMNS, *SEVERITY_COLUMNS, *QUADRANT_COLUMNS]]
    keys += ["dangerous", "rauc"]
    keys += LADDER_COLUMNS
    assert [k for k in keys if definition(k) is None] == []
    assert definition("all_variants_f1.pneumonia_cxr") == "all_variants_f1"
    assert definition("closed_diagnosis/plain") == "f1_all"
    assert definition("no_such_metric") is None


def test_build_site_every_column_header_links_to_its_definition(site: Path) -> None:
    ids = methods_ids()
    headers = 0
    for name in pages(site):
        html = (site / name).read_text()
        for header in re.findall(r'<th scope="col"[^>]*>.*?</th>', html):
            if "data-key=" not in header:
                continue  # the flip viewer's and task wordings' fixed tables
            headers += 1
            link = re.search(r'<a class="def" href="([^"#]*)#([^"]+)"', header)
            assert link is not None, (name, header)
            assert link.group(1).endswith("methods.html") and link.group(2) in ids, (name, header)
    assert headers > 50


def test_build_site_a_freshly_published_record_is_not_local(tmp_path: Path) -> None:
    """`medbench publish` copies a run's record into the leaderboard: the run's local copy
    (the same answers, a later date) is the published record, not a local, unpublished one."""
    published, results = tmp_path / "leaderboard", tmp_path / "results"
    local = results / "quickstart" / "leaderboard"
    publish_synthetic(local, [model_spec("gen")], TWO_TASKS, n_images=8, n_boot=10)
    shutil.copytree(local, published)
    path = next(local.glob("*/gen.json"))
    data = json.loads(path.read_text())
    data["date"] = "2026-01-02"
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    build_site(published, tmp_path / "out", results=results)
    assert "local, unpublished" not in (tmp_path / "out" / "index.html").read_text()
    data["revision"] = "f" * 40
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    build_site(published, tmp_path / "again", results=results)
    assert "local, unpublished" in (tmp_path / "again" / "index.html").read_text()


def test_build_site_comparison_viewer_shows_every_model_and_marks_changed_answers(
    site: Path,
) -> None:
    viewers = sorted(p for p in pages(site) if p.startswith("compare/"))
    for task in TWO_TASKS:
        assert f"compare/quickstart~{task}~all~1.html" in viewers
        assert f"compare/quickstart~{task}~med-vs-gen~1.html" in viewers
    page = (site / "compare" / "quickstart~pneumonia_cxr~all~1.html").read_text()
    for model in ("gen", "med", "tiny"):
        assert f'<a href="../models/{model}.html">' in page
    assert '<td class="changed"' in page and "(reference)" in page
    pair = Page((site / "compare" / "quickstart~pneumonia_cxr~med-vs-gen~1.html").read_text())
    heads = [a.get("href") for t, a in pair.tags if t == "a" and "models/" in (a.get("href") or "")]
    assert heads[:2] == ["../models/gen.html", "../models/med.html"]
    # every image's table has one row per wording: no replicate, no duplicate
    for article in page.split("<article")[1:]:
        rows = re.findall(r'<tr(?: class="reference")?><th scope="row">([^<]+)<', article)
        assert rows and len(rows) == len(set(rows))
    for start in ("index.html", "tasks/pneumonia_cxr.html", "models/med.html"):
        links = Page((site / start).read_text()).links()
        assert any("compare/quickstart~pneumonia_cxr~all~1.html" in link for link in links), start
    assert any(
        "compare/quickstart~pneumonia_cxr~med-vs-gen~1.html" in link
        for link in Page((site / "models" / "gen.html").read_text()).links()
    )


def test_flipped_leaves_out_the_noise_floor_replicate() -> None:
    from medbench.publish.site.flips import flipped

    def row(variant: str, parsed: str, replicate: int) -> dict[str, object]:
        return {
            "family": "f", "sample": "s1", "variant": variant, "truth": "a", "parsed": parsed,
            "status": "answer", "pipeline": "direct", "image_variant": "original",
            "replicate": replicate,
        }  # fmt: skip

    answers = pd.DataFrame([row("plain", "a", 0), row("plain", "b", 1), row("guided", "a", 0)])
    assert flipped(answers) == []  # a replicate that differs is noise, not a flip
    answers = pd.DataFrame([row("plain", "a", 0), row("plain", "a", 1), row("guided", "b", 0)])
    [(_, _, _, rows)] = flipped(answers)
    assert [r["variant"] for r in rows] == ["guided", "plain"]


def test_build_site_whole_download_holds_every_record_and_meets_its_schema(
    board: Path, site: Path
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((site / "data" / "all.schema.json").read_text())
    data = json.loads((site / "data" / "all.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
    records = {p.stem: json.loads(p.read_text()) for p in sorted(board.glob("*/*.json"))}
    shown = {e["record"]["model_id"]: e["record"] for e in data["records"]}
    assert sorted(shown) == sorted(records)
    for model, record in records.items():
        for table in ("scores", "fragility", "models", "pairs"):
            assert shown[model][table] == record[table], (model, table)
    assert not any(e["local"] for e in data["records"])
    broken = {**data, "records": [{"local": "no", "record": {}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft202012Validator)
    links = Page((site / "index.html").read_text()).links()
    assert "data/all.json" in links and "data/all.schema.json" in links


def test_build_site_model_page_leads_with_its_card(site: Path) -> None:
    page = (site / "models" / "med.html").read_text()
    card = page[page.index('<section class="card"') : page.index("</section>")]
    assert page.index('<section class="card"') < page.index('id="suite-quickstart"')
    terms = re.findall(r"<dt>([^<]+)</dt>", card)
    assert terms == [
        "Model id",
        "Weights",
        "Resolved revision",
        "Architecture family",
        "Medical fine-tune",
        "Pair",
        "Test model",
        "Precision and decoding",
        "Evaluated",
        "Record",
        "Spec",
    ]
    assert 'the medical fine-tune of <a href="gen.html">General 4B</a>' in card
    assert '<a href="../records/quickstart.med.json">quickstart (JSON)</a>' in card
    assert "leaderboard/quickstart/med.json in the repository" in card
    assert "specs/models/med.yaml" in card
    copy = json.loads((site / "records" / "quickstart.med.json").read_text())
    assert copy["model_id"] == "med" and copy["scores"]
    general = (site / "models" / "gen.html").read_text()
    assert '<dd>the base of <a href="med.html">Medical 4B</a></dd>' in general
    tiny = (site / "models" / "tiny.html").read_text()
    assert "<dd>yes: random or demonstration weights, not a real result</dd>" in tiny


def test_compare_pages_show_at_most_max_images(
    board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medbench.publish.site import compare

    monkeypatch.setattr(compare, "MAX_IMAGES", 7)
    build_site(board, tmp_path / "out")
    viewers = sorted((tmp_path / "out" / "compare").glob("quickstart~pneumonia_cxr~all~*.html"))
    assert [p.name for p in viewers] == [
        "quickstart~pneumonia_cxr~all~1.html",
        "quickstart~pneumonia_cxr~all~2.html",
    ]
    last = viewers[-1].read_text()
    assert last.count('<article class="compare"') == 1
    assert "more images are not shown here" in last


# Severity curves, SSIM at the model's input and the four quadrants.


def _charts(html: str) -> list[str]:
    return re.findall(r'<svg class="curves".*?</svg>', html, flags=re.S)


def _allowed(svg: str) -> ET.Element:
    """The chart parsed as XML, every element and attribute checked against the allow-lists."""
    from medbench.publish.site.curves import ATTRIBUTES, ELEMENTS

    root = ET.fromstring(svg)
    for element in root.iter():
        assert element.tag in ELEMENTS, element.tag
        assert set(element.attrib) <= ATTRIBUTES, element.attrib
    return root


def _points(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter("path") if e.get("class") == "point"]


def test_curves_svg_is_allow_listed_markup_with_a_mark_per_level_and_escaped_text() -> None:
    from medbench.publish.site.curves import Point, Series, curves_svg

    hostile = Series(
        "closed_diagnosis",
        SCRIPT,
        [Point(0, 0.9, 0.8, 1.0, 1.0), Point(2, 0.7, None, None, None)],
        0.8,
        0.7,
        0.9,
    )
    other = Series(
        "finding_present", "bias_field", [Point(4, 0.5, 0.4, 0.6, 0.6)], None, None, None
    )
    svg = curves_svg([hostile, other], ATTRIBUTE)
    root = _allowed(svg)
    assert "<script" not in svg and "<img" not in svg
    assert root.findtext("title") == ATTRIBUTE  # escaped in the markup, the same text as read
    assert len(_points(root)) == 3
    assert [e.get("class") for e in root.iter("g") if "series" in str(e.get("class"))] == [
        "series s0 d0",
        "series s1 d1",
    ]
    tips = [p.findtext("title") for p in _points(root)]
    assert tips[0] == (
        f"{SCRIPT}, closed_diagnosis, severity 0: f1_all 0.90 [0.80, 1.00], SSIM 1.00"
    )
    assert tips[2] == "bias_field, finding_present, severity 4: f1_all 0.50 [0.40, 0.60], SSIM 0.60"
    key = [t.text for t in root.iter("text") if t.get("class") == "sub"]
    assert key == ["closed_diagnosis: rAUC 0.80 [0.70, 0.90]", "finding_present: rAUC –"]
    whiskers = [e for e in root.iter("line") if e.get("class") == "whisker"]
    assert len(whiskers) == 2  # a level without an interval has none


def test_curves_svg_refuses_an_element_or_attribute_off_its_lists() -> None:
    from medbench.publish.site.curves import _el

    with pytest.raises(ValueError, match=r"^element 'script' is not allowed in a severity chart$"):
        _el("script")
    with pytest.raises(
        ValueError, match=r"^attribute 'onload' is not allowed in a severity chart$"
    ):
        _el("g", {"onload": "x"})


def test_build_site_model_page_shows_severity_curves_quadrants_and_ssim(
    board: Path, site: Path
) -> None:
    record = read_record(board / "quickstart" / "med.json")
    assert record.severity and record.quadrants and record.quadrant_models
    page = (site / "models" / "med.html").read_text()
    charts = _charts(page)
    direct = [r for r in record.severity if r["pipeline"] == "direct"]
    assert len(charts) == len({r["task"] for r in direct}) == 2
    assert sum(len(_points(_allowed(svg))) for svg in charts) == len(direct)
    for stem in ("severity", "quadrants", "image-variants"):
        assert f'id="quickstart~med~{stem}"' in page
    assert "SSIM at the model&#39;s input" in page and 'data-key="ssim"' in page
    assert 'data-key="severity"' in page and 'data-key="rauc"' in page
    for quadrant in ("ideal", "fragile", "dangerous", "worst"):
        assert f'<th scope="col" data-key="{quadrant}"' in page
    rows = json.loads((site / "data" / "quickstart~med~quadrants.json").read_text())
    assert rows == sorted(record.quadrants, key=lambda r: (r["task"], r["family"]))
    row = record.quadrant_models[0]
    assert (
        f"Dangerous quadrant: {row['dangerous']:.3f} [{row['dangerous_lo']:.3f}, "
        f"{row['dangerous_hi']:.3f}] of {row['n_images']} images over 2 tasks"
    ) in page
    ssim = json.loads((site / "data" / "quickstart~med~image-variants.json").read_text())
    varied = [r for r in ssim if r["severity"] is not None]
    assert varied and all(0 < r["ssim"] < 1 for r in varied)


def test_build_site_severity_charts_escape_record_text(site: Path) -> None:
    page = (site / "models" / "tiny.html").read_text()
    charts = _charts(page)
    assert charts
    for svg in charts:
        assert _allowed(svg).findtext("title", "").startswith(f"{SCRIPT} on ")
    assert "<script>alert" not in page
    assert f"<figcaption>{ATTRIBUTE}</figcaption>" not in page
    assert "<figcaption>&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</figcaption>" in page


def test_build_site_model_page_without_severity_or_quadrants_shows_neither(site: Path) -> None:
    page = (site / "models" / "gen.html").read_text()
    assert _charts(page) == []
    assert "~severity" not in page and "~quadrants" not in page
    assert "Dangerous quadrant" not in page and 'class="curves-grid"' not in page


def test_build_site_index_shows_dangerous_and_rauc_for_skilled_models(
    board: Path, site: Path
) -> None:
    from medbench.publish.site.ranking import has_skill

    records = {r.model_id: r for r in (read_record(p) for p in board.glob("*/*.json"))}
    rows = json.loads((site / "data" / "quickstart~ranking.json").read_text())
    for row in rows:
        record = records[row["model"]]
        for table, name in (("quadrant_models", "dangerous"), ("severity_models", "rauc")):
            found = getattr(record, table)
            if not found:
                assert name not in row, (row["model"], name)
                continue
            shown = found[0][name] if has_skill(row) else None
            assert row[name] == shown, (row["model"], name)
    assert any(r.get("dangerous") is not None for r in rows)
    index = (site / "index.html").read_text()
    table = index[index.index('id="quickstart~ranking"') :].split("</table>")[0]
    keys = re.findall(r'<th scope="col" data-key="([^"]+)"', table)
    assert keys == [
        "rank",
        "model",
        "all_variants_kappa",
        "fragility_index",
        "visual_reliance",
        "dangerous",
        "rauc",
        "mean_kappa",
        "mean_worst_kappa",
    ]
    header = re.search(r'<th scope="col" data-key="dangerous".*?</th>', table)
    assert header is not None
    assert '<span class="h">Dangerous [95% CI]</span>' in header.group(0)
    assert 'href="methods.html#dangerous"' in header.group(0)


def test_build_site_index_without_quadrants_has_no_dangerous_column(tmp_path: Path) -> None:
    specs = [model_spec("gen"), model_spec("other")]
    publish_synthetic(tmp_path / "board", specs, TWO_TASKS, n_images=12, n_boot=20)
    build_site(tmp_path / "board", tmp_path / "out")
    index = (tmp_path / "out" / "index.html").read_text()
    assert 'data-key="dangerous"' not in index and 'data-key="rauc"' not in index
    assert 'data-key="visual_reliance"' not in index


def test_methods_page_defines_ssim_severity_rauc_and_the_quadrants() -> None:
    text = METHODS.read_text()
    for anchor in ("ssim", "severity", "relative_f1", "rauc", "quadrants", "dangerous"):
        assert f'id="{anchor}"' in text
    assert "scikit-image's Gaussian-window form" in text
    from medbench.data.variants.medical import SEVERITY_SSIM

    # the bands the methods page states are the ones the severities are calibrated to
    def shown(value: float) -> str:  # two decimals at least: 0.60, 0.925
        digits = f"{value:.3f}".rstrip("0")
        return digits.ljust(4, "0")

    stated = ", ".join(
        f"{level}: {shown(low)}&ndash;{shown(high)}"
        for level, (low, high) in sorted(SEVERITY_SSIM.items())
    )
    assert f"({stated}; " in text
    assert (
        "A low flip rate alone is not safety: a 2026 study of radiology VLMs found 98.5% of one "
        "model's consistent answers in the dangerous quadrant."
    ) in text
