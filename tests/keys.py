"""Signing keys made in the test that uses them (no key file is committed): PEM files as ``openssl`` writes them."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def key_pair(folder: Path, name: str = "signing", curve: ec.EllipticCurve | None = None) -> tuple[Path, Path]:
    """A new elliptic-curve key pair (P-256 unless ``curve``) in ``folder``: ``<name>.pem`` (private, PKCS#8,
    unencrypted) and ``<name>.pub.pem`` (SubjectPublicKeyInfo)."""
    key = ec.generate_private_key(curve or ec.SECP256R1())
    private, public = folder / f"{name}.pem", folder / f"{name}.pub.pem"
    folder.mkdir(parents=True, exist_ok=True)
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public
