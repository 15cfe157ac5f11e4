"""A shaped link on a network namespace's own loopback: what ``bench-link`` runs the edge and the cloud over.

The namespace is created for the benchmark and deleted after it (``ip netns``); its loopback gets a 1500-byte MTU
(an Ethernet/cellular path, not loopback's 64 KB) and an HTB root whose one shaped class takes the packets *to* the
server's port (edge → cloud; answers go back unshaped, as on an uplink-limited camera link), with a TBF under it
holding at most ``queue_ms`` of the rate (the bottleneck's buffer: packets beyond it are dropped and TCP backs off).
Nothing touches the machine's own interfaces.  Needs root and iproute2's ``ip``/``tc``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid


class LinkUnavailable(RuntimeError):
    """Not root, or no ``ip``/``tc``: the link cannot be emulated here."""


def check_available() -> None:
    if os.geteuid() != 0:
        raise LinkUnavailable("the link benchmark needs root (it creates a network namespace and shapes it with tc)")
    missing = [t for t in ("ip", "tc") if shutil.which(t) is None]
    if missing:
        raise LinkUnavailable(f"the link benchmark needs iproute2 ({', '.join(missing)} not found): "
                              "apt-get install iproute2")


class ShapedLoopback:
    """``with ShapedLoopback(port) as ns:`` a namespace whose loopback carries traffic to ``port`` at
    :meth:`set_rate`'s rate; ``ns.command(argv)`` runs a program inside it."""

    def __init__(self, port: int, *, queue_ms: float = 200.0):
        check_available()
        self.name = f"splitcodec-link-{uuid.uuid4().hex[:8]}"
        self.port, self.queue_ms = int(port), float(queue_ms)
        self.rate_bps: float | None = None

    def _tc(self, *args: str) -> None:
        subprocess.run(["tc", "-n", self.name, *args], check=True, capture_output=True, text=True)

    def __enter__(self) -> "ShapedLoopback":
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        try:
            subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "mtu", "1500", "up"], check=True,
                           capture_output=True)
            self._tc("qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "20", "r2q", "1000")
            self._tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:20", "htb", "rate", "10gbit")
            self._tc("class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", "10gbit")
            self._tc("filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32", "match", "ip",
                     "dport", str(self.port), "0xffff", "flowid", "1:10")
        except BaseException:
            self.__exit__()
            raise
        return self

    def set_rate(self, rate_bps: float) -> None:
        """Shape edge → cloud to ``rate_bps`` (HTB rate and ceiling, TBF rate with a ``queue_ms`` buffer)."""
        rate = f"{int(rate_bps)}bit"
        burst = str(max(3000, int(rate_bps / 8 * 0.005)))  # 5 ms of the rate, at least two full packets
        self._tc("class", "change", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate", rate, "ceil", rate)
        verb = "change" if self.rate_bps is not None else "add"
        self._tc("qdisc", verb, "dev", "lo", "parent", "1:10", "handle", "10:", "tbf", "rate", rate, "burst", burst,
                 "latency", f"{self.queue_ms:g}ms")
        self.rate_bps = float(rate_bps)

    def command(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def __exit__(self, *exc) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
