"""Closed-loop evaluation: rollouts, success statistics, reports."""
