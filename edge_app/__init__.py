"""The edge side of splitcodec: run the head, encode the split activations, send them."""

import os

# gRPC's C core logs each failed handshake or connection attempt on stderr, many lines per second while a server
# is away; the edge reports each failure itself, in one line (GRPC_VERBOSITY=... in the environment still wins)
os.environ.setdefault("GRPC_VERBOSITY", "NONE")
