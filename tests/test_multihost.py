"""train.py as 2 processes on this machine (CPU, gloo), joined by the standard JAX_* variables, ends with
the same params as 1 process with 2 devices."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import TINY_MODEL, write_fake_mnist

from digitrec_jax import TrainConfig, create_train_state
from digitrec_jax.checkpoint import STATE, Checkpoints

pytestmark = pytest.mark.slow
HARNESS = Path(__file__).resolve().parent / 'crash_harness.py'
ARGS = ['--steps', '6', '--batch-size', '32', '--eval-every', '3', '--seed', '2']


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _env(**extra) -> dict:
  env = {k: v for k, v in os.environ.items() if not k.startswith(('JAX_', 'XLA_', 'CRASH_AT'))}
  return {**env, 'JAX_PLATFORMS': 'cpu', **extra}


def _final_state(run_dir: Path):
  config = TrainConfig(model=TINY_MODEL)
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
                          jax.eval_shape(lambda: create_train_state(config)))
  ckpts = Checkpoints(run_dir, STATE)
  try:
    return jax.device_get(ckpts.restore(6, 'state', abstract))
  finally:
    ckpts.close()


def test_two_processes_match_one_process_with_two_devices(tmp_path):
  data = write_fake_mnist(tmp_path / 'mnist')
  one = subprocess.run([sys.executable, str(HARNESS), str(data), *ARGS, '--checkpoint-dir', str(tmp_path / 'one')],
                       env=_env(XLA_FLAGS='--xla_force_host_platform_device_count=2'), capture_output=True, text=True,
                       timeout=300)
  assert one.returncode == 0, one.stderr[-2000:]
  address = f'127.0.0.1:{_free_port()}'
  procs = [subprocess.Popen([sys.executable, str(HARNESS), str(data), *ARGS, '--checkpoint-dir', str(tmp_path / 'two')],
                            env=_env(JAX_COORDINATOR_ADDRESS=address, JAX_NUM_PROCESSES='2', JAX_PROCESS_ID=str(i)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  # Only process 0 reports and writes the summary; both took part in every step.
  assert 'on 2x cpu' in outs[0][0] and 'on 2x cpu' in one.stdout
  summary = (tmp_path / 'two' / 'summary.json').read_text()
  assert '"process_count": 2' in summary and '"device_count": 2' in summary
  a, b = _final_state(tmp_path / 'one'), _final_state(tmp_path / 'two')
  assert int(a.step) == int(b.step) == 6
  # Same data, same keys; only the order of the gradient all-reduce may differ (gloo vs in-process).
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), a.params, b.params)
