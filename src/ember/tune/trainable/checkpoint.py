"""``tune.Checkpoint``: a folder of files a trial saved, as Ray's ``ray.tune.Checkpoint``.

A checkpoint written on a worker's node travels to the experiment's storage on the driver's
machine as the bytes of an uncompressed tar, inside the trial's result (so through Ember's
object store): a cluster needs no shared filesystem."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_METADATA_FILE = ".metadata.json"


class Checkpoint:
    """A checkpoint in a local folder (``path``). Its files are the trainable's own; Tune adds
    ``.tune_state.json`` (the metrics it was saved with) when it stores one, and
    ``.metadata.json`` when asked to (``set_metadata``)."""

    def __init__(self, path: str | os.PathLike[str], filesystem: Any = None) -> None:
        if filesystem is not None:
            raise ValueError(
                "Ember's checkpoints live in local folders; pass filesystem=None (checkpoints "
                "reach the driver's storage_path through Ember, so no remote filesystem is needed)"
            )
        self.path = os.fspath(path)
        self.filesystem = None

    @classmethod
    def from_directory(cls, path: str | os.PathLike[str]) -> Checkpoint:
        path = os.fspath(path)
        if not os.path.isdir(path):
            raise ValueError(f"Checkpoint.from_directory: {path!r} is not a folder")
        return cls(path)

    def to_directory(self, path: str | os.PathLike[str] | None = None) -> str:
        """Copy the checkpoint's files into ``path`` (a new temporary folder if None)."""
        dest = os.fspath(path) if path is not None else tempfile.mkdtemp(prefix="checkpoint-")
        os.makedirs(dest, exist_ok=True)
        shutil.copytree(self.path, dest, dirs_exist_ok=True)
        return dest

    @contextmanager
    def as_directory(self) -> Iterator[str]:
        """The checkpoint as a local folder; it is local already, so no copy is made."""
        yield self.path

    def get_metadata(self) -> dict[str, Any]:
        try:
            with open(os.path.join(self.path, _METADATA_FILE), encoding="utf-8") as f:
                return dict(json.load(f))
        except FileNotFoundError:
            return {}

    def set_metadata(self, metadata: dict[str, Any]) -> None:
        with open(os.path.join(self.path, _METADATA_FILE), "w", encoding="utf-8") as f:
            json.dump(metadata, f)

    def update_metadata(self, metadata: dict[str, Any]) -> None:
        self.set_metadata({**self.get_metadata(), **metadata})

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Checkpoint) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)

    def __repr__(self) -> str:
        return f"Checkpoint(filesystem=local, path={self.path})"


def pack(path: str) -> bytes:
    """A folder's files as the bytes of an uncompressed tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(path, arcname=".")
    return buffer.getvalue()


def unpack(data: bytes, dest: str) -> Checkpoint:
    """Write ``pack``'s bytes into ``dest`` (replacing what was there) as a checkpoint."""
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.makedirs(dest)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12: refuse links out of dest
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    return Checkpoint(dest)
