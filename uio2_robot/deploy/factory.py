"""Policy factories for serving: one fresh Policy per robot connection.

Everything goes through :func:`uio2_robot.policies.factory.make_policy`; privileged sim policies
(the oracle) are wrapped in a :class:`~uio2_robot.deploy.twin.SimTwinPolicy` because the server
has no access to the robot's simulator otherwise.
"""

from __future__ import annotations

from typing import Any

from uio2_robot.deploy.session import PolicyFactory
from uio2_robot.deploy.twin import SimTwinPolicy
from uio2_robot.policies.factory import make_policy

PRIVILEGED_POLICIES = ("oracle",)


def is_privileged(name: str) -> bool:
    """Whether the policy reads simulator state (and so needs a sim twin to be served)."""
    return name in PRIVILEGED_POLICIES


def policy_factory(name: str, control_hz: float, **kwargs: Any) -> PolicyFactory:
    """A zero-argument factory making ``make_policy(name, **kwargs)`` (twinned if privileged).

    The first policy is built here, once, so a wrong name or a missing bundle fails at start-up
    with a clear error rather than at the first robot's reset.
    """
    probe = make_policy(name, **kwargs)

    def build() -> Any:
        policy = make_policy(name, **kwargs)
        if is_privileged(name):
            return SimTwinPolicy(policy, control_hz=control_hz)
        return policy

    del probe
    return build
