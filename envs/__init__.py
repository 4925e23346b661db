"""The MuJoCo tabletop suite: VIMA-Bench style tasks in two action modes."""
