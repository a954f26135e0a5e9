"""Data sets, each registered by name: digits (embedded default), Fashion-MNIST, ImageNet-layout folders, and
super-resolution photos. See :mod:`toolchain.data.registry` for the common interface."""

from . import digits, fashion_mnist, image_folder, super_resolution
from .registry import BatchSource, DataBundle, DataError, list_datasets, load_dataset, register_dataset

__all__ = [
    "BatchSource",
    "DataBundle",
    "DataError",
    "digits",
    "fashion_mnist",
    "image_folder",
    "list_datasets",
    "load_dataset",
    "register_dataset",
    "super_resolution",
]
