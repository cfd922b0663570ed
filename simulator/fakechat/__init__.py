"""The fake third-party chat, the integration's side of the contract played by the simulator.

`webhook` takes Planfix's messages, `reporter` reports their status back off the request
thread, and `customer` is the chat's customers writing to Planfix.
"""
