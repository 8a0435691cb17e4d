"""The shipped checkpoint: what `git clone` gives, loaded the way the GUI loads it."""

import dataclasses
import json

import numpy as np

from digitrec_jax import TrainConfig, load_mnist, load_predictor
from digitrec_jax.config import PRESETS
from digitrec_jax.evaluate import predict_all
from digitrec_jax.predict import PRETRAINED_DIR


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
  assert config.data_dir is None  # nothing of the machine it was trained on
  assert dataclasses.replace(config, data_dir=None) == PRESETS['best']
  assert summary['command'].startswith('python train.py --preset best')
  assert sorted(p.name for p in PRETRAINED_DIR.iterdir()) == ['best', 'metrics.jsonl', 'summary.json']
  size = sum(p.stat().st_size for p in PRETRAINED_DIR.rglob('*') if p.is_file())
  assert size <= 5 * 2**20, size
  rows = [json.loads(line) for line in (PRETRAINED_DIR / 'metrics.jsonl').read_text().splitlines()]
  assert rows[-1]['step'] == config.steps
  # Batch-norm statistics ship with the weights.
  assert config.model.batch_norm and 'batch_stats' in load_predictor().params
