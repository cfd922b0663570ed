"""The package's HTTP clients: the one transport and the two typed clients built on it.

`from simulator.clients import ControlClient, PlanfixClient, Fault, WaitTimeout, send`.
"""

from simulator.clients.control import ControlClient, ControlError, Fault, WaitTimeout
from simulator.clients.http import Answer, encode_form, parse_json, post_form, request_json, send
from simulator.clients.planfix import AttachmentLike, PlanfixAnswer, PlanfixClient, wire_name

__all__ = [
    "Answer",
    "AttachmentLike",
    "ControlClient",
    "ControlError",
    "Fault",
    "PlanfixAnswer",
    "PlanfixClient",
    "WaitTimeout",
    "encode_form",
    "parse_json",
    "post_form",
    "request_json",
    "send",
    "wire_name",
]
