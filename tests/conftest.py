"""Fixtures: a fake MNIST folder whose checksums stand in for the canonical ones, and a tiny config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import TINY_MODEL, register_checksums, write_fake_mnist

from digitrec_jax import data as data_lib
from digitrec_jax.config import TrainConfig


@pytest.fixture
def fake_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
  folder = write_fake_mnist(tmp_path / 'mnist')
  register_checksums(monkeypatch, folder)
  monkeypatch.delenv(data_lib.DATA_DIR_ENV, raising=False)
  return folder


@pytest.fixture
def tiny_config(fake_mnist: Path) -> TrainConfig:
  return TrainConfig(steps=6, batch_size=32, eval_every=3, warmup_steps=2, val_size=64, model=TINY_MODEL)


@pytest.fixture
def run_options(fake_mnist: Path) -> dict:
  """The run options of `train_and_evaluate` for the fake data: small chunks, no progress bar."""
  return {'data_dir': str(fake_mnist), 'steps_per_dispatch': 3, 'progress': False}


@pytest.fixture
def real_data_dir() -> str:
  folder = os.environ.get(data_lib.DATA_DIR_ENV)
  if not folder:
    pytest.skip(f'set {data_lib.DATA_DIR_ENV} to the folder with the real MNIST files')
  return folder
