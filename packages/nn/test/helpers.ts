import * as k from '@kiln/tensor-core';

/** Largest |a − b| over two equally long arrays (Infinity on length mismatch or NaN). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export async function values(t: k.Tensor): Promise<number[]> {
  return Array.from(await t.data());
}

/** A second cpu-like backend under another name, to test moving modules between backends. */
export async function secondBackend(name = 'cpu2'): Promise<string> {
  if (!k.listBackends().includes(name)) {
    k.registerBackend(name, () => Object.assign(Object.create(new k.CpuBackend()) as k.Backend, { name }));
  }
  await k.initBackend(name);
  return name;
}
