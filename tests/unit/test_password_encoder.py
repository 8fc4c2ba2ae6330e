"""Dynamic secrets are stored encrypted in Kafka's password encoder format, and read back only
with the same password.encoder.secret."""

from __future__ import annotations

import pytest

from odradek.security.password_encoder import PasswordDecodeError, decode, encode


def test_a_secret_round_trips_in_kafkas_stored_shape():
    stored = encode("encoder-secret", "store-secret")
    fields = dict(part.split(":", 1) for part in stored.split(","))
    assert fields["cipherAlgorithm"] == "AES/CBC/PKCS5Padding"
    assert fields["keyFactoryAlgorithm"] == "PBKDF2WithHmacSHA512"
    assert (fields["keyLength"], fields["iterations"], fields["passwordLength"]) == ("128", "4096", "12")
    assert "store-secret" not in stored
    assert decode("encoder-secret", stored) == "store-secret"
    assert encode("encoder-secret", "store-secret") != stored  # a fresh salt and IV each time
    assert decode("s", encode("s", "ünïcode pässword", key_length=256, iterations=1024)) == "ünïcode pässword"


@pytest.mark.parametrize("stored", ["", "garbage", "cipherAlgorithm:AES/GCM/NoPadding,salt:AA=="])
def test_what_cannot_be_decoded_is_one_error(stored):
    with pytest.raises(PasswordDecodeError):
        decode("encoder-secret", stored)


def test_another_secret_cannot_read_it():
    with pytest.raises(PasswordDecodeError):
        decode("another-secret", encode("encoder-secret", "store-secret"))
