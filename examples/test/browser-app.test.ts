// The browser app (examples/browser/) end to end: built with Vite into a static folder, served by a
// plain static file server (with the cross-origin isolation headers), opened in headless Chromium;
// it generates an image, runs two DreamBooth steps in its worker, draws the loss curve and the
// before/after images, and hands out the fine-tuned UNet as safetensors. A screenshot goes to
// test-artifacts/ (CI keeps it).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright';
import type { Browser, Page } from 'playwright';
import * as k from '@kiln/tensor-core';
import { parseSafetensors } from '@kiln/nn';
import { encodePng } from '@kiln/pipeline';
import { writeTinyModel } from '@kiln/pipeline/testing';

const root = fileURLToPath(new URL('../..', import.meta.url));
const app = join(root, 'examples/browser');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const WORLD_MODEL = join(root, 'packages/world/model');
const ARTIFACTS = join(root, 'test-artifacts');

const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
};

/** A plain static file server over `dir`, sending the headers that make the page cross-origin isolated. */
function serve(dir: string): Promise<Server> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    let file = join(dir, path);
    if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
    if (!existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
    });
    res.end(readFileSync(file));
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Pixels of the canvases under `selector`: how many canvases, and how many distinct RGBA values each has. */
const canvasStats = (page: Page, selector: string) =>
  page.$$eval(selector, (cs) =>
    (cs as HTMLCanvasElement[]).map((c) => {
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      const distinct = new Set<number>();
      for (let i = 0; i < d.length; i += 4) distinct.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return { width: c.width, height: c.height, distinct: distinct.size };
    }),
  );

/** Waits for `selector`, failing at once with the page's message if the page shows an error instead. */
async function waitFor(page: Page, selector: string, timeout = 180_000): Promise<void> {
  await page.waitForFunction((sel) => document.querySelector(sel) ?? document.querySelector('#status.error'), selector, { timeout });
  const error = await page.$('#status.error');
  if (error) throw new Error(`the page says: ${await error.textContent()}`);
}

describe.skipIf(!existsSync(CHROMIUM))('browser app (examples/browser) in headless Chromium', () => {
  let tmp: string;
  let model: string;
  let server: Server;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'kiln-browser-app-'));
    // The built-in world's base model when it is there, else the tiny seeded model (same layout).
    model = WORLD_MODEL;
    if (!existsSync(join(WORLD_MODEL, 'model_index.json'))) {
      model = join(tmp, 'model');
      await k.useBackend('cpu');
      await writeTinyModel(model);
    }
    const out = join(tmp, 'dist');
    const vite = join(app, 'node_modules/vite/bin/vite.js');
    const built = spawnSync(process.execPath, [vite, 'build', '--outDir', out, '--emptyOutDir', '--logLevel', 'warn'], {
      cwd: app,
      env: { ...process.env, KILN_BROWSER_MODEL: model },
      encoding: 'utf8',
    });
    expect(built.status, `vite build failed:\n${built.stdout}\n${built.stderr}`).toBe(0);
    server = await serve(out);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu-sandbox',
        '--disable-background-networking',
        '--disable-component-update',
        '--no-first-run',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    const { port } = server.address() as AddressInfo;
    // wasm: SwiftShader's WebGPU is a correctness driver, ~1000× slower than a GPU (docs/DESIGN.md).
    await page.goto(`http://127.0.0.1:${port}/?backend=wasm`);
    await waitFor(page, 'body[data-ready="true"]');
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('says which backend it uses: wasm, threaded because the page is cross-origin isolated', async () => {
    expect(await page.textContent('#backend')).toBe('wasm');
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    expect(await page.textContent('#backend-detail')).toMatch(/\d+ threads/);
  });

  it('generates an image from the prompt, seed, steps and guidance', async () => {
    await page.fill('#steps', '2');
    await page.fill('#count', '1');
    await page.fill('#seed', '3');
    await page.click('#generate');
    await page.waitForFunction(
      () => /generated in|error/.test(document.getElementById('status')!.className + document.getElementById('status')!.textContent),
      null,
      {
        timeout: 120_000,
      },
    );
    expect(await page.textContent('#status')).toMatch(/^generated in/);
    const images = await canvasStats(page, '#gallery canvas');
    expect(images).toHaveLength(1);
    expect(images[0].width).toBe(32);
    // A drawn image, not a blank canvas.
    expect(images[0].distinct).toBeGreaterThan(16);
  });

  it('runs DreamBooth steps in the worker: loss curve, before/after images, fine-tuned UNet download', async () => {
    await page.fill('#train-steps', '2');
    await page.fill('#sample-steps', '2');
    await page.click('#train');
    await waitFor(page, 'body[data-trained-steps="2"]');
    expect(await page.textContent('#status')).toMatch(/^trained 2 steps \(saved in this browser/);
    const progress = (await page.textContent('#train-progress')) ?? '';
    const loss = Number(/loss ([\d.]+)/.exec(progress)?.[1]);
    expect(progress).toMatch(/^step 2 \/ 2/);
    expect(loss).toBeGreaterThan(0);
    expect(Number.isFinite(loss)).toBe(true);
    // The loss curve: the plot has the blue line's pixels.
    const blue = await page.$eval('#loss', (c) => {
      const d = (c as HTMLCanvasElement)
        .getContext('2d')!
        .getImageData(0, 0, (c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i + 2] > 120 && d[i] < 100) n++;
      return n;
    });
    expect(blue).toBeGreaterThan(20);
    expect(await canvasStats(page, '#instances canvas')).toHaveLength(5);
    for (const which of ['#before canvas', '#after canvas']) {
      const images = await canvasStats(page, which);
      expect(images).toHaveLength(4);
      for (const im of images) expect(im.distinct).toBeGreaterThan(16);
    }

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    expect(download.suggestedFilename()).toBe('diffusion_pytorch_model.safetensors');
    const file = join(tmp, 'unet.safetensors');
    await download.saveAs(file);
    const tuned = parseSafetensors(readFileSync(file));
    const base = parseSafetensors(readFileSync(join(model, 'unet/diffusion_pytorch_model.safetensors')));
    expect(tuned.keys().sort()).toEqual(base.keys().sort());
    expect(tuned.metadata.step).toBe('2');
    // Two AdamW steps moved the weights (lr 1e-4: every element by about 2e-4).
    const a = (await tuned.tensor('conv_in.weight', { dtype: 'float32' }).toArray()) as number[][][][];
    const b = (await base.tensor('conv_in.weight', { dtype: 'float32' }).toArray()) as number[][][][];
    const diff = Math.max(...a.flat(3).map((v, i) => Math.abs(v - b.flat(3)[i])));
    expect(diff).toBeGreaterThan(1e-5);
    expect(diff).toBeLessThan(1e-2);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'browser-app.png'), fullPage: true });
    expect(pageErrors).toEqual([]);
  }, 300_000);

  it('keeps the run across a reload (OPFS): restores the curve and images, training continues, Reset forgets it', async () => {
    const before = await page.$$eval('#before canvas', (cs) => cs.map((c) => (c as HTMLCanvasElement).toDataURL()));
    await page.reload();
    await waitFor(page, 'body[data-ready="true"]');
    expect(await page.getAttribute('body', 'data-restored-step')).toBe('2');
    expect(await page.textContent('#train-progress')).toMatch(/^restored at step 2 \(loss [\d.]+\)/);
    expect(await page.$$eval('#before canvas', (cs) => cs.map((c) => (c as HTMLCanvasElement).toDataURL()))).toEqual(before);
    expect(await canvasStats(page, '#after canvas')).toHaveLength(4);
    await page.fill('#train-steps', '1');
    await page.fill('#sample-steps', '2');
    await page.click('#train');
    await waitFor(page, 'body[data-trained-steps="3"]');
    expect(await page.textContent('#train-progress')).toMatch(/^step 3 \/ 3/);
    await Promise.all([page.waitForEvent('load'), page.click('#forget')]);
    await waitFor(page, 'body[data-ready="true"]');
    expect(await page.getAttribute('body', 'data-restored-step')).toBeNull();
    expect(pageErrors).toEqual([]);
  }, 300_000);

  it('takes the subject images from files: centre-cropped and scaled to the model size', async () => {
    // A 60×40 image: red left half, blue right half; the centre crop keeps both halves.
    const [w, h] = [60, 40];
    const data = new Uint8ClampedArray(w * h * 4);
    for (let i = 0; i < w * h; i++) data.set(i % w < w / 2 ? [255, 0, 0, 255] : [0, 0, 255, 255], i * 4);
    const png = Buffer.from(encodePng({ width: w, height: h, data }));
    await page.setInputFiles('#instance-files', [
      { name: 'a.png', mimeType: 'image/png', buffer: png },
      { name: 'b.png', mimeType: 'image/png', buffer: png },
    ]);
    await page.waitForFunction(() => /2 subject image\(s\) picked/.test(document.getElementById('status')!.textContent ?? ''));
    const picked = await page.$$eval('#instances canvas', (cs) =>
      (cs as HTMLCanvasElement[]).map((c) => {
        const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        const at = (x: number, y: number) => [...d.subarray((y * c.width + x) * 4, (y * c.width + x) * 4 + 3)];
        return { width: c.width, left: at(2, 16), right: at(c.width - 3, 16) };
      }),
    );
    expect(picked).toHaveLength(2);
    for (const p of picked) expect(p).toEqual({ width: 32, left: [255, 0, 0], right: [0, 0, 255] });
  });
});
