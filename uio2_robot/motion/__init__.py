"""Motion shared by the simulator and the robot: VIMA's primitives as waypoint followers.

Imports numpy and :mod:`uio2_robot.contracts` only, so the env's primitive mode, the scripted
oracle and the robot workstation's control loop all run this one code (no MuJoCo, no torch).
"""
