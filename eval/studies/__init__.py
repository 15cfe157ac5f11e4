"""The studies: each module registers a name, its arguments and run(args) -> dict (eval.core.runner)."""
