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

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** Bytes in decimal units, as huggingface_hub's progress bars show them (`3.44 GB`). */
export function formatBytes(n: number): string {
  let i = 0;
  while (n >= 1000 && i < UNITS.length - 1) ((n /= 1000), i++);
  return `${i === 0 ? n : n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0)} ${UNITS[i]}`;
}

/**
 * The progress line of one Hub file download: size so far of the total, percent, speed and time
 * left, e.g. `downloading unet/diffusion_pytorch_model.safetensors 1.20 GB/3.44 GB 35% 45.1 MB/s ETA 50s`.
 * A resumed download's speed counts only the bytes received in this run (`bytes − resumedFrom`).
 */
export function downloadLine(p: { path: string; bytes: number; total: number | null; elapsedMs: number; resumedFrom?: number }): string {
  const rate = (p.bytes - (p.resumedFrom ?? 0)) / Math.max(p.elapsedMs / 1000, 1e-9);
  const speed = `${formatBytes(rate)}/s`;
  if (p.total === null) return `downloading ${p.path} ${formatBytes(p.bytes)} ${speed}`;
  const percent = Math.floor((100 * p.bytes) / Math.max(p.total, 1));
  const left = formatSeconds((p.total - p.bytes) / Math.max(rate, 1e-9));
  return `downloading ${p.path} ${formatBytes(p.bytes)}/${formatBytes(p.total)} ${percent}% ${speed} ETA ${left}`;
}

/**
 * A byte-level progress bar for Hub downloads (`onDownloadProgress`): redrawn through `io.progress`
 * at most 10 times a second on a terminal, otherwise printed through `io.err` (after `prefix`)
 * every 5 s and when a file is complete. `clock` is for tests.
 */
export function downloadReporter(
  io: { err: (s: string) => void; progress?: (line: string) => void },
  prefix = '',
  clock: () => number = () => performance.now(),
): (info: { path: string; bytes: number; total: number | null; resumedFrom?: number }) => void {
  let file = '';
  let started = 0;
  let shown = -Infinity;
  return ({ path, bytes, total, resumedFrom }) => {
    const now = clock();
    if (path !== file) [file, started, shown] = [path, now, -Infinity];
    const done = total !== null && bytes >= total;
    if (!done && now - shown < (io.progress ? 100 : 5000)) return;
    shown = now;
    const line = downloadLine({ path, bytes, total, elapsedMs: now - started, resumedFrom });
    if (io.progress) io.progress(line);
    else io.err(`${prefix}${line}`);
  };
}
