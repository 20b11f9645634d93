"""Driving lifecycle nodes over their standard services: the one client of `mdi-exit fleet`,
`mdi-exit soak` and the node tests (test/fleet_harness.py).

Two things make a plain `call_async` unreliable, and both are handled here once:

* `service_is_ready` only says the server's request reader has matched ours. Its response
  writer may not have discovered our response reader yet (slow under load; right after a
  restart the service may even still be matched to the dead process's endpoints, which DDS
  keeps until the participant's lease ends, 20 s by default), and then the answer is lost.
  So a request unanswered for RESEND_AFTER seconds is sent again: every request sent here
  must be safe to repeat (state queries, parameter sets, transitions).
* A re-sent transition is refused when the first request did get through, so a refusal is
  checked against the state the transition leads to (GOAL_STATE) before it counts.

The caller owns the rclpy node and how it spins (`spin_once(seconds)`); `guard(what)` runs
between spins and may raise to end a wait early (a child process exited, Ctrl-C).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

RESEND_AFTER = 3.0  # seconds without an answer before a request is sent again


def goal_states() -> dict[int, int]:
    """The primary state each transition leads to (lifecycle_msgs ids)."""
    from lifecycle_msgs.msg import State, Transition

    return {Transition.TRANSITION_CONFIGURE: State.PRIMARY_STATE_INACTIVE,
            Transition.TRANSITION_ACTIVATE: State.PRIMARY_STATE_ACTIVE,
            Transition.TRANSITION_DEACTIVATE: State.PRIMARY_STATE_INACTIVE,
            Transition.TRANSITION_CLEANUP: State.PRIMARY_STATE_UNCONFIGURED}


class ServiceTimeout(TimeoutError):
    """A service was not available, or did not answer, before the deadline."""


class LifecycleClient:
    """Service calls with re-sends, lifecycle states and transitions of nodes by full name
    (`/fleet/robot1/worker`)."""

    def __init__(self, node: Any, spin_once: Callable[[float], None],
                 guard: Callable[[str], None] | None = None,
                 resend_after: float = RESEND_AFTER) -> None:
        self.node = node
        self._spin_once = spin_once
        self._guard = guard or (lambda what: None)
        self.resend_after = resend_after

    def spin_until(self, done: Callable[[], bool], deadline: float, what: str) -> bool:
        """Spin until done() (True) or the monotonic `deadline` (False); guard() may raise."""
        while not done():
            self._guard(what)
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._spin_once(min(0.1, left))
        return True

    def call(self, client: Any, request: Any, deadline: float, what: str = "",
             future: Any = None) -> Any:
        """The done future of `request` to `client` (an rclpy client): waits for the service,
        sends (unless `future` is the request already sent) and sends again every
        `resend_after` seconds without an answer; ServiceTimeout at `deadline`."""
        what = what or f"calling {client.srv_name}"
        if future is None:
            if not self.spin_until(client.service_is_ready, deadline,
                                   f"waiting for {client.srv_name}"):
                raise ServiceTimeout(f"service {client.srv_name} not available")
            future = client.call_async(request)
        while True:
            resend_at = min(deadline, time.monotonic() + self.resend_after)
            self.spin_until(future.done, resend_at, what)
            if future.done():
                return future
            if time.monotonic() >= deadline:
                raise ServiceTimeout(f"no answer from {client.srv_name} ({what})")
            future = client.call_async(request)

    def state(self, name: str, deadline: float) -> Any:
        """Node `name`'s lifecycle state (a lifecycle_msgs/State), None if it cannot say."""
        from lifecycle_msgs.srv import GetState

        client = self.node.create_client(GetState, f"{name}/get_state")
        try:
            fut = self.call(client, GetState.Request(), deadline, f"asking {name} its state")
            return fut.result().current_state if fut.exception() is None else None
        finally:
            self.node.destroy_client(client)

    def change_state(self, names: Iterable[str], transition_id: int, deadline: float,
                     what: str = "") -> dict[str, str | None]:
        """Ask every node in `names` for a transition at once; per node None when it took it
        (or, refused, is already in the state the transition leads to), else why not."""
        from lifecycle_msgs.srv import ChangeState

        names = list(names)
        goal = goal_states().get(transition_id)
        clients = {n: self.node.create_client(ChangeState, f"{n}/change_state") for n in names}
        try:
            request = ChangeState.Request()
            request.transition.id = transition_id
            for n, client in clients.items():
                if not self.spin_until(client.service_is_ready, deadline,
                                       f"waiting for {n}/change_state"):
                    raise ServiceTimeout(f"service {client.srv_name} not available")
            futures = {n: c.call_async(request) for n, c in clients.items()}  # all at once
            outcome: dict[str, str | None] = {}
            for n, client in clients.items():
                fut = self.call(client, request, deadline, what or f"waiting for {n}",
                                future=futures[n])
                if fut.exception() is None and fut.result().success:
                    outcome[n] = None
                    continue
                # a re-sent request is refused when the first one did get through
                state = self.state(n, deadline) if goal is not None else None
                if state is not None and state.id == goal:
                    outcome[n] = None
                else:
                    outcome[n] = str(fut.exception() or "the node refused it")
            return outcome
        finally:
            for client in clients.values():
                self.node.destroy_client(client)

    def wait_state(self, name: str, goal: int, deadline: float) -> Any:
        """Poll node `name`'s state until it is `goal`; returns the last state seen (None: it
        could not say), which is not `goal` when the deadline passed first."""
        while True:
            state = self.state(name, deadline)
            if (state is not None and state.id == goal) or time.monotonic() > deadline:
                return state
            pause = time.monotonic() + 0.1
            self.spin_until(lambda p=pause: time.monotonic() >= p, deadline,
                            f"waiting for {name}")
