"""Fixture `sns_signer`: a local self-signed certificate whose key signs SNS envelopes exactly
as AWS does, so tests can POST deliveries that a verifier trusting `cert_pem` accepts."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-opsbot-test.pem"
# Wide on purpose: tests that freeze the clock at a scenario's time still see a valid cert.
_NOT_BEFORE = datetime(2000, 1, 1, tzinfo=UTC)
_NOT_AFTER = datetime(2099, 12, 31, tzinfo=UTC)

# Written from the AWS documentation, independently of the code under test.
_SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_SIGNED_KEYS["UnsubscribeConfirmation"] = _SIGNED_KEYS["SubscriptionConfirmation"]
_ALGORITHMS = {"1": hashes.SHA1, "2": hashes.SHA256}


@dataclass(frozen=True)
class SnsSigner:
    """Signs envelopes like SNS: SignatureVersion "1" is SHA1withRSA, "2" SHA256withRSA."""

    key: rsa.RSAPrivateKey
    cert_pem: bytes
    cert_url: str = CERT_URL

    def sign(self, envelope: dict, version: str = "1") -> dict:
        """A copy of `envelope` with SignatureVersion, SigningCertURL and Signature set."""
        signed = {**envelope, "SignatureVersion": version, "SigningCertURL": self.cert_url}
        text = "".join(
            f"{key}\n{signed[key]}\n"
            for key in _SIGNED_KEYS[signed["Type"]]
            if signed.get(key) is not None
        )
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), _ALGORITHMS[version]())
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed


def make_signer(common_name: str = "sns.amazonaws.com") -> SnsSigner:
    """A fresh RSA key and a self-signed certificate for it."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .sign(key, hashes.SHA256())
    )
    return SnsSigner(key=key, cert_pem=cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture(scope="session")
def sns_signer() -> SnsSigner:
    return make_signer()
