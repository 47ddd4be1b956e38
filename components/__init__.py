"""The pulumi.ComponentResources of nim-on-eks, one concern each, composed by __main__.py. `waiters.py` holds a
dynamic resource rather than a component; it stays here because stacks already up store its provider by the
module path `components.waiters` (see that module).

How they are wired: a component gets its providers from the caller's `opts` (`providers=[...]`) and gives its
children only `parent=self` (and what they wait for), so each child takes the provider of its package from its
parent; a dynamic resource keeps its own provider. What a component waits for from other components is a named,
typed field of its Args (`pod_identity_agent`, `volumes_released`, ...), or an Output of the resource it names."""
