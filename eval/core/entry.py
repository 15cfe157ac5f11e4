"""What the runner needs to know of an entry (a study, benchmark, documentation generator or demo)."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = {"study": "studies", "bench": "benchmarks", "doc": "documentation", "demo": "demos"}


@dataclass(frozen=True)
class Entry:
    """``name`` on the command line, ``kind`` (a key of ``KINDS``), one line of ``help``; ``section``: the
    generated section ``--update-doc`` rewrites (with the module's ``markdown(doc)``); ``threads``: the
    default thread limit; ``json``: whether the runner prints and writes the returned document (None: every
    kind but a demo; False for an entry that writes its own output and returns an exit status); ``passthrough``:
    arguments the entry does not know are kept in ``args.passthrough`` instead of refused."""

    name: str
    kind: str
    help: str
    section: str | None = None
    threads: int = 2
    json: bool | None = None
    passthrough: bool = False  # unknown arguments are kept in ``args.passthrough`` (a demo passes them on)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"entry {self.name!r}: kind must be one of {sorted(KINDS)}, got {self.kind!r}")

    @property
    def prints_json(self) -> bool:
        return self.kind != "demo" if self.json is None else self.json
