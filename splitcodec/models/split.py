"""A model cut in two at a named split point: ``head`` on the edge, ``tail`` in the cloud."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


class _Range(nn.Module):
    """Units ``[start, stop)`` of a model's flat unit sequence (shares its parameters)."""

    def __init__(self, model, start: int, stop: int | None):
        super().__init__()
        self.model, self.start, self.stop = model, start, stop

    def forward(self, x):
        return self.model.run_units(x, self.start, self.stop)


@dataclass
class SplitModel:
    name: str
    split: str
    model: nn.Module
    head: nn.Module
    tail: nn.Module
    feature_shape: tuple[int, ...]  # (C, H, W) at ``input_size``
    input_size: int
    preprocess: Callable  # PIL image or HxWx3 uint8 array -> (3, S, S) float tensor
    task: str = "classification"  # or "detection" (the tail returns the raw YOLO heads)
    preprocess_spec: dict | None = None  # splitcodec.preprocessing spec of ``preprocess``
    paper_split: str | None = None
    weights: str = "DEFAULT"  # how the weights were named (splitcodec.models.weights_name)

    @functools.cached_property
    def identity(self):
        """The deployment identity of this head/tail pair (``splitcodec.identity``); the weights'
        fingerprint is computed once, on first use."""
        from ..identity import DeploymentIdentity, weights_fingerprint

        return DeploymentIdentity(self.name, self.split, tuple(self.feature_shape), self.weights,
                                  weights_fingerprint(self.model), self.input_size, dict(self.preprocess_spec or {}))

    @property
    def feature_elements(self) -> int:
        n = 1
        for d in self.feature_shape:
            n *= d
        return n

    @torch.no_grad()
    def features(self, images) -> torch.Tensor:
        """Head activations of a batch of images (list of arrays/PIL images)."""
        batch = torch.stack([self.preprocess(im) for im in images])
        return self.head(batch)


def split_units(model, name: str, split: str, input_size: int, preprocess) -> SplitModel:
    units = model.unit_names()
    if split not in units:
        raise KeyError(f"{name} has no split point {split!r}; valid splits: {', '.join(units)}")
    k = units.index(split) + 1
    head, tail = _Range(model, 0, k).eval(), _Range(model, k, None).eval()
    if hasattr(model, "shapes"):  # Darknet: known from the cfg without running the head
        shape = tuple(model.shapes[model.split_points()[k - 1]])
    else:
        with torch.no_grad():
            shape = tuple(head(torch.zeros(1, 3, input_size, input_size)).shape[1:])
    return SplitModel(name, split, model, head, tail, shape, input_size, preprocess)
