"""Shared fixtures: a small, learnable fake MNIST folder whose checksums stand in for TFDS's."""

from __future__ import annotations

import dataclasses
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from digitrec_jax import data as data_lib
from digitrec_jax.config import ModelConfig, TrainConfig

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


def checksums_of(folder: Path) -> dict:
  """URL infos like TFDS's registered ones, but for `folder`'s files."""
  from tensorflow_datasets.core.download import checksums
  infos = {}
  for url, info in data_lib.registered_url_infos().items():
    computed = checksums.compute_url_info(folder / info.filename)
    infos[url] = dataclasses.replace(computed, filename=info.filename)
  return infos


def register_checksums(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
  """Makes the loader validate against `folder`'s files instead of the canonical ones."""
  infos = checksums_of(folder)
  monkeypatch.setattr(data_lib, 'registered_url_infos', lambda: infos)


@pytest.fixture
def fake_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
  folder = write_fake_mnist(tmp_path / 'mnist')
  register_checksums(monkeypatch, folder)
  monkeypatch.delenv(data_lib.DATA_DIR_ENV, raising=False)
  return folder


@pytest.fixture
def tiny_config(fake_mnist: Path) -> TrainConfig:
  return TrainConfig(steps=6, batch_size=32, eval_every=3, steps_per_dispatch=3, warmup_steps=2,
                     data_dir=str(fake_mnist), model=TINY_MODEL)


@pytest.fixture
def real_data_dir() -> str:
  folder = os.environ.get(data_lib.DATA_DIR_ENV)
  if not folder:
    pytest.skip(f'set {data_lib.DATA_DIR_ENV} to the folder with the real MNIST files')
  return folder
