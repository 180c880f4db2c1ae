"""Served snapshots: recorded by a run, used by plan and score, and a change named."""

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from medbench.run import identity
from medbench.run.cache import Cache
from medbench.run.diagnose import attach_diagnoses
from medbench.run.loop import RunSummary, run_suite
from medbench.run.plan import Plan, make_plan
from medbench.run.served import Probing, SnapshotLog, recorded
from medbench.spec.loading import load_specs
from tests.openai_fakes import FakeServer, completion, fake_server
from tests.spec_tree import make_project

OLD, NEW = "fake-model-2026-01-01", "fake-model-2026-06-01"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with fake_server() as fake:
        yield fake


@pytest.fixture
def project(tmp_path: Path, server: FakeServer) -> Path:
    project = make_project(tmp_path, models=("tiny-llava",), limit_per_class=1)
    (project / "specs/models/fake-api.yaml").write_text(
        "schema_version: 1\nkind: model\nid: fake-api\ntitle: Fake API\nbackend: openai\n"
        f"family: fake\ntext_only: true\nopenai:\n  base_url: {server.url}\n"
        "  model: fake-model\n  timeout_s: 2\n  max_retries: 0\n"
        "generation: {max_new_tokens: 16}\n"
    )
    suite = project / "specs/suites/t.yaml"
    suite.write_text(
        suite.read_text() + "describe:\n  family: describe_findings\n  diagnosers: [fake-api]\n"
        "  diagnose_families: [closed_diagnosis]\n"
    )
    return project


def run(project: Path, cache: Cache, console: Console) -> tuple[Plan, RunSummary]:
    specs = load_specs(project / "specs")
    probing = Probing(cache.path.parent)
    plan = make_plan(
        specs,
        "t",
        models_dir=cache.path.parent / "models",
        hasher=cache.hash_file,
        snapshots=probing,
    )
    summary = run_suite(
        plan, specs, cache, progress=False, console=console, snapshot_changes=probing.changes
    )
    return plan, summary


def test_served_snapshot_is_recorded_used_offline_and_a_change_is_named(
    project: Path, server: FakeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(identity, "_SNAPSHOTS", {})
    server.responder = lambda body: completion("pneumonia", model=OLD)
    out = io.StringIO()
    console = Console(file=out, width=1000)
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, first = run(project, cache, console)
        diagnoses = [j for j in plan.jobs if j.key in plan.diagnoses]
        assert len(diagnoses) == 2 * 2 * 7 and first.failed == 0
        spec = load_specs(project / "specs").models["fake-api"]
        assert SnapshotLog(tmp_path).history(spec) == [OLD]
        # plan and score: the recorded snapshot gives the run's keys, with no request sent.
        sent = len(server.received)
        specs = load_specs(project / "specs")
        offline = make_plan(
            specs, "t", models_dir=tmp_path / "models", snapshots=recorded(tmp_path)
        )
        attach_diagnoses(offline, specs, cache)
        assert {j.key for j in offline.jobs} == {j.key for j in plan.jobs}
        assert len(server.received) == sent
        assert out.getvalue() == ""

        monkeypatch.setattr(identity, "_SNAPSHOTS", {})
        server.responder = lambda body: completion("normal", model=NEW)
        _, second = run(project, cache, console)
    assert (second.ran, second.failed) == (len(diagnoses), 0)
    assert SnapshotLog(tmp_path).history(spec) == [OLD, NEW]
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        f"fake-api: the endpoint now serves '{NEW}', the cache recorded '{OLD}': 28 cached "
        f"diagnoses were answered by '{OLD}' and no longer match; they stay in the cache and "
        "are answered again now:"
    )
    first_stale = min(diagnoses, key=lambda j: (j.task, j.sample, j.family, j.variant, j.pipeline))
    assert lines[1] == (
        f"  {first_stale.task}/{first_stale.sample}/closed_diagnosis/{first_stale.variant} "
        f"({first_stale.pipeline} of tiny-llava)"
    )
    assert lines[1:][10:] == ["  ... and 18 more"]
