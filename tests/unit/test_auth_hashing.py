"""Secret hashing: scrypt with a salt per secret, verified in constant time."""

from __future__ import annotations

from shared.auth.principals import hash_secret, is_principal_id, new_secret, verify_secret

CHEAP_N = 2**4  # the real cost is 2^14; unit tests need not pay it


def test_new_secrets_are_long_and_distinct() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50 and all(len(s) >= 40 for s in secrets)


def test_a_secret_verifies_against_its_hash_and_no_other_secret_does() -> None:
    hashed = hash_secret("s3cret", n=CHEAP_N)
    assert verify_secret("s3cret", hashed)
    assert not verify_secret("s3cret ", hashed) and not verify_secret("", hashed)


def test_each_hash_has_its_own_salt() -> None:
    first, second = hash_secret("same", n=CHEAP_N), hash_secret("same", n=CHEAP_N)
    assert first.salt != second.salt and first.digest != second.digest
    assert len(first.salt) == 16


def test_hash_records_its_cost_and_does_not_contain_the_secret() -> None:
    secret = new_secret()
    hashed = hash_secret(secret, n=CHEAP_N)
    assert (hashed.n, hashed.r, hashed.p) == (2**4, 8, 1)
    assert secret.encode() not in hashed.digest + hashed.salt


def test_default_cost_is_scrypt_2_to_the_14() -> None:
    hashed = hash_secret("x")
    assert (hashed.n, hashed.r, hashed.p) == (2**14, 8, 1) and len(hashed.digest) == 32


def test_principal_ids_are_guids() -> None:
    assert is_principal_id("6f1c2d7e-8a4b-4c1e-9f00-1234567890ab")
    assert not is_principal_id("x' or PartitionKey ne '") and not is_principal_id("")
