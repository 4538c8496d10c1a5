"""A chat adapter whose first call of one verb reaches the platform but whose answer is never
recorded: as if the bot died between the platform's answer and the database write (the outbox
then tries the item again)."""

from __future__ import annotations

from typing import Any

from bot.chat.adapters.base import ChatAdapter
from integrations.errors import TransientError


class LosesFirstAnswer:
    """`inner`, except that the first `verb` call ("post_root", "post_digest") is made and
    then fails as a crash would."""

    def __init__(self, inner: ChatAdapter, verb: str) -> None:
        self.inner, self.verb, self.lost = inner, verb, False
        self.platform, self.capabilities = inner.platform, inner.capabilities

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.inner, name)
        if name != self.verb:
            return found

        async def answer_lost_once(*args: Any, **kwargs: Any) -> Any:
            answer = await found(*args, **kwargs)
            if not self.lost:
                self.lost = True
                raise TransientError(f"crashed before the answer to {name} was recorded")
            return answer

        return answer_lost_once
