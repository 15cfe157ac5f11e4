"""Protocol-buffer messages of the edge/cloud wire (``proto/splitcodec.proto``).

Messages only (no network code): generated once here so that both apps, which
meet only on the wire, share one definition.  Needs ``protobuf``.
"""

from . import splitcodec_pb2 as pb

__all__ = ["pb"]
