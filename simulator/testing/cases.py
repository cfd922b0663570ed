"""A generated request labelled with the answers it may get (shared by strategies and fuzz)."""

from __future__ import annotations

from dataclasses import dataclass

Pairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Case:
    """One request and the answers it may get (in the default, non-strict mode)."""

    label: str
    form: Pairs
    statuses: tuple[int, ...] = (200,)
    error: str = ""  # the wire error text a 4xx must carry ("" for a 200)
    strict_statuses: tuple[int, ...] = ()  # how strict mode answers, when it differs
    setup: tuple[Pairs, ...] = ()  # forms to send first (so the chat or contact exists)
    # Stateful webhook runs: the form's chatId is the one the (first) setup answer assigned.
    chat_from_setup: bool = False
    burst: int = 0  # sent this many times at once (each with its own messageId)

    @property
    def valid(self) -> bool:
        """Whether the request is valid (must get 200)."""
        return self.statuses == (200,)

    @property
    def cmd(self) -> str:
        """The form's cmd ("" when absent)."""
        return self.get("cmd") or ""

    def get(self, key: str) -> str | None:
        """The first value of `key` in the form."""
        return next((v for k, v in self.form if k == key), None)

    def accepted(self, strict: bool = False) -> tuple[int, ...]:
        """The statuses acceptable in the given mode."""
        return self.strict_statuses if strict and self.strict_statuses else self.statuses
