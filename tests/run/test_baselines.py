"""The baseline backend's reference answers: always refuse and the stable random pick."""

from __future__ import annotations

from collections import Counter

from medbench.run.backends.base import BackendContext, Request
from medbench.run.backends.baseline import BaselineBackend
from medbench.score.parsing import parse_answer
from medbench.spec import ModelSpec
from medbench.spec.prompts import ImageRef, Messages

OPTIONS = ("glioma", "meningioma", "pituitary tumor", "no tumor")


def _backend(kind: str) -> BaselineBackend:
    spec = ModelSpec.model_validate(
        {
            "schema_version": 1,
            "kind": "model",
            "id": f"b-{kind}",
            "title": kind,
            "backend": "baseline",
            "family": "b",
            "baseline": kind,
        }
    )
    return BaselineBackend(spec, BackendContext())


def _request(text: str, image: str, options: tuple[str, ...] = OPTIONS) -> Request:
    messages = Messages(None, text, (ImageRef(f"/x/{image}.png", image * 4),))
    return Request(key=f"{text}|{image}|{options}", messages=messages, options=options)


def test_baseline_always_refuse_answers_what_the_parser_reads_as_a_refusal() -> None:
    backend = _backend("always_refuse")
    for options in (OPTIONS, ("yes", "no")):
        (output,) = backend.generate([_request("Which tumour?", "ab", options)])
        assert output.text is not None
        assert parse_answer(output.text, options).status == "refusal"


def test_baseline_stable_random_gives_an_image_one_answer_under_every_wording() -> None:
    backend = _backend("stable_random")
    reversed_options = tuple(reversed(OPTIONS))
    for image in ("a1", "b2", "c3", "d4"):
        answers = {
            output.text
            for output in backend.generate(
                [
                    _request("Which tumour is shown?", image),
                    _request("As a radiologist: which tumour?", image),
                    _request("Which tumour is shown?", image, reversed_options),
                ]
            )
        }
        assert len(answers) == 1


def test_baseline_stable_random_is_about_uniform_over_images() -> None:
    backend = _backend("stable_random")
    outputs = backend.generate([_request("Which?", f"{i:04x}") for i in range(800)])
    counts = Counter(output.text for output in outputs)
    assert set(counts) == set(OPTIONS)
    assert all(150 <= n <= 250 for n in counts.values()), counts  # 200 expected each
