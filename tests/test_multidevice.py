"""The sharded path on 4 forced CPU devices agrees with 1 device (in subprocesses: the
device count is fixed when JAX starts)."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

_SCRIPT = r'''
import json, sys
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
sys.path.insert(0, sys.argv[1])
from helpers import TINY_MODEL, synthetic_digits
from digitrec_jax import CNN, TrainConfig, create_train_state, make_apply_fn, training
import dataclasses

config = TrainConfig(steps=8, batch_size=32, warmup_steps=2,
                     model=dataclasses.replace(TINY_MODEL, batch_norm=sys.argv[2] == 'bn'))
mesh = Mesh(np.array(jax.devices()), ('data',))
replicated = NamedSharding(mesh, P())
images, labels = synthetic_digits(256, 0)
data = {'image': jax.device_put(images, replicated), 'label': jax.device_put(labels.astype(np.int32), replicated)}
apply_fn = make_apply_fn(CNN.from_config(config.model))
chunk = training.make_train_chunk(config, apply_fn, training.make_optimizer(config), mesh)
state = jax.device_put(create_train_state(config), replicated)
orders = training.epoch_orders(state, jnp.int32(0), 256)
losses = []
for _ in range(2):
  state, metrics = chunk(state, data, orders, jnp.int32(0), 4)
  losses += np.asarray(metrics['loss']).tolist()
leaf = state.params['Dense_1']['kernel']
print(json.dumps({'devices': jax.device_count(), 'losses': losses, 'param_shards': len(leaf.addressable_shards),
                  'replicated': leaf.sharding.is_fully_replicated}))
'''


def _run(device_count: int, model: str = 'plain') -> dict:
  env = dict(os.environ, XLA_FLAGS=f'--xla_force_host_platform_device_count={device_count}', JAX_PLATFORMS='cpu')
  tests_dir = os.path.dirname(os.path.abspath(__file__))
  out = subprocess.run([sys.executable, '-c', _SCRIPT, tests_dir, model], env=env, capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('model', ['plain', 'bn'])
def test_four_devices_match_one_device(model):
  # With batch norm this also checks that the statistics are of the global batch, not of each shard.
  one, four = _run(1, model), _run(4, model)
  assert one['devices'] == 1 and four['devices'] == 4
  assert four['param_shards'] == 4 and four['replicated']
  assert len(four['losses']) == 8
  for a, b in zip(one['losses'], four['losses']):
    assert b == pytest.approx(a, rel=1e-4, abs=1e-5)


def test_batch_not_divisible_by_device_count_is_an_error(tmp_path):
  train_py = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'train.py')
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', JAX_PLATFORMS='cpu')
  out = subprocess.run([sys.executable, train_py, '--batch-size', '30', '--checkpoint-dir', str(tmp_path / 'run')],
                       env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 1
  assert out.stderr == 'error: batch size 30 is not divisible by the 4 devices; use a multiple of 4\n'
  assert not (tmp_path / 'run').exists()
