"""Crash safety: kill -9 anywhere and rerun the same command -> bitwise the same model;
SIGINT/SIGTERM save and exit; one training per checkpoint dir; non-finite losses save nothing."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from helpers import TINY_MODEL, write_fake_mnist
from digitrec_jax import CheckpointError, TrainConfig, create_train_state
from digitrec_jax.checkpoint import STATE, Checkpoints, RunCheckpoints

pytestmark = pytest.mark.slow

HARNESS = Path(__file__).resolve().parent / 'crash_harness.py'
ARGS = ['--steps', '16', '--batch-size', '32', '--eval-every', '4', '--seed', '7']


def _harness(data_dir, run_dir, crash_at=None, extra=(), wait=True):
  env = dict(os.environ, PYTHONUNBUFFERED='1')
  env.pop('CRASH_AT', None)
  if crash_at:
    env['CRASH_AT'] = crash_at
  cmd = [sys.executable, str(HARNESS), str(data_dir), *ARGS, '--checkpoint-dir', str(run_dir), *extra]
  if not wait:
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _final_params(run_dir, step=16):
  config = TrainConfig(model=TINY_MODEL)
  ckpts = Checkpoints(run_dir, STATE)
  state = ckpts.restore(step, 'state', jax.eval_shape(lambda: create_train_state(config)))
  ckpts.close()
  return jax.device_get(state)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return write_fake_mnist(tmp_path_factory.mktemp('crash') / 'mnist')


def test_kill_9_five_times_then_resume_is_bitwise_identical(data_dir, tmp_path):
  straight = _harness(data_dir, tmp_path / 'straight')
  assert straight.returncode == 0, straight.stderr[-2000:]
  rng = random.Random(0)
  # During fused steps, during evaluation and during checkpoint saves, at random points.
  crashes = [f'chunk:{rng.randint(1, 3)}:{rng.uniform(0, 0.05):.3f}', f'eval:1:{rng.uniform(0, 0.02):.3f}',
             f'save:1:{rng.uniform(0, 0.02):.3f}', f'chunk:{rng.randint(1, 3)}:{rng.uniform(0, 0.05):.3f}',
             f'save:2:{rng.uniform(0, 0.02):.3f}']
  killed = 0
  for crash_at in crashes:
    result = _harness(data_dir, tmp_path / 'crashed', crash_at)
    killed += result.returncode == -signal.SIGKILL
    assert result.returncode in (-signal.SIGKILL, 0), (crash_at, result.stderr[-2000:])
  assert killed >= 4  # A kill can only miss if the run had already finished.
  final = _harness(data_dir, tmp_path / 'crashed')
  assert final.returncode == 0, final.stderr[-2000:]
  jax.tree.map(np.testing.assert_array_equal, _final_params(tmp_path / 'crashed'),
               _final_params(tmp_path / 'straight'))


def test_half_written_checkpoint_is_never_picked_up(data_dir, tmp_path):
  run = tmp_path / 'run'
  assert _harness(data_dir, run, extra=['--steps', '4']).returncode == 0
  # What a save killed midway leaves behind: Orbax writes into a temporary folder, then renames.
  partial = run / 'state' / '8.orbax-checkpoint-tmp-1234567'
  partial.mkdir()
  (partial / 'state').mkdir()
  (partial / 'state' / '_METADATA').write_text('{"truncated')
  ckpts = RunCheckpoints(run)
  assert ckpts.state.latest_step() == 4
  ckpts.close()
  result = _harness(data_dir, run, extra=['--steps', '8'])
  assert result.returncode == 0, result.stderr[-2000:]
  # The next writer cleans it up: Orbax deletes leftovers in a background thread and awaits it before
  # its first save, so only after that save is its absence certain (checked right after close(), it
  # raced and failed now and then under load).
  assert not partial.exists()
  assert sorted(p.name for p in (run / 'state').iterdir()) == ['4', '8']


@pytest.mark.parametrize('sig, code', [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_a_checkpoint_and_exits(data_dir, tmp_path, sig, code):
  run = tmp_path / 'run'
  proc = _harness(data_dir, run, extra=['--steps', '100000', '--eval-every', '100000'], wait=False)
  deadline = time.time() + 120
  while not (run / 'metrics.jsonl').exists() or not (run / 'metrics.jsonl').read_text():
    assert proc.poll() is None and time.time() < deadline, proc.communicate()[1][-2000:]
    time.sleep(0.05)
  proc.send_signal(sig)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == code, err[-2000:]
  steps = [int(p.name) for p in (run / 'state').iterdir()]
  assert len(steps) == 1 and steps[0] > 0
  assert err.strip().splitlines()[-1] == (f'interrupted by {sig.name} at step {steps[0]}; checkpoint saved in '
                                          f'{run}; rerun the same command to resume')
  resumed = _harness(data_dir, run, extra=['--steps', str(steps[0] + 2), '--eval-every', '100000'])
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert f'step {steps[0] + 2}: test accuracy' in resumed.stdout


def test_second_training_in_the_same_dir_fails_and_a_crashed_one_leaves_no_lock(tmp_path, data_dir):
  ckpts = RunCheckpoints(tmp_path / 'run')
  with pytest.raises(CheckpointError) as e:
    RunCheckpoints(tmp_path / 'run')
  assert str(e.value) == f'{tmp_path / "run"} is in use by another training (pid {os.getpid()})'
  ckpts.close()
  RunCheckpoints(tmp_path / 'run').close()  # Released on close.
  # A run killed with SIGKILL holds the lock only while it lives.
  proc = _harness(data_dir, tmp_path / 'killed', extra=['--steps', '100000'], wait=False)
  deadline = time.time() + 120
  while not (tmp_path / 'killed' / '.lock').exists() or 'pid' not in (tmp_path / 'killed' / '.lock').read_text():
    assert time.time() < deadline
    time.sleep(0.05)
  second = _harness(data_dir, tmp_path / 'killed', extra=['--steps', '2'])
  assert second.returncode == 1
  assert second.stderr.strip() == (f'error: {tmp_path / "killed"} is in use by another training (pid '
                                   f'{proc.pid}); pass another --checkpoint-dir')
  proc.kill()
  proc.wait()
  third = _harness(data_dir, tmp_path / 'killed', extra=['--steps', '2', '--eval-every', '2'])
  assert third.returncode == 0, third.stderr[-2000:]
