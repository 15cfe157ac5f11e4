"""Demos: the system end to end on localhost, the codec alone on real activations."""
