/**
 * TensorBoard's scalar smoothing: an exponential moving average debiased for its zero start, so
 * the first points are not pulled toward 0. Non-finite values pass through unsmoothed. `weight`
 * in [0, 1): 0 is no smoothing. (The report's page runs the same formula in its own script.)
 *
 * @example
 * ```ts
 * smooth([1, 0, 1, 0], 0.6); // debiased EMA, as TensorBoard's smoothing slider
 * ```
 */
export function smooth(values: readonly (number | null)[], weight: number): (number | null)[] {
  let last = 0;
  let n = 0;
  return values.map((y) => {
    if (y === null || !Number.isFinite(y)) return y;
    last = last * weight + (1 - weight) * y;
    n++;
    return last / (1 - weight ** n);
  });
}
