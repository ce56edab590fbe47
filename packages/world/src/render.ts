import type { Context, Rgb, Scene, Shape } from './scene.js';

const GROUND: Rgb = [0.92, 0.91, 0.88];
const INK: Rgb = [0.62, 0.62, 0.64];
const SS = 4; // supersampling per axis: edges are anti-aliased like a photo, not stair-stepped

/** Vertices of a regular star or polygon, as (x, y) offsets for radius 1, first point up. */
function polygon(points: number, inner: number): Array<[number, number]> {
  const n = inner === 1 ? points : points * 2;
  return Array.from({ length: n }, (_, i) => {
    const a = -Math.PI / 2 + (i * 2 * Math.PI) / n;
    const r = inner === 1 || i % 2 === 0 ? 1 : inner;
    return [r * Math.cos(a), r * Math.sin(a)];
  });
}
const TRIANGLE = polygon(3, 1).map(([x, y]) => [x * 1.15, y * 1.15 + 0.15] as [number, number]);
const STAR = polygon(5, 0.45).map(([x, y]) => [x * 1.15, y * 1.15 + 0.06] as [number, number]);

/** Even-odd point-in-polygon test. */
function inPolygon(x: number, y: number, poly: ReadonlyArray<[number, number]>): boolean {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i];
    const [xj, yj] = poly[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/** Whether the unit-radius shape covers offset (u, v) from its centre. */
function covers(shape: Shape, u: number, v: number): boolean {
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1;
    case 'square':
      return Math.abs(u) <= 0.85 && Math.abs(v) <= 0.85;
    case 'triangle':
      return inPolygon(u, v, TRIANGLE);
    case 'star':
      return inPolygon(u, v, STAR);
  }
}

/** Whether the background pattern inks pixel-space point (px, py). */
function patternInk(context: Context, px: number, py: number): boolean {
  const m = (a: number, p: number) => ((a % p) + p) % p;
  switch (context) {
    case 'plain':
      return false;
    case 'stripes':
      return m(px + py, 6) < 2;
    case 'dots': {
      const dx = m(px, 6) - 3;
      const dy = m(py, 6) - 3;
      return dx * dx + dy * dy < 1.6;
    }
    case 'checker':
      return (Math.floor(px / 4) + Math.floor(py / 4)) % 2 === 0;
    case 'grid':
      return m(px, 6) < 1 || m(py, 6) < 1;
  }
}

/**
 * Renders a scene as an RGB image (`size`×`size`, row-major, 3 bytes per pixel), anti-aliased by
 * 4×4 supersampling. Pure and deterministic: the same scene gives the same bytes everywhere.
 *
 * @example
 * ```ts
 * const rgb = renderScene(worldScene(0, 1), 32); // Uint8Array of 32·32·3
 * ```
 */
export function renderScene(scene: Scene, size = 32): Uint8Array {
  const out = new Uint8Array(size * size * 3);
  const r = scene.radius * size;
  const cx = scene.x * size;
  const cy = scene.y * size;
  const acc = [0, 0, 0];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      acc[0] = acc[1] = acc[2] = 0;
      for (let sy = 0; sy < SS; sy++) {
        for (let sx = 0; sx < SS; sx++) {
          const px = x + (sx + 0.5) / SS;
          const py = y + (sy + 0.5) / SS;
          const u = (px - cx) / r;
          const v = (py - cy) / r;
          let c: Rgb;
          if (Math.abs(u) <= 1.25 && Math.abs(v) <= 1.25 && covers(scene.shape, u, v)) {
            if (scene.dotColor && u * u + v * v < 0.22 * 0.22) c = scene.dotColor;
            else c = scene.secondColor && v > 0 ? scene.secondColor : scene.color;
          } else {
            const ink = patternInk(scene.context, (px * 32) / size + scene.phase, (py * 32) / size + scene.phase * 0.37);
            c = ink ? (scene.context === 'checker' ? [0.78, 0.78, 0.77] : INK) : GROUND;
          }
          acc[0] += c[0];
          acc[1] += c[1];
          acc[2] += c[2];
        }
      }
      const o = (y * size + x) * 3;
      for (let ch = 0; ch < 3; ch++) out[o + ch] = Math.round((acc[ch] / (SS * SS)) * 255);
    }
  }
  return out;
}

/**
 * Images in the layout models take: RGB bytes (row-major, 3 per pixel) to a CHW float array in [−1, 1].
 *
 * @example
 * ```ts
 * const chw = toChw(renderScene(scene, 32), 32); // Float32Array of 3·32·32
 * ```
 */
export function toChw(rgb: Uint8Array, size: number): Float32Array {
  const n = size * size;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) out[c * n + i] = rgb[i * 3 + c] / 127.5 - 1;
  return out;
}
