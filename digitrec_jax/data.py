"""MNIST: fetch and validate through TFDS's download manager, parse IDX with numpy.

TensorFlow is not needed: `tfds.download.DownloadManager` downloads, caches and checks
the files against the checksums TFDS registers for MNIST, and numpy reads them.
"""

from __future__ import annotations

import gzip
import os
import socket
import urllib.parse
from pathlib import Path

import numpy as np

from digitrec_jax.model import IMAGE_SHAPE

DATA_DIR_ENV = 'DIGITREC_DATA_DIR'
DOWNLOAD_DIR = '~/tensorflow_datasets/downloads'  # TFDS's own default cache
SPLITS = {
    'train': ('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz'),
    'test': ('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz'),
}
FILE_NAMES = tuple(name for pair in SPLITS.values() for name in pair)
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049


class DataError(RuntimeError):
  """The MNIST files are missing, unreachable or corrupt; the message says how to fix it."""


def _fix_hint() -> str:
  return (f'pass --data-dir DIR (or set {DATA_DIR_ENV}=DIR) where DIR holds '
          f'{", ".join(FILE_NAMES)}')


def registered_url_infos() -> dict:
  """The MNIST URLs, sizes and sha256 checksums registered with TFDS, keyed by URL."""
  from tensorflow_datasets.core import utils
  from tensorflow_datasets.core.download import checksums
  return checksums.load_url_infos(utils.tfds_path() / 'url_checksums' / 'mnist.txt')


def default_data_dir() -> str | None:
  return os.environ.get(DATA_DIR_ENV) or None


def _cached(download_dir: Path, url: str, checksum: str) -> bool:
  """Whether TFDS already holds a validated download of `url`."""
  from tensorflow_datasets.core.download import resource
  return resource.is_locally_cached(download_dir / resource.get_dl_fname(url, checksum))


def _reachable(url: str, timeout: float = 5.0) -> bool:
  """A quick TCP probe: TFDS retries a dead network for minutes before it gives up."""
  host = urllib.parse.urlparse(url).hostname
  try:
    socket.create_connection((host, 443), timeout=timeout).close()
    return True
  except OSError:
    return False


def _fetch(filenames: tuple[str, ...], data_dir: str | None) -> dict[str, Path]:
  """Local paths of `filenames`, validated against the registered checksums."""
  # Submodules, not `tfds.*` attributes: the package fills those in lazily.
  from tensorflow_datasets.core.download import download_manager
  from tensorflow_datasets.core.utils import tqdm_utils

  url_infos = registered_url_infos()
  urls = {info.filename: url for url, info in url_infos.items()}
  download_dir = Path(DOWNLOAD_DIR).expanduser()
  if data_dir is not None:
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
      raise DataError(f'data dir {folder} does not exist or is not a folder; {_fix_hint()}')
    missing = [name for name in filenames if not (folder / name).is_file()]
    if missing:
      raise DataError(f'data dir {folder} lacks {", ".join(missing)}; {_fix_hint()}')
  else:
    uncached = [n for n in filenames if not _cached(download_dir, urls[n], url_infos[urls[n]].checksum)]
    if uncached and not _reachable(urls[uncached[0]]):
      raise DataError(f'cannot download MNIST ({", ".join(uncached)}): no network; {_fix_hint()}')
  tqdm_utils.disable_progress_bar()
  manager = download_manager.DownloadManager(
      download_dir=download_dir,
      manual_dir=None if data_dir is None else Path(data_dir).expanduser(),
      url_infos=url_infos,
      force_checksums_validation=True,
  )
  paths = {}
  for name in filenames:
    try:
      paths[name] = Path(manager.download(urls[name]))
    except download_manager.NonMatchingChecksumError:
      where = data_dir if data_dir is not None else str(download_dir)
      raise DataError(f'{name} in {where} does not match the sha256 TFDS registers for MNIST '
                      '(truncated or a different file); replace it with the canonical file') from None
    except Exception as e:  # A failed download surfaces as many exception types.
      raise DataError(f'could not download {name} ({type(e).__name__}); {_fix_hint()}') from None
  return paths


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
