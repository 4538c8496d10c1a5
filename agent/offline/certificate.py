"""Certificate expired or invalid: TLS handshakes fail (OpenSSL/nginx alerts, Go x509, Java
PKIX, Node CERT_HAS_EXPIRED), expiry metrics at or below zero, failing renewals."""

from __future__ import annotations

import re

from agent.offline import signals as s
from agent.offline.model import Case, Finding
from agent.types import ActionKind, Category, Evidence, IncidentContext, Observations

TLS_FAILURES = (
    s.pattern(
        "expired", r"certificate has expired|CERT_HAS_EXPIRED|CertificateExpiredException", 0.5
    ),
    s.pattern("alert_expired", r"SSL alert number 45|certificate expired", 0.4),
    s.pattern(
        "expired_exception",
        r"\b\w*Cert\w*Exception: [^\n]*expired[^\n]*|[Cc]ertificate expired on \S+",
        0.3,
    ),
    s.pattern("alert_bad", r"SSL alert number 4[28]|bad certificate|unknown ca", 0.3),
    s.pattern(
        "verify_failed",
        r"certificate verify failed|tls: failed to verify certificate|"
        r"PKIX path (building|validation) "
        r"failed|unable to get local issuer certificate|certificate signed by unknown authority|"
        r"self[- ]signed certificate|x509: ",
        0.3,
    ),
    s.pattern(
        "handshake", r"SSL_do_handshake\(\) failed|SSLHandshakeException|handshake failure", 0.1
    ),
)
RENEWAL = (
    s.pattern(
        "renewal_failed",
        r"certificate request has failed|Failed to finalize Order|renew(al)? (has )?failed|"
        r"failed to renew|acme: error|urn:ietf:params:acme:error",
        0.1,
        ignore_case=True,
    ),
    s.pattern("cert_object", r"certificate/[\w.-]+", 0.0),
)
_EXPIRY = re.compile(r"(cert|ssl|tls)\w*expir|expir\w*(cert|ssl|tls)", re.IGNORECASE)
_ALERT = re.compile(r"certificate|\bcert\b|\bSSL\b|\bTLS\b|x509", re.IGNORECASE)
_SECONDS_PER_DAY = 86400
_UNIX_TIME_FLOOR = 1e9  # larger values are timestamps (2001 on), not durations


def _seconds_left(expiry: s.Shape) -> float:
    """Seconds until expiry, whether the series counts down or holds the expiry's unix time
    (blackbox exporter's probe_ssl_earliest_cert_expiry)."""
    value = expiry.values[-1]
    return value - expiry.times[-1] if value > _UNIX_TIME_FLOOR else value


class CertificateExpired:
    name = "certificate_expired"
    category = Category.CERTIFICATE_EXPIRED
    action = ActionKind.NONE

    def check(self, ctx: IncidentContext, obs: Observations) -> Finding | None:
        hits = s.observed(obs, TLS_FAILURES)
        expiry = next(iter(s.metrics_named(obs, _EXPIRY)), None)
        left = _seconds_left(expiry) if expiry is not None else None
        expired = left is not None and left <= 0
        alert = s.alert_hit(ctx, _ALERT)
        if not (hits or expired):
            return None
        case = Case()
        case.add(s.weight(hits, 0.6), *s.quotes(hits, 2))
        if expiry is not None and left is not None:
            status = "expired" if left <= 0 else f"{s.fmt(left / _SECONDS_PER_DAY)} days left"
            quote = f"{expiry.name} {s.fmt(expiry.values[-1])} ({status})"
            soon = 0.4 if left <= 0 else 0.15 if left < 7 * _SECONDS_PER_DAY else 0.0
            case.add(soon, Evidence(tool="metrics", quote=quote))
        renewal = s.find(obs.logs, RENEWAL)
        case.add(s.weight(renewal, 0.1), *s.quotes(renewal, 1))
        case.add(0.1 if alert else 0.0, alert)
        case.cite(s.quotes(hits, 3)[2:])

        what = hits[0].text if hits else "the certificate's expiry time has passed"
        renew = f" Renewal is failing: {renewal[0].quote}." if renewal else ""
        return case.finding(
            self,
            headline=f"TLS certificate expired or invalid ({what})",
            root_cause=(
                f"The TLS certificate served (or trusted) is expired or invalid, so clients "
                f"abort the handshake ({what}).{renew}"
            ),
            checks=(
                "Check the served certificate: openssl s_client -connect HOST:443 -servername "
                "HOST | openssl x509 -noout -dates -subject -issuer",
                "Check the renewal automation (cert-manager Certificate/Order events, ACME "
                "account, DNS/HTTP challenge) for the error",
                "Confirm the chain (intermediates) and the clients' trust store",
            ),
            mitigation=(
                "A human must renew or replace the certificate (fix the renewal and re-issue, "
                "or install a valid one manually) and reload the server; restarts and rollbacks "
                "do not help"
            ),
        )


RULE = CertificateExpired()
