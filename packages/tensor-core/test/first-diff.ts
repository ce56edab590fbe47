/** Index of the first element where `got` and `want` differ bit for bit (Object.is), −1 where none, or the shorter length where the lengths differ. */
export function firstDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  const n = Math.min(got.length, want.length);
  for (let i = 0; i < n; i++) if (!Object.is(got[i], want[i])) return i;
  return got.length === want.length ? -1 : n;
}
