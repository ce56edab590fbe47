import type { RgbImage } from './decode-image.js';
import { DatasetError } from './errors.js';
import { centerCropOffsets, cropToChw, resizeShorterSide } from './resize.js';
import { epochPermutation, keyedRandom } from './rng.js';

/** One training image: its decoded pixels, its prompt and where it came from. */
export interface Example {
  name: string;
  image: RgbImage;
  prompt: string;
}

/** How images become training tensors (diffusers' transforms). */
export interface TransformOptions {
  resolution: number;
  centerCrop: boolean;
  randomFlip: boolean;
  /** Keys the random crops and flips (with the epoch and the row), so a resumed run sees the same pixels. */
  seed: number;
}

/** The rows of one batch: instance examples, then the class examples when prior preservation is on. */
export interface BatchRows {
  instance: number[];
  klass: number[];
}

/**
 * diffusers' `DreamBoothDataset` with its collate function: item i is instance image i mod N
 * (and class image i mod M with prior preservation); the length is the larger count. Images are
 * resized once (shorter side to the resolution, PIL's antialiased bilinear) and cropped per
 * epoch (center, or random from keyed randomness), flipped at random when asked, and normalised
 * to [−1, 1]. Batches come from a seeded permutation per epoch, so the order is reproducible and
 * a resumed run continues it.
 *
 * @example
 * ```ts
 * const data = new DreamBoothDataset(instances, classes, { resolution: 512, centerCrop: false, randomFlip: false, seed: 0 });
 * const batches = data.batches(0, 4); // [{ instance: [2, 0, 3, 1], klass: [2, 0, 3, 1] }, …]
 * ```
 */
export class DreamBoothDataset {
  private readonly resized = new Map<string, RgbImage>();

  constructor(
    readonly instances: readonly Example[],
    readonly classes: readonly Example[] | null,
    readonly options: TransformOptions,
  ) {
    if (instances.length === 0) throw new DatasetError('no instance images');
    if (classes && classes.length === 0) throw new DatasetError('prior preservation needs class images, and there are none');
  }

  get length(): number {
    return this.classes ? Math.max(this.instances.length, this.classes.length) : this.instances.length;
  }

  /** The dataset indices of the epoch, in order (a seeded shuffle). */
  order(epoch: number): number[] {
    return epochPermutation(this.length, this.options.seed, epoch);
  }

  /** The epoch's batches of `batchSize` items (the last one may be short, as with drop_last=False). */
  batches(epoch: number, batchSize: number): BatchRows[] {
    const order = this.order(epoch);
    const out: BatchRows[] = [];
    for (let i = 0; i < order.length; i += batchSize) {
      const items = order.slice(i, i + batchSize);
      out.push({
        instance: items.map((j) => j % this.instances.length),
        klass: this.classes ? items.map((j) => j % this.classes!.length) : [],
      });
    }
    return out;
  }

  /** Whether every epoch gives the same pixels for an image (center crop, no flip), which `--cache_latents` relies on. */
  get deterministic(): boolean {
    return this.options.centerCrop && !this.options.randomFlip;
  }

  /** The transformed pixels [3, R, R] of instance (`kind` 0) or class (`kind` 1) image `index` in `epoch`. */
  pixels(kind: 0 | 1, index: number, epoch: number): Float32Array {
    const ex = (kind === 0 ? this.instances : this.classes!)[index];
    const R = this.options.resolution;
    const key = `${kind}:${index}`;
    let img = this.resized.get(key);
    if (!img) {
      img = resizeShorterSide(ex.image, R);
      this.resized.set(key, img);
    }
    const rand = keyedRandom(this.options.seed, this.deterministic ? 0 : epoch, kind, index);
    const [left, top] = this.options.centerCrop
      ? centerCropOffsets(img, R)
      : [Math.floor(rand() * (img.width - R + 1)), Math.floor(rand() * (img.height - R + 1))];
    const flip = this.options.randomFlip && rand() < 0.5;
    return cropToChw(img, R, left, top, flip);
  }
}
