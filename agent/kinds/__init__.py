"""Each component kind's own code: its capture source, its in-place install and its checks (registry.py)."""
