"""Tests of image embeddings (tiny models, sample images), the embedding store, the linear probe
and the t-SNE map."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, unused-ignore]

from medbench.data.images import sha256_file
from medbench.data.samples import Sample
from medbench.run.backends.base import BackendContext
from medbench.run.identity import ModelIdentity
from medbench.score.metrics import chance_f1
from medbench.score.probe import (
    EMBED_RULE,
    EmbeddingStore,
    can_embed,
    embedding_key,
    get_embeddings,
    pixel_features,
    probe,
    tsne_svg,
)
from medbench.spec.model import ModelSpec
from tests.spec_tree import tiny_model_spec

ARCHS = ("llava", "llava_next", "gemma3")
TINY_DIM = 32
"""Hidden size of the tiny models' vision towers and language models."""


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    with threadpool_limits(limits=1):
        yield


def model_spec(arch: str, **fields: Any) -> ModelSpec:
    return tiny_model_spec(arch, **{"dtype": "float32", **fields})


@pytest.fixture
def tiny_dirs(tiny_llava_dir: Path, tiny_llava_next_dir: Path, tiny_gemma3_dir: Path) -> Any:
    return {"llava": tiny_llava_dir, "llava_next": tiny_llava_next_dir, "gemma3": tiny_gemma3_dir}


def loaded_model(arch: str, folder: Path) -> Any:
    from medbench.run.backends.hf.loading import load

    return load(model_spec(arch), BackendContext(device="cpu", checkpoint_dir=folder))


def samples_of(paths: list[Path]) -> list[Sample]:
    return [Sample(p.stem, p, p.parent.name, sha256_file(p)) for p in paths]


# embeddings


@pytest.mark.parametrize("arch", ARCHS)
def test_embed_images_gives_one_vector_per_image_and_kind(
    arch: str, tiny_dirs: dict[str, Path], sample_images: list[Path]
) -> None:
    from medbench.run.backends.hf.embed import embed_images

    images = sample_images[:5]
    out = embed_images(loaded_model(arch, tiny_dirs[arch]), images, ["vision", "projected"], 4)
    assert {k: (v.shape, str(v.dtype)) for k, v in out.items()} == {
        "vision": ((5, TINY_DIM), "float32"),
        "projected": ((5, TINY_DIM), "float32"),
    }
    assert np.isfinite(out["vision"]).all() and np.isfinite(out["projected"]).all()
    assert not np.allclose(out["vision"], out["projected"])
    assert not np.allclose(out["vision"][0], out["vision"][1])


def _by_hand(arch: str, loaded: Any, images: list[Path]) -> dict[str, np.ndarray]:
    """Each image's embeddings computed through the model's own tower, projector and (for
    LLaVA-NeXT) transformers' own feature packing, newline rows then dropped."""
    import torch

    from medbench.data.images import load_image

    model, config = loaded.model, loaded.model.config
    inputs = loaded.processor.image_processor(
        images=[load_image(p) for p in images], return_tensors="pt"
    )
    tower = model.model.vision_tower
    vision, projected = [], []
    with torch.inference_mode():
        if arch == "gemma3":
            hidden = tower(pixel_values=inputs["pixel_values"]).last_hidden_state
            tokens = model.get_image_features(pixel_values=inputs["pixel_values"]).pooler_output
            assert hidden.shape[1] == 16 * tokens.shape[1]  # 4x4 patches pooled into a token
            return {"vision": hidden.mean(dim=1).numpy(), "projected": tokens.mean(dim=1).numpy()}
        assert (config.vision_feature_layer, config.vision_feature_select_strategy) == (
            -2,
            "default",
        )
        options = {"image_sizes": inputs["image_sizes"]} if arch == "llava_next" else {}
        packed = model.get_image_features(pixel_values=inputs["pixel_values"], **options)
        for i, tokens in enumerate(packed.pooler_output):
            if arch == "llava_next":
                newline = (tokens == model.model.image_newline).all(dim=-1)
                assert 0 < int(newline.sum()) < len(tokens)
                tokens = tokens[~newline]
                crops = inputs["pixel_values"][i][: _crop_count(model, inputs["image_sizes"][i])]
            else:
                crops = inputs["pixel_values"][i : i + 1]
            penultimate = tower(pixel_values=crops, output_hidden_states=True).hidden_states[-2]
            patches = penultimate[:, 1:]
            if arch == "llava_next":
                patches = _unpadded(model, patches, inputs["image_sizes"][i])
            assert len(patches.reshape(-1, patches.shape[-1])) == len(tokens)
            vision.append(patches.reshape(-1, patches.shape[-1]).mean(dim=0))
            projected.append(tokens.mean(dim=0))
    return {"vision": torch.stack(vision).numpy(), "projected": torch.stack(projected).numpy()}


def _crop_count(model: Any, size: Any) -> int:
    from transformers.models.llava_next.modeling_llava_next import image_size_to_num_patches

    config = model.config
    return int(
        image_size_to_num_patches(
            size, config.image_grid_pinpoints, config.vision_config.image_size
        )
    )


def _unpadded(model: Any, patches: Any, size: Any) -> Any:
    """The whole image's tokens, then the crops' tokens on their grid less the padding rows or
    columns (LLaVA-NeXT's `spatial_unpad`)."""
    import torch
    from transformers.models.llava_next.modeling_llava_next import (
        get_anyres_image_grid_shape,
        unpad_image,
    )

    config = model.config
    side = config.vision_config.image_size // config.vision_config.patch_size
    rows, cols = get_anyres_image_grid_shape(
        size, config.image_grid_pinpoints, config.vision_config.image_size
    )
    grid = patches[1:].reshape(rows, cols, side, side, -1).permute(4, 0, 2, 1, 3)
    grid = unpad_image(grid.reshape(-1, rows * side, cols * side), size)
    return torch.cat([patches[0], grid.flatten(1).T])


@pytest.mark.parametrize("arch", ARCHS)
def test_embed_images_is_the_mean_of_the_tokens_the_language_model_reads(
    arch: str, tiny_dirs: dict[str, Path], sample_images: list[Path]
) -> None:
    from medbench.run.backends.hf.embed import embed_images

    loaded = loaded_model(arch, tiny_dirs[arch])
    images = [sample_images[0], sample_images[-1]]
    expected = _by_hand(arch, loaded, images)
    got = embed_images(loaded, images, ["vision", "projected"])
    for kind in ("vision", "projected"):
        np.testing.assert_allclose(got[kind], expected[kind], rtol=0, atol=1e-5)


def _wide(tmp_path: Path, source: Path, mode: str = "RGB") -> Path:
    from PIL import Image

    wide = tmp_path / "wide.png"
    image = Image.open(source).convert(mode)
    image.resize((image.width * 2, image.height)).save(wide)
    return wide


@pytest.mark.parametrize(
    ("arch", "preprocess", "mode"),
    [
        ("llava", "pad_square", "RGB"),
        ("llava_next", "pad_square", "RGB"),
        ("gemma3", "pad_square", "RGB"),
        ("llava", "pad_square_grey", "L"),
    ],
)
def test_embed_images_pads_as_generation_does(
    arch: str,
    preprocess: str,
    mode: str,
    tiny_dirs: dict[str, Path],
    sample_images: list[Path],
    tmp_path: Path,
) -> None:
    from medbench.data.images import load_image
    from medbench.run.backends.hf.embed import embed_images
    from medbench.run.backends.padding import square_padding

    loaded = loaded_model(arch, tiny_dirs[arch])
    wide = _wide(tmp_path, sample_images[0], mode)
    padding = square_padding(model_spec(arch, image_preprocess=preprocess), loaded.processor)
    assert padding is not None
    padded = tmp_path / "padded.png"
    padding.apply(wide, load_image(wide)).save(padded)
    kinds = ["vision", "projected"]
    plain = embed_images(loaded, [wide], kinds)
    got = embed_images(loaded, [wide], kinds, padding=padding)
    by_file = embed_images(loaded, [padded], kinds)
    for kind in kinds:
        assert not np.allclose(got[kind], plain[kind], atol=1e-3)
        np.testing.assert_allclose(got[kind], by_file[kind], rtol=0, atol=1e-6)


def test_extract_pads_as_the_spec_says(
    tiny_llava_dir: Path, sample_images: list[Path], tmp_path: Path
) -> None:
    from medbench.run.backends.hf.embed import extract

    wide = _wide(tmp_path, sample_images[0])
    context = BackendContext(device="cpu", checkpoint_dir=tiny_llava_dir)
    plain = extract(model_spec("llava"), context, [wide], ["vision"])
    spec = model_spec("llava", image_preprocess="pad_square")
    padded = extract(spec, context, [wide], ["vision"])
    assert not np.allclose(plain["vision"], padded["vision"], atol=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_embed_images_is_deterministic_and_does_not_depend_on_batch_size(
    arch: str, tiny_dirs: dict[str, Path], sample_images: list[Path]
) -> None:
    from medbench.run.backends.hf.embed import embed_images

    loaded = loaded_model(arch, tiny_dirs[arch])
    images = sample_images[::40][:5]
    first = embed_images(loaded, images, ["vision", "projected"], 5)
    again = embed_images(loaded, images, ["vision", "projected"], 5)
    one_by_one = embed_images(loaded, images, ["vision", "projected"], 1)
    for kind in first:
        assert np.array_equal(first[kind], again[kind])
        np.testing.assert_allclose(first[kind], one_by_one[kind], rtol=0, atol=1e-5)


def test_embed_images_gives_nan_rows_for_undecodable_images(
    tiny_llava_dir: Path, sample_images: list[Path], tmp_path: Path
) -> None:
    from medbench.run.backends.hf.embed import embed_images

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    out = embed_images(
        loaded_model("llava", tiny_llava_dir), [sample_images[0], broken], ["vision"], 8
    )
    assert np.isfinite(out["vision"][0]).all() and np.isnan(out["vision"][1]).all()


def test_embed_batch_refuses_a_model_without_the_rule() -> None:
    import torch

    from medbench.errors import BackendError
    from medbench.run.backends.hf.embed import embed_batch

    class Qwen2VL:  # a vision-language model without a LLaVA-style multi-modal projector
        visual = object()

    expected = (
        "Qwen2VL has no multi-modal projector; medbench embeds images only for the LLaVA, "
        "LLaVA-NeXT and Gemma 3 families"
    )
    with pytest.raises(BackendError, match=f"^{re.escape(expected)}$"):
        embed_batch(Qwen2VL(), {"pixel_values": torch.zeros(1, 3, 8, 8)}, ["vision"])


def test_embed_images_rejects_an_unknown_kind(tiny_llava_dir: Path) -> None:
    from medbench.run.backends.hf.embed import embed_images

    with pytest.raises(
        ValueError, match=r"^unknown embedding kind 'cls'; expected one of vision, projected$"
    ):
        embed_images(loaded_model("llava", tiny_llava_dir), [], ["cls"])


def test_get_embeddings_rerun_extracts_nothing(
    tiny_llava_dir: Path, sample_images: list[Path], tmp_path: Path
) -> None:
    spec = model_spec("llava")
    identity = ModelIdentity({"backend": "hf", "weights": "tiny-llava"}, "r", tiny_llava_dir)
    samples = samples_of(sample_images[:4])
    context = BackendContext(device="cpu")
    with EmbeddingStore(tmp_path / "embeddings.sqlite") as store:
        first = get_embeddings(store, spec, identity, samples, ["vision"], context=context)
        both = get_embeddings(store, spec, identity, samples, context=context)
        again = get_embeddings(store, spec, identity, samples, context=context)
        assert (first.extracted, both.extracted, again.extracted) == (4, 4, 0)
        assert store.count() == 8
    with EmbeddingStore(tmp_path / "embeddings.sqlite") as reopened:
        cold = get_embeddings(reopened, spec, identity, samples, context=context)
    assert cold.extracted == 0
    for kind in ("vision", "projected"):
        assert cold.arrays[kind].shape == (4, TINY_DIM)
        assert np.array_equal(both.arrays[kind], cold.arrays[kind])
    assert np.array_equal(first.arrays["vision"], cold.arrays["vision"])


def test_get_embeddings_reads_repeated_images_once(
    tiny_llava_dir: Path, sample_images: list[Path], tmp_path: Path
) -> None:
    spec = model_spec("llava")
    identity = ModelIdentity({"backend": "hf", "weights": "tiny-llava"}, "r", tiny_llava_dir)
    samples = samples_of(sample_images[:2])
    twice = [*samples, Sample("copy", samples[0].path, samples[0].label, samples[0].sha256)]
    with EmbeddingStore(tmp_path / "e.sqlite") as store:
        got = get_embeddings(store, spec, identity, twice, context=BackendContext(device="cpu"))
    assert got.extracted == 2
    assert np.array_equal(got.arrays["vision"][0], got.arrays["vision"][2])


def test_embedding_key_changes_with_kind_weights_and_image_but_not_decoding() -> None:
    def identity(weights: str, max_new_tokens: int) -> ModelIdentity:
        payload = {
            "backend": "hf",
            "weights": weights,
            "dtype": "auto",
            "generation": {"max_new_tokens": max_new_tokens},
        }
        return ModelIdentity(payload, "r")

    base = embedding_key("vision", identity("a", 8), "0" * 64)
    assert embedding_key("vision", identity("a", 128), "0" * 64) == base
    assert embedding_key("vision", identity("a", 8), "0" * 64, rule=EMBED_RULE - 1) != base
    assert embedding_key("projected", identity("a", 8), "0" * 64) != base
    assert embedding_key("vision", identity("b", 8), "0" * 64) != base
    assert embedding_key("vision", identity("a", 8), "1" * 64) != base


def test_embedding_store_keeps_vectors_as_float16(tmp_path: Path) -> None:
    vector = np.array([0.1, -2.5, 1e6], dtype=np.float32)
    with EmbeddingStore(tmp_path / "e.sqlite") as store:
        store.put_many([("k", "m", "vision", "0" * 64, vector)])
        got = store.get_many(["k", "absent"])
    assert list(got) == ["k"]
    expected = np.array([0.1, -2.5, 65504.0], dtype=np.float16).astype(np.float32)
    assert got["k"].dtype == np.float32 and np.array_equal(got["k"], expected)


def test_can_embed_only_local_vision_language_models() -> None:
    assert can_embed(model_spec("llava"))
    assert not can_embed(model_spec("text", text_only=True, family="llama"))
    baseline = {"backend": "baseline", "baseline": "chance", "tiny": None, "family": "baseline"}
    assert not can_embed(model_spec("llava", **baseline))


# the probe


def blobs(seed: int, n_per_class: int = 100, dim: int = 16, spread: float = 4.0) -> Any:
    rng = np.random.default_rng(seed)
    labels = np.repeat(["a", "b", "c"], n_per_class)
    centres = rng.normal(size=(3, dim)) * spread
    x = centres[np.searchsorted(["a", "b", "c"], labels)] + rng.normal(size=(len(labels), dim))
    return x, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probe_separates_well_separated_classes(seed: int) -> None:
    x, y = blobs(seed, n_per_class=20)
    result = probe(x, y, seed=seed)
    assert result.f1 >= 0.95 and result.f1_lo <= result.f1 <= result.f1_hi
    assert (result.k, result.n, result.n_classes) == (5, 60, 3)
    assert abs(result.permutation_f1 - chance_f1([20, 20, 20])) <= 0.1


def test_probe_predictions_give_its_f1_and_leave_unembedded_rows_out() -> None:
    from sklearn.metrics import f1_score

    x, y = blobs(0, n_per_class=10, spread=1.0)
    x[3] = np.nan  # an image that could not be embedded
    result = probe(x, y, seed=0)
    assert (result.predicted[3], result.fold[3], result.n) == ("", -1, 29)
    kept = [i for i in range(len(y)) if i != 3]
    per_fold = [
        f1_score(
            [y[i] for i in kept if result.fold[i] == f],
            [result.predicted[i] for i in kept if result.fold[i] == f],
            labels=["a", "b", "c"],
            average="macro",
            zero_division=0,
        )
        for f in range(result.k)
    ]
    assert sorted(set(result.fold) - {-1}) == list(range(result.k)) == [0, 1, 2, 3, 4]
    assert result.f1 == pytest.approx(float(np.mean(per_fold)), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_probe_on_shuffled_labels_stays_within_chance(seed: int) -> None:
    x, y = blobs(seed)
    shuffled = np.random.default_rng(100 + seed).permutation(y)
    result = probe(x, shuffled, seed=seed, permutations=1)
    assert abs(result.f1 - chance_f1([100, 100, 100])) <= 0.1


def test_probe_is_deterministic_for_a_seed() -> None:
    x, y = blobs(0, n_per_class=10, spread=0.5)
    assert probe(x, y, seed=3) == probe(x, y, seed=3)


@pytest.mark.parametrize(
    ("counts", "folds", "k"),
    [((3, 10), None, 3), ((8, 9), None, 5), ((8, 9), 2, 2), ((2, 2), 10, 2), ((1, 10), None, 0)],
)
def test_probe_takes_k_from_the_smallest_class(
    counts: tuple[int, int], folds: int | None, k: int
) -> None:
    y = np.array(["a"] * counts[0] + ["b"] * counts[1])
    x = np.random.default_rng(0).normal(size=(len(y), 4)) + (y == "a")[:, None] * 3.0
    result = probe(x, y, folds=folds, permutations=1)
    assert result.k == k
    assert np.isnan(result.f1) == (k == 0)


def _patients(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """30 patients x 4 images: features that identify the patient and say nothing of the
    label beyond that (each patient's label is random)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(30), 4)
    labels = rng.permutation(np.repeat(["a", "b"], 15))[groups]
    x = np.eye(30)[groups] * 5.0 + rng.normal(scale=0.1, size=(120, 30))
    return x, labels, groups


@pytest.mark.parametrize("seed", [0, 1])
def test_probe_with_groups_folds_by_patient(seed: int) -> None:
    x, y, groups = _patients(seed)
    # image-level folds put a patient's other images in training: the patient is recognised
    assert probe(x, y, seed=seed, permutations=1).f1 >= 0.95
    grouped = probe(x, y, seed=seed, permutations=1, groups=groups)
    assert grouped.f1 <= 0.7  # patient identity carries no signal to unseen patients
    assert grouped.k == 5


def test_probe_leaves_out_rows_with_non_finite_features() -> None:
    x, y = blobs(0, n_per_class=10)
    x[[0, 15]] = np.nan
    assert probe(x, y, permutations=1).n == 28


def test_probe_rejects_mismatched_labels() -> None:
    with pytest.raises(
        ValueError,
        match=r"^expected features of shape \(n, dim\) and n labels; got \(3, 2\) and 2 labels$",
    ):
        probe(np.zeros((3, 2)), ["a", "b"])


def test_pixel_features_are_downsampled_rgb_in_unit_range(
    sample_images: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"nope")
    x = pixel_features([sample_images[0], broken], size=8)
    assert x.shape == (2, 8 * 8 * 3) and x.dtype == np.float32
    assert x[0].min() >= 0.0 and x[0].max() <= 1.0 and np.isnan(x[1]).all()


# the t-SNE map

MARK_CYCLE = ["right", "wrong", "refused", "flipped", "unknown"]


def tsne_input() -> tuple[np.ndarray, list[str], list[str]]:
    x, y = blobs(7, n_per_class=10, dim=8)
    return x, [str(v) for v in y], [MARK_CYCLE[i % 5] for i in range(len(y))]


def test_tsne_svg_is_byte_identical_across_runs() -> None:
    x, labels, marks = tsne_input()
    first = tsne_svg(x, labels, marks, "tiny-llava on pneumonia_cxr", seed=0)
    assert first == tsne_svg(x, labels, marks, "tiny-llava on pneumonia_cxr", seed=0)
    assert "<title>tiny-llava on pneumonia_cxr</title>" in first
    assert "Date" not in first and "right, flips" in first


@pytest.mark.slow
def test_tsne_svg_is_byte_identical_across_processes() -> None:
    script = (
        "import sys; sys.path.insert(0, 'tests/score'); from test_probe import tsne_input; "
        "from medbench.score.probe import tsne_svg; x, l, m = tsne_input(); "
        "sys.stdout.write(tsne_svg(x, l, m, 'map'))"
    )
    root = Path(__file__).resolve().parents[2]
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], cwd=root, check=True, capture_output=True, text=True
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and runs[0].startswith("<?xml")


def test_tsne_svg_draws_a_few_points_without_tsne() -> None:
    svg = tsne_svg(np.ones((2, 3)), ["a", "b"], ["right", "wrong"], "two <images>")
    assert "<title>two &lt;images&gt;</title>" in svg


def test_tsne_svg_rejects_an_unknown_mark() -> None:
    with pytest.raises(
        ValueError,
        match=r"^unknown mark 'odd'; expected one of right, wrong, refused, flipped, unknown$",
    ):
        tsne_svg(np.zeros((1, 2)), ["a"], ["odd"], "t")


# The probe memo: a warm rerun refits no probe and redraws no map.


def test_probe_memo_refits_only_when_features_labels_or_settings_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medbench.score.probe import classifier
    from medbench.score.probe.memo import ProbeMemo, array_digest

    x, y = blobs(0, n_per_class=20)
    fits: list[int] = []
    real = classifier.probe

    def counted(*args: Any, **kwargs: Any) -> Any:
        fits.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(classifier, "probe", counted)
    with ProbeMemo(tmp_path / "probes.sqlite") as memo:
        first = memo.probe(array_digest(x), lambda: x, list(y), seed=0, folds=None)
        assert memo.probe(array_digest(x), lambda: x, list(y), seed=0, folds=None) == first
        assert len(fits) == 1
        memo.probe(array_digest(x), lambda: x, list(y), seed=1, folds=None)
        memo.probe(array_digest(x), lambda: x, list(y), seed=0, folds=3)
        memo.probe(array_digest(x), lambda: x, list(y[::-1]), seed=0, folds=None)
        memo.probe(array_digest(x + 1), lambda: x + 1, list(y), seed=0, folds=None)
        assert len(fits) == 5
    with ProbeMemo(tmp_path / "probes.sqlite") as memo:
        assert memo.probe(array_digest(x), lambda: x, list(y), seed=0, folds=None) == first
    assert len(fits) == 5
    assert first == real(x, list(y), seed=0)


def test_probe_memo_keeps_tsne_maps_byte_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medbench.score.probe import tsne
    from medbench.score.probe.memo import ProbeMemo

    x, y = blobs(1, n_per_class=10)
    labels, marks = [str(v) for v in y], ["right"] * len(y)
    with ProbeMemo(tmp_path / "probes.sqlite") as memo:
        svg = memo.tsne(x, labels, marks, "a map", seed=0)
        monkeypatch.setattr(tsne, "tsne_svg", lambda *a, **k: pytest.fail("drawn again"))
        assert memo.tsne(x, labels, marks, "a map", seed=0) == svg
        monkeypatch.undo()
        assert memo.tsne(x, labels, ["wrong"] * len(y), "a map", seed=0) != svg
    assert svg == tsne_svg(x, labels, marks, "a map", seed=0)


def test_sample_groups_names_each_samples_cluster_only_for_a_grouped_task() -> None:
    from medbench.score.probe.classifier import sample_groups

    plain = [Sample("a", Path("a.png"), "x", "0" * 64), Sample("b", Path("b.png"), "y", "1" * 64)]
    assert sample_groups(plain) is None
    grouped = [
        Sample("a", Path("a.png"), "x", "0" * 64, group="p1"),
        Sample("b", Path("b.png"), "y", "1" * 64),
    ]
    assert sample_groups(grouped) == ["group:p1", "sample:b"]


def test_probe_memo_keys_grouped_probes_apart(tmp_path: Path) -> None:
    from medbench.score.probe.memo import ProbeMemo

    x, y, groups = _patients(0)
    with ProbeMemo(tmp_path / "memo.sqlite") as memo:
        plain = memo.probe("f", lambda: x, list(y), seed=0, folds=None)
        grouped = memo.probe(
            "f", lambda: x, list(y), seed=0, folds=None, groups=list(map(str, groups))
        )
    assert plain.f1 >= 0.95 and grouped.f1 <= 0.7


def test_probe_grouped_folds_leaving_a_class_out_of_training_give_nan() -> None:
    from medbench.score.probe.classifier import probe

    # two patients per class, one of them holding most images: with 2 grouped folds some
    # training set can lack a class; the probe says it cannot fold instead of raising
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3))
    y = np.array(["a"] * 6 + ["b"] * 6)
    groups = np.array(["p1"] * 5 + ["p2"] + ["p3"] * 5 + ["p4"])
    results = [probe(x, y, folds=2, groups=groups, seed=s, permutations=2) for s in range(8)]
    assert all(r.k in (0, 2) for r in results)
    assert all(np.isnan(r.f1) == (r.k == 0) for r in results)
