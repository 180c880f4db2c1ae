import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medbench.errors import CacheError
from medbench.run.cache import CACHE_FORMAT, Cache, canonical_json, content_key


def _row(key: str, output: str | None = "yes", error: str | None = None) -> tuple[object, ...]:
    return (key, "m", "t", "f", "v", "s", "{}", output, error, 0.1)


def test_canonical_json_is_independent_of_key_order() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": 3}]}) == '{"a":[1,{"c":3,"d":2}],"b":1}'


def test_content_key_includes_the_cache_format() -> None:
    payload = {"model": {"repo": "x"}, "messages": {"text": "hi"}}
    assert content_key(payload) == content_key(dict(reversed(list(payload.items()))))
    assert content_key(payload) != content_key({**payload, "v": CACHE_FORMAT + 1})


def test_cache_never_replaces_a_finished_answer(tmp_path: Path) -> None:
    with Cache(tmp_path / "c.sqlite") as cache:
        cache.put_many([_row("k1", "first")])
        cache.put_many([_row("k1", "second")])
        assert cache.get_many(["k1"])["k1"].output == "first"


def test_cache_replaces_a_failed_answer_by_a_later_try(tmp_path: Path) -> None:
    with Cache(tmp_path / "c.sqlite") as cache:
        cache.put_many([_row("k1", None, "ImageError: truncated")])
        assert cache.finished_keys() == set()
        cache.put_many([_row("k1", "no")])
        answer = cache.get_many(["k1"])["k1"]
        assert (answer.output, answer.error) == ("no", None)
        assert cache.finished_keys() == {"k1"}


def test_cache_uses_wal_mode(tmp_path: Path) -> None:
    Cache(tmp_path / "c.sqlite").close()
    db = sqlite3.connect(tmp_path / "c.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cache_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    Cache(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '999' WHERE name = 'format'")
    db.commit()
    db.close()
    with pytest.raises(CacheError, match=r"cache format 999, this medbench uses 1\. Use a new"):
        Cache(path)


def test_hash_file_is_reused_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = tmp_path / "a.jpg"
    image.write_bytes(b"one")
    calls: list[Path] = []
    import medbench.data

    real = medbench.data.sha256_file

    def counting(path: Path) -> str:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(medbench.data, "sha256_file", counting)
    with Cache(tmp_path / "c.sqlite") as cache:
        first = cache.hash_file(image)
        cache.flush_hashes()
    with Cache(tmp_path / "c.sqlite") as cache:
        assert cache.hash_file(image) == first
        assert len(calls) == 1
        image.write_bytes(b"two!")
        assert cache.hash_file(image) != first
        assert len(calls) == 2


def test_cache_two_processes_writing_at_once_keep_one_row_per_key(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from medbench.run.cache import Cache
        tag = sys.argv[1]
        with Cache(Path({str(path)!r})) as cache:
            for batch in range(40):
                cache.put_many([("k%d" % i, "m", "t", "f", "v", "s", "{{}}", tag, None, 0.0)
                                for i in range(batch * 5, batch * 5 + 10)])
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, tag]) for tag in ("a", "b")]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    db = sqlite3.connect(path)
    assert db.execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM answers").fetchone() == (205, 205)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


class _LockedTwice:
    """A connection whose first two statements find the file locked, as SQLite answers at
    once (without waiting out the busy timeout) when another process is creating it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def execute(self, statement: str) -> str:
        self.calls.append(statement)
        if len(self.calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        return "ok"


def test_store_statement_found_locked_is_retried_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from medbench.run import store

    monkeypatch.setattr(store.time, "sleep", lambda _s: None)
    db = _LockedTwice()
    assert store._execute_retrying(db, "PRAGMA journal_mode = WAL") == "ok"  # type: ignore[arg-type]
    assert db.calls == ["PRAGMA journal_mode = WAL"] * 3


def test_store_statement_failing_otherwise_is_raised_at_once() -> None:
    from medbench.run import store

    class _Broken:
        def execute(self, statement: str) -> None:
            raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        store._execute_retrying(_Broken(), "BEGIN IMMEDIATE")  # type: ignore[arg-type]


def test_cache_in_a_folder_uses_answers_sqlite_inside_it(tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    folder.mkdir()
    cache = Cache(folder)
    assert cache.path == folder / "answers.sqlite"
    assert (folder / "answers.sqlite").is_file()


def test_cache_env_naming_a_folder_works_from_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path))
    result = CliRunner().invoke(app, ["cache", "stats"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "answers.sqlite").is_file()


# Housekeeping: rows no current spec produces, and an export `medbench parse` reads.


def _ran_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A project whose suite `t` (baselines, pneumonia, 2 images per class) has been run, plus
    two stale rows: one of a removed model, one of a prompt wording that changed."""
    from typer.testing import CliRunner

    from medbench.cli import app
    from tests.spec_tree import make_project

    project = make_project(tmp_path, families=("closed_diagnosis", "finding_present"))
    monkeypatch.chdir(project)
    cache = tmp_path / "c.sqlite"
    result = CliRunner().invoke(
        app, ["run", "specs", "-s", "t", "--cache", str(cache), "--no-score"]
    )
    assert result.exit_code == 0, result.output
    with Cache(cache) as store:
        store.put_many(
            [
                (
                    "a" * 64,
                    "removed-model",
                    "pneumonia_cxr",
                    "closed_diagnosis",
                    "plain",
                    "x",
                    "{}",
                    "normal",
                    None,
                    0.5,
                ),
                (
                    "b" * 64,
                    "baseline-chance",
                    "pneumonia_cxr",
                    "closed_diagnosis",
                    "plain",
                    "x",
                    "{}",
                    "normal",
                    None,
                    0.5,
                ),
            ]
        )
    return project, cache


def test_cache_prune_removes_only_rows_no_suite_produces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    _, cache = _ran_project(tmp_path, monkeypatch)
    with Cache(cache) as store:
        before = len(list(store.iter_answers()))
    dry = CliRunner().invoke(app, ["cache", "prune", "--cache", str(cache), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout == (
        "baseline-chance: 1 rows\nremoved-model: 1 rows\n"
        "2 rows would be removed (dry run: nothing removed).\n"
    )
    stats = CliRunner().invoke(app, ["cache", "stats", "--cache", str(cache)])
    assert stats.stdout.endswith(
        "2 rows no current spec produces (`medbench cache prune` removes them).\n"
    )
    with Cache(cache) as store:
        assert len(list(store.iter_answers())) == before
    done = CliRunner().invoke(app, ["cache", "prune", "--cache", str(cache)])
    assert done.stdout.endswith("2 rows removed.\n")
    with Cache(cache) as store:
        left = list(store.iter_answers())
    assert len(left) == before - 2 == 4 * 14  # 4 images x 14 variants
    rerun = CliRunner().invoke(app, ["plan", "specs", "-s", "t", "--cache", str(cache)])
    assert rerun.stdout.endswith("56 cached; 0 distinct answers to compute.\n")


def test_cache_prune_keeps_the_rows_of_a_suite_it_cannot_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    project, cache = _ran_project(tmp_path, monkeypatch)
    (project / "data/sample/pneumonia_cxr").rename(project / "data/elsewhere")
    result = CliRunner().invoke(app, ["cache", "prune", "--cache", str(cache), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "removed-model: 1 rows\n1 rows would be removed (dry run: nothing removed).\n"
    )
    assert result.stderr.startswith("suite t not planned here, its models' rows kept: ")


def test_cache_export_writes_records_medbench_parse_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from typer.testing import CliRunner

    from medbench.cli import app

    _, cache = _ran_project(tmp_path, monkeypatch)
    out = tmp_path / "answers.jsonl"
    result = CliRunner().invoke(app, ["cache", "export", str(out), "--cache", str(cache)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    closed = next(r for r in rows if r["family"] == "closed_diagnosis" and r["variant"] == "plain")
    assert closed["options"] == ["pneumonia", "normal"]
    assert closed["lettered"] is False
    assert closed["aliases"]["normal"] == ["no pneumonia", "normal chest x-ray", "clear lungs"]
    finding = next(r for r in rows if r["family"] == "finding_present")
    assert (finding["options"], finding["finding"]) == (["yes", "no"], "pneumonia")
    assert "output" not in closed and isinstance(closed["response"], str)
    parsed = CliRunner().invoke(app, ["parse", str(out), "--output", str(tmp_path / "p.jsonl")])
    assert parsed.exit_code == 0, parsed.output
    statuses = [json.loads(x)["status"] for x in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert len(statuses) == len(rows) and set(statuses) <= {"answer", "refusal", "unparseable"}


def test_cache_prune_keeps_the_rows_of_a_model_it_cannot_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from medbench.cli import app

    project, cache = _ran_project(tmp_path, monkeypatch)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    suite = project / "specs/suites/t.yaml"
    suite.write_text(suite.read_text().replace("models: [", "models: [llava-1.5-7b, "))
    with Cache(cache) as store:
        store.put_many(
            [
                (
                    "c" * 64,
                    "llava-1.5-7b",
                    "pneumonia_cxr",
                    "closed_diagnosis",
                    "plain",
                    "x",
                    "{}",
                    "normal",
                    None,
                    0.5,
                )
            ]
        )
    result = CliRunner().invoke(app, ["cache", "prune", "--cache", str(cache), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "baseline-chance: 1 rows\nremoved-model: 1 rows\n"
        "2 rows would be removed (dry run: nothing removed).\n"
    )


_SCHEMA_1 = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('format', '1');
CREATE TABLE answers (
    key TEXT PRIMARY KEY, model TEXT NOT NULL, task TEXT NOT NULL, family TEXT NOT NULL,
    variant TEXT NOT NULL, sample TEXT NOT NULL, prompt TEXT NOT NULL, output TEXT, error TEXT,
    seconds REAL NOT NULL, medbench_version TEXT NOT NULL, created TEXT NOT NULL
);
INSERT INTO answers VALUES ('k0', 'm', 't', 'f', 'v', 's', '{}', 'normal', NULL, 0.5, '0.1.0',
                            '2026-11-30T10:00:00+00:00');
"""


def test_cache_of_schema_1_is_migrated_keeping_its_answers(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(_SCHEMA_1)
    db.close()
    with Cache(path) as cache:
        old = cache.get_many(["k0"])["k0"]
        assert (old.output, old.created, old.batch_size, old.precision) == (
            "normal",
            "2026-11-30T10:00:00+00:00",
            None,
            None,
        )
        cache.put_many([(*_row("k1", "pneumonia"), 8, "bfloat16", "length")])
        new = cache.get_many(["k1"])["k1"]
        assert (new.output, new.batch_size, new.precision, new.finish_reason) == (
            "pneumonia",
            8,
            "bfloat16",
            "length",
        )
        assert (old.finish_reason, cache.finished_keys()) == (None, {"k0", "k1"})
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE name = 'schema'").fetchone() == ("3",)


def test_cache_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    Cache(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '4' WHERE name = 'schema'")
    db.commit()
    db.close()
    message = f"{path}: answer cache schema 4, this medbench knows up to 3. Upgrade medbench"
    with pytest.raises(CacheError, match=f"^{re.escape(message)}"):
        Cache(path)


def test_run_records_the_batch_size_each_answer_was_produced_at(tmp_path: Path) -> None:
    from medbench.run.backends.base import BackendContext
    from medbench.run.loop import run_plan
    from medbench.run.plan import make_plan
    from medbench.spec.loading import load_specs
    from tests.spec_tree import make_project

    project = make_project(tmp_path, models=("baseline-majority",), limit_per_class=3)
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "m")
        run_plan(plan, specs, cache, progress=False, context=BackendContext(batch_size=4))
        stored = cache.get_many(j.key for j in plan.jobs)
    sizes = sorted(a.batch_size or 0 for a in stored.values())
    # 8 variants x 6 images = 48 keys in batches of 4: an image's 8 prompts alone pass 4, so
    # each image fills two batches of its own
    assert (sizes.count(4), len(sizes)) == (48, 48)
    assert {a.precision for a in stored.values()} == {None}


def test_cache_export_gives_a_closed_vqa_answer_its_samples_own_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from huggingface_hub import constants
    from typer.testing import CliRunner

    from medbench.cli import app
    from medbench.run.plan import make_plan
    from medbench.score.answers import parse_job_answer
    from medbench.spec.loading import load_specs
    from tests.spec_tree import vqa_project

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the `full` Hub data is not here
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    project = vqa_project(tmp_path, ("baseline-chance",))
    monkeypatch.chdir(project)
    cache = tmp_path / "c.sqlite"
    run = ["run", "specs", "-s", "t", "--cache", str(cache), "--no-score"]
    assert CliRunner().invoke(app, run).exit_code == 0
    out = tmp_path / "answers.jsonl"
    done = CliRunner().invoke(app, ["cache", "export", str(out), "--cache", str(cache)])
    assert done.exit_code == 0, done.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    specs = load_specs(Path("specs"))
    plan = make_plan(specs, "t", models_dir=tmp_path / "models")
    assert {r["task"] for r in rows} == {"pmc_vqa_choice", "vqa_rad_yes_no"}
    expected = {}
    for row in rows:
        prompt = plan.prompt(row["family"], row["variant"], row["task"], row["sample"])
        assert row["options"] == list(prompt.rendered.options), row
        assert row["lettered"] is prompt.rendered.lettered
        assert ("aliases" in row) is (not prompt.by_option)  # scoring reads options alone
        task = specs.tasks[row["task"]]
        result, _ = parse_job_answer(
            row["response"],
            task,
            specs.families[row["family"]].answer,
            prompt.rendered.options,
            prompt.rendered.lettered,
            prompt.by_option,
        )
        expected[row["key"]] = (result.status, result.label)
    parsed = tmp_path / "parsed.jsonl"
    done = CliRunner().invoke(app, ["parse", str(out), "--output", str(parsed)])
    assert done.exit_code == 0, done.output
    read = [json.loads(line) for line in parsed.read_text().splitlines()]
    assert {r["key"]: (r["status"], r["label"]) for r in read} == expected


def test_run_records_why_each_answer_ended_and_counts_truncated_ones(tmp_path: Path) -> None:
    from medbench.run.backends.base import BackendContext
    from medbench.run.loop import run_plan
    from medbench.run.plan import make_plan
    from medbench.spec.loading import load_specs
    from tests.spec_tree import make_project

    project = make_project(tmp_path, models=("tiny-llava",), limit_per_class=1)
    specs = load_specs(project / "specs")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan = make_plan(specs, "t", models_dir=tmp_path / "m")
        context = BackendContext(device="cpu", batch_size=4)
        summary = run_plan(plan, specs, cache, progress=False, context=context)
        stored = cache.get_many(j.key for j in plan.jobs)
    # random weights never end an answer: all 16 are cut at the model's 12 tokens
    assert {a.finish_reason for a in stored.values()} == {"length"}
    assert summary.truncated == {"closed_diagnosis": 16}
    assert summary.lines()[-1] == (
        "16 closed_diagnosis answers were cut at their token budget (truncated): raise the "
        "family's `max_new_tokens` (or the model's) to let them finish."
    )
