import pytest

from digitrec_jax import ModelConfig, TrainConfig


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
])
def test_invalid_values_are_rejected(kwargs, message):
  with pytest.raises(ValueError, match='^' + message.replace('(', r'\(') + '$'):
    TrainConfig(**kwargs)


def test_unknown_fields_are_rejected():
  with pytest.raises(ValueError, match='unknown TrainConfig fields: bogus'):
    TrainConfig.from_dict({'bogus': 1})


def test_too_many_conv_blocks_is_rejected():
  with pytest.raises(ValueError, match='at most 2 conv blocks'):
    ModelConfig(conv_features=(4, 8, 16))
