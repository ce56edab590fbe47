/**
 * The progress line of `kiln generate`: step, speed and time left for the current image, e.g.
 * `prompt 2/5 image 1/1 step 12/30 3.41 it/s ETA 5s`.
 */
export function progressLine(p: {
  job: number;
  jobs: number;
  image: number;
  images: number;
  step: number;
  steps: number;
  elapsedMs: number;
}): string {
  const rate = p.step / Math.max(p.elapsedMs / 1000, 1e-9);
  const left = (p.steps - p.step) / Math.max(rate, 1e-9);
  return `prompt ${p.job}/${p.jobs} image ${p.image}/${p.images} step ${p.step}/${p.steps} ${rate.toFixed(2)} it/s ETA ${formatSeconds(left)}`;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const t = Math.round(s);
  return t < 60 ? `${t}s` : `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
}
