"""AWS SNS over real HTTP: subscription confirmation (only for configured topics), signed
CloudWatch alarm notifications that open and resolve incidents, and every rejection."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app.config import Config
from tests.fakes.bot_server import RunningBot, run_bot
from tests.fakes.recorder import Recorder
from tests.fakes.sns_certs import SnsSigner, make_signer

TOPIC = "arn:aws:sns:us-east-1:123456789012:opsbot-alarms"
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:someone-else"
ALARM = "checkout-HTTPCode_Target_5XX_Count-high"


def sns_time(at: datetime | None = None) -> str:
    """SNS's Timestamp format: 2026-11-25T10:00:00.123Z."""
    return (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def alarm_message(state: str) -> str:
    """The CloudWatch alarm document SNS carries in `Message` (a JSON string)."""
    return json.dumps(
        {
            "AlarmName": ALARM,
            "AlarmDescription": "checkout is answering 5xx",
            "AWSAccountId": "123456789012",
            "NewStateValue": state,
            "NewStateReason": "Threshold Crossed: 1 datapoint [42.0] was greater than 10.0",
            "StateChangeTime": "2026-11-25T10:00:00.000+0000",
            "Region": "US East (N. Virginia)",
            "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{ALARM}",
            "OldStateValue": "OK" if state == "ALARM" else "ALARM",
            "Trigger": {
                "MetricName": "HTTPCode_Target_5XX_Count",
                "Namespace": "AWS/ApplicationELB",
                "Dimensions": [{"name": "TargetGroup", "value": "targetgroup/checkout/73e2d6bc"}],
            },
        }
    )


def notification(state: str, topic: str = TOPIC) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": topic,
        "Subject": f'{state}: "{ALARM}" in US East (N. Virginia)',
        "Message": alarm_message(state),
        "Timestamp": sns_time(),
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }


def confirmation(kind: str, recorder: Recorder, topic: str = TOPIC) -> dict[str, Any]:
    token = uuid.uuid4().hex
    return {
        "Type": kind,
        "MessageId": str(uuid.uuid4()),
        "Token": token,
        "TopicArn": topic,
        "Message": f"You have chosen to subscribe to the topic {topic}.",
        "SubscribeURL": f"{recorder.url}/confirm?Action=ConfirmSubscription&Token={token}",
        "Timestamp": sns_time(),
    }


async def deliver(bot: RunningBot, envelope: dict[str, Any]) -> Any:
    """POST as SNS does: JSON in a text/plain body."""
    return await bot.client.post(
        "/webhooks/sns",
        content=json.dumps(envelope).encode(),
        headers={
            "content-type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": envelope["Type"],
            "x-amz-sns-topic-arn": envelope["TopicArn"],
        },
    )


@pytest.fixture
def trusted_cert(tmp_path: Path, sns_signer: SnsSigner) -> str:
    path = tmp_path / "sns-signing-cert.pem"
    path.write_bytes(sns_signer.cert_pem)
    return str(path)


@pytest.fixture
async def sns_bot(
    bot_config: Callable[..., Config], trusted_cert: str
) -> AsyncIterator[RunningBot]:
    cfg = bot_config(webhooks={"sns_topics": [TOPIC], "sns_trusted_cert_file": trusted_cert})
    async with run_bot(cfg) as running:
        yield running


async def test_subscription_is_confirmed_for_a_configured_topic(
    sns_bot: RunningBot, sns_signer: SnsSigner, recorder: Recorder
) -> None:
    envelope = sns_signer.sign(confirmation("SubscriptionConfirmation", recorder))
    resp = await deliver(sns_bot, envelope)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"status": "confirmed", "topic": TOPIC}
    (fetched,) = recorder.requests
    assert (fetched.method, fetched.path) == ("GET", "/confirm")
    assert fetched.query == {"Action": ["ConfirmSubscription"], "Token": [envelope["Token"]]}


async def test_subscription_for_another_topic_is_refused_without_fetching(
    sns_bot: RunningBot, sns_signer: SnsSigner, recorder: Recorder
) -> None:
    envelope = sns_signer.sign(confirmation("SubscriptionConfirmation", recorder, OTHER_TOPIC))
    resp = await deliver(sns_bot, envelope)
    assert resp.status_code == 403, resp.text
    assert recorder.requests == []


async def test_no_topics_configured_confirms_nothing(
    bot_config: Callable[..., Config],
    trusted_cert: str,
    sns_signer: SnsSigner,
    recorder: Recorder,
) -> None:
    async with run_bot(bot_config(webhooks={"sns_trusted_cert_file": trusted_cert})) as bot:
        resp = await deliver(
            bot, sns_signer.sign(confirmation("SubscriptionConfirmation", recorder))
        )
        assert resp.status_code == 403, resp.text
    assert recorder.requests == []


async def test_unsubscribe_confirmation_is_acknowledged(
    sns_bot: RunningBot, sns_signer: SnsSigner, recorder: Recorder
) -> None:
    resp = await deliver(
        sns_bot, sns_signer.sign(confirmation("UnsubscribeConfirmation", recorder))
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "unsubscribed"
    assert recorder.requests == []


async def test_alarm_opens_and_ok_resolves_the_incident(
    sns_bot: RunningBot, sns_signer: SnsSigner
) -> None:
    opened = await deliver(sns_bot, sns_signer.sign(notification("ALARM"), version="1"))
    assert opened.status_code == 200, opened.text
    assert opened.json()["opened"] == 1
    (incident_id,) = opened.json()["incidents"]
    inc = (await sns_bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert (inc["status"], inc["source"], inc["title"]) == ("triggered", "sns", ALARM)
    assert inc["labels"]["account"] == "123456789012"
    assert inc["labels"]["region"] == "us-east-1"

    # The alarm is still in ALARM on the next evaluation: same incident.
    still = await deliver(sns_bot, sns_signer.sign(notification("ALARM"), version="2"))
    assert still.json()["incidents"] == [incident_id]

    ok = await deliver(sns_bot, sns_signer.sign(notification("OK"), version="2"))
    assert ok.status_code == 200, ok.text
    assert (ok.json()["resolved"], ok.json()["incidents"]) == (1, [incident_id])
    inc = (await sns_bot.client.get(f"/api/incidents/{incident_id}")).json()
    assert inc["status"] == "resolved"


async def test_repeated_message_id_is_a_duplicate(
    sns_bot: RunningBot, sns_signer: SnsSigner
) -> None:
    envelope = sns_signer.sign(notification("ALARM"))
    assert (await deliver(sns_bot, envelope)).json()["opened"] == 1
    again = await deliver(sns_bot, envelope)
    assert again.status_code == 200
    assert again.json() == {"status": "duplicate", "incidents": []}
    # SNS re-signs a retry but keeps its MessageId: still the same delivery.
    resigned = sns_signer.sign({**envelope, "Timestamp": sns_time()}, version="2")
    assert (await deliver(sns_bot, resigned)).json()["status"] == "duplicate"
    (inc,) = (await sns_bot.client.get("/api/incidents")).json()["incidents"]
    assert inc["alert_count"] == 1


async def test_tampered_or_foreign_signatures_are_401(
    sns_bot: RunningBot, sns_signer: SnsSigner
) -> None:
    signed = sns_signer.sign(notification("ALARM"))
    tampered = {**signed, "Message": alarm_message("OK")}
    forged = make_signer().sign(notification("ALARM"))
    unsigned = {**signed, "Signature": "bm90IGEgc2lnbmF0dXJl"}
    not_base64 = {**signed, "Signature": "***"}
    bad_version = {**signed, "SignatureVersion": "3"}
    stale = sns_signer.sign(
        {**notification("ALARM"), "Timestamp": sns_time(datetime.now(UTC) - timedelta(hours=2))}
    )
    for name, envelope in {
        "tampered": tampered,
        "forged": forged,
        "unsigned": unsigned,
        "not_base64": not_base64,
        "bad_version": bad_version,
        "stale": stale,
    }.items():
        resp = await deliver(sns_bot, envelope)
        assert resp.status_code == 401, (name, resp.text)
    assert (await sns_bot.client.get("/api/incidents")).json()["incidents"] == []


async def test_certificate_from_a_non_aws_host_is_never_fetched(
    bot_config: Callable[..., Config], sns_signer: SnsSigner, recorder: Recorder
) -> None:
    """Without a trusted local certificate, SigningCertURL must be an https AWS SNS host."""
    envelope = notification("ALARM")
    async with run_bot(bot_config(webhooks={"sns_topics": [TOPIC]})) as bot:
        for cert_url in (
            f"{recorder.url}/SimpleNotificationService.pem",
            "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
            "http://sns.us-east-1.amazonaws.com/cert.pem",
        ):
            signed = SnsSigner(sns_signer.key, sns_signer.cert_pem, cert_url).sign(envelope)
            resp = await deliver(bot, signed)
            assert resp.status_code == 401, (cert_url, resp.text)
    assert recorder.requests == []


async def test_notification_from_an_unknown_topic_is_403(
    sns_bot: RunningBot, sns_signer: SnsSigner
) -> None:
    resp = await deliver(sns_bot, sns_signer.sign(notification("ALARM", OTHER_TOPIC)))
    assert resp.status_code == 403, resp.text
    assert (await sns_bot.client.get("/api/incidents")).json()["incidents"] == []
