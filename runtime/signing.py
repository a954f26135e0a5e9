"""Signed exports: an elliptic-curve signature over an exported model's files, made and checked by the OpenSSF
``model-signing`` library (the ``sign`` extra: ``pip install 'sparse-lowbit-toolchain[sign]'``, which brings
``model-signing`` and the ``pyopenssl`` it imports). No cryptography is written here.

Each graph has its own signature file beside it, named after it (:func:`signature_path`): ``model.onnx`` →
``model.sig`` covers the standalone graph; ``model.compressed.onnx`` → ``model.compressed.sig`` covers that graph
and the sidecar it names. A signature is the library's Sigstore bundle: a DSSE envelope around an in-toto statement
whose manifest lists the covered files by name (relative to their folder) with their SHA-256, signed with the key.
The stock ``model_signing verify key FOLDER --signature FOLDER/model.sig --public_key PUB --ignore_unsigned_files``
checks one too (docs/signing.md).

:func:`verify` (``runtime.load(..., public_key=...)``) demands a signature that verifies with the public key and
whose manifest lists exactly the graph (and its sidecar) with their current digests: an unsigned graph, a changed
byte in any covered file or in the signature, another key's signature, or a signature of other files (another
stem's, or the standalone's copied over the pair's) is a :class:`ToolchainError` naming the cause.

The library is imported only when a key is given, so the runtime works without it otherwise.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ToolchainError

__all__ = ["INSTALL_HINT", "Signer", "signature_path", "verify"]

INSTALL_HINT = "pip install 'sparse-lowbit-toolchain[sign]' (model-signing and pyopenssl)"
KEY_KINDS = "an unencrypted elliptic-curve key in PEM (P-256, P-384 or P-521; docs/signing.md says how to make one)"


def signature_path(graph: str | os.PathLike[str]) -> Path:
    """The signature file of ``graph``: beside it, ``.onnx`` replaced by ``.sig`` (``model.compressed.sig``)."""
    path = Path(graph)
    return path.with_suffix(".sig") if path.suffix == ".onnx" else path.with_name(path.name + ".sig")


def _library() -> Any:
    try:
        import model_signing
        from model_signing import hashing, signing, verifying  # noqa: F401 - the submodules the callers use
    except ImportError as e:
        raise ToolchainError(
            f"signing and signature checks need the model-signing library ({e}): {INSTALL_HINT}"
        ) from None
    return model_signing


def _pinned(folder: Path, names: Sequence[str]) -> Any:
    """The library's hashing configuration (SHA-256 per file), hashing exactly ``names`` in ``folder`` rather than
    everything the folder holds: other files (a float model, a report, another export) neither enter a signature nor
    make its check fail."""
    from model_signing import hashing

    files = [folder / name for name in names]

    class Pinned(hashing.Config):
        def hash(self, model_path: Any, *, files_to_hash: Any = None) -> Any:
            return super().hash(model_path, files_to_hash=files)

    return Pinned().use_file_serialization(hashing_algorithm="sha256")


class Signer:
    """A private key loaded for signing. It is read (and refused if unusable) when the object is made, so an export
    can check its key before it writes anything."""

    def __init__(self, private_key: str | os.PathLike[str]) -> None:
        library = _library()
        self.key = Path(private_key)
        if not self.key.is_file():
            raise ToolchainError(f"private key {self.key} does not exist")
        try:
            self._config = library.signing.Config().use_elliptic_key_signer(private_key=self.key)
        except TypeError:  # cryptography: "Password was not given but private key is encrypted"
            raise ToolchainError(f"private key {self.key} is encrypted; signing needs {KEY_KINDS}") from None
        except Exception as e:  # not PEM, a public key, an RSA key (no curve), an unsupported curve
            raise ToolchainError(
                f"private key {self.key} cannot sign: {_first_line(e)}; it must be {KEY_KINDS}"
            ) from None

    def sign(self, files: Sequence[tuple[str, bytes]], folder_name: str = "model") -> bytes:
        """The signature (the bundle's JSON bytes) of ``files``, each a plain file name and its content, as they will
        lie together in one folder (``folder_name``, recorded as the statement's subject). They are staged in a
        temporary folder, so an export signs its files before it writes any (a failed signing leaves earlier output
        alone)."""
        names = [name for name, _ in files]
        if len(set(names)) != len(names) or any(not n or n != Path(n).name or n in (".", "..") for n in names):
            raise ToolchainError(f"signed files must be distinct plain file names, got {names}")
        with tempfile.TemporaryDirectory(prefix="toolchain-sign-") as tmp:
            folder = Path(tmp) / (folder_name or "model")
            folder.mkdir()
            for name, data in files:
                (folder / name).write_bytes(data)
            out = Path(tmp) / "signature"
            self._config.set_hashing_config(_pinned(folder, names)).sign(folder, out)
            return out.read_bytes()


def verify(graph: str | os.PathLike[str], sidecar: str | None, public_key: str | os.PathLike[str]) -> None:
    """Refuse ``graph`` (and ``sidecar``, a plain file name beside it) unless the signature beside it
    (:func:`signature_path`) verifies with ``public_key`` and lists exactly these files with their present digests."""
    library = _library()  # a key was given: without the library nothing can be checked
    from cryptography.exceptions import InvalidSignature  # a dependency of model-signing

    graph_path = Path(graph).absolute()
    signature, key = signature_path(graph_path), Path(public_key)
    if not key.is_file():
        raise ToolchainError(f"public key {key} does not exist")
    if not signature.is_file():
        raise ToolchainError(
            f"{graph_path.name} is unsigned: no signature {signature.name} beside it (export it with --sign KEY); "
            "refused"
        )
    try:
        config = library.verifying.Config().use_elliptic_key_verifier(public_key=key)
    except Exception as e:  # not PEM, a private key, RSA, an unsupported curve
        raise ToolchainError(f"public key {key} cannot be used: {_first_line(e)}; it must be {KEY_KINDS}") from None
    names = [graph_path.name, *([sidecar] if sidecar else [])]
    config.set_hashing_config(_pinned(graph_path.parent, names))
    try:
        config.verify(graph_path.parent, signature)
    except InvalidSignature:
        raise ToolchainError(
            f"signature {signature.name} does not verify with {key.name}: the signature file was altered, or it was "
            "made with another key; refused"
        ) from None
    except ValueError as e:  # the library's mismatches, and a bundle it cannot parse (JSON, pydantic)
        raise ToolchainError(_explain(str(e), signature.name, key.name, names)) from None
    except OSError as e:
        raise ToolchainError(f"cannot check signature {signature.name}: {e}") from None
    except Exception as e:  # anything else the parser raises on a damaged bundle
        raise ToolchainError(
            f"signature {signature.name} is damaged or not a model-signing signature ({type(e).__name__}); refused"
        ) from None


def _explain(message: str, signature: str, key: str, names: list[str]) -> str:
    """One line for each way the library refuses, naming the file where it says which."""
    if message.startswith("Key mismatch"):
        return f"{signature} was signed with another key than {key}; refused"
    changed = re.findall(r"Hash mismatch for \\?'(.+?)\\?': Expected", message)  # quotes escaped in a list's repr
    if changed:
        return f"{', '.join(changed)} changed after it was signed (its digest differs from {signature}'s); refused"
    extra = re.search(r"Missing files in model '[^']*': ([^\"\]]+)", message)  # signed, but not among ours
    if extra:
        return f"{signature} signs other files ({extra.group(1).strip()}), not {', '.join(names)}; refused"
    unsigned = re.search(r"Extra files found in model '[^']*': ([^\"\]]+)", message)
    if unsigned:
        return f"{signature} does not cover {unsigned.group(1).strip()}; refused"
    if message.startswith("Cannot use"):  # a covered file is a symlink, missing or not a regular file
        return f"{', '.join(names)} cannot be checked against {signature}: {_first_line(message)}; refused"
    return f"signature {signature} is damaged or not a model-signing signature ({_first_line(message)}); refused"


def _first_line(e: object) -> str:
    return str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
