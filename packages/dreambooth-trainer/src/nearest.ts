/** Levenshtein distance (insertions, deletions, substitutions). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length];
}

/**
 * The candidate closest to `name` (dashes read as underscores), or undefined when none is close:
 * within a third of the name's length in edits, or else the closest candidate whose words start
 * with every word of `name` (`instance_dir` → `instance_data_dir`).
 */
export function nearest(name: string, candidates: readonly string[]): string | undefined {
  const n = name.replace(/-/g, '_').toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(n, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  if (best !== undefined && bestD <= Math.max(2, Math.ceil(n.length / 3))) return best;
  const words = n.split('_').filter(Boolean);
  const covers = (c: string) => words.every((w) => c.split('_').some((cw) => cw.startsWith(w)));
  let second: string | undefined;
  let secondD = Infinity;
  for (const c of candidates) {
    const d = editDistance(n, c);
    if (covers(c) && d < secondD) [second, secondD] = [c, d];
  }
  return second;
}
