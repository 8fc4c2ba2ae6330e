"""Secrets set as dynamic broker configs (a new `ssl.keystore.password`), encrypted before they go
to the metadata store, as Kafka's password encoder does with `password.encoder.secret`.

The stored text is Kafka's: `key:value` pairs separated by commas (keyFactoryAlgorithm,
cipherAlgorithm, keyLength, salt, iterations, encryptedPassword, passwordLength,
initializationVector), AES in CBC mode with PKCS5 padding, the key derived from the secret with
PBKDF2-HMAC-SHA512 over a random 256-byte salt. So a value odradek stores is one Kafka would read.
"""

from __future__ import annotations

import base64
import os

# cryptography is imported when a secret is encoded or decoded: most brokers never do, and the
# import would cost every start-up about 10 ms.

CIPHER = "AES/CBC/PKCS5Padding"
KEY_FACTORY = "PBKDF2WithHmacSHA512"
_HASHES = {"PBKDF2WithHmacSHA512": "SHA512", "PBKDF2WithHmacSHA256": "SHA256", "PBKDF2WithHmacSHA1": "SHA1"}


class PasswordDecodeError(ValueError):
    """A stored secret that cannot be read with this secret (another `password.encoder.secret`)."""


def _key(secret: str, salt: bytes, iterations: int, key_length: int, factory: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    algorithm = _HASHES.get(factory)
    if algorithm is None:
        raise PasswordDecodeError(f"unknown key factory algorithm {factory}")
    return PBKDF2HMAC(getattr(hashes, algorithm)(), key_length // 8, salt, iterations).derive(secret.encode())


def encode(secret: str, password: str, *, iterations: int = 4096, key_length: int = 128) -> str:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    salt, iv = os.urandom(256), os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(password.encode()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_key(secret, salt, iterations, key_length, KEY_FACTORY)), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(plain) + encryptor.finalize()
    fields = {
        "keyFactoryAlgorithm": KEY_FACTORY, "cipherAlgorithm": CIPHER, "keyLength": str(key_length),
        "salt": base64.b64encode(salt).decode(), "iterations": str(iterations),
        "encryptedPassword": base64.b64encode(encrypted).decode(), "passwordLength": str(len(password)),
        "initializationVector": base64.b64encode(iv).decode(),
    }
    return ",".join(f"{name}:{value}" for name, value in fields.items())


def decode(secret: str, stored: str) -> str:
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    try:
        fields = dict(part.split(":", 1) for part in stored.split(","))
        if fields["cipherAlgorithm"] != CIPHER:
            raise PasswordDecodeError(f"cipher {fields['cipherAlgorithm']} is not {CIPHER}")
        key = _key(secret, base64.b64decode(fields["salt"]), int(fields["iterations"]), int(fields["keyLength"]),
                   fields.get("keyFactoryAlgorithm", KEY_FACTORY))
        decryptor = Cipher(algorithms.AES(key), modes.CBC(base64.b64decode(fields["initializationVector"]))).decryptor()
        padded = decryptor.update(base64.b64decode(fields["encryptedPassword"])) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        password = (unpadder.update(padded) + unpadder.finalize()).decode()
    except PasswordDecodeError:
        raise
    except (KeyError, ValueError, TypeError) as error:
        raise PasswordDecodeError("Password could not be decoded") from error
    if len(password) != int(fields["passwordLength"]):
        raise PasswordDecodeError("Password could not be decoded, sanity check of length failed")
    return password
