"""Image tokens of a plan's jobs under a model's rule, from the images' headers (nothing is
decoded): for the cost, and for the runner's batches by length."""

from __future__ import annotations

from PIL import Image

from medbench.run.cost.tokens import ImageRule
from medbench.run.jobs import Job
from medbench.run.plan import Plan
from medbench.spec import ORIGINAL_IMAGE


def image_size(path: str) -> tuple[int, int] | None:
    """An image file's (width, height) from its header, without decoding (None: unreadable)."""
    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # an unreadable image: its job fails, it costs no image tokens
        return None


class ImageTokens:
    """Image tokens of each job's images under one model's rule, each size read once."""

    def __init__(self, plan: Plan, rule: ImageRule | None) -> None:
        self.plan, self.rule = plan, rule
        self.kinds = {v.id: v for v in plan.suite.image_variants}
        self._sizes: dict[str, tuple[int, int] | None] = {}

    def size(self, path: str) -> tuple[int, int] | None:
        if path not in self._sizes:
            self._sizes[path] = image_size(path)
        return self._sizes[path]

    def of(self, job: Job) -> int:
        rule = self.rule
        if rule is None:
            return 0
        sample = self.plan.sample(job.task, job.sample)
        if job.image_variant == ORIGINAL_IMAGE:
            paths = [str(sample.path)]
        else:
            shown = self.plan.images.get(self.plan.image_slot(job), ())
            if not shown:
                return 0
            # a derived image has its source's size (less a crop); an ablation shows an original
            recipes = self.plan.recipes
            paths = [recipes[i.sha256].source.path if i.sha256 in recipes else i.path
                     for i in shown]  # fmt: skip
        if not rule.needs_size:
            return rule.fixed * len(paths)
        total = 0
        scale = getattr(self.kinds.get(job.image_variant), "fraction", 1.0)
        for path in paths:
            size = self.size(path)
            if size is not None:
                width, height = (max(1, round(side * scale)) for side in size)
                total += rule.tokens(width, height)
        return total
