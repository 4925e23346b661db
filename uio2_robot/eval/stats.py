"""Binomial confidence intervals for closed-loop success rates.

Success is a count out of a small number of episodes; a bare percentage hides how little 20 or
100 episodes pin it down. The Wilson score interval stays inside [0, 1] and is well behaved at
0 and n successes, where the normal approximation collapses to a zero-width interval.
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054


def wilson_interval(successes: int, episodes: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when there are no episodes."""
    if episodes < 0 or successes < 0 or successes > episodes:
        raise ValueError(f"need 0 <= successes <= episodes, got {successes}/{episodes}")
    if episodes == 0:
        return 0.0, 1.0
    p = successes / episodes
    denom = 1.0 + z * z / episodes
    centre = (p + z * z / (2 * episodes)) / denom
    half = z * math.sqrt(p * (1 - p) / episodes + z * z / (4 * episodes * episodes)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)
