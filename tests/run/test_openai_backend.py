"""Tests of the openai backend against a local server that misbehaves on purpose."""

from __future__ import annotations

import base64
import io
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from medbench.data.images import sha256_file
from medbench.errors import BackendError
from medbench.run.backends import load_backend
from medbench.run.backends.base import BackendContext, Output, Request
from medbench.run.backends.openai_api import (
    MAX_BACKOFF_S,
    MAX_RETRY_AFTER_S,
    OpenAIBackend,
    backoff_delay,
    image_data_url,
    parse_completion,
    retry_after,
)
from medbench.run.backends.openai_api.wire import MalformedResponse, generation_fields
from medbench.run.cache import Cache
from medbench.run.identity import openai_identity
from medbench.run.loop import RunSummary, run_plan
from medbench.run.plan import Plan, make_plan
from medbench.spec.loading import load_specs
from medbench.spec.model import GenerationSpec, ModelSpec
from medbench.spec.prompts import ImageRef, Messages
from tests.openai_fakes import (
    MODEL,
    SNAPSHOT,
    FakeServer,
    Reply,
    completion,
    error,
    fake_server,
    user_text,
)
from tests.spec_tree import make_project

FAST = BackendContext(extra={"openai_backoff_s": "0.01"})
SYSTEM = "You are an expert radiologist."


def model_spec(url: str, *, generation: dict[str, Any] | None = None, **endpoint: Any) -> ModelSpec:
    openai = {
        "base_url": url,
        "model": MODEL,
        "timeout_s": 2,
        "max_concurrency": 2,
        "max_retries": 2,
        **endpoint,
    }
    return ModelSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "model",
            "id": "fake-api",
            "title": "Fake API",
            "backend": "openai",
            "family": "fake",
            "openai": openai,
            "generation": generation or {"max_new_tokens": 16},
        }
    )


def request(text: str, *images: Path, system: str | None = None) -> Request:
    refs = tuple(
        ImageRef(str(path), sha256_file(path) if path.is_file() else "") for path in images
    )
    return Request(key=f"{system}|{text}|{images}", messages=Messages(system, text, refs))


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with fake_server() as fake:
        yield fake


@pytest.fixture
def open_backend() -> Iterator[Callable[..., OpenAIBackend]]:
    opened: list[OpenAIBackend] = []

    def make(url: str, context: BackendContext = FAST, **fields: Any) -> OpenAIBackend:
        backend = OpenAIBackend(model_spec(url, **fields), context)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


def one(backend: OpenAIBackend, text: str = "hello") -> Output:
    [output] = backend.generate([request(text)])
    return output


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Answers and what the server receives


def test_openai_sends_the_system_turn_and_images_as_data_urls(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend], sample_images: list[Path]
) -> None:
    image = sample_images[0]
    backend = open_backend(server.url)
    [output] = backend.generate([request("Pneumonia?", image, system=SYSTEM)])
    assert (output.text, output.error) == ("echo: Pneumonia?", None)
    [sent] = server.received
    assert sent["model"] == MODEL
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM}
    picture, text = sent["messages"][1]["content"]  # the image first, as on the hf backend
    assert text == {"type": "text", "text": "Pneumonia?"}
    url = picture["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    assert base64.b64decode(url.split(",", 1)[1]) == image.read_bytes()
    assert (sent["max_tokens"], sent["temperature"]) == (16, 0.0)
    assert "top_p" not in sent and "seed" not in sent


def test_openai_text_request_sends_plain_string_content(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    one(open_backend(server.url), "Only words.")
    assert server.received[0]["messages"] == [{"role": "user", "content": "Only words."}]


def test_openai_sampling_sends_temperature_top_p_and_seed(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    generation = {
        "max_new_tokens": 7,
        "do_sample": True,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 3,
    }
    one(open_backend(server.url, generation=generation))
    sent = server.received[0]
    assert {k: sent[k] for k in ("max_tokens", "temperature", "top_p", "seed")} == {
        "max_tokens": 7,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 3,
    }


@pytest.mark.parametrize(
    ("url", "limit"),
    [
        ("https://api.openai.com/v1", "max_completion_tokens"),
        ("http://127.0.0.1:8000/v1", "max_tokens"),
        ("http://localhost:11434/v1", "max_tokens"),
    ],
)
def test_openai_names_the_token_limit_the_host_accepts(url: str, limit: str) -> None:
    fields = generation_fields(GenerationSpec(max_new_tokens=9), url)
    assert fields == {limit: 9, "temperature": 0.0}


def test_openai_records_the_served_model_snapshot(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    backend = open_backend(server.url)
    assert (backend.served_model, backend.snapshot) == (None, None)
    one(backend)
    assert (backend.served_model, backend.snapshot) == (SNAPSHOT, SNAPSHOT)
    server.add(completion("OK", model=MODEL))
    same = open_backend(server.url)
    assert (same.probe(), same.snapshot) == (MODEL, None)
    assert server.received[-1]["max_tokens"] == 1


@pytest.mark.parametrize(
    ("served", "snapshot"),
    [(MODEL, None), (f"{MODEL}@main", None), (f"{MODEL}@v2", f"{MODEL}@v2"), ("other", "other")],
)
def test_openai_snapshot_ignores_the_default_revision_suffix(
    server: FakeServer,
    open_backend: Callable[..., OpenAIBackend],
    served: str,
    snapshot: str | None,
) -> None:
    server.add(completion("OK", model=served))
    backend = open_backend(server.url)
    assert (backend.probe(), backend.snapshot) == (served, snapshot)


def test_openai_generate_keeps_request_order_under_concurrency(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    backend = open_backend(server.url, max_concurrency=3)
    texts = [f"question {i}" for i in range(10)]
    outputs = backend.generate([request(t) for t in texts])
    assert [o.text for o in outputs] == [f"echo: {t}" for t in texts]


def test_openai_concurrency_stays_within_the_limit(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    def respond(body: dict[str, Any]) -> Reply:
        deadline = time.monotonic() + 5
        while server.peak < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        return completion("slow", delay=0.1)

    server.responder = respond
    backend = open_backend(server.url, max_concurrency=2)
    outputs = backend.generate([request(f"q{i}") for i in range(6)])
    assert [o.error for o in outputs] == [None] * 6
    assert server.peak == 2


def test_openai_stream_yields_each_answer_as_it_finishes(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    fast_done = threading.Event()

    def respond(body: dict[str, Any]) -> Reply:
        if user_text(body) == "slow":
            fast_done.wait(5)
            return completion("slow answer", delay=0.2)
        reply = completion("fast answer")
        fast_done.set()
        return reply

    server.responder = respond
    backend = open_backend(server.url, max_concurrency=2)
    groups = list(backend.stream([request("slow"), request("fast")]))
    assert [indices for indices, _ in groups] == [[1], [0]]
    assert [outputs[0].text for _, outputs in groups] == ["fast answer", "slow answer"]


def test_openai_closing_the_stream_early_abandons_the_queue(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    release = threading.Event()

    def respond(body: dict[str, Any]) -> Reply:
        if user_text(body) != "q0":
            release.wait(5)  # hold the second request in flight until the stream is closed
        return completion(user_text(body))

    server.responder = respond
    backend = open_backend(server.url, max_concurrency=1)
    stream = backend.stream([request(f"q{i}") for i in range(20)])
    indices, outputs = next(stream)
    stream.close()
    release.set()
    backend.close()
    assert (indices, outputs[0].text) == ([0], "q0")
    assert [user_text(body) for body in server.received] in (["q0"], ["q0", "q1"])


# Retries


def test_openai_honours_retry_after_on_429(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.add(error(429, "slow down", headers={"Retry-After": "0.2"}))
    output = one(open_backend(server.url))
    assert output.text == "echo: hello"
    first, second = server.arrivals
    assert second - first >= 0.2


def test_openai_retries_500s_then_answers(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.add(error(500, "boom"), error(503, "busy"))
    output = one(open_backend(server.url, max_retries=2))
    assert (output.text, output.error) == ("echo: hello", None)
    assert len(server.received) == 3


def test_openai_gives_up_after_max_retries(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.responder = lambda body: error(500, "boom")
    output = one(open_backend(server.url, max_retries=2))
    assert (output.text, output.error) == (None, "openai HTTP 500 after 3 attempts: boom")
    assert len(server.received) == 3


def test_openai_hang_past_the_timeout_is_retried_then_fails(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.responder = lambda body: completion("too late", delay=5)
    started = time.monotonic()
    output = one(open_backend(server.url, timeout_s=0.3, max_retries=1))
    assert output.error == "openai timeout after 2 attempts: no answer within 0.3 s"
    assert len(server.received) == 2
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("{not json", r"invalid JSON \(.*\): \{not json"),
        (
            {"error": {"message": "overloaded"}},
            r"no choices: the server reported \{'message': 'overloaded'\}",
        ),
        ({"choices": []}, r"no choices: \{\"choices\": \[\]\}"),
        ({"choices": [{"index": 0}]}, r"no message in the first choice: .*"),
    ],
)
def test_openai_malformed_answer_is_retried_once_then_fails(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend], body: Any, detail: str
) -> None:
    server.responder = lambda request: Reply(200, body)
    output = one(open_backend(server.url, max_retries=3))
    assert output.text is None
    assert re.fullmatch(f"openai malformed response after 2 attempts: {detail}", output.error or "")
    assert len(server.received) == 2


def test_openai_malformed_answer_then_a_good_one_answers(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.add(Reply(200, "{cut off"))
    assert one(open_backend(server.url)).text == "echo: hello"


def test_openai_client_error_is_not_retried(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.responder = lambda body: error(400, "image too large")
    output = one(open_backend(server.url))
    assert output.error == "openai HTTP 400: image too large"
    assert len(server.received) == 1


def test_openai_retry_after_beyond_the_cap_is_not_retried(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.responder = lambda body: error(429, "daily quota", headers={"Retry-After": "3600"})
    output = one(open_backend(server.url))
    assert output.error == (
        f"openai HTTP 429: the server asks to wait 3600 s, more than the "
        f"{MAX_RETRY_AFTER_S:g} s medbench waits: daily quota"
    )
    assert len(server.received) == 1


def test_openai_server_dying_mid_run_fails_only_the_rest(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.add(completion("a"), completion("b"), Reply(kill=True))
    backend = open_backend(server.url, max_concurrency=1, max_retries=1)
    groups = list(backend.stream([request(f"q{i}") for i in range(5)]))
    outputs = [output for _, group in groups for output in group]
    assert [i for indices, _ in groups for i in indices] == [0, 1, 2, 3, 4]
    assert [o.text for o in outputs[:2]] == ["a", "b"]
    for output in outputs[2:]:
        assert output.text is None
        assert (output.error or "").startswith("openai connection error after 2 attempts: ")


# Problems reported once, before any request


def test_openai_missing_key_variable_fails_before_any_request(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDBENCH_TEST_API_KEY", raising=False)
    spec = model_spec(server.url, api_key_env="MEDBENCH_TEST_API_KEY")
    message = (
        "model fake-api: the environment variable MEDBENCH_TEST_API_KEY is not set. "
        "Set it to your API key (never put keys in specs)."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        load_backend(spec, FAST)
    assert (server.model_requests, server.received) == (0, [])


def test_openai_key_from_the_variable_is_sent(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDBENCH_TEST_API_KEY", "sk-test")
    backend = OpenAIBackend(model_spec(server.url, api_key_env="MEDBENCH_TEST_API_KEY"), FAST)
    try:
        assert one(backend).text == "echo: hello"
    finally:
        backend.close()
    assert server.authorizations == ["Bearer sk-test"]


def test_openai_unreachable_endpoint_fails_once_before_any_request() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    message = (
        f"model fake-api: cannot reach the endpoint {url} ([Errno 111] Connection refused). "
        "Check that the server is running and that `openai.base_url` is right "
        "(it usually ends in /v1)."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        OpenAIBackend(model_spec(url), FAST)


def test_openai_refused_key_fails_before_any_request(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDBENCH_TEST_API_KEY", "sk-wrong")
    server.models = error(401, "Incorrect API key provided")
    message = (
        f"model fake-api: the endpoint {server.url} refused the key in MEDBENCH_TEST_API_KEY "
        "(HTTP 401: Incorrect API key provided). Check the key and its permissions."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        OpenAIBackend(model_spec(server.url, api_key_env="MEDBENCH_TEST_API_KEY"), FAST)
    assert server.received == []


def test_openai_endpoint_without_a_model_list_is_accepted(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.models = error(404, "not found")
    assert one(open_backend(server.url)).text == "echo: hello"


def test_openai_endpoint_answering_html_fails_before_any_request(server: FakeServer) -> None:
    server.models = Reply(200, "<html>a web page</html>")
    message = (
        f"model fake-api: {server.url}/models did not answer with JSON (<html>a web page</html>). "
        "Check `openai.base_url` (it usually ends in /v1)."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        OpenAIBackend(model_spec(server.url), FAST)


def test_openai_rejects_a_bad_backoff_setting(server: FakeServer) -> None:
    context = BackendContext(extra={"openai_backoff_s": "soon"})
    message = (
        "model fake-api: openai_backoff_s must be a number of seconds from 0 to 60, got 'soon'."
    )
    with pytest.raises(BackendError, match=f"^{re.escape(message)}$"):
        OpenAIBackend(model_spec(server.url), context)


# Images


def test_openai_unreadable_image_fails_only_its_request(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    outputs = open_backend(server.url).generate([request("bad", broken), request("good")])
    assert [o.error for o in outputs] == [f"image {broken}: not an image", None]
    assert [user_text(body) for body in server.received] == ["good"]


def test_openai_text_only_model_refuses_images(
    server: FakeServer, sample_images: list[Path]
) -> None:
    spec = model_spec(server.url).model_copy(update={"text_only": True})
    backend = OpenAIBackend(spec, FAST)
    try:
        [output] = backend.generate([request("look", sample_images[0])])
    finally:
        backend.close()
    assert output.error == "model fake-api is text-only and cannot read images"
    assert server.received == []


def test_openai_images_needing_conversion_go_as_png(tmp_path: Path) -> None:
    path = tmp_path / "sixteen.png"
    Image.new("I;16", (4, 3), 40000).save(path)
    url = image_data_url(path)
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as sent:
        assert (sent.mode, sent.size, sent.getpixel((0, 0))) == ("RGB", (4, 3), (156, 156, 156))


# Pure helpers


def test_parse_completion_takes_a_refusal_as_the_answer() -> None:
    body = '{"model": "m", "choices": [{"message": {"content": null, "refusal": "I cannot."}}]}'
    assert (parse_completion(body).text, parse_completion(body).model) == ("I cannot.", "m")
    with pytest.raises(MalformedResponse, match=r"^not a JSON object: \[\]$"):
        parse_completion("[]")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"retry-after": "0.5"}, 0.5),
        ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_and_milliseconds(
    headers: dict[str, str], expected: float | None
) -> None:
    assert retry_after(headers) == expected


def test_retry_after_reads_an_http_date() -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    wait = retry_after({"Retry-After": format_datetime(when, usegmt=True)})
    assert wait is not None and 28 <= wait <= 30


@pytest.mark.parametrize("seed", range(5))
def test_backoff_is_full_jitter_under_an_exponential_bound(seed: int) -> None:
    rng = random.Random(seed)
    for attempt in range(1, 12):
        bound = min(MAX_BACKOFF_S, 0.5 * 2 ** (attempt - 1))
        assert 0.0 <= backoff_delay(attempt, 0.5, None, rng) <= bound
        assert 3.0 <= backoff_delay(attempt, 0.5, 3.0, rng) <= 3.5


# Through the runner


def write_model(project: Path, url: str, **endpoint: Any) -> None:
    endpoint.setdefault("snapshot", SNAPSHOT)  # pinned: planning asks the server nothing
    fields = "".join(f"  {name}: {value}\n" for name, value in endpoint.items())
    (project / "specs" / "models" / "fake-api.yaml").write_text(
        "schema_version: 1\nkind: model\nid: fake-api\ntitle: Fake API\nbackend: openai\n"
        f"family: fake\nopenai:\n  base_url: {url}\n  model: {MODEL}\n  timeout_s: 2\n{fields}"
        "generation: {max_new_tokens: 16}\n"
    )


def run(project: Path, cache: Cache) -> tuple[Plan, RunSummary]:
    specs = load_specs(project / "specs")
    plan = make_plan(specs, "t", models_dir=cache.path.parent / "models", hasher=cache.hash_file)
    return plan, run_plan(plan, specs, cache, context=FAST, progress=False)


def test_run_stores_failures_unfinished_and_a_rerun_completes_them(
    server: FakeServer, tmp_path: Path
) -> None:
    project = make_project(tmp_path, models=("fake-api",))
    write_model(project, server.url, max_retries=1, max_concurrency=3)
    terse = "Diagnosis?"
    server.responder = lambda body: (
        error(500, "flaky") if user_text(body).startswith(terse) else completion("pneumonia")
    )
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, first = run(project, cache)
        failing = {j.key for j in plan.jobs if j.variant == "terse"}
        assert failing and first.failed == len(failing)
        assert cache.finished_keys() == {j.key for j in plan.jobs} - failing
        stored = cache.get_many(failing)
        assert {a.error for a in stored.values()} == {"openai HTTP 500 after 2 attempts: flaky"}
        server.responder = lambda body: completion("normal")
        _, second = run(project, cache)
        assert (second.ran, second.failed, second.cached) == (
            len(failing),
            0,
            len(plan.jobs) - len(failing),
        )
        assert cache.finished_keys() == {j.key for j in plan.jobs}


def test_run_after_the_server_died_resumes_on_a_restarted_server(tmp_path: Path) -> None:
    project = make_project(tmp_path, models=("fake-api",))
    with fake_server(completion("a"), completion("b"), completion("c"), Reply(kill=True)) as dying:
        write_model(project, dying.url, max_retries=1, max_concurrency=1)
        with Cache(tmp_path / "c.sqlite") as cache:
            plan, first = run(project, cache)
            assert (first.ran, first.failed) == (3, len(plan.jobs) - 3)
            assert len(cache.finished_keys()) == 3
    with fake_server(port=dying.port) as revived, Cache(tmp_path / "c.sqlite") as cache:
        _, second = run(project, cache)
        assert (second.ran, second.failed, second.cached) == (len(plan.jobs) - 3, 0, 3)
        assert len(revived.received) == len(plan.jobs) - 3
        assert cache.finished_keys() == {j.key for j in plan.jobs}


def test_run_with_an_unreachable_endpoint_fails_the_model_before_any_job(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path, models=("fake-api",))
    write_model(project, f"http://127.0.0.1:{closed_port()}/v1")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, summary = run(project, cache)
        assert cache.finished_keys() == set()
    assert summary.failed == len(plan.jobs)
    assert re.match(
        r"^model fake-api: cannot reach the endpoint ", summary.failed_models["fake-api"]
    )


def test_identity_asks_the_endpoint_only_through_a_probing_source_unless_pinned(
    server: FakeServer, tmp_path: Path
) -> None:
    from medbench.run.identity import resolve_identity
    from medbench.run.served import Probing, SnapshotLog, recorded

    project = make_project(tmp_path, models=("fake-api",))
    write_model(project, server.url, snapshot=None)
    (project / "specs/models/fake-api.yaml").write_text(
        (project / "specs/models/fake-api.yaml").read_text().replace("  snapshot: None\n", "")
    )
    server.responder = lambda body: completion("ok", model="fake-model-2026-01-01")
    spec = load_specs(project / "specs").models["fake-api"]
    models, state = tmp_path / "models", tmp_path / "state"
    unknown = resolve_identity(spec, project, models, snapshots=recorded(state))
    assert (unknown.payload["weights"]["snapshot"], unknown.revision) == (None, MODEL)
    assert (len(server.received), server.model_requests) == (0, 0)
    asked = resolve_identity(spec, project, models, snapshots=Probing(state))
    assert asked.payload["weights"]["snapshot"] == "fake-model-2026-01-01"
    assert asked.revision == "fake-model-2026-01-01"
    assert SnapshotLog(state).history(spec) == ["fake-model-2026-01-01"]
    asked_requests = len(server.received)
    again = resolve_identity(spec, project, models, snapshots=recorded(state))
    assert again == asked
    assert len(server.received) == asked_requests
    pinned = spec.model_copy(update={"openai": spec.openai.model_copy(update={"snapshot": MODEL})})  # type: ignore[union-attr]
    assert (
        resolve_identity(pinned, project, models, snapshots=Probing(state)).payload["weights"][
            "snapshot"
        ]
        is None
    )
    assert len(server.received) == asked_requests


# Answers that are not answers, and refusals that are not rate limits


def finished(text: str, reason: str, model: str = SNAPSHOT) -> Reply:
    reply = completion(text, model=model)
    reply.body["choices"][0]["finish_reason"] = reason
    return reply


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            finished("", "length"),
            "openai finish_reason length: the answer is empty, the limit of 16 tokens ran out "
            "first (a reasoning model spends it on hidden reasoning: raise "
            "`openai.max_completion_tokens` or lower `openai.reasoning_effort`)",
        ),
        (
            finished("", "content_filter"),
            "openai finish_reason content_filter: the provider's content filter withheld the "
            "answer",
        ),
        (
            finished("Pneumo", "content_filter"),
            "openai finish_reason content_filter: the provider's content filter withheld the "
            "answer",
        ),
    ],
)
def test_openai_empty_or_filtered_answer_is_a_failure_with_its_reason(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend], reply: Reply, expected: str
) -> None:
    server.add(reply)
    assert one(open_backend(server.url)).error == expected
    assert len(server.received) == 1  # the same request would end the same way: not retried


def test_openai_answer_cut_by_the_length_limit_is_kept(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.add(finished("Pneumonia, because the", "length"))
    output = one(open_backend(server.url))
    assert (output.text, output.error) == ("Pneumonia, because the", None)


def test_openai_answer_served_by_another_snapshot_than_pinned_fails(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.add(completion("pneumonia", model="fake-model-2026-06-01"))
    assert one(open_backend(server.url, snapshot=SNAPSHOT)).error == (
        "openai snapshot mismatch: the endpoint answered as 'fake-model-2026-06-01', but the "
        f"spec pins `openai.snapshot: {SNAPSHOT}`; the answer would be filed under the wrong "
        "model. Pin the new snapshot (a new model) or request the dated name."
    )
    server.add(completion("pneumonia", model=SNAPSHOT))
    assert one(open_backend(server.url, snapshot=SNAPSHOT)).text == "pneumonia"


QUOTA = "You exceeded your current quota, please check your plan and billing details."


def test_openai_insufficient_quota_fails_fast_and_stops_the_other_requests(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    body = {"error": {"message": QUOTA, "type": "insufficient_quota", "code": "insufficient_quota"}}
    server.responder = lambda request: Reply(429, body)
    backend = open_backend(server.url, max_concurrency=1, max_retries=5)
    outputs = backend.generate([request(f"q{i}") for i in range(4)])
    assert [o.error for o in outputs] == [f"openai insufficient quota: {QUOTA}"] * 4
    assert len(server.received) == 1


def test_openai_rate_limit_429_is_still_retried(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.add(error(429, "Rate limit reached for requests"))
    output = one(open_backend(server.url))
    assert (output.text, len(server.received)) == ("echo: hello", 2)


def test_openai_sends_reasoning_effort_and_max_completion_tokens(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    backend = open_backend(server.url, reasoning_effort="low", max_completion_tokens=512)
    one(backend)
    sent = server.received[0]
    assert (sent["reasoning_effort"], sent["max_completion_tokens"]) == ("low", 512)
    assert "max_tokens" not in sent
    backend.probe()
    assert server.received[1]["max_tokens"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_completion_tokens", "512"),
        ("max_completion_tokens", 0),
        ("max_completion_tokens", 1.5),
        ("reasoning_effort", "extreme"),
        ("reasoning_effort", True),
    ],
)
def test_openai_spec_refuses_loose_reasoning_settings(field: str, value: Any) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=rf"openai\.{field}"):
        model_spec("http://127.0.0.1:1/v1", **{field: value})


def test_identity_holds_reasoning_settings_only_when_set() -> None:
    plain = openai_identity(model_spec("http://h/v1"), SNAPSHOT).payload["weights"]
    assert plain == {
        "base_url": "http://h/v1",
        "model": MODEL,
        "snapshot": SNAPSHOT,
        "content_order": "image_position",
    }
    spec = model_spec("http://h/v1", reasoning_effort="none", max_completion_tokens=64)
    assert openai_identity(spec, SNAPSHOT).payload["weights"] == {
        **plain,
        "reasoning_effort": "none",
        "max_completion_tokens": 64,
    }


def test_run_stores_an_empty_length_cut_answer_as_failed_and_retries_it(
    server: FakeServer, tmp_path: Path
) -> None:
    project = make_project(tmp_path, models=("fake-api",))
    write_model(project, server.url, max_retries=0)
    server.responder = lambda body: finished("", "length")
    with Cache(tmp_path / "c.sqlite") as cache:
        plan, first = run(project, cache)
        assert (first.ran, first.failed) == (0, len(plan.jobs))
        assert cache.finished_keys() == set()
        server.responder = lambda body: completion("pneumonia")
        _, second = run(project, cache)
        assert (second.ran, second.failed) == (len(plan.jobs), 0)


def test_openai_pinned_snapshot_accepts_its_default_revision_name(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend]
) -> None:
    server.add(completion("pneumonia", model=f"{MODEL}@main"))  # transformers serve up to 5.2x
    output = one(open_backend(server.url, snapshot=MODEL))
    assert (output.text, output.error) == ("pneumonia", None)


def test_openai_no_image_job_sends_its_prompt_without_an_image_part(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend], tmp_path: Path
) -> None:
    from tests.data.test_imagevariants import IMAGE_VARIANTS, plan_of

    plan = plan_of(tmp_path, IMAGE_VARIANTS, models=("tiny-llava",))
    job = next(j for j in plan.jobs if j.image_variant == "none")
    original = next(
        j
        for j in plan.jobs
        if j.image_variant == "original"
        and (j.family, j.variant, j.sample) == (job.family, job.variant, job.sample)
    )
    backend = open_backend(server.url)
    outputs = backend.generate([plan.request(job), plan.request(original)])
    assert [o.error for o in outputs] == [None, None]
    contents = [sent["messages"][-1]["content"] for sent in server.received]
    [bare] = [c for c in contents if isinstance(c, str)]  # the requests run concurrently
    [seen] = [c for c in contents if not isinstance(c, str)]
    text = plan.request(job).messages.text
    assert bare == text
    assert [part["type"] for part in seen] == ["image_url", "text"]
    assert seen[1]["text"] == text


# The hf backend's settings, applied client-side


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("template", [{"role": "system", "content": SYSTEM}, "Pneumonia?"]),
        ("fold_into_user", [f"{SYSTEM}\n\nPneumonia?"]),
        ("none", ["Pneumonia?"]),
    ],
)
def test_openai_places_the_system_text_as_the_spec_says(
    server: FakeServer,
    sample_images: list[Path],
    setting: str,
    expected: list[Any],
) -> None:
    spec = model_spec(server.url).model_copy(update={"system_prompt": setting})
    backend = OpenAIBackend(spec, FAST)
    try:
        backend.generate([request("Pneumonia?", sample_images[0], system=SYSTEM)])
    finally:
        backend.close()
    [sent] = server.received
    turns = sent["messages"]
    assert turns[:-1] == expected[:-1]
    assert turns[-1]["content"][-1] == {"type": "text", "text": expected[-1]}


def test_openai_sends_the_image_after_the_text_where_the_variant_puts_it(
    server: FakeServer, open_backend: Callable[..., OpenAIBackend], sample_images: list[Path]
) -> None:
    ref = ImageRef(str(sample_images[0]), sha256_file(sample_images[0]))
    backend = open_backend(server.url)
    backend.generate([Request("a", Messages(None, "Pneumonia?", (ref,), "after_text"))])
    [sent] = server.received
    text, picture = sent["messages"][-1]["content"]
    assert text == {"type": "text", "text": "Pneumonia?"}
    assert picture["image_url"]["url"].startswith("data:image/jpeg;base64,")


def _sent_image(sent: dict[str, Any]) -> Image.Image:
    [picture] = [p for p in sent["messages"][-1]["content"] if p["type"] == "image_url"]
    head, data = picture["image_url"]["url"].split(",", 1)
    assert head == "data:image/png;base64"  # padded pixels go losslessly
    return Image.open(io.BytesIO(base64.b64decode(data)))


@pytest.mark.parametrize(
    ("setting", "mode", "fill"),
    [
        ("pad_square", "RGB", (122, 116, 104)),
        ("pad_square_grey", "RGB", (122, 116, 104)),
        ("pad_square_grey", "L", (114, 114, 114)),
    ],
)
def test_openai_pads_the_image_bytes_as_image_preprocess_says(
    server: FakeServer, tmp_path: Path, setting: str, mode: str, fill: tuple[int, ...]
) -> None:
    path = tmp_path / "wide.png"
    Image.new(mode, (40, 20), 200 if mode == "L" else (200, 10, 10)).save(path)
    spec = model_spec(server.url).model_copy(update={"image_preprocess": setting})
    backend = OpenAIBackend(spec, FAST)
    try:
        [output] = backend.generate([request("Pneumonia?", path)])
    finally:
        backend.close()
    assert output.error is None
    sent = _sent_image(server.received[0]).convert("RGB")
    inside = (200, 200, 200) if mode == "L" else (200, 10, 10)
    # CLIP's mean colour (LLaVA's padding), or LLaVA-Med's grey for a greyscale file
    assert (sent.size, sent.getpixel((0, 0)), sent.getpixel((20, 39)), sent.getpixel((20, 20))) == (
        (40, 40),
        fill,
        fill,
        inside,
    )


def test_openai_square_image_goes_unpadded_as_its_own_bytes(
    server: FakeServer, tmp_path: Path
) -> None:
    square = tmp_path / "square.jpg"
    Image.new("RGB", (30, 30), (200, 10, 10)).save(square)
    spec = model_spec(server.url).model_copy(update={"image_preprocess": "pad_square"})
    backend = OpenAIBackend(spec, FAST)
    try:
        backend.generate([request("Pneumonia?", square)])
    finally:
        backend.close()
    [picture] = server.received[0]["messages"][-1]["content"][:1]
    assert base64.b64decode(picture["image_url"]["url"].split(",", 1)[1]) == square.read_bytes()


def test_openai_identity_keys_the_content_order_of_models_that_read_images() -> None:
    reads = openai_identity(model_spec("http://127.0.0.1:1/v1"), None)
    text_only = model_spec("http://127.0.0.1:1/v1").model_copy(update={"text_only": True})
    assert reads.payload["weights"]["content_order"] == "image_position"
    assert "content_order" not in openai_identity(text_only, None).payload["weights"]
