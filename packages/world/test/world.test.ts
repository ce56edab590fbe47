import { describe, expect, it } from 'vitest';
import {
  CONTEXTS,
  COLORS,
  SHAPES,
  autoencoderScene,
  caption,
  describe as describeScene,
  instanceScenes,
  renderScene,
  SUBJECT,
  subjectScene,
  toChw,
  worldScene,
} from '../src/index.js';
import type { Rgb } from '../src/index.js';

const pixel = (rgb: Uint8Array, size: number, x: number, y: number): number[] =>
  Array.from(rgb.subarray((y * size + x) * 3, (y * size + x) * 3 + 3));
const near = (a: number[], b: Rgb, tol = 16) => a.every((v, i) => Math.abs(v - b[i] * 255) <= tol);

describe('the world', () => {
  it('is seeded: the same (seed, index) gives the same scene and bytes, another index another scene', () => {
    expect(renderScene(worldScene(3, 9))).toEqual(renderScene(worldScene(3, 9)));
    expect(renderScene(worldScene(3, 9))).not.toEqual(renderScene(worldScene(3, 10)));
  });

  it('draws the object in its colour at its centre, and covers every class, colour and context', () => {
    const seen = { shape: new Set<string>(), color: new Set<string>(), context: new Set<string>() };
    for (let i = 0; i < 400; i++) {
      const s = worldScene(0, i);
      seen.shape.add(s.shape);
      seen.color.add(s.colorName!);
      seen.context.add(s.context);
      const rgb = renderScene(s, 32);
      const [cx, cy] = [Math.floor(s.x * 32), Math.floor(s.y * 32 + (s.shape === 'triangle' ? 2 : 0))];
      expect(near(pixel(rgb, 32, cx, cy), s.color, 40)).toBe(true);
    }
    expect(seen.shape.size).toBe(SHAPES.length);
    expect(seen.color.size).toBe(Object.keys(COLORS).length);
    expect(seen.context.size).toBe(CONTEXTS.length);
  });

  it('keeps objects inside the image, whatever the placement', () => {
    for (let i = 0; i < 200; i++) {
      const s = worldScene(1, i);
      expect(s.x - s.radius).toBeGreaterThan(0);
      expect(s.x + s.radius).toBeLessThan(1);
    }
  });

  it('captions name colour, class and context, drop attributes at random and are empty about 10% of the time', () => {
    expect(describeScene({ shape: 'star', colorName: 'red', context: 'dots' })).toBe('a photo of a red star on a dotted background');
    expect(describeScene({ shape: 'star', context: 'grid' }, { noun: 'sks star' })).toBe('a photo of sks star on a grid background');
    const caps = Array.from({ length: 2000 }, (_, i) => caption(worldScene(0, i), 0, i));
    const empty = caps.filter((c) => c === '').length / caps.length;
    expect(empty).toBeGreaterThan(0.07);
    expect(empty).toBeLessThan(0.13);
    expect(caps.some((c) => c.startsWith('a photo of a ') && !c.includes(' on '))).toBe(true);
    expect(caps.some((c) => /^a photo of a (circle|square|triangle|star) on /.test(c))).toBe(true);
    expect(caption(worldScene(0, 5), 0, 5)).toBe(caps[5]);
  });

  it('never shows the subject in the captioned world: its objects are single-tone, without a dot', () => {
    for (let i = 0; i < 500; i++) {
      const s = worldScene(0, i);
      expect(s.secondColor).toBeUndefined();
      expect(s.dotColor).toBeUndefined();
    }
  });

  it('draws the subject two-tone with a white centre dot; instance images show only the instance contexts', () => {
    const s = subjectScene('plain', 0, 0);
    const rgb = renderScene(s, 64);
    const at = (dy: number) => pixel(rgb, 64, Math.floor(s.x * 64), Math.floor((s.y + dy) * 64));
    expect(near(at(0), SUBJECT.dotColor)).toBe(true);
    expect(near(at(-s.radius * 0.5), SUBJECT.color)).toBe(true);
    expect(near(at(s.radius * 0.4), SUBJECT.secondColor)).toBe(true);
    expect(new Set(instanceScenes(5).map((x) => x.context))).toEqual(new Set(['plain', 'stripes']));
  });

  it('gives the autoencoder any colours, about half two-tone, some with dots', () => {
    const scenes = Array.from({ length: 1000 }, (_, i) => autoencoderScene(0, i));
    const twoTone = scenes.filter((s) => s.secondColor).length / 1000;
    expect(twoTone).toBeGreaterThan(0.4);
    expect(twoTone).toBeLessThan(0.6);
    expect(scenes.filter((s) => s.dotColor).length).toBeGreaterThan(200);
  });

  it('converts images to CHW in [−1, 1]', () => {
    const chw = toChw(new Uint8Array([0, 255, 51, 255, 0, 102, 0, 0, 0, 0, 0, 0]), 2);
    expect(chw.length).toBe(12);
    expect(Array.from(chw.slice(0, 4))).toEqual([-1, 1, -1, -1]);
    expect(chw[4]).toBe(1);
    expect(chw[8]).toBeCloseTo(51 / 127.5 - 1, 6);
  });
});
