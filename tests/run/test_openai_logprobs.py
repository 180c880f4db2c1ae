"""Tests of option likelihoods through the openai backend: first-token `logprobs` from a local
fake endpoint (one that returns them, one that does not), and their scoring."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from medbench.run.backends.base import BackendContext, Output, Request
from medbench.run.backends.openai_api import OpenAIBackend, parse_completion
from medbench.run.backends.openai_api.logprobs import (
    MULTI_TOKEN,
    NO_LOGPROBS,
    NOT_LISTED,
    LogprobScorer,
    option_scores,
)
from medbench.run.cache import Cache
from medbench.run.plan import make_plan
from medbench.score.answers import collect_answers, make_layout
from medbench.score.likelihood import compute_likelihoods, run_likelihood_stage
from medbench.spec.loading import load_specs
from medbench.spec.prompts import Messages
from tests.openai_fakes import FakeServer, Reply, completion, fake_server
from tests.run.test_openai_backend import FAST, model_spec, write_model
from tests.spec_tree import make_project

TOP = [("yes", -0.2), (" no", -1.9), ("A", -2.5), (" A", -3.1), ("B", -3.0)]
TOP += [("pneumonia", -3.5), ("norm", -4.0)]
"""The first answer token's alternatives the fake endpoint lists (log-probabilities)."""


def with_logprobs(reply: Reply, top: list[tuple[str, float]] = TOP) -> Reply:
    """A completion whose first (and only) token carries `top` as its `top_logprobs`."""
    body = json.loads(json.dumps(reply.body))
    token, logprob = top[0]
    body["choices"][0]["finish_reason"] = "length"
    body["choices"][0]["logprobs"] = {
        "content": [
            {
                "token": token,
                "logprob": logprob,
                "top_logprobs": [{"token": t, "logprob": v} for t, v in top],
            }
        ]
    }
    return Reply(200, body)


def logprob_responder(request: dict[str, Any]) -> Reply:
    return with_logprobs(completion("yes"))


def test_option_scores_reads_single_token_options_and_says_why_others_have_none() -> None:
    output = Output(text="yes", logprobs=tuple(TOP))
    scores = option_scores(("A", "B", "no", "normal", "glioma"), output)
    # `A` and ` A` both reply `A`: their probabilities add
    assert scores.total[0] == pytest.approx(math.log(math.exp(-2.5) + math.exp(-3.1)), abs=1e-12)
    assert scores.total[1:3] == (-3.0, -1.9)
    assert scores.n_tokens == (1, 1, 1, 0, 0)
    assert scores.unscored == (None, None, None, MULTI_TOKEN, NOT_LISTED)
    assert NOT_LISTED == "option not among top_logprobs (the 20 most likely first tokens)"
    assert option_scores(("yes", "no"), output).unscored == ()
    assert option_scores(("yes",), Output(text="yes")).error == NO_LOGPROBS


def test_parse_completion_reads_the_first_tokens_logprobs_and_drops_hostile_entries() -> None:
    body = json.loads(json.dumps(with_logprobs(completion("yes")).body))
    alternatives = body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    alternatives += [
        {"token": "x" * 201, "logprob": -1.0},  # too long
        {"token": "up", "logprob": 0.5},  # a probability over 1
        {"token": "inf", "logprob": float("-inf")},
        {"token": "nan", "logprob": float("nan")},
        {"token": "bool", "logprob": True},
        {"token": 7, "logprob": -1.0},
        "not an entry",
        {"token": "yes", "logprob": -9.0},  # given twice: the first stays
    ]
    parsed = parse_completion(json.dumps(body))
    assert parsed.top_logprobs == tuple(TOP)
    assert parse_completion(json.dumps(completion("yes").body)).top_logprobs is None


def test_logprob_scorer_asks_for_one_token_with_top_logprobs(tmp_path: Path) -> None:
    with fake_server(responder=logprob_responder) as server:
        backend = OpenAIBackend(model_spec(server.url), FAST)
        try:
            scorer = LogprobScorer(backend)
            requests = [
                Request(f"k{i}", Messages(None, "Yes or no?"), ("yes", "no")) for i in (1, 2, 3)
            ]
            scores = scorer.score(requests)
        finally:
            backend.close()
    assert [s.total for s in scores] == [(-0.2, -1.9)] * 3
    assert (scorer.forward_passes, scorer.no_logprobs, len(server.received)) == (3, None, 3)
    body = server.received[0]
    assert (body["max_tokens"], body["logprobs"], body["top_logprobs"]) == (1, True, 20)
    assert body["temperature"] == 0.0


def test_logprob_scorer_stops_asking_an_endpoint_that_returns_no_logprobs() -> None:
    with fake_server(responder=lambda _: completion("yes")) as server:
        backend = OpenAIBackend(model_spec(server.url), FAST)
        try:
            scorer = LogprobScorer(backend)
            requests = [
                Request(f"k{i}", Messages(None, "Yes or no?"), ("yes", "no")) for i in (1, 2)
            ]
            scores = scorer.score(requests)
        finally:
            backend.close()
    assert [s.error for s in scores] == [NO_LOGPROBS] * 2
    assert (scorer.no_logprobs, len(server.received)) == (NO_LOGPROBS, 1)


# Through the likelihood stage


def likelihood_project(tmp_path: Path, server: FakeServer) -> Path:
    project = make_project(
        tmp_path,
        families=("closed_diagnosis", "finding_present"),
        models=("fake-api", "baseline-chance"),
        limit_per_class=2,
        suite_extra="likelihood: {}\n",
    )
    write_model(project, server.url, max_concurrency=2)
    return project


def test_likelihood_stage_scores_an_openai_model_and_leaves_out_a_family_it_cannot(
    tmp_path: Path,
) -> None:
    with fake_server(responder=logprob_responder) as server:
        project = likelihood_project(tmp_path, server)
        specs = load_specs(project / "specs")
        with Cache(tmp_path / "answers.sqlite") as cache:
            plan = make_plan(specs, "t", models_dir=tmp_path / "models")
            run = compute_likelihoods(plan, specs, cache, FAST)
            # 4 images x (8 closed_diagnosis + 6 finding_present variants), one request each
            assert (run.planned, run.ran, run.failed, run.skipped) == (56, 56, 0, {})
            assert len(server.received) == run.forward_passes == 56
            again = compute_likelihoods(plan, specs, cache, FAST)
            assert (again.cached, again.forward_passes, len(server.received)) == (56, 0, 56)
            result = run_likelihood_stage(
                specs,
                plan,
                cache,
                collect_answers(specs, plan, cache),
                make_layout(specs, plan),
                tmp_path / "out",
                BackendContext(),
            )
    # `normal` is listed only by its first token `norm`: closed_diagnosis is left out
    text = (project / "specs/prompts/closed_diagnosis.yaml").read_text().splitlines()
    line = text.index("  - id: guided") + 1  # the first variant in order that offers `normal`
    where = f"specs/prompts/closed_diagnosis.yaml:{line}:9: variants.1.id:"
    [(group, why)] = result.left_out.items()
    assert group == ("fake-api", "closed_diagnosis")
    assert why.startswith(f"{where} model fake-api: option 'normal' (task pneumonia_cxr, image ")
    assert why.endswith(f"): {MULTI_TOKEN}; the family is not scored by likelihood for this model.")
    items = result.items
    assert set(items["family"]) == {"finding_present"} and len(items) == 24
    assert {tuple(json.loads(t)) for t in items["total"]} == {(-0.2, -1.9)}
    scores = result.tables.scores
    assert set(scores["family"]) == {"finding_present"} and (scores["n"] == 4).all()
    from medbench.score.likelihood import summary_lines

    assert f"  {why}" in summary_lines(result)


def test_likelihood_stage_skips_an_openai_model_whose_endpoint_returns_no_logprobs(
    tmp_path: Path,
) -> None:
    with fake_server(responder=lambda _: completion("yes")) as server:
        project = likelihood_project(tmp_path, server)
        specs = load_specs(project / "specs")
        with Cache(tmp_path / "answers.sqlite") as cache:
            plan = make_plan(specs, "t", models_dir=tmp_path / "models")
            run = compute_likelihoods(plan, specs, cache, FAST)
            assert cache.finished_keys() == set()  # nothing stored: a later run asks again
    assert (run.planned, run.ran, run.failed, len(server.received)) == (56, 0, 0, 1)
    assert run.lines() == [  # the one request sent is the one forward pass
        "likelihood: 56 jobs planned: 0 cached, 0 ran, 0 failed, 1 forward passes.",
        f"  fake-api: not scored: {NO_LOGPROBS}.",
    ]
