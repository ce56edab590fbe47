import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode, encode } from 'fast-png';
import { beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { writeTinyModel } from '@kiln/pipeline/testing';
import { kiln } from './helpers.js';

/** `kiln generate --image FILE --strength S`: image to image from the command line and in batch files. */
const temp = () => mkdtempSync(join(tmpdir(), 'kiln-img2img-'));
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const results = (dir: string) =>
  readFileSync(join(dir, 'results.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

/** A W×H RGB PNG of pixel (x, y) = f(x, y). */
function writePngImage(path: string, W: number, H: number, f: (x: number, y: number) => [number, number, number]): void {
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data.set(f(x, y), (y * W + x) * 3);
  writeFileSync(path, encode({ width: W, height: H, data, channels: 3, depth: 8 }));
}

describe('kiln generate --image', () => {
  let model: string;
  let dir: string;
  const base = ['--prompt', 'a red fox', '--seed', '7', '--steps', '4', '--scheduler', 'ddim', '--backend', 'cpu'];
  beforeAll(async () => {
    dir = temp();
    model = join(dir, 'tiny-sd');
    await k.useBackend('cpu');
    await writeTinyModel(model);
    writePngImage(join(dir, 'square.png'), 16, 16, (x, y) => [x * 15, y * 15, (x * y) % 256]);
    writePngImage(join(dir, 'wide.png'), 24, 20, (x, y) => [x * 10, 255 - y * 12, 128]);
    // The pixels of fixtures/pattern.webp (lossless), as a PNG.
    writePngImage(join(dir, 'pattern.png'), 6, 4, (x, y) => [40 * x, 60 * y, 200]);
  }, 120_000);

  it('--help lists --image and --strength with their defaults', async () => {
    const { out } = await kiln('generate', '--help');
    expect(out).toMatch(/--image FILE\s+image to image: .*PNG, JPEG or WebP.*\(default: none: text to image\)/);
    expect(out).toMatch(/--strength S\s+with --image: .*\(0, 1\].*\(default: 0\.8\)/);
  });

  it('is pipe.img2img on the decoded image, with Denoising strength in the PNG parameters', async () => {
    const out = temp();
    const size = ['--width', '16', '--height', '16'];
    const run = await kiln(
      'generate',
      '--model',
      model,
      ...base,
      ...size,
      '--image',
      join(dir, 'square.png'),
      '--strength',
      '0.5',
      '--out',
      out,
    );
    expect(run).toMatchObject({ code: 0, out: `kiln generate: wrote 1 image to ${out}` });
    expect(run.err).toMatch(/step 2\/2/); // ⌊4 × 0.5⌋ steps run
    const [r] = results(out);
    const png = decode(readFileSync(join(out, r.files[0])));
    expect([png.width, png.height]).toEqual([16, 16]);
    expect(png.text.parameters).toBe(
      'a red fox\nSteps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 7, Size: 16x16, Model: tiny-sd, Denoising strength: 0.5',
    );

    // The library on the same pixels (RGBA bytes of the PNG) makes the same image.
    const pipe = await StableDiffusionPipeline.fromPretrained(model);
    const src = decode(readFileSync(join(dir, 'square.png')));
    const rgba = new Uint8ClampedArray(16 * 16 * 4).map((_, i) => (i % 4 === 3 ? 255 : src.data[Math.floor(i / 4) * 3 + (i % 4)]!));
    const want = await pipe.img2img({
      prompt: 'a red fox',
      image: { width: 16, height: 16, data: rgba },
      strength: 0.5,
      seed: 7,
      numInferenceSteps: 4,
      scheduler: 'ddim',
    });
    const got = png.data;
    const ref = want.rgba[0]!.data;
    let worst = 0;
    for (let i = 0, j = 0; i < ref.length; i += 4, j += png.channels)
      for (let c = 0; c < 3; c++) worst = Math.max(worst, Math.abs(got[j + c]! - ref[i + c]!));
    expect(worst).toBeLessThanOrEqual(1); // (b/255)·2−1 and b/255 then ·2−1 may round a byte apart
    want.images.dispose();

    // The strength matters, and image to image is not text to image.
    const other = temp();
    await kiln('generate', '--model', model, ...base, ...size, '--image', join(dir, 'square.png'), '--strength', '1', '--out', other);
    const txt = temp();
    await kiln('generate', '--model', model, ...base, ...size, '--out', txt);
    const first = (d: string) => decode(readFileSync(join(d, results(d)[0].files[0]))).data;
    expect(first(other)).not.toEqual(got);
    expect(first(txt)).not.toEqual(got);
    pipe.dispose();
  }, 300_000);

  it('resizes to --width × --height, else to the model size; WebP and JPEG decode like PNG', async () => {
    const out = temp();
    const sized = await kiln(
      'generate',
      '--model',
      model,
      ...base,
      '--image',
      join(dir, 'wide.png'),
      '--width',
      '16',
      '--height',
      '8',
      '--out',
      out,
    );
    expect(sized.code).toBe(0);
    const png = decode(readFileSync(join(out, results(out)[0].files[0])));
    expect([png.width, png.height]).toEqual([16, 8]);
    expect(png.text.parameters).toMatch(/Size: 16x8, .*Denoising strength: 0\.8$/);

    // The lossless WebP holds the pixels of pattern.png: the same image comes out. (Two steps: one runs at strength 0.8.)
    const [webp, fromPng, jpeg] = [temp(), temp(), temp()];
    const quick = [...base, '--steps', '2'];
    await kiln('generate', '--model', model, ...quick, '--image', fixture('pattern.webp'), '--out', webp);
    await kiln('generate', '--model', model, ...quick, '--image', join(dir, 'pattern.png'), '--out', fromPng);
    const image = (d: string) => decode(readFileSync(join(d, results(d)[0].files[0])));
    expect([image(webp).width, image(webp).height]).toEqual([32, 32]); // the tiny model's size
    expect(image(webp).data).toEqual(image(fromPng).data);
    expect((await kiln('generate', '--model', model, ...quick, '--image', fixture('pattern.jpg'), '--out', jpeg)).code).toBe(0);
    expect([image(jpeg).width, image(jpeg).height]).toEqual([32, 32]);
  }, 300_000);

  it('a missing or undecodable image and a strength outside (0, 1] are errors that name them, and nothing is written', async () => {
    const notImage = join(dir, 'notes.png');
    writeFileSync(notImage, 'hello world');
    const cases: [string[], number, RegExp][] = [
      [['--image', join(dir, 'nope.png')], 2, /--image .*nope\.png: cannot be read \(ENOENT\)/],
      [['--image', notImage], 1, /notes\.png: not a PNG, JPEG or WebP image/],
      [['--image', join(dir, 'square.png'), '--strength', '0'], 2, /--strength: .*>0/],
      [['--image', join(dir, 'square.png'), '--strength', '1.5'], 2, /--strength: .*<=1/],
      [['--image', join(dir, 'square.png'), '--strength', 'half'], 2, /--strength: .*number/],
      [['--strength', '0.5'], 2, /--strength is for image to image: give --image FILE too/],
    ];
    for (const [flags, code, message] of cases) {
      const out = join(temp(), 'out');
      const run = await kiln('generate', '--model', model, ...base, ...flags, '--out', out);
      expect(run, flags.join(' ')).toMatchObject({ code, err: expect.stringMatching(message) });
      expect(existsSync(out), flags.join(' ')).toBe(false);
    }
    // Workers run text to image on their own storage: submitting an image is refused before connecting.
    const submit = await kiln('submit', 'generate', '--model', model, '--prompt', 'x', '--out', 'o', '--image', join(dir, 'square.png'));
    expect(submit).toMatchObject({ code: 2, err: expect.stringMatching(/--image and --strength are for kiln generate on this machine/) });
  }, 60_000);

  it('--batch lines take image (relative to the batch file) and strength; a bad line is reported and the others go on', async () => {
    const out = temp();
    copyFileSync(join(dir, 'square.png'), join(out, 'start.png'));
    const batch = join(out, 'prompts.jsonl');
    writeFileSync(
      batch,
      [
        JSON.stringify({ prompt: 'a fox', seed: 1, image: 'start.png', strength: 0.5 }),
        JSON.stringify({ prompt: 'a cat', seed: 2, image: 'missing.png' }),
        JSON.stringify({ prompt: 'a dog', seed: 3, image: 'start.png', strength: 2 }),
        JSON.stringify({ prompt: 'a hat', seed: 4, strength: 0.5 }),
        JSON.stringify({ prompt: 'a boat', seed: 5, width: 16, height: 16 }),
      ].join('\n'),
    );
    const args = ['generate', '--model', model, '--batch', batch, '--out', out, '--steps', '2', '--width', '16', '--height', '16'];
    const run = await kiln(...args, '--backend', 'cpu');
    expect(run).toMatchObject({ code: 0, out: `kiln generate: wrote 2 images to ${out}, 3 failed (see ${join(out, 'results.jsonl')})` });
    expect(run.err).toMatch(/prompts\.jsonl:2: --image .*missing\.png: cannot be read/);
    expect(run.err).toMatch(/prompts\.jsonl:3: strength: /);
    expect(run.err).toMatch(/prompts\.jsonl:4: strength: is for image to image/);
    const lines = results(out);
    expect(lines.map((l) => l.line)).toEqual([1, 2, 3, 4, 5]);
    expect(lines.map((l) => l.error === undefined)).toEqual([true, false, false, false, true]);
    const params = (l: { files: string[] }) => decode(readFileSync(join(out, l.files[0]))).text.parameters;
    expect(params(lines[0])).toMatch(/^a fox\nSteps: 2, .*Size: 16x16, Model: tiny-sd, Denoising strength: 0\.5$/);
    expect(params(lines[4])).not.toMatch(/Denoising strength/);

    // A rerun skips what is done, unless its starting image changed.
    const failed = `3 failed (see ${join(out, 'results.jsonl')})`;
    expect((await kiln(...args, '--backend', 'cpu')).out).toBe(`kiln generate: wrote 0 images to ${out}, 2 already done, ${failed}`);
    copyFileSync(join(dir, 'wide.png'), join(out, 'start.png'));
    expect((await kiln(...args, '--backend', 'cpu')).out).toBe(`kiln generate: wrote 1 image to ${out}, 1 already done, ${failed}`);
  }, 300_000);
});
