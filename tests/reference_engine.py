"""A slow, plain-Python implementation of the splitcodec v1 payload, written from
docs/bitstream.md only.  The numba kernels must produce the same bytes."""

PROB_ONE = 1 << 15


class RefEncoder:
    def __init__(self):
        self.low = 0
        self.range = 0xFFFFFFFF
        self.out = bytearray()

    def encode(self, p0, bit):
        split = (self.range >> 15) * p0
        if bit == 0:
            self.range = split
        else:
            self.low += split
            self.range -= split
        if self.low >= 1 << 32:  # carry: add one to the bytes already written
            self.low -= 1 << 32
            i = len(self.out) - 1
            while self.out[i] == 0xFF:
                self.out[i] = 0
                i -= 1
            self.out[i] += 1
        while self.range < 1 << 24:
            self.out.append(self.low >> 24)
            self.low = (self.low << 8) & 0xFFFFFFFF
            self.range <<= 8

    def finish(self):
        self.out += self.low.to_bytes(4, "big")
        return bytes(self.out)


class RefContext:
    def __init__(self):
        self.fast = PROB_ONE // 2
        self.slow = PROB_ONE // 2

    def p0(self):
        return (self.fast + self.slow) // 2

    def update(self, bit):
        if bit:
            self.fast -= self.fast >> 4
            self.slow -= self.slow >> 7
        else:
            self.fast += (PROB_ONE - self.fast) >> 4
            self.slow += (PROB_ONE - self.slow) >> 7


def reference_payload(planes, levels, model, reference=None, contexts=None):
    """planes: list of 2-D lists of ints (H rows of W indices); ``reference``: the reference frame's planes
    (the temporal model, docs/bitstream.md §4); ``contexts``: a list of RefContext to carry on from (it is
    updated in place: after the call it is the final state)."""
    classes = {"paper": 1, "spatial": 7, "temporal": 28}[model]
    ctxs = contexts if contexts is not None else [RefContext() for _ in range(classes * (levels - 1))]
    assert len(ctxs) == classes * (levels - 1)
    enc = RefEncoder()
    for p, plane in enumerate(planes):
        h, w = len(plane), len(plane[0])
        for y in range(h):
            for x in range(w):
                v = plane[y][x]

                def at(yy, xx):
                    return plane[yy][xx] if 0 <= yy and 0 <= xx < w else 0

                for k in range(levels - 1):
                    bit = 1 if v > k else 0
                    if model == "paper":
                        c = k
                    else:
                        c = 7 * k + 2 * (at(y, x - 1) > k) + 2 * (at(y - 1, x) > k) \
                            + (at(y - 1, x - 1) > k) + (at(y - 1, x + 1) > k)
                        if model == "temporal":
                            c = 4 * c + min(max(reference[p][y][x] - k + 1, 0), 3)
                    enc.encode(ctxs[c].p0(), bit)
                    ctxs[c].update(bit)
                    if not bit:
                        break
    return enc.finish()
