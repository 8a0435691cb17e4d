"""Hyper-parameters: one frozen dataclass, stored as JSON beside every checkpoint."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Architecture of the CNN; enough to rebuild it from a checkpoint."""

  conv_features: tuple[int, ...] = (32, 64)  # Channels of each block; every block halves the image.
  convs_per_block: int = 1
  dense_features: int = 256
  dropout_rate: float = 0.0
  # How each block halves the image: 'max' or 'avg' 2x2 pooling after its convs, or 'stride': its last
  # conv has stride 2 (a quarter of the positions, so about a quarter of that conv's cost).
  pool: str = 'max'
  first_kernel: int = 3  # Kernel side of the very first conv (5 sees a whole pen stroke at 28x28).
  batch_norm: bool = False  # Batch norm after every hidden layer; its statistics are stored with the params.
  non_digit_class: bool = False  # An 11th output for "not a digit", trained on synthetic non-digits.
  # Pixels cut from each side of the 28x28 input before the first conv. MNIST's digits (and
  # preprocess_drawing's) fill the central 20x20 box, centred by mass, so the border is nearly always
  # empty: 2 leaves 24x24, about a quarter fewer multiply-adds in every layer.
  crop: int = 0

  def __post_init__(self):
    object.__setattr__(self, 'conv_features', tuple(int(f) for f in self.conv_features))
    if not self.conv_features or any(f <= 0 for f in self.conv_features):
      raise ValueError(f'conv_features must be positive integers, got {self.conv_features}')
    if len(self.conv_features) > 3:
      raise ValueError('at most 3 conv blocks fit a 28x28 image (each halves it)')
    if isinstance(self.convs_per_block, bool) or not isinstance(self.convs_per_block, int) or self.convs_per_block <= 0:
      raise ValueError(f'convs_per_block must be a positive integer, got {self.convs_per_block!r}')
    if not isinstance(self.non_digit_class, bool):
      raise ValueError(f'non_digit_class must be true or false, got {self.non_digit_class!r}')
    if not isinstance(self.batch_norm, bool):
      raise ValueError(f'batch_norm must be true or false, got {self.batch_norm!r}')
    if self.pool not in ('max', 'avg', 'stride'):
      raise ValueError(f"pool must be 'max', 'avg' or 'stride', got {self.pool!r}")
    if isinstance(self.first_kernel, bool) or not isinstance(self.first_kernel, int) or not 1 <= self.first_kernel <= 7:
      raise ValueError(f'first_kernel must be an integer from 1 to 7, got {self.first_kernel!r}')
    if isinstance(self.crop, bool) or not isinstance(self.crop, int) or not 0 <= self.crop <= 4:
      raise ValueError(f'crop must be an integer from 0 to 4, got {self.crop!r}')
    if self.dense_features <= 0:
      raise ValueError(f'dense_features must be positive, got {self.dense_features}')
    if not 0.0 <= self.dropout_rate < 1.0:
      raise ValueError(f'dropout_rate must be in [0, 1), got {self.dropout_rate}')


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """Everything `train_and_evaluate` needs; the defaults reproduce the README result."""

  steps: int = 2000
  batch_size: int = 128
  learning_rate: float = 3e-3
  warmup_steps: int = 100
  weight_decay: float = 1e-4
  adam_b1: float = 0.9  # AdamW's first-moment decay; lower reacts faster in short, high-rate runs.
  label_smoothing: float = 0.0
  # Random affine augmentation of each training image, on the device; all zero turns it off.
  augment_rotation: float = 0.0  # degrees, uniform in [-x, x]
  augment_scale: float = 0.0  # zoom in [1 - x, 1 + x]
  augment_shear: float = 0.0
  augment_shift: float = 0.0  # pixels
  augment_stroke: float = 0.0  # stroke width: blend of up to x towards a 3x3 dilation or erosion
  augment_aspect: float = 0.0  # width against height stretched by exp(u), u uniform in [-x, x]
  augment_elastic: float = 0.0  # RMS pixels of a smooth elastic distortion (Simard et al. 2003)
  augment_forms: float = 0.0  # share of 0s, 1s and 7s rewritten as slashed 0, flagged 1, crossed 7
  # Every digit image (changed or not) softened towards a 3x3 blur by a fraction uniform in [0, x], so
  # that sharp edges alone never mean "a digit" (augment.random_blur).
  augment_blur: float = 0.0
  # Share of each batch's images that get the changes above; the rest pass unchanged, so the model
  # also trains on clean digits like MNIST's own (1.0: every image is changed).
  augment_share: float = 1.0
  # Share of each batch replaced by synthetic non-digits (label 10); needs model.non_digit_class.
  non_digit_fraction: float = 0.0
  non_digit_bank: int = 24000  # How many non-digits are generated on the host before training.
  # Share of each batch replaced by digits drawn with the window's pen (nondigits.DIGIT_SHAPES), so that
  # pen strokes alone never mean "not a digit"; half as many are generated as non-digits.
  pen_digit_fraction: float = 0.0
  # Share of those pen-drawn digits that are MNIST training digits redrawn with the window's pen
  # (`nondigits.redraw_with_pen`) instead of the templates: many hands' shapes with the window's look.
  pen_mnist_share: float = 0.0
  # Share of those redrawn MNIST digits that keep their own soft strokes (scaled to the canvas and fitted
  # back, as a scan, a photo or a number's part is) instead of the window's solid pen.
  pen_soft_share: float = 0.3
  # Training images held out (chosen by data.VALIDATION_SEED) to pick the best checkpoint, fit the
  # temperature and choose the "not a digit" threshold; the test set is only reported.
  val_size: int = 5000
  # Evaluate and ship an exponential moving average of the weights; 0 turns it off.
  ema_decay: float = 0.0
  seed: int = 0
  eval_every: int = 500
  # Host devices that `digitrec-train` splits the CPU into, and shards each batch over, when the run is on
  # the CPU (at most one per core; JAX_NUM_CPU_DEVICES or XLA_FLAGS choose otherwise). On the `best` net
  # XLA:CPU's own threads keep about 1.45 of 2 cores busy, two devices 1.85 (19-26% more images/s); the
  # `default` net gains nothing and the fast preset loses more in start-up than it gains. How the run
  # is laid out, not the recipe: a resume may change it.
  cpu_devices: int = 1
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)

  def __post_init__(self):
    if isinstance(self.model, dict):
      object.__setattr__(self, 'model', ModelConfig(**self.model))
    if not isinstance(self.model, ModelConfig):
      raise ValueError(f'model must be a ModelConfig or a dict of its fields, got {self.model!r}')
    for name in ('steps', 'batch_size', 'eval_every', 'val_size', 'non_digit_bank', 'cpu_devices'):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')
    if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
      # jax.random.key takes the seed modulo 2**32, so larger seeds would repeat smaller ones.
      raise ValueError(f'seed must be an integer in [0, 2**32), got {self.seed!r}')
    if self.warmup_steps < 0:
      raise ValueError(f'warmup_steps must be >= 0, got {self.warmup_steps}')
    if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
      raise ValueError(f'learning_rate must be a positive number, got {self.learning_rate}')
    if not 0.0 <= self.adam_b1 < 1.0:
      raise ValueError(f'adam_b1 must be in [0, 1), got {self.adam_b1}')
    if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
      raise ValueError(f'weight_decay must be >= 0, got {self.weight_decay}')
    for name in ('augment_rotation', 'augment_scale', 'augment_shear', 'augment_shift', 'augment_stroke',
                 'augment_aspect', 'augment_elastic'):
      value = getattr(self, name)
      if not (math.isfinite(value) and value >= 0):
        raise ValueError(f'{name} must be >= 0, got {value}')
    if self.augment_scale >= 1.0:
      raise ValueError(f'augment_scale must be < 1, got {self.augment_scale}')
    if self.augment_stroke > 1.0:
      raise ValueError(f'augment_stroke must be in [0, 1], got {self.augment_stroke}')
    if not 0.0 < self.augment_share <= 1.0:
      raise ValueError(f'augment_share must be in (0, 1], got {self.augment_share}')
    if not 0.0 <= self.augment_blur <= 1.0:
      raise ValueError(f'augment_blur must be in [0, 1], got {self.augment_blur}')
    if not 0.0 <= self.augment_forms <= 1.0:
      raise ValueError(f'augment_forms must be in [0, 1], got {self.augment_forms}')
    if not 0.0 <= self.pen_digit_fraction < 1.0 or self.pen_digit_fraction + self.non_digit_fraction >= 1.0:
      raise ValueError(f'pen_digit_fraction must be in [0, 1) and leave room for MNIST digits, got '
                       f'{self.pen_digit_fraction}')
    if not 0.0 <= self.pen_mnist_share <= 1.0:
      raise ValueError(f'pen_mnist_share must be in [0, 1], got {self.pen_mnist_share}')
    if not 0.0 <= self.pen_soft_share <= 1.0:
      raise ValueError(f'pen_soft_share must be in [0, 1], got {self.pen_soft_share}')
    if not 0.0 <= self.non_digit_fraction < 1.0:
      raise ValueError(f'non_digit_fraction must be in [0, 1), got {self.non_digit_fraction}')
    if self.non_digit_fraction and not self.model.non_digit_class:
      raise ValueError('non_digit_fraction > 0 needs model.non_digit_class = true (an output for non-digits)')
    if not 0.0 <= self.ema_decay < 1.0:
      raise ValueError(f'ema_decay must be in [0, 1), got {self.ema_decay}')
    if not 0.0 <= self.label_smoothing < 1.0:
      raise ValueError(f'label_smoothing must be in [0, 1), got {self.label_smoothing}')

  @property
  def augments(self) -> bool:
    return any((self.augment_rotation, self.augment_scale, self.augment_shear, self.augment_shift,
                self.augment_stroke, self.augment_aspect, self.augment_elastic, self.augment_forms,
                self.augment_blur))

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> 'TrainConfig':
    """Rebuilds a config from `to_dict` output; unknown keys are an error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
      raise ValueError(f'unknown TrainConfig fields: {", ".join(unknown)}')
    return cls(**d)


# Named recipes for `train.py --preset NAME`; explicit flags override their fields.
PRESETS: dict[str, TrainConfig] = {
    'default': TrainConfig(),
    # One epoch of a small net on the central 24x24 pixels, strided convs (no pooling) with batch norm at a
    # high rate, in 11 to 16 s on this project's 2-core CPU from process start; >= 99.0% test accuracy
    # over seeds (benchmarks/results.json).
    'fast': TrainConfig(steps=429, batch_size=128, learning_rate=0.02, warmup_steps=40, adam_b1=0.8,
                        label_smoothing=0.1, eval_every=429,
                        model=ModelConfig(conv_features=(16, 32), pool='stride', first_kernel=5,
                                          dense_features=256, batch_norm=True, crop=2)),
    # The shipped model (checkpoints/pretrained): 23 epochs of 4 convs with strided downsampling and batch
    # norm on the central 24x24 pixels; augmentation for how people write on 60% of the images, synthetic
    # non-digits as an 11th class, digits drawn through the window's path, and EMA. About 14 minutes on this
    # project's 2-core CPU (2 host devices).
    'best': TrainConfig(steps=10000, batch_size=128, learning_rate=3e-3, warmup_steps=500, weight_decay=1e-4,
                        label_smoothing=0.1, augment_rotation=15.0, augment_scale=0.12, augment_shear=0.15,
                        augment_shift=2.5, augment_stroke=0.5, augment_aspect=0.35, augment_elastic=1.0,
                        augment_forms=0.4, augment_share=0.6, non_digit_fraction=0.15, pen_digit_fraction=0.15,
                        pen_mnist_share=0.6, ema_decay=0.999, eval_every=1000, cpu_devices=2,
                        model=ModelConfig(conv_features=(32, 64), convs_per_block=2, dense_features=256,
                                          dropout_rate=0.4, pool='stride', batch_norm=True, non_digit_class=True,
                                          crop=2)),
}
