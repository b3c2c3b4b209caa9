"""Pipelines: route received messages through filter chains to their output rules."""

from edged.pipeline import carry
from edged.pipeline.pipeline import Pipeline, Publisher, Step

__all__ = ["Pipeline", "Publisher", "Step", "carry"]
