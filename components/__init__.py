"""The pulumi.ComponentResources of nim-on-eks, one concern each, composed by __main__.py. `waiters.py` holds a
dynamic resource rather than a component; it stays here because stacks already up store its provider by the
module path `components.waiters` (see that module)."""
