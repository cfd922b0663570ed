"""Stateful webhook runs: sequences of deliveries, as Planfix makes them, not only single requests.

- a first message, then a reply to the chat the integration assigned in its answer;
- the same delivery twice (same messageId): Planfix redelivers when it missed an answer, and the
  integration must answer 200 again;
- a burst of deliveries at once: no 5xx, no hang.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from hypothesis import strategies as st

from simulator.clients.http import Answer
from simulator.testing.cases import Case, Pairs
from simulator.testing.strategies import VARIANTS, first_message_forms, reply_forms

BURST_MAX = 8
PLACEHOLDER_CHAT = "assigned-by-the-first-answer"


def _forms(token: str, variant: str) -> st.SearchStrategy[Pairs]:
    return reply_forms(token) if variant == "reply" else first_message_forms(token)


@st.composite
def stateful_cases(draw: st.DrawFn, token: str, variants: tuple[str, ...] = VARIANTS) -> Case:
    """A sequence of valid deliveries (its label names the sequence, not its values)."""
    kinds = ["twice", "burst"] + (
        ["first then reply"] if {"reply", "first"} <= set(variants) else []
    )
    kind = draw(st.sampled_from(kinds))
    if kind == "first then reply":
        first = draw(first_message_forms(token))
        reply = tuple(
            (k, PLACEHOLDER_CHAT if k == "chatId" else v) for k, v in draw(reply_forms(token))
        )
        return Case("reply to the chat a first message opened", reply, setup=(first,),
                    chat_from_setup=True)  # fmt: skip
    variant = draw(st.sampled_from(variants))
    form = draw(_forms(token, variant))
    if kind == "twice":
        return Case(f"{variant} delivered twice (same messageId)", form, setup=(form,))
    return Case(
        f"burst of {variant} deliveries at once", form, burst=draw(st.integers(2, BURST_MAX))
    )


def with_chat(form: Pairs, chat_id: str) -> Pairs:
    """`form` with its chatId set to `chat_id`."""
    return tuple((k, chat_id if k == "chatId" else v) for k, v in form)


def burst_forms(form: Pairs, count: int) -> list[Pairs]:
    """`count` copies of `form`, each with its own messageId (distinct deliveries)."""
    base = next((v for k, v in form if k == "messageId"), "1")
    start = int(base) if base.isdigit() else 1
    return [
        tuple((k, str(start + i) if k == "messageId" else v) for k, v in form) for i in range(count)
    ]


Send = Callable[[Pairs], Answer]


def exchanges(case: Case, send: Send) -> Iterator[tuple[Case, Pairs, Answer]]:
    """Send `case` (setup first); yield what each request was checked as, sent and got.

    The caller stops iterating at the first failure, so later requests are not sent.
    """
    assigned: str | None = None
    for i, form in enumerate(case.setup):
        answer = send(form)
        yield Case(f"{case.label}, delivery {i + 1}", form), form, answer
        body = answer.json_or_none()
        if assigned is None and isinstance(body, dict) and isinstance(body.get("chatId"), str):
            assigned = body["chatId"]
    form = with_chat(case.form, assigned or "") if case.chat_from_setup else case.form
    checked = Case(case.label, form, case.statuses, case.error, case.strict_statuses)
    if case.burst:
        forms = burst_forms(form, case.burst)
        with ThreadPoolExecutor(max_workers=len(forms)) as pool:
            answers = list(pool.map(send, forms))
        for sent, answer in zip(forms, answers, strict=True):
            yield Case(case.label, sent), sent, answer
        return
    yield checked, form, send(form)
