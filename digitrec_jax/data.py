"""MNIST: fetch and validate through TFDS's download manager, parse IDX with numpy; eval batching.

TensorFlow is not needed: the public `tfds.download.DownloadManager` downloads, caches and checks the
files against the sizes and sha256 sums below, and numpy reads them.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from digitrec_jax.model import IMAGE_SHAPE

DATA_DIR_ENV = 'DIGITREC_DATA_DIR'
DOWNLOAD_DIR = '~/tensorflow_datasets/downloads'  # TFDS's own default cache
# Where TFDS's MNIST builder downloads the files, and their sizes and sha256 sums (facts about MNIST).
MNIST_URL = 'https://storage.googleapis.com/cvdf-datasets/mnist/'
FILES = {
    'train-images-idx3-ubyte.gz': (9912422, '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'),
    'train-labels-idx1-ubyte.gz': (28881, '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c'),
    't10k-images-idx3-ubyte.gz': (1648877, '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6'),
    't10k-labels-idx1-ubyte.gz': (4542, 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6'),
}
SPLITS = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
FILE_NAMES = tuple(FILES)
# Evaluation runs over fixed-size, padded and masked batches: one compilation, exact counts.
EVAL_BATCH_SIZE = 1000
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049


class DataError(RuntimeError):
  """The MNIST files are missing, unreachable or corrupt; the message says how to fix it."""


def _fix_hint() -> str:
  return (f'pass --data-dir DIR (or set {DATA_DIR_ENV}=DIR) where DIR holds '
          f'{", ".join(FILE_NAMES)}')


def default_data_dir() -> str | None:
  return os.environ.get(DATA_DIR_ENV) or None


def _fetch(filenames: tuple[str, ...], data_dir: str | None) -> dict[str, Path]:
  """Local paths of `filenames`, validated against their sizes and sha256 sums by TFDS's download manager."""
  import tensorflow_datasets as tfds

  if data_dir is not None:
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
      raise DataError(f'data dir {folder} does not exist or is not a folder; {_fix_hint()}')
    missing = [name for name in filenames if not (folder / name).exists()]
    if missing:
      raise DataError(f'data dir {folder} lacks {", ".join(missing)}; {_fix_hint()}')
    odd = [name for name in filenames if not (folder / name).is_file()]
    if odd:
      raise DataError(f'{", ".join(str(folder / n) for n in odd)} is not a regular file (a folder, FIFO or device); '
                      'replace it with the canonical file')
    unreadable = [name for name in filenames if not os.access(folder / name, os.R_OK)]
    if unreadable:
      raise DataError(f'cannot read {", ".join(str(folder / n) for n in unreadable)} (permission denied); '
                      'make them readable')
  tfds.disable_progress_bar()
  url_infos = {MNIST_URL + name: tfds.download.checksums.UrlInfo(size=size, checksum=sha, filename=name)
               for name, (size, sha) in FILES.items()}
  download_dir = Path(DOWNLOAD_DIR).expanduser()
  manager = tfds.download.DownloadManager(
      download_dir=download_dir,
      manual_dir=None if data_dir is None else Path(data_dir).expanduser(),
      url_infos=url_infos,
      force_checksums_validation=True,
  )
  paths = {}
  for name in filenames:
    try:
      paths[name] = Path(manager.download(MNIST_URL + name))
    except tfds.download.download_manager.NonMatchingChecksumError as e:
      where = data_dir if data_dir is not None else str(download_dir)
      raise DataError(f'{name} in {where} does not match the size and sha256 of the canonical MNIST file '
                      '(truncated or a different file); replace it with the canonical file') from e
    except (OSError, tfds.download.DownloadError) as e:
      raise DataError(f'could not download {name} ({type(e).__name__}: {_first_line(e)}); {_fix_hint()}') from e
  return paths


def _first_line(e: BaseException) -> str:
  lines = str(e).strip().splitlines()
  return lines[0][:200] if lines else 'no details'


def _read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
  """Parses one gzipped IDX file, checking its magic number, item shape and length."""
  try:
    with gzip.open(path, 'rb') as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise DataError(f'{path} is not a readable gzip file ({e}); replace it with the canonical file') from None
  header_len = 4 * (2 + len(item_shape))
  if len(raw) < header_len:
    raise DataError(f'{path} is too short for an IDX header; replace it with the canonical file')
  header = np.frombuffer(raw[:header_len], dtype='>u4')
  if header[0] != magic:
    raise DataError(f'{path} has IDX magic number {header[0]}, expected {magic}; '
                    'replace it with the canonical file')
  shape = tuple(int(d) for d in header[1:])
  if shape[1:] != item_shape:
    raise DataError(f'{path} holds items of shape {shape[1:]}, expected {item_shape}; '
                    'replace it with the canonical file')
  body = np.frombuffer(raw, dtype=np.uint8, offset=header_len)
  if body.size != int(np.prod(shape)):
    raise DataError(f'{path} has {body.size} data bytes, its header says {int(np.prod(shape))}; '
                    'replace it with the canonical file')
  return body.reshape(shape)


def load_mnist(split: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """MNIST `split` ('train' or 'test') as (images uint8 [N, 28, 28, 1], labels int32 [N]).

  `data_dir` (default: $DIGITREC_DATA_DIR) holds the four canonical files; with none,
  TFDS downloads them into ~/tensorflow_datasets/downloads. Either way their checksums
  are validated.
  """
  if split not in SPLITS:
    raise ValueError(f'split must be one of {sorted(SPLITS)}, got {split!r}')
  if data_dir is None:
    data_dir = default_data_dir()
  images_name, labels_name = SPLITS[split]
  paths = _fetch((images_name, labels_name), data_dir)
  images = _read_idx(paths[images_name], _IMAGES_MAGIC, IMAGE_SHAPE[:2])
  labels = _read_idx(paths[labels_name], _LABELS_MAGIC, ())
  if len(images) != len(labels):
    raise DataError(f'{paths[images_name]} has {len(images)} images but {paths[labels_name]} has '
                    f'{len(labels)} labels; replace them with the canonical files')
  if labels.max(initial=0) > 9:
    raise DataError(f'{paths[labels_name]} has labels above 9; replace it with the canonical file')
  return images.reshape((len(images), *IMAGE_SHAPE)), labels.astype(np.int32)


def mnist_size(split: str, data_dir: str | None = None) -> int:
  """How many examples MNIST `split` holds, read from its labels file once both of its files are fetched
  and validated as by `load_mnist`, so that programs shaped by it can compile while the images decode."""
  if split not in SPLITS:
    raise ValueError(f'split must be one of {sorted(SPLITS)}, got {split!r}')
  labels_name = SPLITS[split][1]
  path = _fetch(SPLITS[split], default_data_dir() if data_dir is None else data_dir)[labels_name]
  return len(_read_idx(path, _LABELS_MAGIC, ()))


def make_eval_batches(images: np.ndarray, labels: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
  """[num_batches, batch_size, ...] arrays with a mask, so a partial last batch counts exactly."""
  n = labels.shape[0]
  num_batches = max(1, -(-n // batch_size))
  pad = num_batches * batch_size - n
  mask = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)])
  images = np.concatenate([images, np.zeros((pad, *images.shape[1:]), images.dtype)])
  labels = np.concatenate([labels, np.zeros(pad, labels.dtype)])
  return {'image': images.reshape(num_batches, batch_size, *images.shape[1:]),
          'label': labels.reshape(num_batches, batch_size),
          'mask': mask.reshape(num_batches, batch_size)}


# The validation split: a fixed random `val_size` of the 60k training images, the same in every run.
VALIDATION_SEED = 20240601


def split_validation(images: np.ndarray, labels: np.ndarray,
                     val_size: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
  """((train images, labels), (val images, labels)): `val_size` examples chosen by VALIDATION_SEED.

  The choice depends only on the number of examples and `val_size`, so every run, seed and machine
  holds out the same digits; both parts keep the original order.
  """
  n = len(labels)
  if not 0 < val_size < n:
    raise ValueError(f'val_size must be between 1 and {n - 1} for {n:,} training images, got {val_size}')
  held = np.zeros(n, bool)
  held[np.random.default_rng(VALIDATION_SEED).permutation(n)[:val_size]] = True
  return (images[~held], labels[~held]), (images[held], labels[held])
