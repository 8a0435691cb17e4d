import gzip
import importlib.util
import sys

import numpy as np
import pytest

from helpers import synthetic_digits, write_idx
from digitrec_jax import DataError, load_mnist
from digitrec_jax import data as data_lib

FILES = ('train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, '
         't10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz')
HINT = f'pass --data-dir DIR (or set DIGITREC_DATA_DIR=DIR) where DIR holds {FILES}'


def test_fake_files_parse_to_images_and_labels(fake_mnist):
  images, labels = load_mnist('train', str(fake_mnist))
  expected_images, expected_labels = synthetic_digits(512, 0)
  assert images.shape == (512, 28, 28, 1) and images.dtype == np.uint8
  assert labels.shape == (512,) and labels.dtype == np.int32
  np.testing.assert_array_equal(images, expected_images)
  np.testing.assert_array_equal(labels, expected_labels)


def test_mnist_size_counts_a_split_from_its_validated_files(fake_mnist):
  assert data_lib.mnist_size('train', str(fake_mnist)) == 512
  assert data_lib.mnist_size('test', str(fake_mnist)) == len(load_mnist('test', str(fake_mnist))[1]) == 200
  with pytest.raises(ValueError, match='split must be one of'):
    data_lib.mnist_size('val', str(fake_mnist))


def test_data_dir_defaults_to_environment(fake_mnist, monkeypatch):
  monkeypatch.setenv('DIGITREC_DATA_DIR', str(fake_mnist))
  assert load_mnist('test')[0].shape == (200, 28, 28, 1)


def test_bad_checksum_names_the_file(fake_mnist):
  path = fake_mnist / 't10k-labels-idx1-ubyte.gz'
  path.write_bytes(path.read_bytes()[:-3] + b'xyz')
  with pytest.raises(DataError, match=r'^t10k-labels-idx1-ubyte.gz in .* does not match the size and sha256 of '
                                      r'the canonical MNIST file \(truncated or a different file\); replace it '
                                      r'with the canonical file$'):
    load_mnist('test', str(fake_mnist))


def test_missing_folder_and_missing_files(tmp_path, fake_mnist):
  with pytest.raises(DataError) as e:
    load_mnist('train', str(tmp_path / 'nope'))
  assert str(e.value) == f'data dir {tmp_path / "nope"} does not exist or is not a folder; {HINT}'
  (fake_mnist / 'train-labels-idx1-ubyte.gz').unlink()
  with pytest.raises(DataError) as e:
    load_mnist('train', str(fake_mnist))
  assert str(e.value) == f'data dir {fake_mnist} lacks train-labels-idx1-ubyte.gz; {HINT}'


def test_a_failed_download_is_reported_by_the_download_itself(tmp_path, monkeypatch, fake_mnist):
  # Nothing listens on port 9 of this machine, so the download manager's own request fails. TFDS retries a
  # failed request 10 times with backoff (about 3.5 minutes); the test turns the retries off.
  from tensorflow_datasets.core.download import downloader
  monkeypatch.setattr(downloader, 'MAX_RETRIES', 0)
  monkeypatch.setattr(data_lib, 'DOWNLOAD_DIR', str(tmp_path / 'downloads'))
  monkeypatch.setattr(data_lib, 'MNIST_URL', 'http://127.0.0.1:9/mnist/')
  with pytest.raises(DataError) as e:
    load_mnist('test')
  assert str(e.value).startswith('could not download t10k-images-idx3-ubyte.gz (')
  assert str(e.value).endswith(f'); {HINT}')
  assert isinstance(e.value.__cause__, Exception)  # The download's own error, chained.


def test_unreadable_data_file_is_named(fake_mnist):
  import os
  if os.geteuid() == 0:
    pytest.skip('root reads every file')
  (fake_mnist / 't10k-images-idx3-ubyte.gz').chmod(0)
  with pytest.raises(DataError, match='t10k-images-idx3-ubyte.gz \\(permission denied\\); make them readable'):
    load_mnist('test', str(fake_mnist))


@pytest.mark.parametrize('magic, shape, message', [
    (2049, None, 'has IDX magic number 2049, expected 2051'),
    (2051, (10, 28, 27), 'holds items of shape (28, 27), expected (28, 28)'),
])
def test_corrupt_idx_headers(fake_mnist, monkeypatch, magic, shape, message):
  from helpers import register_checksums
  images, _ = synthetic_digits(10, 0)
  path = fake_mnist / 'train-images-idx3-ubyte.gz'
  if shape is None:
    write_idx(path, images, magic)
  else:
    with gzip.open(path, 'wb') as f:
      f.write(np.array([magic, *shape], '>u4').tobytes() + bytes(int(np.prod(shape))))
  register_checksums(monkeypatch, fake_mnist)
  with pytest.raises(DataError, match='^' + str(path).replace('.', r'\.') + ' ' + message.replace('(', r'\(').replace(')', r'\)')):
    load_mnist('train', str(fake_mnist))


def test_unknown_split():
  with pytest.raises(ValueError, match="split must be one of \\['test', 'train'\\], got 'val'"):
    load_mnist('val')


def test_tensorflow_is_not_needed(fake_mnist):
  load_mnist('test', str(fake_mnist))
  assert 'tensorflow' not in sys.modules


def test_tensorflow_is_not_installed_in_ci():
  import os
  if not os.environ.get('CI'):
    pytest.skip('only CI promises a TensorFlow-free environment')
  assert importlib.util.find_spec('tensorflow') is None


@pytest.mark.slow
def test_real_mnist_files(real_data_dir):
  train_images, train_labels = load_mnist('train', real_data_dir)
  test_images, test_labels = load_mnist('test', real_data_dir)
  assert train_images.shape == (60_000, 28, 28, 1) and test_images.shape == (10_000, 28, 28, 1)
  assert train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
  assert np.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
  assert np.bincount(test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
  assert train_images.dtype == np.uint8 and train_images.max() == 255


def test_the_validation_split_is_disjoint_complete_and_fixed():
  images = (np.arange(1000) % 251).astype(np.uint8).reshape(1000, 1, 1, 1)
  labels = np.arange(1000, dtype=np.int32)  # Labels as ids: each example is identifiable.
  (train_x, train_y), (val_x, val_y) = data_lib.split_validation(images, labels, 100)
  assert len(val_y) == 100 and len(train_y) == 900
  assert set(train_y).isdisjoint(val_y) and set(train_y) | set(val_y) == set(range(1000))
  np.testing.assert_array_equal(val_x[:, 0, 0, 0], val_y % 251)  # Images stay with their labels.
  assert np.all(np.diff(val_y) > 0)  # Original order kept.
  again = data_lib.split_validation(images, labels, 100)[1][1]
  np.testing.assert_array_equal(again, val_y)  # The same digits every time, whatever the run's seed.
  assert not np.array_equal(val_y, np.arange(100))  # Chosen at random, not the first ones.
  with pytest.raises(ValueError, match='val_size must be between 1 and 999'):
    data_lib.split_validation(images, labels, 1000)
