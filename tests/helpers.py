"""Helpers shared by the tests: a small, learnable fake MNIST folder, a tiny model, checkpoint damage."""

from __future__ import annotations

import dataclasses

import gzip
import hashlib
from pathlib import Path

import jax
import numpy as np

from digitrec_jax import data as data_lib
from digitrec_jax.config import ModelConfig
from digitrec_jax.model import CNN, init_variables, make_apply_fn

# A small CNN keeps the tests' compile times short.
TINY_MODEL = ModelConfig(conv_features=(4, 8), dense_features=16)


def synthetic_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """uint8 [n, 28, 28, 1] images whose class k has a bright 6x6 block at its own place."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, 10, n).astype(np.uint8)
  images = rng.integers(0, 40, (n, 28, 28), dtype=np.uint8)
  for i, k in enumerate(labels):
    r, c = 2 + (k % 5) * 5, 4 + (k // 5) * 14
    images[i, r:r + 6, c:c + 6] = 255
  return images[..., None], labels


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
  dims = array.shape if magic == 2049 else array.shape[:3]
  header = np.array([magic, *dims], dtype='>u4').tobytes()
  with gzip.open(path, 'wb') as f:
    f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_fake_mnist(folder: Path, n_train: int = 512, n_test: int = 200) -> Path:
  folder.mkdir(parents=True, exist_ok=True)
  for split, n, seed in (('train', n_train, 0), ('test', n_test, 1)):
    images_name, labels_name = data_lib.SPLITS[split]
    images, labels = synthetic_digits(n, seed)
    write_idx(folder / images_name, images, 2051)
    write_idx(folder / labels_name, labels, 2049)
  return folder


def checksums_of(folder: Path) -> dict[str, tuple[int, str]]:
  """`data.FILES` for `folder`'s files: their sizes and sha256 sums."""
  return {name: ((folder / name).stat().st_size, hashlib.sha256((folder / name).read_bytes()).hexdigest())
          for name in data_lib.FILES}


def register_checksums(monkeypatch, folder: Path) -> None:
  """Makes the loader validate against `folder`'s files instead of the canonical ones."""
  monkeypatch.setattr(data_lib, 'FILES', checksums_of(folder))


def tiny_predictor(seed: int = 0, calibration: dict | None = None, non_digit_class: bool = False):
  """A Predictor of a freshly initialized tiny model (no checkpoint)."""
  from digitrec_jax.predict import Predictor
  model = CNN.from_config(dataclasses.replace(TINY_MODEL, non_digit_class=non_digit_class))
  info = {'path': 'tiny', 'step': 0, 'calibration': calibration}
  return Predictor(make_apply_fn(model), init_variables(model, jax.random.key(seed)), info)


def step_dir(root: Path, kind: str = 'best') -> Path:
  """The (only) step folder of a run's `best/` or `state/`."""
  return next(p for p in (root / kind).iterdir() if p.name.isdigit())


def truncate_arrays(root: Path, kind: str = 'best') -> None:
  """Cuts every array data file of a checkpoint to 10 bytes."""
  for f in step_dir(root, kind).rglob('d/*'):
    f.write_bytes(f.read_bytes()[:10])
