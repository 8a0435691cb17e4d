"""The shipped checkpoint: what `git clone` gives, loaded the way the GUI loads it."""

import json
from pathlib import Path

import numpy as np
import pytest

from digitrec_jax import TrainConfig, load_mnist, load_predictor
from digitrec_jax.config import PRESETS
from digitrec_jax.evaluate import predict_all
from digitrec_jax.predict import pretrained_dir

PRETRAINED_DIR = pretrained_dir()
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_shipped_checkpoint_reaches_99_65_percent_on_the_real_test_set(real_data_dir):
  predictor = load_predictor()  # no argument: the GUI's default path
  assert predictor.info['path'].startswith(str(PRETRAINED_DIR / 'best'))
  images, labels = load_mnist('test', real_data_dir)
  accuracy = float(np.mean(predict_all(predictor, images).argmax(-1) == labels))
  assert accuracy >= 0.9965  # It scores 99.69%.
  # The accuracy stored with the checkpoint is the one it really has.
  assert abs(accuracy - predictor.info['test_accuracy']) < 1e-4


def test_shipped_checkpoint_is_the_best_preset_params_only_and_small():
  summary = json.loads((PRETRAINED_DIR / 'summary.json').read_text())
  config = TrainConfig.from_dict(summary['config'])
  assert config == PRESETS['best']
  assert summary['command'].startswith('python train.py --preset best')
  assert sorted(p.name for p in PRETRAINED_DIR.iterdir()) == ['best', 'metrics.jsonl', 'summary.json']
  size = sum(p.stat().st_size for p in PRETRAINED_DIR.rglob('*') if p.is_file())
  assert size <= 5 * 2**20, size
  rows = [json.loads(line) for line in (PRETRAINED_DIR / 'metrics.jsonl').read_text().splitlines()]
  assert rows[-1]['step'] == config.steps
  # Batch-norm statistics ship with the weights.
  variables = load_predictor().variables
  assert config.model.batch_norm and sorted(variables['batch_stats']) == ['BatchNorm_0', 'BatchNorm_1',
                                                                          'BatchNorm_2', 'BatchNorm_3', 'BatchNorm_4']


def test_the_package_data_is_the_repository_checkpoint():
  # In a source checkout digitrec_jax/pretrained links to checkpoints/pretrained, the source of truth.
  assert PRETRAINED_DIR.resolve() == (ROOT / 'checkpoints' / 'pretrained').resolve()
