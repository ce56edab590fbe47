// Small, stateless randomness for the data pipeline (order, crops, flips): each draw is a pure
// function of (seed, epoch, index), so a resumed run sees the same data without saving a stream.

/** splitmix32 over a 32-bit state: a good 32-bit mixer. */
function mix(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

/** A generator of floats in [0, 1) keyed by a list of integers. */
export function keyedRandom(...key: number[]): () => number {
  let s = 0x6a09e667;
  for (const k of key) s = mix(s ^ mix(k | 0) ^ mix(Math.floor(k / 2 ** 32)));
  return () => {
    s = mix(s);
    return s / 2 ** 32;
  };
}

/** A seeded permutation of 0…n−1 for one epoch (Fisher–Yates), as a shuffling DataLoader gives. */
export function epochPermutation(n: number, seed: number, epoch: number): number[] {
  const rand = keyedRandom(seed, epoch, 0x5eed);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
