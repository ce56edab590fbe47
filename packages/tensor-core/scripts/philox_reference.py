"""Independent reference for Kiln's RNG goldens (test/random.test.ts).

Philox 4x32-10 as in Random123 (Salmon et al., SC'11), with Kiln's mapping to floats:
uniform = (x >> 8) * 2**-24; normal = Box-Muller on lane pairs (0,1), (2,3) with
u1 = ((x0 >> 8) + 1) * 2**-24, u2 = (x1 >> 8) * 2**-24. Element i uses block counter i // 4,
lane i % 4; the key is (seed & 0xffffffff, seed >> 32). Run: /usr/bin/python3 scripts/philox_reference.py
"""
import math

M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox(c, k):
    c, k = list(c), list(k)
    for r in range(10):
        if r:
            k = [(k[0] + W0) & MASK, (k[1] + W1) & MASK]
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k[0]) & MASK, p1 & MASK, ((p0 >> 32) ^ c[3] ^ k[1]) & MASK, p0 & MASK]
    return c


def draw(dist, n, seed):
    key = (seed & MASK, seed >> 32)
    out = []
    b = 0
    while len(out) < n:
        x = philox((b & MASK, b >> 32, 0, 0), key)
        if dist == "uniform":
            out += [(v >> 8) * 2.0**-24 for v in x]
        else:
            for l in (0, 2):
                u1 = ((x[l] >> 8) + 1) * 2.0**-24
                u2 = (x[l + 1] >> 8) * 2.0**-24
                r = math.sqrt(-2 * math.log(u1))
                out += [r * math.cos(2 * math.pi * u2), r * math.sin(2 * math.pi * u2)]
        b += 1
    return out[:n]


if __name__ == "__main__":
    print("kat0", [f"{v:08x}" for v in philox((0, 0, 0, 0), (0, 0))])
    print("randn42", [f"{v:.6f}" for v in draw("normal", 6, 42)])
    print("rand42", [f"{v:.6f}" for v in draw("uniform", 4, 42)])
    print("randint42", [0 + math.floor(v * 1000) for v in draw("uniform", 4, 42)])
