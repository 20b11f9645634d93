"""An out-of-order lifecycle request is refused, never fatal, on every ROS 2 distribution.

Kilted's rclpy (9.x) answers a ChangeState request for a transition that the current state
does not have with success=False. Jazzy's (7.1.x) lets rcl's RCLError ("Transition is not
registered", "No transition matching ... found for current state") escape the service
callback, the executor re-raises it and the process ends: one `ros2 service call
.../change_state` with an out-of-order id would cost a robot. rcl refuses such a transition
before it changes any state, so answering success=False is exactly what Kilted does.

This wraps the public `callback` attribute of the node's ChangeState service, found through
the public `Node.services`; no private rclpy method is overridden.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lifecycle_msgs.srv import ChangeState


def refuse_invalid_transitions(node: Any, on_refused: Callable[[str], None]) -> int:
    """Make `node`'s change_state service answer success=False where it would raise.

    `on_refused` gets one line per refused request (count and log it). Returns the number of
    services wrapped (1 for a lifecycle node with its communication interface).
    """
    wrapped = 0
    for service in node.services:
        if service.srv_type is not ChangeState:
            continue
        service.callback = _refusing(service.callback, on_refused)
        wrapped += 1
    return wrapped


def _refusing(inner: Callable[[Any, Any], Any],
              on_refused: Callable[[str], None]) -> Callable[[Any, Any], Any]:
    def guarded(request: Any, response: Any) -> Any:
        try:
            return inner(request, response)
        except Exception as exc:  # noqa: BLE001 - a bad request must not end the node
            on_refused(f"lifecycle transition id={request.transition.id} "
                       f"label={request.transition.label!r}: {exc}")
            response.success = False
            return response
    return guarded
