"""Specs: the YAML files of tasks, prompt families, models and suites, validated and cross-checked.

The first stage: pydantic models of every spec kind, YAML loading with `file:line:col`
problems, the bounded Jinja sandbox that renders prompts, group patterns and ad hoc models.
Every later stage reads specs through the names below.
"""

from __future__ import annotations

from medbench.spec.adhoc import PREFIX, is_adhoc, with_adhoc_models
from medbench.spec.common import ID_PATTERN, check_revision
from medbench.spec.grouping import MAX_NAME, check_pattern, group_of
from medbench.spec.imagevariants import (
    ORIGINAL_IMAGE,
    BiasFieldVariant,
    BlankVariant,
    BlurVariant,
    BrightnessVariant,
    ContrastVariant,
    CropVariant,
    ExposureVariant,
    FlipVariant,
    GammaVariant,
    GaussianNoiseVariant,
    IlluminationVariant,
    ImageVariantSpec,
    JpegVariant,
    MotionVariant,
    NoiseVariant,
    ResizeVariant,
    RotateVariant,
    StainVariant,
)
from medbench.spec.model import GenerationSpec, ImageInputSpec, ModelSpec, OpenAISpec, TinySpec
from medbench.spec.prompt import PromptFamilySpec, VariantSpec
from medbench.spec.prompts import (
    ImageRef,
    Messages,
    Rendered,
    TemplateError,
    asked_of,
    budgeted,
    for_model,
    offered_options,
    options_by_letter,
    render,
    token_budget,
)
from medbench.spec.suite import (
    SPEC_KINDS,
    ImageVariantsSubset,
    LikelihoodStage,
    ProbeStage,
    Spec,
    SuiteSpec,
)
from medbench.spec.task import (
    MAX_OPTION,
    MAX_OPTIONS,
    MAX_QUESTION,
    OPTION_LETTERS,
    TABLE_FORMATS,
    DataSourceSpec,
    TaskSpec,
)

__all__ = [
    "budgeted",
    "token_budget",
    "for_model",
    "PREFIX",
    "ImageVariantsSubset",
    "budgeted",
    "token_budget",
    "ID_PATTERN",
    "MAX_NAME",
    "MAX_OPTION",
    "MAX_OPTIONS",
    "MAX_QUESTION",
    "OPTION_LETTERS",
    "ORIGINAL_IMAGE",
    "SPEC_KINDS",
    "TABLE_FORMATS",
    "BiasFieldVariant",
    "BlankVariant",
    "BlurVariant",
    "BrightnessVariant",
    "ContrastVariant",
    "CropVariant",
    "DataSourceSpec",
    "ExposureVariant",
    "FlipVariant",
    "GammaVariant",
    "GaussianNoiseVariant",
    "GenerationSpec",
    "ImageInputSpec",
    "IlluminationVariant",
    "ImageRef",
    "ImageVariantSpec",
    "JpegVariant",
    "LikelihoodStage",
    "Messages",
    "ModelSpec",
    "MotionVariant",
    "NoiseVariant",
    "OpenAISpec",
    "ProbeStage",
    "PromptFamilySpec",
    "Rendered",
    "ResizeVariant",
    "RotateVariant",
    "Spec",
    "StainVariant",
    "SuiteSpec",
    "TaskSpec",
    "TemplateError",
    "TinySpec",
    "VariantSpec",
    "asked_of",
    "check_pattern",
    "check_revision",
    "group_of",
    "is_adhoc",
    "offered_options",
    "options_by_letter",
    "render",
    "with_adhoc_models",
]
