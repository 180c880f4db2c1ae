"""Tests of medbench.checkpoints.convert: an original-layout LLaVA-Med checkpoint, converted,
behaves the same.

The fixture writes a tiny checkpoint the way the original LLaVA-Med code stores one: a Mistral
decoder under `model.`, the mlp2x_gelu projector under `model.mm_projector`, `lm_head`, an unused
copy of the CLIP tower under `model.vision_tower.vision_tower.`, sharded with an index, and the CLIP
tower as a separate full-CLIP checkpoint with its preprocessor config, as `openai/clip-...` has.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from medbench.checkpoints.convert import MARKER, ConversionError, convert_llava_med
from medbench.checkpoints.convert import llava_med as llava_med_module
from medbench.checkpoints.convert import plan as plan_module
from medbench.checkpoints.convert.processor import CHAT_TEMPLATE, build_processor, image_processor
from medbench.checkpoints.convert.processor import tower_config as read_tower_config
from medbench.checkpoints.convert.source import find_revision
from medbench.cli import app

TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "hidden_act": "silu",
}
VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 2,
    "image_size": 42,
    "patch_size": 14,
}
PATCHES = (42 // 14) ** 2
SELECT_LAYER = -2
QUESTION = "Does this chest X-ray show pneumonia?"
HUB_NAME = "openai/clip-vit-large-patch14-336"
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _perturb_norms(model: torch.nn.Module) -> None:
    """Random init leaves norms at one and zero: make them distinct, so a mix-up would show."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.add_(0.1 * torch.randn_like(param))


def _tokenizer() -> Any:
    """A Mistral-like tokenizer: <unk> <s> </s>, BOS added on encode, no <image> token."""
    from tokenizers import processors

    from medbench.checkpoints.tiny import CHAT_TEMPLATES, train_tokenizer

    tokenizer = train_tokenizer(
        ("<unk>", "<s>", "</s>"),
        CHAT_TEMPLATES["mistral"],
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<unk>",
    )
    bos = tokenizer.convert_tokens_to_ids("<s>")
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    return tokenizer


def _write_clip(folder: Path, vision: dict[str, Any], *, weights: bool = True) -> None:
    """A full CLIP checkpoint in the openai layout (vision_model.*, text_model.*, projections)."""
    from safetensors.torch import save_file
    from transformers import CLIPConfig, CLIPModel

    folder.mkdir(parents=True)
    text = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "vocab_size": 64,
        "max_position_embeddings": 8,
    }
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
    config.save_pretrained(folder)
    side = vision["image_size"]
    preprocessor = {  # the openai file's shape: plain ints for the sizes
        "crop_size": side,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "resample": 3,
        "size": side,
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    if weights:
        model = CLIPModel(config)
        _perturb_norms(model)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, folder / "model.safetensors")


def _write_original(src: Path, tower: Path, tower_name: str) -> None:
    """A tiny LLaVA-Med checkpoint in the original code's layout, in two shards."""
    from safetensors.torch import load_file, save_file
    from transformers import MistralConfig, MistralForCausalLM

    tokenizer = _tokenizer()
    tokenizer.save_pretrained(src)
    ids = {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    decoder = MistralForCausalLM(MistralConfig(**TEXT, **ids))
    _perturb_norms(decoder)
    projector = torch.nn.Sequential(
        torch.nn.Linear(VISION["hidden_size"], TEXT["hidden_size"]),
        torch.nn.GELU(),
        torch.nn.Linear(TEXT["hidden_size"], TEXT["hidden_size"]),
    )
    state = {k: v.contiguous() for k, v in decoder.state_dict().items()}
    state |= {f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()}
    tower_state = load_file(tower / "model.safetensors")
    state |= {
        f"model.vision_tower.vision_tower.{k}": v
        for k, v in tower_state.items()
        if k.startswith("vision_model.")
    }
    first = {k: v for k, v in state.items() if "layers.1." not in k and "lm_head" not in k}
    first = {k: v for k, v in first.items() if "vision_tower" not in k and "model.norm" not in k}
    second = {k: v for k, v in state.items() if k not in first}
    shards = {"model-00001-of-00002.safetensors": first, "model-00002-of-00002.safetensors": second}
    weight_map = {}
    for name, tensors in shards.items():
        save_file(tensors, src / name, metadata={"format": "pt"})
        weight_map |= dict.fromkeys(tensors, name)
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    config = {
        "_name_or_path": "microsoft/llava-med-v1.5-mistral-7b",
        "architectures": ["LlavaMistralForCausalLM"],
        "model_type": "llava_mistral",
        **TEXT,
        **ids,
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.36.2",
        "use_cache": False,
        "feature_outs": "encoder+decoder",
        "freeze_mm_mlp_adapter": False,
        "image_aspect_ratio": "pad",
        "img_size": 640,
        "mm_hidden_size": VISION["hidden_size"],
        "mm_patch_merge_type": "flat",
        "mm_projector_lr": None,
        "mm_projector_type": "mlp2x_gelu",
        "mm_resampler_type": None,
        "mm_use_im_patch_token": False,
        "mm_use_im_start_end": False,
        "mm_vision_select_feature": "patch",
        "mm_vision_select_layer": SELECT_LAYER,
        "mm_vision_tower": tower_name,
        "tokenizer_model_max_length": 2048,
        "tokenizer_padding_side": "right",
        "tune_mm_mlp_adapter": False,
        "tune_mm_vision_resampler": False,
        "unfreeze_mm_vision_tower": False,
        "use_mm_proj": True,
        "vision_backbone": "convnext-large",
    }
    (src / "config.json").write_text(json.dumps(config, indent=2))


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(SRC, tower): SRC's config names the tower by its local path."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("llava-med-original")
    tower = root / "clip"
    _write_clip(tower, VISION)
    src = root / "llava-med"
    src.mkdir()
    _write_original(src, tower, str(tower))
    return src, tower


@pytest.fixture(scope="module")
def converted(original: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    src, _ = original
    dst = tmp_path_factory.mktemp("llava-med-converted") / "hf"
    convert_llava_med(src, dst, revision="0123456789abcdef0123456789abcdef01234567")
    return dst


@pytest.fixture
def copy_of(original: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """A copy of SRC to break, and the (unchanged) tower."""
    src, tower = original
    copy = tmp_path / "src"
    shutil.copytree(src, copy)
    return copy, tower


def _image() -> Image.Image:
    """50x30, wider than tall, strongly red: the grey-brown padding rows are easy to tell apart."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 60, size=(30, 50, 3), dtype=np.uint8)
    pixels[..., 0] = np.linspace(180, 255, 50, dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def expand2square(image: Image.Image, background: tuple[int, ...]) -> Image.Image:
    """LLaVA's `expand2square` (`llava/mm_utils.py`), with the centred offset."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    result = Image.new(image.mode, (side, side), background)
    result.paste(image, ((side - width) // 2, (side - height) // 2))
    return result


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


def _reference(src: Path, tower: Path, image: Image.Image) -> dict[str, Any]:
    """The original forward pass, wired by hand from the original tensors."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, CLIPVisionModel, MistralConfig, MistralForCausalLM
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    config = json.loads((src / "config.json").read_text())
    clip = CLIPImageProcessorPil.from_pretrained(tower)
    background = tuple(int(x * 255) for x in clip.image_mean)
    pixels = clip(expand2square(image, background), return_tensors="pt").pixel_values
    state: dict[str, torch.Tensor] = {}
    for shard in sorted(src.glob("model-*.safetensors")):
        state |= load_file(shard)
    projector = torch.nn.Sequential(
        torch.nn.Linear(config["mm_hidden_size"], config["hidden_size"]),
        torch.nn.GELU(),
        torch.nn.Linear(config["hidden_size"], config["hidden_size"]),
    )
    prefix = "model.mm_projector."
    projector.load_state_dict(
        {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    )
    fields = ("vocab_size", "bos_token_id", "eos_token_id", *TEXT)
    decoder = MistralForCausalLM(MistralConfig(**{k: config[k] for k in fields}))
    decoder.load_state_dict(
        {k: v for k, v in state.items() if "mm_projector" not in k and "vision_tower" not in k},
        strict=True,
    )
    vision = CLIPVisionModel.from_pretrained(tower)
    tokenizer = AutoTokenizer.from_pretrained(src)
    before, after = f"[INST] <image>\n{QUESTION} [/INST]".split("<image>")
    ids_before = tokenizer(before).input_ids
    ids_after = tokenizer(after).input_ids[1:]  # the original strips the BOS of later chunks
    with torch.no_grad():
        hidden = vision(pixels, output_hidden_states=True).hidden_states
        features = projector(hidden[config["mm_vision_select_layer"]][:, 1:])[0]
        embed = decoder.get_input_embeddings()
        embeds = torch.cat(
            [embed(torch.tensor(ids_before)), features, embed(torch.tensor(ids_after))]
        )
        logits = decoder(inputs_embeds=embeds[None]).logits[0]
    return {"pixels": pixels, "before": ids_before, "after": ids_after, "logits": logits}


def test_converted_model_gives_the_original_logits_for_a_non_square_image(
    original: tuple[Path, Path], converted: Path
) -> None:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    src, tower = original
    image = _image()
    reference = _reference(src, tower, image)
    processor = AutoProcessor.from_pretrained(converted)
    model, info = AutoModelForImageTextToText.from_pretrained(converted, output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}
    turn = {"role": "user", "content": [{"type": "image", "image": image}, _text(QUESTION)]}
    inputs = processor.apply_chat_template(
        [turn], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    image_id = model.config.image_token_index
    expected_ids = reference["before"] + [image_id] * PATCHES + reference["after"]
    assert inputs["input_ids"][0].tolist() == expected_ids
    assert torch.equal(inputs["pixel_values"], reference["pixels"])
    with torch.no_grad():
        logits = model(**inputs).logits[0]
    vocab = reference["logits"].shape[-1]
    difference = (logits[:, :vocab] - reference["logits"]).abs().max().item()
    assert difference < 1e-5
    # The added <image> row scores the mean logit: never the greedy choice.
    assert (logits[:, image_id] < logits[:, :vocab].max(dim=-1).values).all()


def test_padding_to_a_square_with_the_mean_colour_happens_before_resizing(
    original: tuple[Path, Path], converted: Path
) -> None:
    from transformers import AutoProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    _, tower = original
    processor = AutoProcessor.from_pretrained(converted)
    image = _image()
    padded = processor.image_processor(image, return_tensors="pt").pixel_values
    clip = CLIPImageProcessorPil.from_pretrained(tower)
    by_hand = clip(expand2square(image, (122, 116, 104)), return_tensors="pt").pixel_values
    squashed = clip(image.resize((42, 42)), return_tensors="pt").pixel_values
    assert padded.shape == (1, 3, 42, 42)
    assert torch.equal(padded, by_hand)
    assert not torch.allclose(padded, squashed, atol=0.1)
    # The top row is padding: the mean colour, as LLaVA rounds it down to whole numbers.
    mean_colour = zip((122, 116, 104), CLIP_MEAN, CLIP_STD, strict=True)
    colour = [(c / 255 - m) / s for c, m, s in mean_colour]
    top_row = torch.tensor(colour)[:, None].expand(3, 42)
    assert torch.allclose(padded[0, :, 0, :], top_row, atol=1e-5)


def llama2_prompt(turns: list[tuple[str, str]], system: str = "") -> str:
    """`conv_mistral_instruct.get_prompt()` of LLaVA-Med's conversation.py (LLAMA_2 style)."""
    text = ""
    for i, (role, message) in enumerate(turns):
        if i == 0 and system:
            message = f"<<SYS>>\n{system}\n<</SYS>>\n\n{message}"
        text += f"[INST] {message} [/INST]" if role == "user" else f" {message} </s>"
    return text


@pytest.mark.parametrize(
    ("system", "turns"),
    [
        ("", [("user", "<image>\nIs there a tumour?")]),
        ("You are an expert radiologist.", [("user", "<image>\nIs there a tumour?")]),
        ("", [("user", "<image>\nIs there a tumour?"), ("assistant", "No."), ("user", "Sure?")]),
    ],
)
def test_chat_template_renders_the_original_conversation(
    converted: Path, system: str, turns: list[tuple[str, str]]
) -> None:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(converted)
    messages: list[dict[str, Any]] = (
        [{"role": "system", "content": [_text(system)]}] if system else []
    )
    for role, message in turns:
        images = [{"type": "image"}] if message.startswith("<image>\n") else []
        content = [*images, _text(message.removeprefix("<image>\n"))]
        messages.append({"role": role, "content": content})
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == "<s>" + llama2_prompt(turns, system)
    assert processor.chat_template == CHAT_TEMPLATE


def test_conversion_records_provenance_and_the_stop_token(
    original: tuple[Path, Path], converted: Path
) -> None:
    from transformers import AutoConfig, GenerationConfig

    src, tower = original
    record = json.loads((converted / MARKER).read_text())
    assert record["source"]["revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert record["source"]["revision_from"] == "--revision"
    shards = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    for name in [*shards, "config.json", "tokenizer.json"]:
        assert (
            record["source"]["sha256"][name]
            == hashlib.sha256((src / name).read_bytes()).hexdigest()
        )
    assert set(record["vision_tower"]["sha256"]) == {
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
    }
    assert record["embedded_vision_tower"] == {
        "identical": True,
        "keys": len([k for k in _source_keys(src) if "vision_tower" in k]),
        "max_abs_diff": 0.0,
    }
    assert "image_aspect_ratio" not in record["source"]["ignored_config_fields"]
    assert "vision_backbone" in record["source"]["ignored_config_fields"]
    config = AutoConfig.from_pretrained(converted)
    assert (config.vision_feature_layer, config.vision_feature_select_strategy) == (-2, "default")
    assert config.image_seq_length == PATCHES
    generation = GenerationConfig.from_pretrained(converted)
    assert generation.eos_token_id == 2
    assert generation.suppress_tokens == [config.image_token_index]
    assert str(tower.resolve()) == record["vision_tower"]["path"]


def _source_keys(src: Path) -> list[str]:
    index = json.loads((src / "model.safetensors.index.json").read_text())
    return list(index["weight_map"])


def test_conversion_streams_one_shard_at_a_time(
    original: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, _ = original
    source_shards = {p.resolve() for p in src.glob("model-*.safetensors")}
    opened: list[tuple[str, Path]] = []
    open_now: set[Path] = set()
    most_open = 0

    def spy_on(module: Any, phase: str) -> None:
        real = module.open_weights

        @contextmanager
        def spy(path: Path) -> Iterator[Any]:
            nonlocal most_open
            path = path.resolve()
            with real(path) as weights:
                opened.append((phase, path))
                if path in source_shards:
                    open_now.add(path)
                    most_open = max(most_open, len(open_now))
                try:
                    yield weights
                finally:
                    open_now.discard(path)

        monkeypatch.setattr(module, "open_weights", spy)

    spy_on(plan_module, "check")
    spy_on(llava_med_module, "write")
    dst = tmp_path / "out"
    convert_llava_med(src, dst)
    assert most_open == 1
    for phase in ("check", "write"):
        shards = sorted(p for kind, p in opened if kind == phase and p in source_shards)
        assert shards == sorted(source_shards)
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    # One output shard per source shard, plus one for the vision tower.
    assert sorted(set(index["weight_map"].values())) == [
        "model-00001-of-00003.safetensors",
        "model-00002-of-00003.safetensors",
        "model-00003-of-00003.safetensors",
    ]
    assert sorted(p.name for p in dst.glob("*.safetensors")) == sorted(
        set(index["weight_map"].values())
    )
    tower_shard = {v for k, v in index["weight_map"].items() if "vision_tower" in k}
    assert tower_shard == {"model-00003-of-00003.safetensors"}


def _edit_config(src: Path, **changes: Any) -> None:
    config = json.loads((src / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    (src / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        (
            {"mm_projector_type": "linear"},
            "mm_projector_type is 'linear', only 'mlp2x_gelu' is supported",
        ),
        (
            {"image_aspect_ratio": "anyres"},
            "image_aspect_ratio is 'anyres', only 'pad' (square padding with the mean colour) "
            "is supported",
        ),
        (
            {"model_type": "llava_llama"},
            "model_type is 'llava_llama', expected 'llava_mistral' "
            "(the original LLaVA-Med code's LlavaMistralForCausalLM)",
        ),
        ({"mm_vision_tower": None}, "mm_vision_tower is missing, expected the CLIP tower"),
    ],
)
def test_unsupported_config_fails_naming_the_field(
    copy_of: tuple[Path, Path], tmp_path: Path, changes: dict[str, Any], problem: str
) -> None:
    src, _ = copy_of
    _edit_config(src, **changes)
    message = f"{src / 'config.json'}: {problem}"
    with pytest.raises(ConversionError, match=f"^{re.escape(message)}$"):
        convert_llava_med(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_key_fails_instead_of_being_dropped(
    copy_of: tuple[Path, Path], tmp_path: Path
) -> None:
    from safetensors.torch import load_file, save_file

    src, _ = copy_of
    shard = src / "model-00001-of-00002.safetensors"
    tensors = load_file(shard) | {"model.foo.weight": torch.zeros(2)}
    save_file(tensors, shard)
    message = f"{shard}: unknown key 'model.foo.weight': refusing to drop it"
    with pytest.raises(ConversionError, match=f"^{re.escape(message)}$"):
        convert_llava_med(src, tmp_path / "out")
    assert list(tmp_path.glob(".out*")) == []


def test_unknown_vision_tower_key_fails(copy_of: tuple[Path, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    src, tower = copy_of
    copy = tmp_path / "clip"
    shutil.copytree(tower, copy)
    weights = copy / "model.safetensors"
    save_file(load_file(weights) | {"vision_model.extra.weight": torch.zeros(2)}, weights)
    message = f"{weights}: unknown key 'vision_model.extra.weight': refusing to drop it"
    with pytest.raises(ConversionError, match=f"^{re.escape(message)}$"):
        convert_llava_med(src, tmp_path / "out", vision_tower=copy)


def test_missing_key_fails(copy_of: tuple[Path, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    src, _ = copy_of
    shard = src / "model-00002-of-00002.safetensors"
    tensors = load_file(shard)
    del tensors["lm_head.weight"]
    save_file(tensors, shard)
    with pytest.raises(ConversionError, match=r"^missing keys after conversion: lm_head\.weight$"):
        convert_llava_med(src, tmp_path / "out")


def test_missing_vision_tower_fails_saying_to_download_it(
    copy_of: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    src, _ = copy_of
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    _edit_config(src, mm_vision_tower=HUB_NAME)
    message = (
        f"{src / 'config.json'}: mm_vision_tower '{HUB_NAME}' is neither a local folder nor in the "
        f"Hugging Face cache; download it (for example `hf download {HUB_NAME} --local-dir DIR`) "
        "and pass --vision-tower DIR"
    )
    with pytest.raises(ConversionError, match=f"^{re.escape(message)}$"):
        convert_llava_med(src, tmp_path / "out")
    empty = tmp_path / "not-a-tower"
    empty.mkdir()
    message = (
        f"{empty}: not a vision tower folder (no config.json); --vision-tower must point at a "
        f"local copy of {HUB_NAME}"
    )
    with pytest.raises(ConversionError, match=f"^{re.escape(message)}$"):
        convert_llava_med(src, tmp_path / "out", vision_tower=empty)


def test_existing_destination_needs_overwrite(original: tuple[Path, Path], tmp_path: Path) -> None:
    src, _ = original
    dst = tmp_path / "out"
    dst.mkdir()
    (dst / "keep.txt").write_text("x")
    with pytest.raises(ConversionError, match=r"already exists; pass --overwrite to replace it$"):
        convert_llava_med(src, dst)
    convert_llava_med(src, dst, overwrite=True)
    assert not (dst / "keep.txt").exists()
    assert (dst / MARKER).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cli_converts_with_a_vision_tower_option_and_exits_2_on_errors(
    copy_of: tuple[Path, Path], tmp_path: Path
) -> None:
    src, tower = copy_of
    _edit_config(src, mm_vision_tower=HUB_NAME)
    runner = CliRunner()
    dst = tmp_path / "out"
    result = runner.invoke(
        app, ["convert", "llava-med", str(src), str(dst), "--vision-tower", str(tower)]
    )
    assert result.exit_code == 0, result.output
    assert f"to {dst}: 3 shards, image token <image>" in result.output
    assert json.loads((dst / MARKER).read_text())["vision_tower"]["name"] == HUB_NAME
    result = runner.invoke(app, ["convert", "llava-med", "--help"])
    assert result.exit_code == 0, result.output
    assert "--vision-tower" in result.output
    result = runner.invoke(app, ["convert", "llava-med", str(src), str(dst)])
    assert result.exit_code == 2
    assert "already exists; pass --overwrite" in result.output
    assert "Traceback" not in result.output


def test_real_size_tower_gives_336_px_and_576_image_tokens(tmp_path: Path) -> None:
    """The sizes come from the tower's config, not from constants: the real CLIP-L/336."""
    vision = {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "image_size": 336,
        "patch_size": 14,
    }
    folder = tmp_path / "clip-vit-large-patch14-336"
    _write_clip(folder, vision, weights=False)
    config = read_tower_config(folder)
    images = image_processor(folder, config.image_size)
    tokenizer = _tokenizer()
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path / "tok")
    tokenizer = AutoTokenizer.from_pretrained(
        tmp_path / "tok", extra_special_tokens={"image_token": "<image>"}
    )
    processor = build_processor(tokenizer, images, patch_size=config.patch_size, strategy="default")
    turn = {"role": "user", "content": [{"type": "image", "image": _image()}, _text(QUESTION)]}
    inputs = processor.apply_chat_template(
        [turn], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    assert inputs["pixel_values"].shape == (1, 3, 336, 336)
    assert images.crop_size["height"] == 336
    assert (inputs["input_ids"] == processor.image_token_id).sum().item() == 576


def test_revision_is_read_from_git_or_the_hub_cache(tmp_path: Path) -> None:
    sha = "a" * 40
    checkout = tmp_path / "checkout"
    (checkout / ".git" / "refs" / "heads").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (checkout / ".git" / "refs" / "heads" / "main").write_text(sha + "\n")
    assert (find_revision(checkout, None).sha, find_revision(checkout, None).found_in) == (
        sha,
        "git",
    )
    snapshot = tmp_path / "models--microsoft--llava-med" / "snapshots" / ("b" * 40)
    snapshot.mkdir(parents=True)
    assert find_revision(snapshot, None).sha == "b" * 40
    assert find_revision(snapshot, "main").found_in == "--revision"
    assert find_revision(tmp_path, None).sha is None


def test_a_pytorch_bin_tower_converts_like_a_safetensors_one(
    original: tuple[Path, Path], converted: Path, tmp_path: Path
) -> None:
    """openai's CLIP repositories ship `pytorch_model.bin`, with position_ids buffers in it."""
    from safetensors.torch import load_file

    src, tower = original
    copy = tmp_path / "clip-bin"
    shutil.copytree(tower, copy)
    state = load_file(copy / "model.safetensors")
    state["vision_model.embeddings.position_ids"] = torch.arange(PATCHES + 1)[None]
    torch.save(state, copy / "pytorch_model.bin")
    (copy / "model.safetensors").unlink()
    dst = tmp_path / "out"
    record = convert_llava_med(src, dst, vision_tower=copy).record
    assert record["ignored_keys"]["vision tower: position_ids buffer, rebuilt by transformers"] == 1
    tower_shard = "model-00003-of-00003.safetensors"
    assert load_file(dst / tower_shard).keys() == load_file(converted / tower_shard).keys()
    for key, value in load_file(dst / tower_shard).items():
        assert torch.equal(value, load_file(converted / tower_shard)[key])


ORIGINAL_7B_LAYER = (
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
)


def test_the_7b_original_key_layout_maps_onto_the_converted_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The key names of llava-med-v1.5-mistral-7b as the original code saves them (Mistral-7B,
    mlp2x_gelu, and the unused copy of CLIP-L/336), planned against the real-size config on the
    meta device: no weights are built, every key has a home and every expected key a source."""
    from transformers import CLIPVisionConfig

    from medbench.checkpoints.convert.llava_med import expected_shapes, llava_config
    from medbench.checkpoints.convert.plan import make_plan, source_target
    from medbench.checkpoints.convert.source import Revision, Source, Tower

    config = {
        "model_type": "llava_mistral",
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "sliding_window": None,
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
    }
    vision = CLIPVisionConfig(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=336,
        patch_size=14,
    )
    unknown = Revision(None, "unknown")
    source = Source(Path("src"), config, (), unknown, Tower("clip", Path("clip"), (), unknown))
    expected = expected_shapes(llava_config(source, vision, 32000, 32001))
    decoder = [f"model.layers.{i}.{name}" for i in range(32) for name in ORIGINAL_7B_LAYER]
    decoder += ["model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"]
    decoder += [f"model.mm_projector.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")]
    tower_prefix = "model.vision_tower."
    clip = {
        "vision_model." + k.removeprefix(tower_prefix): shape
        for k, shape in expected.items()
        if k.startswith(tower_prefix)
    }
    shapes = {k: expected[str(source_target(k))] for k in decoder}
    shapes["model.embed_tokens.weight"] = shapes["lm_head.weight"] = (32000, 4096)
    embedded = {"model.vision_tower.vision_tower." + k: v for k, v in clip.items()}
    text_side = {"text_model.embeddings.token_embedding.weight": (49408, 768), "logit_scale": ()}
    files = {
        Path("src/model-00001-of-00002.safetensors"): dict(list(shapes.items())[:150]),
        Path("src/model-00002-of-00002.safetensors"): dict(list(shapes.items())[150:]) | embedded,
        Path("clip/pytorch_model.bin"): clip | text_side,
    }

    class Fake:
        def __init__(self, shapes: dict[str, tuple[int, ...]]) -> None:
            self.shapes = shapes

        def names(self) -> list[str]:
            return sorted(self.shapes)

        def shape(self, key: str) -> tuple[int, ...]:
            return self.shapes[key]

    @contextmanager
    def fake_open(path: Path) -> Iterator[Fake]:
        yield Fake(files[path])

    monkeypatch.setattr(plan_module, "open_weights", fake_open)
    shards = tuple(p for p in files if p.parent.name == "src")
    plan = make_plan(shards, (Path("clip/pytorch_model.bin"),), expected, 32000)
    assert len(decoder) == 295 and len(clip) == 391
    assert sum(len(f.writes) for f in plan.files) == len(expected) == 295 + 391
    assert plan.ignored == {
        "source: embedded copy of the vision tower, unused": 391,
        "vision tower: CLIP text side, unused by LLaVA": 2,
    }
    assert expected["model.language_model.embed_tokens.weight"] == (32001, 4096)


def test_a_llama_style_tokenizer_keeps_the_original_word_starts_once_saved(
    tmp_path: Path,
) -> None:
    """transformers 5's LlamaTokenizer marks a word start (`▁`) only at the start of the input;
    the original code's marked every stretch of text, and split the prompt at `<image>`."""
    from transformers import AutoProcessor, LlamaTokenizer
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    from medbench.checkpoints.convert.processor import (
        CHECK_QUESTION,
        check_prompt_tokens,
        load_tokenizers,
        match_original_spacing,
    )

    text = f"[INST] {CHECK_QUESTION} [/INST]".replace(" ", "▁")
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"<0x{i:02X}>": 3 + i for i in range(256)}
    for char in sorted(set(text)):
        vocab.setdefault(char, len(vocab))
    src = tmp_path / "src"
    LlamaTokenizer(vocab=vocab, merges=[], add_bos_token=True).save_pretrained(src)
    images = LlavaImageProcessorPil(do_pad=True)

    def saved_and_reloaded(respace: bool) -> tuple[Any, Any]:
        original, tokenizer = load_tokenizers(src)
        if respace:
            assert match_original_spacing(tokenizer)
        processor = build_processor(tokenizer, images, patch_size=14, strategy="default")
        processor.save_pretrained(tmp_path / f"out-{respace}")
        return original, AutoProcessor.from_pretrained(tmp_path / f"out-{respace}")

    original, as_loaded = saved_and_reloaded(respace=False)
    with pytest.raises(
        ConversionError, match=r"first difference at token 1: converted \['<s>', '\['"
    ):
        check_prompt_tokens(original, as_loaded)
    check_prompt_tokens(*saved_and_reloaded(respace=True))


def test_a_differing_embedded_tower_copy_is_recorded_and_the_tower_is_used(
    copy_of: tuple[Path, Path], tmp_path: Path
) -> None:
    """The original code never loads its checkpoint's copy of the tower: neither do we."""
    from safetensors.torch import load_file, save_file

    src, tower = copy_of
    shard = src / "model-00002-of-00002.safetensors"
    tensors = load_file(shard)
    key = "model.vision_tower.vision_tower.vision_model.post_layernorm.bias"
    tensors[key] = tensors[key] + 0.5
    save_file(tensors, shard)
    messages: list[str] = []
    record = convert_llava_med(src, tmp_path / "out", progress=messages.append).record
    assert record["embedded_vision_tower"]["identical"] is False
    assert record["embedded_vision_tower"]["max_abs_diff"] == pytest.approx(0.5)
    assert any(
        m.startswith(f"note: the copy of the vision tower inside {src} differs") for m in messages
    )
    written = load_file(tmp_path / "out" / "model-00003-of-00003.safetensors")
    original_bias = load_file(tower / "model.safetensors")["vision_model.post_layernorm.bias"]
    assert torch.equal(written["model.vision_tower.post_layernorm.bias"], original_bias)
