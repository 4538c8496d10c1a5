"""A webhook token given in the URL (`?token=`) is masked in stdlib log records, such as
uvicorn's access log line, should an operator turn that log on."""

from __future__ import annotations

import logging

from agent.redact import Redactor
from bot.app import logs


def test_an_access_log_line_with_a_query_token_is_masked() -> None:
    secret = "qry-Tok3n-8f2c"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',  # uvicorn's access format
        ("127.0.0.1:5000", "POST", f"/webhooks/azure?x=1&token={secret}", "1.1", 200),
        None,
    )
    logs.mask_with(Redactor([secret]))
    try:
        assert logs.MaskRecords().filter(record)
    finally:
        logs.mask_with(Redactor())
    line = record.getMessage()
    assert secret not in line
    assert line.startswith('127.0.0.1:5000 - "POST /webhooks/azure?x=1&token=')
