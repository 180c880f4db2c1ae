"""The Ray executor: same answers as in-process, survives a killed actor, resumes from the cache.

Ray runs on the local CPU, listening on 127.0.0.1 only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0),
started once for the module and shut down at its end. Tests that need Ray skip when it is not
installed (`pip install -e '.[ray]'`).
"""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from medbench.errors import BackendError
from medbench.run.backends.base import BackendContext, Output, Request
from medbench.run.cache import Cache
from medbench.run.executors.ray import (
    INSTALL_HINT,
    MAX_STARTS,
    WORKER_DIED,
    AttemptLedger,
    ModelActor,
    Placement,
    import_ray,
    plan_placement,
)
from medbench.run.loop import RunSummary, run_plan
from medbench.run.plan import Plan, make_plan
from medbench.spec.loading import load_specs
from tests.spec_tree import REPO, make_project

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

# Ray warns about its own settings when it builds its first DataContext.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")

ACTOR_TITLE = "ray::MapWorker(MapBatches(ModelActor))"
"""The process title Ray gives each Ray Data actor running our callable class."""


@pytest.fixture(scope="module")
def ray_session() -> Iterator[Any]:
    """A local Ray with 2 CPUs for the module; the executor reuses it and leaves it running."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _run(project: Path, cache: Cache, executor: str, **context: Any) -> tuple[Plan, RunSummary]:
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=project.parent / "models", hasher=cache.hash_file)
    summary = run_plan(
        plan,
        specs,
        cache,
        executor=executor,
        context=BackendContext(**context),
        progress=False,
    )
    return plan, summary


def _answers(plan: Plan, cache: Cache) -> dict[str, tuple[str | None, str | None]]:
    stored = cache.get_many(j.key for j in plan.jobs)
    return {j.key: (stored[j.key].output, stored[j.key].error) for j in plan.jobs}


# --- placement: what Ray is asked for (no Ray needed) ---------------------------------------


@pytest.mark.parametrize(
    ("resources", "device", "extra", "expected"),
    [
        ({"CPU": 2.0}, "auto", {}, Placement(actors=2, gpus=0, device="cpu")),
        ({"CPU": 1.0}, "auto", {}, Placement(actors=1, gpus=0, device="cpu")),
        ({"CPU": 16.0}, "auto", {"ray_actors": "8"}, Placement(8, 0, "cpu")),
        ({"CPU": 64.0, "GPU": 4.0}, "auto", {}, Placement(4, 1, "auto")),
        ({"CPU": 64.0, "GPU": 4.0}, "cuda:3", {"ray_actors": "2"}, Placement(2, 1, "cuda")),
        ({"CPU": 64.0, "GPU": 4.0}, "cpu", {}, Placement(2, 0, "cpu")),
    ],
)
def test_plan_placement_one_actor_per_gpu_else_cpu_actors(
    resources: dict[str, float], device: str, extra: dict[str, str], expected: Placement
) -> None:
    assert plan_placement(resources, BackendContext(device=device, extra=extra)) == expected


@pytest.mark.parametrize(
    ("resources", "device", "extra", "message"),
    [
        (
            {"CPU": 8.0},
            "cuda",
            {},
            "device 'cuda' was asked for, but the Ray cluster has no GPU (8 CPUs). "
            "Use --device auto or cpu, or add GPU nodes.",
        ),
        (
            {"CPU": 8.0, "GPU": 2.0},
            "auto",
            {"ray_actors": "3"},
            "ray_actors=3, but the Ray cluster has 2 GPUs (one actor per GPU).",
        ),
        (
            {"CPU": 2.0},
            "auto",
            {"ray_actors": "4"},
            "ray_actors=4, but the Ray cluster has 2 CPUs (one CPU per actor).",
        ),
        (
            {"CPU": 2.0},
            "auto",
            {"ray_actors": "two"},
            "ray_actors: expected a positive integer, got 'two'",
        ),
        (
            {"CPU": 2.0},
            "auto",
            {"ray_actors": "0"},
            "ray_actors: expected a positive integer, got '0'",
        ),
    ],
)
def test_plan_placement_refuses_what_the_cluster_cannot_hold(
    resources: dict[str, float], device: str, extra: dict[str, str], message: str
) -> None:
    # Asking Ray for more than the cluster has would wait forever instead of failing.
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        plan_placement(resources, BackendContext(device=device, extra=extra))


def test_ray_missing_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BackendError, match=f"^{re.escape(INSTALL_HINT)}$"):
        import_ray(local=True)
    assert INSTALL_HINT == "The ray executor needs Ray: pip install 'medbench[ray]'"


# --- runs on a local Ray ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def quickstart_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ray-quickstart")
    return make_project(root, models=("tiny-llava", "baseline-chance"), limit_per_class=2)


@pytest.mark.slow
def test_ray_answers_match_local_job_for_job_and_rerun_calls_no_model(
    ray_session: Any, quickstart_like: Path
) -> None:
    with Cache(quickstart_like.parent / "local.sqlite") as cache:
        plan, local = _run(quickstart_like, cache, "local")
        expected = _answers(plan, cache)
    with Cache(quickstart_like.parent / "ray.sqlite") as cache:
        plan, first = _run(quickstart_like, cache, "ray", extra={"ray_actors": "2"})
        got = _answers(plan, cache)
        _, second = _run(quickstart_like, cache, "ray", extra={"ray_actors": "2"})
    assert (local.ran, local.failed) == (len(plan.jobs), 0)
    assert (first.ran, first.failed, first.cached) == (len(plan.jobs), 0, 0)
    assert got == expected
    assert {j.model for j in plan.jobs} == {"tiny-llava", "baseline-chance"}
    assert (second.ran, second.failed, second.cached) == (0, 0, len(plan.jobs))


def _actor_pids() -> list[int]:
    """Our Ray Data actors: children of this process (the raylet's workers) by process title."""
    import psutil

    pids = []
    for child in psutil.Process().children(recursive=True):
        try:
            title = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if title.startswith(ACTOR_TITLE):
            pids.append(child.pid)
    return sorted(pids)


def _stored(path: Path) -> int:
    try:
        with sqlite3.connect(path) as db:
            return int(db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet, or locked by the writer
        return 0


@pytest.mark.slow
def test_ray_killed_actor_mid_run_still_answers_every_job(ray_session: Any, tmp_path: Path) -> None:
    project = make_project(tmp_path, models=("tiny-llava",), limit_per_class=4)
    path = tmp_path / "c.sqlite"
    killed: list[int] = []
    seen = [0]
    done = threading.Event()

    def kill_one_actor_once_answers_land() -> None:
        # Watch for as long as the run lasts: on a loaded machine Ray and the actors can take
        # minutes to start, and a fixed deadline then ends the watch before any answer lands.
        while not done.is_set():
            seen[0] = _stored(path)
            pids = _actor_pids()
            if seen[0] >= 6 and pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_actor_once_answers_land)
    with Cache(path) as cache:
        killer.start()
        try:
            plan, summary = _run(project, cache, "ray", batch_size=2, extra={"ray_actors": "2"})
        finally:
            done.set()
            killer.join()
        keys = {j.key for j in plan.jobs}
        assert killed, "no actor was killed"
        assert 6 <= seen[0] < len(keys), "the actor should be killed part-way"
        assert (summary.ran, summary.failed) == (len(keys), 0)
        assert cache.finished_keys() == keys
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM answers").fetchone() == (
            len(keys),
            len(keys),
        )


@pytest.mark.slow
def test_ray_batch_whose_worker_keeps_dying_becomes_job_errors(
    ray_session: Any, tmp_path: Path
) -> None:
    import pandas as pd

    specs = load_specs(make_project(tmp_path) / "specs")
    ledger = ray_session.remote(num_cpus=0)(AttemptLedger).remote()
    # As if the batch starting at row 4 had been started and had killed its worker each time.
    for _ in range(MAX_STARTS):
        ray_session.get(ledger.start.remote(4))
    actor = ModelActor(specs.models["baseline-chance"], BackendContext(), None, ledger)
    rows = [Request(f"k{i}", messages=None, options=("a", "b")) for i in (4, 5)]  # type: ignore[arg-type]
    batch = pd.DataFrame({"index": [4, 5], "request": [pickle.dumps(r) for r in rows]})
    out = actor(batch)
    assert out["index"].tolist() == [4, 5]
    assert out["text"].tolist() == [None, None]
    assert out["error"].tolist() == [WORKER_DIED.format(n=MAX_STARTS)] * 2
    assert WORKER_DIED.format(n=MAX_STARTS) == "ray: the worker answering this batch died 3 times"
    # Another batch, started for the first time, is answered.
    batch = batch.assign(index=[6, 7])
    assert actor(batch)["error"].tolist() == [None, None]


@pytest.mark.slow
def test_ray_stop_ends_the_run_after_the_batch_in_flight(ray_session: Any, tmp_path: Path) -> None:
    from medbench.run.executors.ray import RayExecutor
    from medbench.run.loop import pending_work

    project = make_project(tmp_path, limit_per_class=None)
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "models", hasher=cache.hash_file)
        # batches of one image's 7 wordings, all full (Ray may bundle a short block with the
        # next one), as run_plan cuts them
        work, _, _ = pending_work(plan, specs, cache, batch_size=7)
    batches: list[list[Output]] = []

    def sink(requests: Any, outputs: Any) -> None:
        batches.append(list(outputs))

    RayExecutor().execute(work, BackendContext(batch_size=7), sink, lambda: bool(batches))
    assert len(work[0].requests) > 7
    assert [len(b) for b in batches] == [7]
    assert all(o.error is None for o in batches[0])


@pytest.mark.slow
def test_ray_model_that_cannot_load_fails_its_jobs_with_its_reason(
    ray_session: Any, tmp_path: Path
) -> None:
    project = make_project(tmp_path, models=("tiny-llava", "baseline-chance"), limit_per_class=1)
    (project / "data/empty").mkdir()
    spec = project / "specs/models/tiny-llava.yaml"
    spec.write_text(spec.read_text().replace("tiny: {arch: llava, seed: 0}", "path: data/empty"))
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, summary = _run(project, cache, "ray")
        broken = {j.key for j in plan.jobs if j.model == "tiny-llava"}
        assert cache.finished_keys() == {j.key for j in plan.jobs} - broken
        errors = {a.error for a in cache.get_many(broken).values()}
    assert (summary.ran, summary.failed) == (len(plan.jobs) - len(broken), len(broken))
    assert list(summary.failed_models) == ["tiny-llava"]
    assert len(errors) == 1
    assert re.match(
        r"^model failed: model tiny-llava: its Ray actor could not start: "
        r"medbench\.errors\.BackendError: model tiny-llava: cannot load .*$",
        errors.pop() or "",
    ), errors


@pytest.mark.slow
def test_ray_executor_starts_a_loopback_ray_and_shuts_it_down(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    project = make_project(tmp_path)
    script = "\n".join(
        [
            "import json, sys",
            "from pathlib import Path",
            "import medbench.run.executors.ray as executor",
            "from medbench.run.cache import Cache",
            "from medbench.spec.loading import load_specs",
            "from medbench.run.plan import make_plan",
            "from medbench.run.loop import run_plan",
            "ips = []",
            "real = executor.run_model",
            "def spy(ray, *args):",
            "    ips.extend(node['NodeManagerAddress'] for node in ray.nodes())",
            "    return real(ray, *args)",
            "executor.run_model = spy",
            f"specs = load_specs(Path({str(project / 'specs')!r}))",
            f"with Cache(Path({str(tmp_path / 'c.sqlite')!r})) as cache:",
            "    plan = make_plan(specs, 't', models_dir=cache.path.parent / 'models')",
            "    s = run_plan(plan, specs, cache, executor='ray', progress=False)",
            "alive = sys.modules['ray'].is_initialized()",
            "print(json.dumps([s.ran, s.failed, len(plan.jobs), sorted(set(ips)), alive]))",
        ]
    )
    # The executor itself must make a local Ray listen on the loopback address only (Ray reads
    # the setting when first imported: the script imports it only through the executor).
    env = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    ran, failed, planned, ips, alive = json.loads(out.stdout.strip().splitlines()[-1])
    assert (ran, failed) == (planned, 0)
    assert ips == ["127.0.0.1"]
    assert alive is False
