"""Browser tests of the built leaderboard: Debian's Chromium driven by Playwright, offline."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from medbench.records import read_record
from medbench.site import build_site, make_server
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
FRAGILITY = '[id="quickstart.ranking-fragility"]'


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
        root / "leaderboard", specs, ["brain_tumor_mri", "pneumonia_cxr"], n_images=20, n_boot=20
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


def test_index_ranks_as_the_records_say(
    page: Page, site_url: str, built: tuple[Path, Path]
) -> None:
    page.goto(site_url)
    expected = [title for _, title in sorted(models_by(built, "fragility_index"))]
    models = [m.removesuffix(" test model") for m in column(page, FRAGILITY, 1)]
    assert models == expected
    assert column(page, FRAGILITY, 0) == ["1", "2", "3", "4"]
    expect(page.locator(f"{FRAGILITY} thead th").nth(2)).to_have_attribute("aria-sort", "ascending")


def test_sorting_by_click_and_keyboard_sets_aria_sort(
    page: Page, site_url: str, built: tuple[Path, Path]
) -> None:
    page.goto(site_url)
    headers = page.locator(f"{FRAGILITY} thead th")
    by_f1 = sorted(models_by(built, "mean_f1_all"))
    headers.nth(3).get_by_role("button").click()
    expect(headers.nth(3)).to_have_attribute("aria-sort", "ascending")
    expect(headers.nth(2)).not_to_have_attribute("aria-sort", "ascending")
    assert [m.removesuffix(" test model") for m in column(page, FRAGILITY, 1)] == [
        t for _, t in by_f1
    ]
    headers.nth(3).get_by_role("button").click()
    expect(headers.nth(3)).to_have_attribute("aria-sort", "descending")
    assert [m.removesuffix(" test model") for m in column(page, FRAGILITY, 1)] == [
        t for _, t in by_f1
    ][::-1]
    model_button = headers.nth(1).get_by_role("button")
    model_button.focus()
    page.keyboard.press("Enter")
    expect(headers.nth(1)).to_have_attribute("aria-sort", "ascending")
    expect(headers.nth(3)).not_to_have_attribute("aria-sort", "descending")
    titles = sorted(t for _, t in by_f1)
    assert [m.removesuffix(" test model") for m in column(page, FRAGILITY, 1)] == titles
    page.keyboard.press("Space")
    expect(headers.nth(1)).to_have_attribute("aria-sort", "descending")
    assert [m.removesuffix(" test model") for m in column(page, FRAGILITY, 1)] == titles[::-1]


def test_task_filter_hides_other_tasks(page: Page, site_url: str) -> None:
    page.goto(site_url)
    page.get_by_label("Show task").select_option("pneumonia_cxr")
    expect(page.locator(f'{FRAGILITY} th[data-task="brain_tumor_mri"]')).to_be_hidden()
    expect(page.locator(f'{FRAGILITY} th[data-task="pneumonia_cxr"]')).to_be_visible()
    expect(page.locator('tr[data-task="brain_tumor_mri"]').first).to_be_hidden()
    page.get_by_label("Show task").select_option("")
    expect(page.locator(f'{FRAGILITY} th[data-task="brain_tumor_mri"]')).to_be_visible()


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
            if target.endswith(".html"):
                todo.append(target)
            elif target not in checked:
                checked.add(target)
                response = page.request.get(target)
                assert response.ok, f"{url} links to {link}: HTTP {response.status}"
    assert failed == []
    assert len(done) == 1 + 4 + 2 + 1  # index, models, tasks, methods
    assert {urlsplit(u).hostname for u in requests} == {"127.0.0.1"}
    assert any(u.endswith("/static/sort.js") for u in requests)


def test_ranked_table_shows_with_javascript_off(browser: Browser, site_url: str) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(site_url)
    expect(page.locator(FRAGILITY)).to_be_visible()
    expect(page.locator(f"{FRAGILITY} tbody tr")).to_have_count(4)
    expect(page.locator(f"{FRAGILITY} thead button")).to_have_count(0)
    expect(page.locator("#task-filter-block")).to_be_hidden()
    expect(page.locator(f'{FRAGILITY} td[data-task="brain_tumor_mri"]').first).to_be_visible()
    context.close()


def test_screenshots_of_the_index_and_a_model_page(
    page: Page, site_url: str, tmp_path: Path
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(site_url)
    page.screenshot(path=tmp_path / "index.png", full_page=True)
    page.goto(site_url + "models/med.html")
    expect(page.locator("figure img")).to_be_visible()
    assert page.locator("figure img").evaluate("img => img.naturalWidth") > 0
    page.screenshot(path=tmp_path / "model.png", full_page=True)
    assert (tmp_path / "index.png").stat().st_size > 10_000
    assert (tmp_path / "model.png").stat().st_size > 10_000
