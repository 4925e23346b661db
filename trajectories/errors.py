"""The one error type of the trajectory package.

A subclass of ValueError so callers that already guard against bad input catch it, while
``except StoreError`` still singles out problems with stores and episodes (corrupt or foreign
folders, schema mismatches, bad step data).
"""

from __future__ import annotations


class StoreError(ValueError):
    """A store or an episode is not what was expected; the message says what and what was expected."""
