"""The README's quick start on the real MNIST files: train 300 steps, then resume to 400."""

import pytest
import json
import subprocess
import sys
from pathlib import Path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _train(steps: int, data_dir: str, run: Path) -> dict:
  cmd = [sys.executable, str(ROOT / 'train.py'), '--steps', str(steps), '--data-dir', data_dir,
         '--checkpoint-dir', str(run)]
  out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-2000:]
  return json.loads((run / 'summary.json').read_text())


def test_quick_start_reaches_98_percent_and_resumes(real_data_dir, tmp_path):
  from digitrec_jax import load_variables
  first = _train(300, real_data_dir, tmp_path / 'run1')
  assert first['step'] == 300 and first['resumed_from_step'] is None
  assert first['test_accuracy'] >= 0.98
  variables, config, _ = load_variables(tmp_path / 'run1')
  assert config.steps == 300 and variables['params']['Dense_1']['kernel'].shape == (256, 10)
  second = _train(400, real_data_dir, tmp_path / 'run1')
  assert second['step'] == 400 and second['resumed_from_step'] == 300
  assert second['test_accuracy'] >= 0.98
