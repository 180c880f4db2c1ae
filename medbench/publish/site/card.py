"""A model's card: what a reader needs first on its page (repository and resolved revision,
its pair, whether it is a test model, precision and decoding, dates, its record and spec)."""

from __future__ import annotations

import json

from medbench.publish.record import Record
from medbench.publish.site.context import Site
from medbench.publish.site.layout import title_of

Fact = tuple[str, str, list[tuple[str, str]]]
"""(term, text, links (href, text) after the text)."""


def record_path(record: Record) -> str:
    """Where the site keeps a copy of the record, from the root."""
    return f"records/{record.suite}.{record.model_id}.json"


def _weights(spec: dict[str, object]) -> str:
    backend = spec.get("backend")
    if backend == "baseline":
        return f"none: a {spec.get('baseline', '')} baseline that never looks at the image"
    if backend == "openai":
        api = spec.get("openai")
        model = api.get("model") if isinstance(api, dict) else None
        return f"served by an OpenAI-compatible API: {model or '–'}"
    if spec.get("repo"):
        return f"Hugging Face {spec['repo']} (asked for {spec.get('revision', 'main')})"
    if spec.get("tiny"):
        return "a tiny test checkpoint built locally by medbench (random or demonstration weights)"
    return f"local folder {spec.get('path') or '–'}"


def _settings(spec: dict[str, object]) -> str:
    generation = spec.get("generation")
    gen = generation if isinstance(generation, dict) else {}
    decoding = "sampling" if gen.get("do_sample") else "greedy"
    tokens = gen.get("max_new_tokens", 128)
    return f"{spec.get('dtype', 'auto')} weights, {decoding} decoding, at most {tokens} new tokens"


def model_card(site: Site, model: str) -> list[Fact]:
    """The card's facts; writes a copy of each of the model's records into the site."""
    records = [r for r in site.records if r.model_id == model]
    first = records[0]
    spec = first.model
    base = str(spec.get("base") or "")
    fine_tunes = sorted(
        (r.model_id, title_of(r)) for r in site.models.values() if r.model.get("base") == model
    )
    if base:
        pair_text = "the medical fine-tune of" if spec.get("medical") else "fine-tuned from"
        pair = (
            pair_text,
            [(f"{base}.html", title_of(site.models[base]))] if base in site.models else [],
        )
        pair_fact: Fact = ("Pair", pair[0] + ("" if pair[1] else f" {base}"), pair[1])
    elif fine_tunes:
        pair_fact = ("Pair", "the base of", [(f"{m}.html", t) for m, t in fine_tunes])
    else:
        pair_fact = ("Pair", "none (no base or fine-tune on this leaderboard)", [])
    revisions = sorted({r.revision for r in records})
    record_links = []
    for record in records:
        path = record_path(record)
        site.files[path] = (
            json.dumps(record.model_dump(mode="json"), sort_keys=True, indent=1) + "\n"
        ).encode("utf-8")
        record_links.append((f"../{path}", f"{record.suite} (JSON)"))
    test = "yes: random or demonstration weights, not a real result" if first.test_model else "no"
    return [
        ("Model id", model, []),
        ("Weights", _weights(spec), []),
        ("Resolved revision", ", ".join(revisions), []),
        ("Architecture family", str(spec.get("family", "–")), []),
        ("Medical fine-tune", "yes" if spec.get("medical") else "no", []),
        pair_fact,
        ("Test model", test, []),
        ("Precision and decoding", _settings(spec), []),
        ("Evaluated", ", ".join(sorted({f"{r.date} ({r.suite})" for r in records})), []),
        (
            "Record",
            "; ".join(
                f"results/{r.suite}/leaderboard/ on the building machine (local, unpublished)"
                if (r.suite, model) in site.local
                else f"leaderboard/{r.suite}/{model}.json in the repository"
                for r in records
            )
            + "; a copy:",
            record_links,
        ),
        ("Spec", f"specs/models/{model}.yaml in the repository (the record holds it as run)", []),
    ]


__all__ = ["Fact", "model_card", "record_path"]
