import jax
import jax.numpy as jnp
import numpy as np

from digitrec_jax import CNN, IMAGE_SHAPE, NUM_CLASSES, ModelConfig, make_apply_fn
from digitrec_jax.model import init_variables, predict_proba

# conv 3*3*1*32+32, conv 3*3*32*64+64, dense 7*7*64*256+256, dense 256*10+10.
DEFAULT_PARAM_COUNT = 320 + 18_496 + 803_072 + 2_570


def _count(params) -> int:
  return sum(x.size for x in jax.tree.leaves(params))


def test_default_model_has_exact_parameter_count_and_no_statistics():
  variables = init_variables(CNN(), jax.random.key(0))
  assert sorted(variables) == ['batch_stats', 'params'] and variables['batch_stats'] == {}
  assert _count(variables) == DEFAULT_PARAM_COUNT == 824_458


def test_output_shape_and_dtypes():
  model = CNN.from_config(ModelConfig(conv_features=(4, 8), dense_features=16))
  apply = make_apply_fn(model)
  params = init_variables(model, jax.random.key(0))
  for dtype in (jnp.uint8, jnp.float32):
    logits = apply(params, jnp.zeros((5, *IMAGE_SHAPE), dtype))
    assert logits.shape == (5, NUM_CLASSES)
    assert logits.dtype == jnp.float32


def test_uint8_and_unit_float_images_are_normalized_alike():
  model = CNN.from_config(ModelConfig(conv_features=(4, 8), dense_features=16))
  apply = make_apply_fn(model)
  params = init_variables(model, jax.random.key(1))
  pixels = np.random.default_rng(0).integers(0, 256, (3, *IMAGE_SHAPE), dtype=np.uint8)
  np.testing.assert_allclose(apply(params, pixels), apply(params, pixels.astype(np.float32) / 255),
                             rtol=1e-5, atol=1e-5)


def test_predict_proba_sums_to_one():
  model = CNN.from_config(ModelConfig(conv_features=(4,), dense_features=8))
  params = init_variables(model, jax.random.key(0))
  probs = predict_proba(make_apply_fn(model), params, jnp.ones((4, *IMAGE_SHAPE)))
  np.testing.assert_allclose(probs.sum(-1), np.ones(4), rtol=1e-6)
  assert bool(jnp.all(probs > 0))


def test_dropout_rng_switches_training_mode():
  model = CNN.from_config(ModelConfig(conv_features=(4,), dense_features=8, dropout_rate=0.5))
  apply = make_apply_fn(model)
  params = init_variables(model, jax.random.key(0))
  x = jnp.ones((2, *IMAGE_SHAPE))
  np.testing.assert_array_equal(apply(params, x), apply(params, x))
  assert not np.allclose(apply(params, x), apply.train(params, x, jax.random.key(3))[0])


def test_convs_per_block_and_three_blocks_have_exact_parameter_counts():
  two = init_variables(CNN.from_config(ModelConfig(conv_features=(4, 8), convs_per_block=2, dense_features=16)),
                        jax.random.key(0))['params']
  # convs 1->4, 4->4, 4->8, 8->8 (3x3 + bias), dense 7*7*8->16, 16->10.
  assert _count(two) == (40 + 148) + (296 + 584) + (392 * 16 + 16) + (16 * 10 + 10)
  assert sorted(two) == ['Conv_0', 'Conv_1', 'Conv_2', 'Conv_3', 'Dense_0', 'Dense_1']
  three = init_variables(CNN.from_config(ModelConfig(conv_features=(4, 8, 8), dense_features=16)),
                         jax.random.key(0))['params']
  assert three['Dense_0']['kernel'].shape == (3 * 3 * 8, 16)  # 28 -> 14 -> 7 -> 3


def test_avg_pool_averages_where_max_pool_takes_the_max():
  configs = [ModelConfig(conv_features=(4,), dense_features=8, pool=pool) for pool in ('max', 'avg')]
  variables = init_variables(CNN.from_config(configs[0]), jax.random.key(0))
  params = variables['params']
  x = jax.random.uniform(jax.random.key(1), (2, *IMAGE_SHAPE))
  conv = lambda model: model.apply({'params': params}, x, capture_intermediates=True,
                                   mutable=['intermediates'])[1]['intermediates']['Conv_0']['__call__'][0]
  features = jax.nn.relu(conv(CNN.from_config(configs[0])))
  blocks = features.reshape(2, 14, 2, 14, 2, 4)
  for config, reduce in zip(configs, (jnp.max, jnp.mean)):
    model = CNN.from_config(config)
    pooled = reduce(blocks, axis=(2, 4)).reshape(2, -1)
    expected = jax.nn.relu(pooled @ params['Dense_0']['kernel'] + params['Dense_0']['bias'])
    expected = expected @ params['Dense_1']['kernel'] + params['Dense_1']['bias']
    np.testing.assert_allclose(make_apply_fn(model)(variables, x), expected, rtol=1e-4, atol=1e-5)


def test_stride_blocks_downsample_with_their_last_conv_and_the_first_kernel_is_configurable():
  config = ModelConfig(conv_features=(4, 8), convs_per_block=2, dense_features=16, pool='stride', first_kernel=5)
  model = CNN.from_config(config)
  params = init_variables(model, jax.random.key(0))['params']
  assert params['Conv_0']['kernel'].shape == (5, 5, 1, 4)  # Only the first conv is 5x5.
  assert [params[f'Conv_{i}']['kernel'].shape[:2] for i in range(1, 4)] == [(3, 3)] * 3
  assert params['Dense_0']['kernel'].shape == (7 * 7 * 8, 16)  # 28 -> 14 -> 7, no pooling layers.
  x = jax.random.uniform(jax.random.key(1), (2, *IMAGE_SHAPE))
  inter = model.apply({'params': params}, x, capture_intermediates=True,
                      mutable=['intermediates'])[1]['intermediates']
  # The stride-2 conv at the end of each block equals the stride-1 conv sampled at every other pixel
  # (SAME padding at stride 2 pads only the far edge, so the samples are the odd rows and columns).
  block_in = jax.nn.relu(inter['Conv_0']['__call__'][0])
  full = jax.lax.conv_general_dilated(block_in, params['Conv_1']['kernel'], (1, 1), 'SAME',
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC')) + params['Conv_1']['bias']
  assert inter['Conv_1']['__call__'][0].shape == (2, 14, 14, 4)
  np.testing.assert_allclose(inter['Conv_1']['__call__'][0], full[:, 1::2, 1::2], rtol=1e-4, atol=1e-5)


def test_crop_drops_the_border_before_the_first_conv():
  model = CNN.from_config(ModelConfig(conv_features=(4, 8), dense_features=16, pool='stride', crop=2))
  variables = init_variables(model, jax.random.key(0))
  assert variables['params']['Dense_0']['kernel'].shape == (6 * 6 * 8, 16)  # 24 -> 12 -> 6.
  apply = make_apply_fn(model)
  x = jax.random.uniform(jax.random.key(1), (3, *IMAGE_SHAPE))
  border = jnp.ones(IMAGE_SHAPE, bool).at[2:-2, 2:-2].set(False)
  scribbled = jnp.where(border, jax.random.uniform(jax.random.key(2), x.shape), x)
  np.testing.assert_array_equal(apply(variables, scribbled), apply(variables, x))
  inner = x.at[:, 2, 2, 0].set(1.0 - x[:, 2, 2, 0])  # The first pixel kept changes the logits.
  assert not np.allclose(apply(variables, inner), apply(variables, x))


BN_MODEL = ModelConfig(conv_features=(4, 8), dense_features=16, batch_norm=True)


def test_batch_norm_params_hold_weights_and_statistics():
  params = init_variables(CNN.from_config(BN_MODEL), jax.random.key(0))
  assert sorted(params) == ['batch_stats', 'params']
  assert sorted(params['params']) == ['BatchNorm_0', 'BatchNorm_1', 'BatchNorm_2', 'Conv_0', 'Conv_1',
                                      'Dense_0', 'Dense_1']
  assert sorted(params['params']['Conv_0']) == ['kernel']  # Batch norm's offset replaces the bias.
  assert sorted(params['batch_stats']) == ['BatchNorm_0', 'BatchNorm_1', 'BatchNorm_2']
  np.testing.assert_array_equal(params['batch_stats']['BatchNorm_1']['mean'], np.zeros(8))
  np.testing.assert_array_equal(params['batch_stats']['BatchNorm_2']['var'], np.ones(16))
  # convs 9*1*4, 9*4*8 (no bias) + scale and offset; dense 392*16 + scale and offset; 16*10+10.
  assert _count(params['params']) == (36 + 8) + (288 + 16) + (392 * 16 + 32) + 170


@jax.default_matmul_precision('highest')  # float32 convolutions on GPUs too (their default is TF32).
def test_batch_norm_inference_uses_running_statistics_and_training_updates_them():
  model = CNN.from_config(BN_MODEL)
  apply = make_apply_fn(model)
  params = init_variables(model, jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (6, *IMAGE_SHAPE))
  # Inference: each image's logits do not depend on the rest of the batch.
  np.testing.assert_allclose(apply(params, x[:1]), apply(params, x)[:1], rtol=1e-5, atol=1e-6)
  # Training: batch statistics, so the same image scores differently in another batch.
  logits, stats = apply.train(params, x, jax.random.key(2))
  trained = {'params': params['params'], 'batch_stats': stats}
  other, _ = apply.train(params, x[:3], jax.random.key(2))
  assert not np.allclose(logits[:1], other[:1], atol=1e-4)
  # Running averages move a tenth of the way to the batch's mean and (biased) variance.
  import flax.linen as nn
  from digitrec_jax.model import normalize
  conv = nn.Conv(4, (3, 3), use_bias=False).apply({'params': params['params']['Conv_0']}, normalize(x))
  stats = trained['batch_stats']['BatchNorm_0']
  np.testing.assert_allclose(stats['mean'], 0.1 * conv.mean((0, 1, 2)), rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(stats['var'], 0.9 + 0.1 * conv.var((0, 1, 2)), rtol=1e-4, atol=1e-6)
  # The updated statistics change inference.
  assert not np.allclose(apply(trained, x), apply(params, x), atol=1e-4)


def test_train_mode_without_batch_norm_returns_no_statistics():
  model = CNN.from_config(ModelConfig(conv_features=(4,), dense_features=8))
  apply = make_apply_fn(model)
  params = init_variables(model, jax.random.key(0))
  x = jnp.ones((2, *IMAGE_SHAPE))
  logits, stats = apply.train(params, x, jax.random.key(3))
  assert stats == {}
  np.testing.assert_array_equal(logits, apply(params, x))  # No dropout in this model: same as inference.
