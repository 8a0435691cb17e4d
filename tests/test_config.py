import json
import re

import pytest

from digitrec_jax import ModelConfig, TrainConfig
from digitrec_jax.config import PRESETS


def test_json_round_trip_rebuilds_equal_config():
  config = TrainConfig(steps=7, model=ModelConfig(conv_features=(4, 8), dense_features=16))
  import json
  assert TrainConfig.from_dict(json.loads(config.to_json())) == config


@pytest.mark.parametrize('kwargs, message', [
    ({'steps': 0}, 'steps must be a positive integer, got 0'),
    ({'batch_size': -1}, 'batch_size must be a positive integer, got -1'),
    ({'learning_rate': -0.1}, 'learning_rate must be a positive number, got -0.1'),
    ({'learning_rate': float('nan')}, 'learning_rate must be a positive number, got nan'),
    ({'eval_every': 0}, 'eval_every must be a positive integer, got 0'),
    ({'cpu_devices': 0}, 'cpu_devices must be a positive integer, got 0'),
])
def test_invalid_values_are_rejected(kwargs, message):
  with pytest.raises(ValueError, match='^' + message.replace('(', r'\(') + '$'):
    TrainConfig(**kwargs)


def test_unknown_fields_are_rejected():
  with pytest.raises(ValueError, match='unknown TrainConfig fields: bogus'):
    TrainConfig.from_dict({'bogus': 1})


def test_too_many_conv_blocks_is_rejected():
  ModelConfig(conv_features=(4, 8, 16))
  with pytest.raises(ValueError, match='^at most 3 conv blocks fit a 28x28 image'):
    ModelConfig(conv_features=(4, 8, 16, 32))


@pytest.mark.parametrize('kwargs, message', [
    ({'convs_per_block': 0}, 'convs_per_block must be a positive integer, got 0'),
    ({'pool': 'median'}, "pool must be 'max', 'avg' or 'stride', got 'median'"),
    ({'first_kernel': 9}, 'first_kernel must be an integer from 1 to 7, got 9'),
    ({'first_kernel': 2.0}, 'first_kernel must be an integer from 1 to 7, got 2.0'),
    ({'batch_norm': 1}, 'batch_norm must be true or false, got 1'),
    ({'crop': 5}, 'crop must be an integer from 0 to 4, got 5'),
    ({'crop': True}, 'crop must be an integer from 0 to 4, got True'),
])
def test_bad_model_fields_are_rejected(kwargs, message):
  with pytest.raises(ValueError, match='^' + message + '$'):
    ModelConfig(**kwargs)


@pytest.mark.parametrize('kwargs, message', [
    ({'augment_rotation': -1.0}, 'augment_rotation must be >= 0, got -1.0'),
    ({'augment_shift': float('nan')}, 'augment_shift must be >= 0, got nan'),
    ({'augment_scale': 1.0}, 'augment_scale must be < 1, got 1.0'),
    ({'augment_stroke': 1.5}, 'augment_stroke must be in [0, 1], got 1.5'),
    ({'augment_blur': 1.2}, 'augment_blur must be in [0, 1], got 1.2'),
    ({'pen_soft_share': -0.1}, 'pen_soft_share must be in [0, 1], got -0.1'),
    ({'ema_decay': 1.0}, 'ema_decay must be in [0, 1), got 1.0'),
    ({'adam_b1': 1.0}, 'adam_b1 must be in [0, 1), got 1.0'),
])
def test_bad_augmentation_and_ema_fields_are_rejected(kwargs, message):
  with pytest.raises(ValueError, match='^' + re.escape(message) + '$'):
    TrainConfig(**kwargs)


def test_augments_is_true_when_any_augmentation_is_on():
  assert not TrainConfig().augments
  assert TrainConfig(augment_shear=0.1).augments and TrainConfig(augment_stroke=0.5).augments
  assert TrainConfig(augment_blur=0.5).augments


def test_every_preset_round_trips_through_json():
  for name, preset in PRESETS.items():
    assert TrainConfig.from_dict(json.loads(preset.to_json())) == preset, name


def test_old_configs_without_new_fields_still_load():
  # The shipped checkpoint of an earlier version stores no pool/convs_per_block/augment fields.
  d = TrainConfig().to_dict()
  for key in ('augment_rotation', 'augment_scale', 'augment_shear', 'augment_shift', 'augment_stroke', 'ema_decay'):
    del d[key]
  del d['model']['pool'], d['model']['convs_per_block']
  assert TrainConfig.from_dict(d) == TrainConfig()
