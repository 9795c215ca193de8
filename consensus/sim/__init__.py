"""Deterministic network simulator and invariant checker for the PBFT core.

Runs the real `consensus.replica.Replica` over a virtual network, a virtual
disk and a virtual clock. Everything random comes from one seed, so a failing
run replays exactly with `python -m consensus.sim --seed N ...`. See
docs/simulator.md.
"""
