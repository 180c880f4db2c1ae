"""Browser tests of the built leaderboard: Debian's Chromium driven by Playwright, offline."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from medbench.publish.reading import read_record
from medbench.publish.site import build_site, make_server
from tests.leaderboard_data import model_spec, publish_synthetic

CHROMIUM = os.environ.get("MEDBENCH_CHROMIUM", "/usr/bin/chromium")
"""Debian's Chromium; MEDBENCH_CHROMIUM may name another Chromium-based browser (CI)."""
if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api")

from playwright.sync_api import Browser, Page, Request, expect  # noqa: E402

pytestmark = pytest.mark.browser
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]  # fmt: skip
RANKING = '[id="quickstart~ranking"]'
PER_TASK = '[id="quickstart~per-task"]'
REPO = Path(__file__).resolve().parent.parent
ARTEFACTS = REPO / "test-results" / "browser"
"""Screenshots of the pages, kept as the test run's artefacts."""


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {"executable_path": CHROMIUM, "args": ARGS, "headless": True}


@pytest.fixture(scope="session")
def base_url() -> str | None:
    """No base URL (pytest-base-url's own fixture warns under pytest 9; warnings are errors)."""
    return None


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("browser")
    specs = [
        model_spec("gen", title="General 4B"),
        model_spec("med", title="Medical 4B", base="gen", medical=True),
        model_spec("other", title="Other 7B"),
        model_spec("tiny", title="Tiny demo", test_model=True),
    ]
    publish_synthetic(
        root / "leaderboard",
        specs,
        ["brain_tumor_mri", "pneumonia_cxr"],
        n_images=20,
        n_boot=20,
        image_models=["gen", "med", "tiny"],  # severity curves and quadrants; "other" has none
    )
    build_site(root / "leaderboard", root / "_site")
    return root / "leaderboard", root / "_site"


@pytest.fixture(scope="module")
def site_url(built: tuple[Path, Path]) -> Iterator[str]:
    server = make_server(built[1], "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def requests(page: Page) -> list[str]:
    """Every URL the page requests, recorded as it goes."""
    seen: list[str] = []

    def record(request: Request) -> None:
        seen.append(request.url)

    page.on("request", record)
    return seen


def column(page: Page, table: str, index: int) -> list[str]:
    cells = page.locator(f"{table} tbody tr").evaluate_all(
        f"rows => rows.map(r => r.cells[{index}].textContent.trim())"
    )
    return [str(c) for c in cells]


def models_by(built: tuple[Path, Path], name: str) -> list[tuple[float, str]]:
    records = [read_record(p) for p in sorted(built[0].glob("*/*.json"))]
    return [(float(r.models[0][name] or 0), str(r.model["title"])) for r in records]


def ranked(built: tuple[Path, Path]) -> list[tuple[bool, float, float | None, str]]:
    """(skilled, sort key, fragility shown, title) of each model in the index's order: models
    whose headline interval lies above 0 first, by the headline, then the others by their mean
    kappa; no fragility without skill."""
    records = [read_record(p) for p in sorted(built[0].glob("*/*.json"))]
    rows = []
    for r in records:
        row = r.models[0]
        skilled = float(row["all_variants_kappa_lo"] or 0) > 0  # type: ignore[arg-type]
        fragility = float(row["fragility_index"]) if skilled else None  # type: ignore[arg-type]
        # with skill: by the headline; without: by the mean kappa of single wordings
        key = float(row["all_variants_kappa" if skilled else "mean_kappa"] or 0)  # type: ignore[arg-type]
        rows.append((skilled, key, fragility, str(r.model["title"])))
    return sorted(rows, key=lambda x: (not x[0], -x[1]))


def test_index_ranks_as_the_records_say(
    page: Page, site_url: str, built: tuple[Path, Path]
) -> None:
    page.goto(site_url)
    expected = [title for *_, title in ranked(built)]
    models = [m.removesuffix(" test model") for m in column(page, RANKING, 1)]
    assert models == expected
    rows = json.loads((built[1] / "data" / "quickstart~ranking.json").read_text())
    assert column(page, RANKING, 0) == [row["rank_range"] for row in rows]
    assert [row["rank"] for row in rows] == [1, 2, 3, 4]
    expect(page.locator(f"{RANKING} thead th").nth(2)).to_have_attribute("aria-sort", "descending")


def test_sorting_by_click_and_keyboard_sets_aria_sort(
    page: Page, site_url: str, built: tuple[Path, Path]
) -> None:
    page.goto(site_url)
    headers = page.locator(f"{RANKING} thead th")
    order = ranked(built)
    # a model without skill shows no fragility: last in either order, in the ranking's order
    shown = sorted((f, t) for _, _, f, t in order if f is not None)
    hidden = [t for _, _, f, t in order if f is None]
    by_f1 = [(0.0, t) for t in [t for _, t in shown] + hidden]
    headers.nth(3).get_by_role("button").click()
    expect(headers.nth(3)).to_have_attribute("aria-sort", "ascending")
    expect(headers.nth(2)).not_to_have_attribute("aria-sort", "descending")
    assert [m.removesuffix(" test model") for m in column(page, RANKING, 1)] == [
        t for _, t in by_f1
    ]
    headers.nth(3).get_by_role("button").click()
    expect(headers.nth(3)).to_have_attribute("aria-sort", "descending")
    assert [m.removesuffix(" test model") for m in column(page, RANKING, 1)] == [
        t for _, t in shown[::-1]
    ] + hidden
    model_button = headers.nth(1).get_by_role("button")
    model_button.focus()
    page.keyboard.press("Enter")
    expect(headers.nth(1)).to_have_attribute("aria-sort", "ascending")
    expect(headers.nth(3)).not_to_have_attribute("aria-sort", "descending")
    titles = sorted(t for _, t in by_f1)
    assert [m.removesuffix(" test model") for m in column(page, RANKING, 1)] == titles
    page.keyboard.press("Space")
    expect(headers.nth(1)).to_have_attribute("aria-sort", "descending")
    assert [m.removesuffix(" test model") for m in column(page, RANKING, 1)] == titles[::-1]


def test_task_filter_hides_other_tasks(page: Page, site_url: str) -> None:
    page.goto(site_url)
    page.get_by_label("Show task").select_option("pneumonia_cxr")
    expect(page.locator(f'{PER_TASK} th[data-task="brain_tumor_mri"]').first).to_be_hidden()
    expect(page.locator(f'{PER_TASK} th[data-task="pneumonia_cxr"]').first).to_be_visible()
    expect(page.locator('tr[data-task="brain_tumor_mri"]').first).to_be_hidden()
    page.get_by_label("Show task").select_option("")
    expect(page.locator(f'{PER_TASK} th[data-task="brain_tumor_mri"]').first).to_be_visible()


def test_sort_and_task_filter_state_round_trips_through_the_url(
    page: Page, site_url: str, built: tuple[Path, Path]
) -> None:
    page.goto(site_url + "index.html?sort=fragility_index&dir=asc")
    headers = page.locator(f"{RANKING} thead th")
    expect(headers.nth(3)).to_have_attribute("aria-sort", "ascending")
    by_fragility = [t for _, t in sorted(models_by(built, "fragility_index"))]
    assert [m.removesuffix(" test model") for m in column(page, RANKING, 1)] == by_fragility
    headers.nth(2).get_by_role("button").click()  # all-variants kappa, ascending
    assert page.url.endswith("index.html?sort=all_variants_kappa&dir=asc")
    page.get_by_label("Show task").select_option("pneumonia_cxr")
    assert page.url.endswith("?sort=all_variants_kappa&dir=asc&task=pneumonia_cxr")
    # One task: its ranking and chart replace the all-task ones, sorted by its own column.
    expect(page.locator(RANKING)).to_be_hidden()
    expect(page.locator("figure[data-view='all']")).to_be_hidden()
    expect(page.locator("figure[data-task-view='pneumonia_cxr'] img")).to_be_visible()
    expect(page.locator("figure[data-task-view='brain_tumor_mri']")).to_be_hidden()
    per_task = page.locator(f"{PER_TASK} thead th[data-key='all_variants_kappa.pneumonia_cxr']")
    expect(per_task).to_have_attribute("aria-sort", "ascending")
    link = page.url
    page.goto("about:blank")
    page.goto(link)  # the link reproduces the view
    expect(page.get_by_label("Show task")).to_have_value("pneumonia_cxr")
    expect(page.locator(RANKING)).to_be_hidden()
    expect(per_task).to_have_attribute("aria-sort", "ascending")
    scores = page.locator(f"{PER_TASK} tbody tr").evaluate_all(
        "rows => rows.map(r => r.querySelector('[data-task=pneumonia_cxr]').dataset.sort)"
    )
    assert [float(x) for x in scores] == sorted(float(x) for x in scores)
    page.get_by_label("Show task").select_option("")
    expect(page.locator(RANKING)).to_be_visible()
    assert page.url.endswith("index.html?sort=all_variants_kappa&dir=asc")


def test_model_filters_hide_rows_and_live_in_the_url(page: Page, site_url: str) -> None:
    page.goto(site_url + "index.html?kind=medical")
    expect(page.get_by_label("Models", exact=True)).to_have_value("medical")
    expect(page.locator(f"{RANKING} tbody tr:visible")).to_have_count(1)
    expect(page.locator(f"{RANKING} tbody tr:visible th a")).to_have_text("Medical 4B")
    page.get_by_label("Models", exact=True).select_option("")
    page.get_by_label("Test models").uncheck()
    assert page.url.endswith("index.html?test=no")
    expect(page.locator(f"{RANKING} tbody tr:visible")).to_have_count(3)
    expect(page.locator(f"{RANKING} tbody tr[data-test='yes']")).to_be_hidden()
    page.goto(site_url + "index.html?modality=no-such-modality&family=no-such-family")
    expect(page.get_by_label("Modality")).to_have_value("")  # unknown values are ignored
    expect(page.locator(f"{RANKING} tbody tr:visible")).to_have_count(4)


def test_every_link_loads_and_nothing_leaves_localhost(
    page: Page, site_url: str, requests: list[str]
) -> None:
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    todo, done, checked = [site_url + "index.html"], set(), set()
    while todo:
        url = todo.pop()
        if url in done:
            continue
        done.add(url)
        page.goto(url)
        page.wait_for_load_state("load")
        links = page.locator("[href], [src]").evaluate_all(
            "els => els.map(e => e.getAttribute('href') || e.getAttribute('src'))"
        )
        for link in links:
            target = urljoin(url, str(link)).split("#")[0]
            if urlsplit(target).hostname != "127.0.0.1":
                assert "/tasks/" in url and target.startswith("https://example.org/"), link
                continue  # a task's dataset homepage: a link out, never loaded
            if target.endswith(".html"):
                todo.append(target)
            elif target not in checked:
                checked.add(target)
                response = page.request.get(target)
                assert response.ok, f"{url} links to {link}: HTTP {response.status}"
    assert failed == []
    viewers = sum(1 for u in done if "/compare/" in u)
    assert viewers >= 2 * 2  # per task: every model and the pair, one page or more
    # index, models, tasks, methods, flip viewers, then the comparison viewers
    assert len(done) == 1 + 4 + 2 + 1 + 4 * 2 + viewers
    assert {urlsplit(u).hostname for u in requests} == {"127.0.0.1"}
    assert any(u.endswith("/static/sort.js") for u in requests)


def test_ranked_table_shows_with_javascript_off(browser: Browser, site_url: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(site_url)
    expect(page.locator(RANKING)).to_be_visible()
    expect(page.locator(f"{RANKING} tbody tr")).to_have_count(4)
    expect(page.locator(f"{RANKING} thead button")).to_have_count(0)
    expect(page.locator("#task-filter-block")).to_be_hidden()
    expect(page.locator(f'{PER_TASK} td[data-task="brain_tumor_mri"]').first).to_be_visible()
    expect(page.locator("svg.chart")).to_be_visible()
    expect(page.locator("svg.chart g.mark")).to_have_count(4)
    context.close()


def test_index_fits_1280_px_and_its_chart_has_one_mark_per_ranked_model(
    page: Page, site_url: str
) -> None:
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(site_url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    box = page.locator(RANKING).bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1280
    ranked = column(page, RANKING, 1)
    marks = page.locator("svg.chart g.mark")
    expect(marks).to_have_count(len(ranked))
    titles = marks.locator("title").all_text_contents()
    assert sorted(t.split(":")[0].removesuffix(" (baseline)") for t in titles) == sorted(
        m.removesuffix(" test model") for m in ranked
    )
    expect(page.locator("svg.chart line.pair")).to_have_count(1)


def test_index_reads_at_390_px(page: Page, site_url: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(site_url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.locator("svg.chart")).to_be_visible()
    chart = page.locator("svg.chart").bounding_box()
    assert chart is not None and chart["width"] <= 390


def test_index_sorts_by_the_dangerous_share_with_models_without_it_last(
    page: Page, site_url: str, built: tuple[Path, Path]
) -> None:
    page.goto(site_url)
    header = page.locator(f"{RANKING} thead th[data-key='dangerous']")
    expect(header).to_have_count(1)
    expect(header.locator("a.def")).to_have_attribute("href", "methods.html#dangerous")
    index = page.locator(f"{RANKING} thead th").evaluate_all(
        "ths => ths.findIndex(th => th.dataset.key === 'dangerous')"
    )
    records = {str(r.model["title"]): r for r in map(read_record, built[0].glob("*/*.json"))}

    def shown() -> list[tuple[str, float | None]]:
        cells = page.locator(f"{RANKING} tbody tr").evaluate_all(
            f"rows => rows.map(r => [r.cells[1].querySelector('a').textContent, "
            f"r.cells[{index}].dataset.sort])"
        )
        return [(str(t), float(v) if v else None) for t, v in cells]

    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    values = shown()
    present = [v for _, v in values if v is not None]
    assert len(present) >= 2 and present == sorted(present)
    assert values[len(present) :] == [(t, None) for t, v in values if v is None]
    for title, value in values:  # the record's share, for a model with skill only
        found = records[title].quadrant_models
        if value is not None:
            assert found is not None and abs(float(found[0]["dangerous"]) - value) < 1e-6  # type: ignore[arg-type]
    assert "Other 7B" in [t for t, v in values if v is None]  # it answered no image variant
    header.get_by_role("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    again = shown()
    assert [v for _, v in again if v is not None] == present[::-1]
    assert [v for _, v in again[len(present) :]] == [None] * (len(again) - len(present))


def test_model_page_shows_a_severity_chart_per_task_and_the_quadrant_table(
    page: Page, site_url: str, built: tuple[Path, Path]
) -> None:
    record = read_record(built[0] / "quickstart" / "med.json")
    direct = [r for r in record.severity or [] if r["pipeline"] == "direct"]
    curves = {(r["task"], r["family"], r["perturbation"]) for r in direct}
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(site_url + "models/med.html")
    charts = page.locator("svg.curves")
    expect(charts).to_have_count(len({r["task"] for r in direct}))
    expect(charts.first).to_be_visible()
    expect(page.locator("svg.curves path.point")).to_have_count(len(direct))
    expect(page.locator("svg.curves g.series")).to_have_count(len(curves))
    expect(page.locator("svg.curves g.entry")).to_have_count(len(curves))
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    quadrants = page.locator('[id="quickstart~med~quadrants"]')
    expect(quadrants).to_be_visible()
    expect(quadrants.locator("tbody tr")).to_have_count(len(record.quadrants or []))
    expect(page.locator('[id="quickstart~med~severity"] tbody tr')).to_have_count(
        len(record.severity or [])
    )
    expect(page.locator("p.summary").first).to_contain_text("Dangerous quadrant: 0.")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.goto(site_url + "models/other.html")
    expect(page.locator("svg.curves")).to_have_count(0)
    expect(page.locator('[id="quickstart~other~quadrants"]')).to_have_count(0)


PAGES = (
    "index.html",
    "models/med.html",
    "tasks/pneumonia_cxr.html",
    "flips/quickstart~gen~pneumonia_cxr.html",
    "methods.html",
    "compare/quickstart~pneumonia_cxr~all~1.html",
    "compare/quickstart~pneumonia_cxr~med-vs-gen~1.html",
)
SMALLEST_TEXT = """() => {
  const sizes = [];
  document.querySelectorAll("svg text").forEach(t => {
    const svg = t.ownerSVGElement, box = svg.getBoundingClientRect();
    const scale = box.width / (svg.viewBox.baseVal.width || box.width);
    sizes.push(parseFloat(getComputedStyle(t).fontSize) * scale);
  });
  return sizes.length ? Math.min(...sizes) : null;
}"""


def smallest_figure_text(page: Page, site: Path, path: str) -> float | None:
    """The smallest text of the page's SVG images, in CSS px as shown (viewBox units scaled)."""
    found = []
    for src, width in page.locator("img[src$='.svg']").evaluate_all(
        "imgs => imgs.map(i => [i.getAttribute('src'), i.getBoundingClientRect().width])"
    ):
        text = ((site / path).parent / str(src)).resolve().read_text()
        view = float(re.search(r'viewBox="0 0 ([\d.]+)', text).group(1))  # type: ignore[union-attr]
        sizes = [float(s) for s in re.findall(r"font-size: ([\d.]+)px", text)]
        found += [size * float(width) / view for size in sizes]
    return min(found, default=None)


@pytest.mark.parametrize("width", [390, 1280])
@pytest.mark.parametrize("path", PAGES)
def test_page_fits_the_viewport_and_its_chart_text_is_legible(
    page: Page, site_url: str, built: tuple[Path, Path], path: str, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 844})
    page.goto(site_url + path)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    for text in (page.evaluate(SMALLEST_TEXT), smallest_figure_text(page, built[1], path)):
        assert text is None or text >= 11, text
    for caption in page.locator("p.caption").all():  # captions stand outside the scroll box
        box = caption.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


def test_prompts_wrap_at_word_boundaries_at_390_px(page: Page, site_url: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(site_url + "flips/quickstart~gen~pneumonia_cxr.html")
    prompt = page.locator("table.flip-answers td pre").first
    words = prompt.inner_text().split()
    lines = prompt.evaluate(
        """pre => { const r = document.createRange(); r.selectNodeContents(pre);
        return r.getClientRects().length; }"""
    )
    assert lines < len(words)  # whole words share lines; no line holds a piece of a word
    box = prompt.bounding_box()
    assert box is not None and box["width"] > 250


def test_screenshots_of_index_model_task_and_flip_pages(page: Page, site_url: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    shots = {
        "synthetic-index": "",
        "synthetic-model": "models/med.html",
        "synthetic-task": "tasks/pneumonia_cxr.html",
        "synthetic-flips": "flips/quickstart~gen~pneumonia_cxr.html",
    }
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 800})
        for name, path in shots.items():
            page.goto(site_url + path)
            shot = ARTEFACTS / f"{name}-{width}.png"
            page.screenshot(path=shot, full_page=True)
            assert shot.stat().st_size > 10_000
    page.goto(site_url + "models/med.html")
    expect(page.locator("figure img").first).to_be_visible()
    assert page.locator("figure img").first.evaluate("img => img.naturalWidth") > 0


# The real quickstart: `medbench run --suite quickstart`, then `medbench site build`.


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A copy of the project after `medbench run --suite quickstart` and `medbench site build`
    (about 10 minutes on two busy cores: the demonstration models are fine-tuned first)."""
    project = tmp_path_factory.mktemp("quickstart")
    for name in ("specs", "data", "leaderboard"):
        shutil.copytree(REPO / name, project / name)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEDBENCH_CACHE": str(project / "c.sqlite")}
    env["PYTHONPATH"] = str(REPO)
    run = [sys.executable, "-m", "medbench", "run", "specs", "--suite", "quickstart"]
    done = subprocess.run(run, cwd=project, env=env, capture_output=True, text=True, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    (project / "run.out").write_text(done.stdout + done.stderr)  # the summary, then the notes
    shutil.move(project / "_site", project / "_site_run")
    build = [sys.executable, "-m", "medbench", "site", "build"]
    done = subprocess.run(build, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    server = make_server(project / "_site", "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield project, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_quickstart_run_prints_visual_reliance_zero_for_baselines_and_above_for_demo_models(
    quickstart: tuple[Path, str],
) -> None:
    import pandas as pd

    project, _ = quickstart
    out = (project / "run.out").read_text()
    assert "visual reliance: answers changed with no image / a blank image; F1 no image" in out
    block = " ".join(out.split("visual reliance:", 1)[1].split())
    for baseline in ("baseline-chance", "baseline-majority", "baseline-always-positive"):
        assert f"{baseline}: no image 0.00 [0.00-0.00], blank 0.00 [0.00-0.00]," in block
    for model in ("tiny-gemma3-general", "tiny-gemma3-med"):
        assert f"{model}: no image 0." in block
    reliance = pd.read_csv(project / "results/quickstart/reliance.csv")
    by_model = reliance.groupby("model")["reliance_no_image"].mean()
    assert (by_model[by_model.index.str.startswith("baseline-")] == 0).all()
    # Measured: the demo models change about half their answers without the image.
    assert by_model["tiny-gemma3-general"] > 0.2 and by_model["tiny-gemma3-med"] > 0.2


@pytest.mark.slow
def test_quickstart_site_build_shows_the_models_of_the_run(
    quickstart: tuple[Path, str],
) -> None:
    project, _ = quickstart

    def ranked(site: str) -> list[str]:
        import json

        rows = json.loads((project / site / "data" / "quickstart~ranking.json").read_text())
        return [str(r["model"]) for r in rows]

    expected = [
        "tiny-gemma3-med",
        "tiny-gemma3-general",
        "baseline-chance",
        "baseline-majority",
        "baseline-always-positive",
        "baseline-always-refuse",
        "baseline-stable-random",
    ]
    assert sorted(ranked("_site_run")) == sorted(expected)
    assert ranked("_site") == ranked("_site_run")
    assert (project / "_site" / "index.html").read_bytes() == (
        project / "_site_run" / "index.html"
    ).read_bytes()


@pytest.mark.slow
def test_quickstart_specialised_model_ranks_first_and_general_flips_are_listed(
    page: Page, quickstart: tuple[Path, str]
) -> None:
    _, url = quickstart
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    box = page.locator(RANKING).bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1280
    first = page.locator(f"{RANKING} tbody tr").first.locator("th a")
    expect(first).to_have_attribute("href", "models/tiny-gemma3-med.html")
    expect(page.locator("svg.chart g.mark")).to_have_count(7)
    expect(page.locator("svg.chart g.mark.baseline")).to_have_count(5)
    page.screenshot(path=ARTEFACTS / "quickstart-index.png", full_page=True)
    page.goto(url + "models/tiny-gemma3-general.html")
    page.screenshot(path=ARTEFACTS / "quickstart-model.png", full_page=True)
    page.get_by_role("link", name="Pneumonia on paediatric chest X-ray").first.click()
    flips = page.locator("article.flip")
    assert flips.count() > 0
    first_flip = flips.first
    rows = first_flip.locator("tbody tr")
    assert rows.count() >= 2
    prompt = rows.first.locator("td").nth(0).inner_text()
    assert "chest X-ray" in prompt or "pneumonia" in prompt.lower()
    answers = {rows.nth(i).locator("td").nth(2).inner_text() for i in range(rows.count())}
    assert len(answers) > 1, "a flipped image has answers that differ"
    expect(first_flip.locator("img")).to_have_count(1)
    page.screenshot(path=ARTEFACTS / "quickstart-flips.png", full_page=True)
    page.goto(url + "tasks/pneumonia_cxr.html")
    expect(page.locator(".examples img").first).to_be_visible()
    page.screenshot(path=ARTEFACTS / "quickstart-task.png", full_page=True)


@pytest.mark.slow
def test_quickstart_scores_ssim_severity_curves_and_quadrants_and_the_site_shows_them(
    page: Page, quickstart: tuple[Path, str]
) -> None:
    import pandas as pd

    from medbench.spec.imagevariants import IMAGE_ABLATIONS

    project, url = quickstart
    results = project / "results" / "quickstart"
    images = pd.read_csv(results / "image_variants.csv")
    tiny = images[images["model"].isin(["tiny-gemma3-general", "tiny-gemma3-med"])]
    varied = tiny[~tiny["transform"].isin(["original", *IMAGE_ABLATIONS])]
    assert not varied.empty
    # measured on the image as each model receives it, for every transformed variant
    assert varied["ssim"].notna().all() and varied["ssim"].between(0, 1).all()
    severity = pd.read_csv(results / "severity.csv")
    quadrants = pd.read_csv(results / "quadrants.csv")
    med = "tiny-gemma3-med"
    direct = severity[(severity["model"] == med) & (severity["pipeline"] == "direct")]
    assert not direct.empty and (quadrants["model"] == med).any()
    assert set(direct["severity"]) >= {0, 2, 4}
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url + f"models/{med}.html")
    expect(page.locator("svg.curves").first).to_be_visible()
    expect(page.locator("svg.curves path.point")).to_have_count(len(direct))
    table = page.locator(f'[id="quickstart~{med}~quadrants"]')
    expect(table).to_be_visible()
    expect(table.locator("tbody tr")).to_have_count(int((quadrants["model"] == med).sum()))
    expect(page.locator("p.summary").first).to_contain_text("Dangerous quadrant")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTEFACTS / "quickstart-model-severity.png", full_page=True)


def test_every_column_header_links_to_a_definition_that_exists(page: Page, site_url: str) -> None:
    targets: set[str] = set()
    for path in ("index.html", "models/med.html", "tasks/pneumonia_cxr.html"):
        page.goto(site_url + path)
        headers = page.locator("table.sortable thead th")
        assert headers.count() > 0
        for i in range(headers.count()):
            link = headers.nth(i).locator("a.def")
            expect(link).to_have_count(1)
            targets.add(urljoin(site_url + path, str(link.get_attribute("href"))))
    for target in sorted(targets):
        page.goto(target)
        anchor = urlsplit(target).fragment
        expect(page.locator(f'[id="{anchor}"]')).to_have_count(1)
        expect(page.locator(f'[id="{anchor}"]')).to_be_visible()


@pytest.mark.parametrize("width", [390, 1280])
def test_comparison_viewer_shows_both_models_of_a_pair_with_changes_marked(
    page: Page, site_url: str, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 844})
    page.goto(site_url + "models/med.html")
    page.get_by_role("link", name="against its medical fine-tune").first.click()
    assert "/compare/quickstart~" in page.url and "~med-vs-gen~1.html" in page.url
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    first = page.locator("article.compare").first
    heads = first.locator("table.compare-answers thead th a")
    expect(heads).to_have_text(["General 4B", "Medical 4B"])
    rows = first.locator("table.compare-answers tbody tr")
    assert rows.count() >= 2
    expect(rows.first.locator("td")).to_have_count(2)
    changed = page.locator("table.compare-answers td.changed")
    assert changed.count() > 0
    expect(changed.first).to_be_visible()
    colour = changed.first.evaluate("td => getComputedStyle(td).backgroundColor")
    plain = first.locator("tr.reference td").first.evaluate(
        "td => getComputedStyle(td).backgroundColor"
    )
    assert colour != plain  # a changed answer stands out
    expect(page.locator("nav.pager").first).to_be_visible()
    second = page.locator("nav.pager").first.get_by_role("link", name="2")
    if second.count():
        second.click()
        assert page.url.endswith("~med-vs-gen~2.html")
