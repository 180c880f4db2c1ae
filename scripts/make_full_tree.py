"""Write a synthetic MEDBENCH_DATA tree of the paper suite's real datasets' sizes.

2,784 images laid out as each task's `full` source expects them: 1,311 brain MRI (Kaggle
Testing), 624 chest X-ray (Kermany test), 99 skin (ISIC test, less the excluded classes) and
750 histopathology (LC25000 lung, 250 per class: the paper suite's subset). Every file is a real
grey JPEG of a realistic size (LLaVA-NeXT's image-token count depends on it) with a comment
that makes its bytes unique; one image per size is encoded, the others copy it, so writing the
tree takes seconds. For `medbench plan --cost`, the tests and the issue's figures.

Run: .venv/bin/python scripts/make_full_tree.py OUT   (then MEDBENCH_DATA=OUT)
"""

from __future__ import annotations

import io
import random
import struct
import sys
from pathlib import Path

from PIL import Image

# (folder below the data root, class folder, count, sizes (width, height) drawn from)
LAYOUT: tuple[tuple[str, str, int, tuple[tuple[int, int], ...]], ...] = (
    *(
        ("brain_tumor_mri/Testing", label, n, ((512, 512), (512, 512), (630, 630), (225, 225)))
        for label, n in (("glioma", 300), ("meningioma", 306), ("notumor", 405), ("pituitary", 300))
    ),
    *(
        ("chest_xray/test", label, n, ((1858, 1422), (1528, 1190), (1272, 1040), (2090, 1858)))
        for label, n in (("NORMAL", 234), ("PNEUMONIA", 390))
    ),
    *(
        ("skin_isic/Test", label, n, ((1024, 768), (600, 450)))
        for label, n in (
            ("melanoma", 16),
            ("basal cell carcinoma", 16),
            ("squamous cell carcinoma", 16),
            ("nevus", 16),
            ("pigmented benign keratosis", 16),
            ("dermatofibroma", 16),
            ("vascular lesion", 3),
        )
    ),
    *(
        ("lung_colon_image_set/lung_image_sets", label, 250, ((768, 768),))
        for label in ("lung_aca", "lung_n", "lung_scc")
    ),
)
TOTAL = 2784


def _jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, 96).save(buffer, format="JPEG", quality=75)
    return buffer.getvalue()


def unique_jpeg(base: bytes, tag: str) -> bytes:
    """`base` (a JPEG) with a comment segment holding `tag`: the same pixels, other bytes."""
    text = tag.encode()
    return base[:2] + b"\xff\xfe" + struct.pack(">H", len(text) + 2) + text + base[2:]


def _name(label: str, i: int) -> str:
    """A file name as the dataset spells it (the chest X-rays' names carry the patient)."""
    if label == "NORMAL":
        return f"IM-{i:04d}-0001.jpeg"
    if label == "PNEUMONIA":
        return f"person{i}_bacteria_{i}.jpeg"
    return f"{label.replace(' ', '_')}-{i:04d}.jpeg"


def write_tree(root: Path, seed: int = 0) -> int:
    """Write the tree under `root`; returns the number of images written."""
    rng = random.Random(seed)
    encoded: dict[tuple[int, int], bytes] = {}
    written = 0
    for folder, label, count, sizes in LAYOUT:
        target = root / folder / label
        target.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            size = sizes[rng.randrange(len(sizes))]
            base = encoded.setdefault(size, _jpeg(size))
            name = _name(label, i)
            (target / name).write_bytes(unique_jpeg(base, f"medbench {folder}/{label}/{i}"))
            written += 1
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: make_full_tree.py OUT", file=sys.stderr)
        return 2
    n = write_tree(Path(argv[0]))
    print(f"wrote {n:,} images under {argv[0]} (set MEDBENCH_DATA={argv[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
