import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'fast-png';
import { describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { PipelineError, encodePng, formatParameters, toImageData, toRgba } from '@kiln/pipeline';
import { writePng } from '@kiln/pipeline/node';

const image = { width: 3, height: 2, data: new Uint8ClampedArray(Array.from({ length: 24 }, (_, i) => i * 10)) };

describe('PNG output', () => {
  it("formats AUTOMATIC1111's parameters text", () => {
    const p = {
      prompt: 'a fox',
      steps: 20,
      scheduler: 'EulerAncestralDiscreteScheduler',
      guidanceScale: 7.5,
      seed: 42,
      width: 512,
      height: 512,
    };
    expect(formatParameters(p)).toBe('a fox\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x512');
    expect(
      formatParameters({
        ...p,
        negativePrompt: 'blurry, dark',
        scheduler: 'DPMSolverMultistepScheduler',
        karras: true,
        clipSkip: 1,
        model: 'sd15',
        denoisingStrength: 0.6,
      }),
    ).toBe(
      'a fox\nNegative prompt: blurry, dark\nSteps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 42, Size: 512x512, Model: sd15, Denoising strength: 0.6, Clip skip: 2',
    );
  });

  it('writes the parameters in a tEXt chunk that decoders read back, pixels unchanged', () => {
    const png = encodePng(image, { text: { parameters: 'a fox\nSteps: 20' } });
    const chunks = new TextDecoder('latin1').decode(png);
    expect(chunks).toContain('tEXtparameters\u0000a fox\nSteps: 20');
    const back = decode(png);
    expect(back.text.parameters).toBe('a fox\nSteps: 20');
    expect([back.width, back.height, back.channels]).toEqual([3, 2, 4]);
    expect(Array.from(back.data)).toEqual(Array.from(image.data));
  });

  it('puts text outside Latin-1 in an iTXt chunk (UTF-8) with a valid CRC', async () => {
    const png = encodePng(image, { text: { parameters: '富士山 at dawn' } });
    const at = png.findIndex((_, i) => png[i] === 0x69 && png[i + 1] === 0x54 && png[i + 2] === 0x58 && png[i + 3] === 0x74);
    expect(at).toBeGreaterThan(0);
    const len = new DataView(png.buffer, png.byteOffset).getUint32(at - 4);
    expect(new TextDecoder().decode(png.subarray(at + 4, at + 4 + len))).toBe('parameters\u0000\u0000\u0000\u0000\u0000富士山 at dawn');
    const { crc32 } = await import('node:zlib');
    expect(new DataView(png.buffer, png.byteOffset).getUint32(at + 4 + len)).toBe(crc32(png.subarray(at, at + 4 + len)));
    expect(Array.from(decode(png).data)).toEqual(Array.from(image.data)); // still a valid PNG
  });

  it('refuses a wrong byte count and a bad keyword', () => {
    expect(() => encodePng({ ...image, width: 4 })).toThrow(PipelineError);
    expect(() => encodePng(image, { text: { '': 'x' } })).toThrow(/keyword/);
  });

  it('writePng writes atomically (no temporary file left) a PNG with the parameters', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-png-'));
    await writePng(join(dir, 'a.png'), image, { parameters: 'a fox' });
    expect(readdirSync(dir)).toEqual(['a.png']);
    expect(decode(readFileSync(join(dir, 'a.png'))).text.parameters).toBe('a fox');
  });

  it('toRgba turns [N, 3, H, W] into RGBA rows with alpha 255; toImageData needs a browser', async () => {
    const t = k.tensor([0, 1, 0.2, 0.5, 1, 0], { shape: [1, 3, 1, 2] }); // R = [0, 1], G = [0.2, 0.5], B = [1, 0]
    const [rgba] = await toRgba(t);
    expect(rgba).toMatchObject({ width: 2, height: 1 });
    expect(Array.from(rgba.data)).toEqual([0, 51, 255, 255, 255, 128, 0, 255]);
    await expect(toRgba(k.zeros([3, 2, 2]))).rejects.toThrow(PipelineError);
    expect(() => toImageData(rgba)).toThrow(/ImageData/);
  });
});
