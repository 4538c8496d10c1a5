"""SNS signature verification against envelopes signed the way AWS signs them."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from integrations.alerts.sns import parse_alarm, parse_envelope
from integrations.alerts.sns_signature import SnsVerifier, fetch_certificate
from integrations.errors import SignatureError, TransientError
from tests.fakes.sns_certs import SnsSigner, make_signer

SENT_AT = "2026-11-20T14:03:12.012Z"
JUST_AFTER = datetime(2026, 11, 20, 14, 3, 13, tzinfo=UTC)
CN_URL = "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem"

NOTIFICATION = {
    "Type": "Notification",
    "MessageId": "86a20a19-30b6-42a7-997e-722799304baf",
    "TopicArn": "arn:aws:sns:us-east-1:318224790156:prod-cloudwatch-alarms",
    "Subject": 'ALARM: "public-api-alb-RequestCountPerTarget-high" in US East (N. Virginia)',
    "Message": json.dumps(
        {
            "AlarmName": "public-api-alb-RequestCountPerTarget-high",
            "AWSAccountId": "318224790156",
            "NewStateValue": "ALARM",
            "StateChangeTime": "2026-11-20T14:03:11.874+0000",
            "AlarmArn": "arn:aws:cloudwatch:us-east-1:318224790156:alarm:public-api-alb-"
            "RequestCountPerTarget-high",
        }
    ),
    "Timestamp": SENT_AT,
    "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&x=1",
}
CONFIRMATION = {
    "Type": "SubscriptionConfirmation",
    "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
    "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3"
    "beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd0"
    "87cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
    "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
    "Message": "You have chosen to subscribe to the topic arn:aws:sns:us-west-2:123456789012:"
    "MyTopic.\nTo confirm the subscription, visit the SubscribeURL included in this message.",
    "SubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription&TopicArn="
    "arn:aws:sns:us-west-2:123456789012:MyTopic&Token=2336412f37",
    "Timestamp": SENT_AT,
}


def _verifier(signer: SnsSigner, **kwargs: object) -> SnsVerifier:
    return SnsVerifier(trusted_cert_pem=signer.cert_pem, now=lambda: JUST_AFTER, **kwargs)


class _CertFetch:
    """A stand-in for the HTTPS download: serves one PEM and counts the calls."""

    def __init__(self, pem: bytes) -> None:
        self.pem = pem
        self.urls: list[str] = []

    async def __call__(self, url: str) -> bytes:
        self.urls.append(url)
        return self.pem


@pytest.mark.parametrize("version", ["1", "2"])
async def test_valid_notification_verifies_and_parses(sns_signer: SnsSigner, version: str) -> None:
    env = parse_envelope(sns_signer.sign(NOTIFICATION, version))
    await _verifier(sns_signer).verify(env)
    [alert] = parse_alarm(env)
    assert alert.group_key == "318224790156:us-east-1:public-api-alb-RequestCountPerTarget-high"


@pytest.mark.parametrize("version", ["1", "2"])
async def test_valid_confirmations_use_their_own_signed_keys(
    sns_signer: SnsSigner, version: str
) -> None:
    for kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
        body = sns_signer.sign({**CONFIRMATION, "Type": kind}, version)
        await _verifier(sns_signer).verify(parse_envelope(body))


async def test_notification_without_subject_verifies(sns_signer: SnsSigner) -> None:
    body = {k: v for k, v in NOTIFICATION.items() if k != "Subject"}
    await _verifier(sns_signer).verify(parse_envelope(sns_signer.sign(body)))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Message", NOTIFICATION["Message"].replace('"ALARM"', '"OK"')),
        ("Subject", "OK: everything is fine"),
        ("TopicArn", "arn:aws:sns:us-east-1:999999999999:other"),
        ("MessageId", "00000000-0000-0000-0000-000000000000"),
    ],
)
async def test_tampered_field_is_rejected(sns_signer: SnsSigner, field: str, value: str) -> None:
    body = {**sns_signer.sign(NOTIFICATION), field: value}
    with pytest.raises(SignatureError, match="does not match"):
        await _verifier(sns_signer).verify(parse_envelope(body))


async def test_dropped_subject_is_rejected(sns_signer: SnsSigner) -> None:
    body = sns_signer.sign(NOTIFICATION)
    del body["Subject"]
    with pytest.raises(SignatureError, match="does not match"):
        await _verifier(sns_signer).verify(parse_envelope(body))


async def test_signature_from_another_key_is_rejected(sns_signer: SnsSigner) -> None:
    body = make_signer("impostor").sign(NOTIFICATION)
    with pytest.raises(SignatureError, match="does not match"):
        await _verifier(sns_signer).verify(parse_envelope(body))


async def test_version_1_signature_claimed_as_version_2_is_rejected(sns_signer: SnsSigner) -> None:
    body = {**sns_signer.sign(NOTIFICATION, "1"), "SignatureVersion": "2"}
    with pytest.raises(SignatureError, match="does not match"):
        await _verifier(sns_signer).verify(parse_envelope(body))


async def test_unknown_signature_version_is_rejected(sns_signer: SnsSigner) -> None:
    body = {**sns_signer.sign(NOTIFICATION), "SignatureVersion": "3"}
    with pytest.raises(SignatureError, match="unsupported SignatureVersion '3'"):
        await _verifier(sns_signer).verify(parse_envelope(body))


async def test_signature_that_is_not_base64_is_rejected(sns_signer: SnsSigner) -> None:
    body = {**sns_signer.sign(NOTIFICATION), "Signature": "not base64!"}
    with pytest.raises(SignatureError, match="base64"):
        await _verifier(sns_signer).verify(parse_envelope(body))


async def test_stale_timestamp_is_rejected_unless_the_age_check_is_off(
    sns_signer: SnsSigner,
) -> None:
    env = parse_envelope(sns_signer.sign(NOTIFICATION))
    two_hours_later = datetime(2026, 11, 20, 16, 3, 13, tzinfo=UTC)
    stale = SnsVerifier(trusted_cert_pem=sns_signer.cert_pem, now=lambda: two_hours_later)
    with pytest.raises(SignatureError, match="older than 3600 s"):
        await stale.verify(env)
    await SnsVerifier(
        trusted_cert_pem=sns_signer.cert_pem, now=lambda: two_hours_later, max_age_s=None
    ).verify(env)
    await SnsVerifier(
        trusted_cert_pem=sns_signer.cert_pem, now=lambda: two_hours_later, max_age_s=7300
    ).verify(env)


async def test_certificate_outside_its_validity_is_rejected(sns_signer: SnsSigner) -> None:
    env = parse_envelope(sns_signer.sign(NOTIFICATION))
    far_future = datetime(2100, 6, 1, tzinfo=UTC)
    verifier = SnsVerifier(
        trusted_cert_pem=sns_signer.cert_pem, now=lambda: far_future, max_age_s=None
    )
    with pytest.raises(SignatureError, match="not valid at 2100-06-01"):
        await verifier.verify(env)


async def test_certificate_is_fetched_once_per_url_from_an_sns_host(sns_signer: SnsSigner) -> None:
    fetch = _CertFetch(sns_signer.cert_pem)
    verifier = SnsVerifier(fetch=fetch, now=lambda: JUST_AFTER)
    await verifier.verify(parse_envelope(sns_signer.sign(NOTIFICATION)))
    await verifier.verify(parse_envelope(sns_signer.sign(NOTIFICATION, "2")))
    china = {**sns_signer.sign(NOTIFICATION), "SigningCertURL": CN_URL}
    await verifier.verify(parse_envelope(china))
    assert fetch.urls == [sns_signer.cert_url, CN_URL]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://sns.us-east-1.evil.example/SimpleNotificationService-x.pem", "host"),
        ("https://evil.example/sns.us-east-1.amazonaws.com/x.pem", "host"),
        ("https://sns.us-east-1.amazonaws.com.evil.example/x.pem", "host"),
        ("https://sns.us-east-1.amazonaws.com@evil.example/x.pem", "host"),
        ("https://sns.us-east-1.amazonaws.com:8443/x.pem", "host"),
        ("https://s3.us-east-1.amazonaws.com/SimpleNotificationService-x.pem", "host"),
        ("http://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem", "https"),
        ("https://sns.us-east-1.amazonaws.com/?Action=GetCert", ".pem"),
    ],
)
async def test_untrusted_certificate_url_is_refused_before_fetching(
    sns_signer: SnsSigner, url: str, reason: str
) -> None:
    fetch = _CertFetch(sns_signer.cert_pem)
    body = {**sns_signer.sign(NOTIFICATION), "SigningCertURL": url}
    with pytest.raises(SignatureError, match=reason):
        await SnsVerifier(fetch=fetch, now=lambda: JUST_AFTER).verify(parse_envelope(body))
    assert fetch.urls == []


async def test_fetched_document_that_is_not_a_certificate_is_rejected(
    sns_signer: SnsSigner,
) -> None:
    verifier = SnsVerifier(fetch=_CertFetch(b"<html>captive portal</html>"), now=lambda: JUST_AFTER)
    with pytest.raises(SignatureError, match="is not a PEM certificate"):
        await verifier.verify(parse_envelope(sns_signer.sign(NOTIFICATION)))


# --- the default certificate download, against a local HTTP server ---------------------


class _CertHandler(BaseHTTPRequestHandler):
    pem = b""

    def do_GET(self) -> None:
        status = {"/cert.pem": 200, "/gone.pem": 404}.get(self.path, 503)
        self.send_response(status)
        self.end_headers()
        if status == 200:
            self.wfile.write(self.pem)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the test output quiet


@pytest.fixture(scope="module")
def cert_server() -> Iterator[str]:
    handler = type("Handler", (_CertHandler,), {"pem": b"-----BEGIN CERTIFICATE-----\n"})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_fetch_certificate_returns_the_body(cert_server: str) -> None:
    assert await fetch_certificate(f"{cert_server}/cert.pem") == b"-----BEGIN CERTIFICATE-----\n"


async def test_fetch_certificate_translates_failures(cert_server: str) -> None:
    with pytest.raises(SignatureError, match="answered 404"):
        await fetch_certificate(f"{cert_server}/gone.pem")
    with pytest.raises(TransientError, match="answered 503"):
        await fetch_certificate(f"{cert_server}/down.pem")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    with pytest.raises(TransientError, match="could not fetch"):
        await fetch_certificate(f"http://127.0.0.1:{closed_port}/cert.pem")
