import type { RgbImage } from './decode-image.js';

/** The triangle (bilinear) filter; PIL widens its support by the scale when shrinking (antialias). */
const triangle = (x: number) => Math.max(0, 1 - Math.abs(x));

/** Weights of one separable pass from `inSize` to `outSize` samples, as PIL's `precompute_coeffs`. */
function coefficients(inSize: number, outSize: number): { start: Int32Array; count: Int32Array; weights: Float64Array; taps: number } {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // triangle support 1 × filterScale
  const taps = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Float64Array(outSize * taps);
  for (let i = 0; i < outSize; i++) {
    const center = (i + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(center - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(center + support + 0.5));
    let total = 0;
    for (let j = lo; j < hi; j++) {
      const w = triangle((j - center + 0.5) / filterScale);
      weights[i * taps + j - lo] = w;
      total += w;
    }
    for (let j = 0; j < hi - lo; j++) weights[i * taps + j] = total > 0 ? weights[i * taps + j] / total : 0;
    start[i] = lo;
    count[i] = hi - lo;
  }
  return { start, count, weights, taps };
}

/**
 * Resizes with PIL's bilinear filter and its antialiasing (the filter widens when shrinking, so
 * every source pixel counts), horizontal pass first as PIL does. Kept in float (PIL rounds to
 * 8 bits between the passes).
 *
 * @example
 * ```ts
 * const small = resizeBilinear(img, 512, 384);
 * ```
 */
export function resizeBilinear(img: RgbImage, width: number, height: number): RgbImage {
  const { width: w, height: h, data } = img;
  const cx = coefficients(w, width);
  const mid = new Float32Array(width * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < width; x++) {
      let r = 0,
        g = 0,
        b = 0;
      for (let t = 0; t < cx.count[x]; t++) {
        const wt = cx.weights[x * cx.taps + t];
        const s = (y * w + cx.start[x] + t) * 3;
        r += wt * data[s];
        g += wt * data[s + 1];
        b += wt * data[s + 2];
      }
      const d = (y * width + x) * 3;
      mid[d] = r;
      mid[d + 1] = g;
      mid[d + 2] = b;
    }
  }
  const cy = coefficients(h, height);
  const out = new Float32Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let t = 0; t < cy.count[y]; t++) {
      const wt = cy.weights[y * cy.taps + t];
      const row = (cy.start[y] + t) * width * 3;
      const o = y * width * 3;
      for (let i = 0; i < width * 3; i++) out[o + i] += wt * mid[row + i];
    }
  }
  return { width, height, data: out };
}

/** torchvision's `Resize(size)` for an int size: the shorter side becomes `size`, the aspect ratio kept. */
export function resizeShorterSide(img: RgbImage, size: number): RgbImage {
  const { width: w, height: h } = img;
  if (Math.min(w, h) === size) return img;
  const [W, H] = w <= h ? [size, Math.trunc((size * h) / w)] : [Math.trunc((size * w) / h), size];
  return resizeBilinear(img, W, H);
}

/**
 * Crops `size`×`size` at (left, top) and returns CHW values normalised to [−1, 1]
 * (torchvision's `ToTensor` then `Normalize([0.5], [0.5])`), flipped left–right when asked.
 */
export function cropToChw(img: RgbImage, size: number, left: number, top: number, flip: boolean): Float32Array {
  const out = new Float32Array(3 * size * size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const sx = left + (flip ? size - 1 - x : x);
      const s = ((top + y) * img.width + sx) * 3;
      for (let c = 0; c < 3; c++) out[c * size * size + y * size + x] = img.data[s + c] * 2 - 1;
    }
  }
  return out;
}

/** torchvision's `CenterCrop` offsets: `round((side − size) / 2)`. */
export function centerCropOffsets(img: RgbImage, size: number): [left: number, top: number] {
  return [Math.round((img.width - size) / 2), Math.round((img.height - size) / 2)];
}
