"""The batch layout: an image's prompts in one batch, a task's images by length."""

from __future__ import annotations

from medbench.run.jobs import Job
from medbench.run.layout import cut_batches


def job(sample: str, variant: str, image_variant: str = "original", task: str = "t") -> Job:
    return Job(
        key=f"{task}/{sample}/{variant}/{image_variant}",
        model="m",
        task=task,
        family="f",
        variant=variant,
        sample=sample,
        label="l",
        image_variant=image_variant,
    )


def keys(batches: list[list[Job]]) -> list[list[str]]:
    return [[f"{j.sample}{j.variant}{'' if j.image_variant == 'original' else j.image_variant}"
             for j in batch] for batch in batches]  # fmt: skip


def test_an_images_prompts_stay_in_one_batch_unless_they_alone_pass_the_size() -> None:
    jobs = [job(s, v) for s in "abc" for v in "123"]
    assert keys(cut_batches(jobs, 4)) == [
        ["a1", "a2", "a3"],
        ["b1", "b2", "b3"],
        ["c1", "c2", "c3"],
    ]
    assert keys(cut_batches(jobs, 6)) == [["a1", "a2", "a3", "b1", "b2", "b3"], ["c1", "c2", "c3"]]
    assert keys(cut_batches(jobs, 2)) == [
        ["a1", "a2"],
        ["a3"],
        ["b1", "b2"],
        ["b3"],
        ["c1", "c2"],
        ["c3"],
    ]


def test_an_image_variants_prompts_sit_side_by_side_after_the_originals() -> None:
    jobs = [job("a", v, iv) for v in "12" for iv in ("original", "jpeg", "blur")]
    assert keys(cut_batches(jobs, 4)) == [["a1", "a2"], ["a1blur", "a2blur", "a1jpeg", "a2jpeg"]]


def test_a_tasks_images_go_by_length_where_it_differs() -> None:
    jobs = [job(s, v) for s in "abc" for v in "12"]
    length = {"a": 3, "b": 1, "c": 2}
    batches = cut_batches(jobs, 4, length=lambda j: length[j.sample])
    assert keys(batches) == [["b1", "b2", "c1", "c2"], ["a1", "a2"]]
