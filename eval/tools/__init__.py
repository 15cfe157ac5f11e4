"""Tools that measure the project itself rather than the codec: mutation testing (``mutation``), the
cross-architecture identity check (``cross_arch`` + ``aarch64.sh``) and the conformance-corpus generator
(``conformance``), each run as ``python -m eval.tools.NAME``."""
