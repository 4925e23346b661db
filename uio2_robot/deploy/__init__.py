"""Deploying a policy to a robot workstation: policy server, wire schema, control loop, drivers.

Map (one job per module):

- ``wire`` / ``protocol`` / ``metadata``: msgpack frames with strict numpy arrays, the versioned
  message schema, and what a served policy expects (cameras, image size, action space, rate).
- ``server`` / ``session`` / ``factory`` / ``twin``: the websockets policy server, one policy
  per robot connection; privileged sim policies run on a lockstep sim twin.
- ``client``: the robot's side of the socket (and an in-process stand-in with the same API).
- ``loop`` / ``action_queue`` / ``timing`` / ``safety`` / ``estop``: the fixed-rate control loop
  with asynchronous inference, the safety envelope, watchdog and emergency stop.
- ``drivers`` / ``ur_driver`` / ``cameras`` / ``recording``: arms (sim twin, UR over RTDE),
  camera sources, and deployed episodes into the trajectory store.
- ``config`` / ``commands``: `uio2-robot serve` and `uio2-robot robot`.

Deploy processes are headless, so MuJoCo (the sim driver and twins) renders through EGL.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
