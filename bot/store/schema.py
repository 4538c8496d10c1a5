"""Tables of the store, in SQLAlchemy Core: portable between SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only
TS = DateTime(timezone=True)


def _incident_fk() -> Column:
    return Column("incident_id", String(32), ForeignKey("incidents.id"), nullable=False)


deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(32), nullable=False),
    Column("idem_key", String(200), nullable=False),
    Column("received_at", TS, nullable=False),
    Column("body", Text, nullable=False),
    Column("outcome", String(200), nullable=False, default=""),
    UniqueConstraint("source", "idem_key"),
    Index("ix_deliveries_received", "received_at"),
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("short_id", Integer, nullable=False, unique=True),
    Column("group_key", String(500), nullable=False),
    # equals group_key while the incident is open, NULL once resolved: one open per group
    Column("open_key", String(500), nullable=True, unique=True),
    Column("status", String(16), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("title", String(500), nullable=False),
    Column("service", String(200), nullable=True),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("source", String(32), nullable=False),
    Column("signature", String(500), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("acknowledged_at", TS, nullable=True),
    Column("acknowledged_by", String(200), nullable=True),
    Column("resolved_at", TS, nullable=True),
    Column("resolved_by", String(200), nullable=True),
    Column("snoozed_until", TS, nullable=True),
    Column("alert_count", Integer, nullable=False, default=0),
    Column("generator_url", Text, nullable=True),
    Index("ix_incidents_status_created", "status", "created_at"),
    Index("ix_incidents_created", "created_at"),
    Index("ix_incidents_group_short", "group_key", "short_id"),  # a group's latest incident
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _incident_fk(),
    Column("fingerprint", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("title", String(500), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("logs", JSON, nullable=False),
    Column("starts_at", TS, nullable=False),
    Column("ends_at", TS, nullable=True),
    Column("updated_at", TS, nullable=False),
    Column("digest", String(32), nullable=True),  # of the content: a repeat rewrites nothing
    UniqueConstraint("incident_id", "fingerprint"),
)

timeline = Table(
    "timeline",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _incident_fk(),
    Column("at", TS, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_timeline_incident", "incident_id", "id"),
)

# An incident's conversation on a platform: a thread, or a person's direct line, which
# several incidents share (so (platform, channel, thread_id) is not unique).
threads = Table(
    "threads",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _incident_fk(),
    Column("platform", String(16), nullable=False),
    Column("channel", String(200), nullable=False),
    Column("thread_id", String(200), nullable=True),  # NULL until the root is posted
    Column("created_at", TS, nullable=False),
    # posting: the intent to post the root is recorded, its outcome not yet | posted
    Column("state", String(16), nullable=False, server_default="posted"),
    Column("post_key", String(100), nullable=True),  # the root's idempotency key
    Column("last_sent_at", TS, nullable=True),  # a line's incident is the one last sent
    Column("shown_status", String(16), nullable=True),  # where roots cannot be edited
    # the approval prompt, while it is the last thing said in the conversation
    Column("prompt_action_id", Id, nullable=True),
    Column("prompt_message_id", String(200), nullable=True),
    Column("storm_id", Id, nullable=True),  # named in this storm's digest
    UniqueConstraint("incident_id", "platform", "channel"),
    Index("ix_threads_conversation", "platform", "channel", "thread_id"),
    Index("ix_threads_storm", "storm_id"),
)

# A storm of new incidents in one channel: one digest message (`part` n after the n-1 before
# it reached their edit limit); `open_key` ("platform:channel") while it lasts, so a channel
# has one open storm at a time.
storms = Table(
    "storms",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("platform", String(16), nullable=False),
    Column("channel", String(200), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("last_new_at", TS, nullable=False),
    Column("ended_at", TS, nullable=True),
    Column("message_id", String(200), nullable=True),
    Column("part", Integer, nullable=False, server_default="1"),
    Column("edits", Integer, nullable=False, server_default="0"),
    Column("open_key", String(300), nullable=True, unique=True),
    # the part whose post was attempted and not yet recorded: found again, not posted twice
    Column("posting_part", Integer, nullable=True),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _incident_fk(),
    Column("at", TS, nullable=False),
    Column("author", String(200), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("text", Text, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("delivery_key", String(100), nullable=True, unique=True),  # see Reply.key
    Index("ix_messages_incident", "incident_id", "id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("destination", String(300), nullable=False),
    Column("ordering_key", String(300), nullable=False),
    Column("incident_id", String(32), nullable=True),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | done | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", TS, nullable=False),
    Column("locked_until", TS, nullable=True),
    Column("locked_by", String(100), nullable=True),
    Column("last_error", Text, nullable=True),
    # at most one pending item per coalesce key (root-message edits of one thread)
    Column("coalesce_key", String(300), nullable=True, unique=True),
    Column("created_at", TS, nullable=False),
    Column("done_at", TS, nullable=True),
    # bot.queue.outbox.Priority: claimed lowest first
    Column("priority", Integer, nullable=False, server_default="4"),
    Index("ix_outbox_due", "status", "next_attempt_at"),
    Index("ix_outbox_claim", "status", "priority", "id"),
    Index("ix_outbox_order", "ordering_key", "status", "id"),
    Index("ix_outbox_done", "status", "done_at"),
)

diagnoses = Table(
    "diagnoses",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _incident_fk(),
    Column("at", TS, nullable=False),
    Column("source", String(16), nullable=False),
    Column("category", String(40), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("job_id", Id, nullable=True, unique=True),  # the outbox job that produced it
    Index("ix_diagnoses_incident", "incident_id", "id"),
)

diagnosis_cache = Table(
    "diagnosis_cache",
    metadata,
    Column("signature", String(500), primary_key=True),
    Column("at", TS, nullable=False),
    Column("payload", JSON, nullable=False),
)

actions = Table(
    "actions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _incident_fk(),
    Column("action", String(32), nullable=False),
    Column("service", String(200), nullable=False),
    Column("params", JSON, nullable=False),
    # requested | pending_approval | approved | denied | expired | running
    # | succeeded | failed | unknown | refused
    Column("state", String(24), nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("requested_at", TS, nullable=False),
    Column("approved_by", String(200), nullable=True),
    Column("decided_at", TS, nullable=True),
    Column("started_at", TS, nullable=True),
    Column("finished_at", TS, nullable=True),
    Column("outcome", Text, nullable=True),
    Column("auto", Boolean, nullable=False, default=False),
    # non-NULL while an action on this service is in flight: one at a time per service+action
    Column("inflight_key", String(300), nullable=True, unique=True),
    Index("ix_actions_incident", "incident_id", "id"),
    Column("owner", String(100), nullable=True),  # the replica running it (state `running`)
)

tickets = Table(
    "tickets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    _incident_fk(),
    Column("key", String(64), nullable=True),
    Column("url", Text, nullable=True),
    Column("state", String(16), nullable=False),  # pending | choosing | created | failed
    Column("assignee", String(200), nullable=True),
    Column("priority", String(32), nullable=True),  # asked for in chat; else from severity
    Column("requested_by", String(200), nullable=False),
    Column("request_key", String(200), nullable=False, unique=True),
    Column("created_at", TS, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_tickets_incident", "incident_id", "id"),
)

postmortems = Table(
    "postmortems",
    metadata,
    Column("incident_id", String(32), ForeignKey("incidents.id"), primary_key=True),
    Column("at", TS, nullable=False),
    Column("source", String(16), nullable=False),
    Column("markdown", Text, nullable=False),
)

fixes = Table(
    "fixes",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("signature", String(500), nullable=False, index=True),
    Column("action", String(32), nullable=False),
    Column("incident_id", String(32), nullable=False, unique=True),
    Column("at", TS, nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=False),
    Column("decision", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("incident_id", String(32), nullable=True),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", JSON, nullable=False),
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Float, nullable=False),
)

escalations = Table(
    "escalations",
    metadata,
    Column("incident_id", String(32), ForeignKey("incidents.id"), primary_key=True),
    Column("policy", String(200), nullable=False),
    # steps fired so far (repeats of the last step included); claimed by a conditional update
    Column("fired", Integer, nullable=False),
    Column("next_at", TS, nullable=True),  # NULL once the chain has stopped or run out
    Column("state", String(16), nullable=False),  # active | stopped | exhausted
    Column("updated_at", TS, nullable=False),
    Index("ix_escalations_due", "state", "next_at"),
)

contacts = Table(
    "contacts",
    metadata,
    # the last message a person's address sent us (WhatsApp's 24-hour window is counted from it)
    Column("platform", String(16), primary_key=True),
    Column("address", String(200), primary_key=True),
    Column("last_inbound_at", TS, nullable=False),
)

sent_messages = Table(
    "sent_messages",
    metadata,
    # messages whose delivery the platform reports back (Twilio status callbacks)
    Column("platform", String(16), primary_key=True),
    Column("message_id", String(100), primary_key=True),
    Column("incident_id", String(32), nullable=True),
    Column("recipient", String(200), nullable=False),
    Column(
        "status", String(16), nullable=False
    ),  # queued | sent | delivered | read | failed | undelivered
    Column("error", String(200), nullable=True),
    Column("sent_at", TS, nullable=False),
    # the root key it was sent under (see ChatAdapter.post_root), to find it after a crash
    Column("post_key", String(100), nullable=True, index=True),
    Column("updated_at", TS, nullable=False),
)

replicas = Table(
    "replicas",
    metadata,
    Column("id", String(100), primary_key=True),  # name/incarnation, the owner of its claims
    Column("name", String(100), nullable=False, index=True),  # cluster.replica_id
    Column("started_at", TS, nullable=False),
    Column("seen_at", TS, nullable=False),  # its heartbeat
)

rate_budgets = Table(
    "rate_budgets",
    metadata,
    Column("destination", String(300), primary_key=True),
    Column("tokens", Float, nullable=False),
    Column("stamp", Float, nullable=False),  # epoch seconds of the last take
    Column("granted", Boolean, nullable=False),  # whether the last take got a token
)
