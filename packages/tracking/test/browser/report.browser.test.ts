/**
 * The HTML report, built in the browser from an in-memory run and rendered in headless Chromium:
 * the curves are drawn on uPlot's canvases, the sample grids load, the tables list the config,
 * and a screenshot is kept (`__screenshots__/`, ignored by git; CI keeps it as an artifact).
 */
import { describe, expect, it } from 'vitest';
import { page } from 'vitest/browser';
import { MemorySink, RunLogger } from '@kiln/tracking';

function gradient(w: number, h: number, shift: number): Uint8Array {
  const d = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) d.set([(x * 16 + shift) & 255, (y * 16) & 255, shift & 255], (y * w + x) * 3);
  return d;
}

/** Canvas pixels that are neither transparent nor white: what a drawn curve leaves. */
function inkedPixels(canvas: HTMLCanvasElement): number {
  const { data } = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i + 3] > 0 && !(data[i] > 240 && data[i + 1] > 240 && data[i + 2] > 240)) n++;
  return n;
}

describe('the run report in Chromium', () => {
  it('draws the curves and the sample grids, and lists the config', async () => {
    const memory = new MemorySink();
    const log = new RunLogger([memory], { name: 'sks dog', environment: { backend: 'wasm', userAgent: navigator.userAgent } });
    for (let s = 1; s <= 60; s++) {
      log.log(s, { loss: 1 / Math.sqrt(s) + 0.05 * Math.sin(s), lr: s < 10 ? s * 1e-5 : 1e-4, memory_bytes: 1e8 + s * 1e5 });
      if (s % 20 === 0)
        log.logImages(
          s,
          'validation',
          [0, 1, 2].map((i) => ({ width: 16, height: 16, data: gradient(16, 16, s + 80 * i), caption: `seed ${i}` })),
        );
    }
    log.logHparams({ learning_rate: 1e-4, with_prior_preservation: true }, { loss: 0.2 });
    await log.close();

    await page.viewport(1040, 1700);
    const html = await memory.report().text();
    const frame = document.createElement('iframe');
    frame.style.width = '1000px';
    frame.style.height = '1600px';
    const loaded = new Promise((r) => (frame.onload = r));
    frame.srcdoc = html;
    document.body.appendChild(frame);
    await loaded;
    const doc = frame.contentDocument!;
    await expect.poll(() => doc.body.getAttribute('data-ready'), { timeout: 20_000 }).toBe('1');

    const groups = Array.from(doc.querySelectorAll<HTMLElement>('.chart')).map((c) => c.dataset.group);
    expect(groups.slice(0, 4)).toEqual(['loss', 'learning rate', 'throughput', 'memory']);
    for (const chart of Array.from(doc.querySelectorAll<HTMLElement>('.chart'))) {
      const canvas = chart.querySelector('canvas')!;
      expect(canvas, `${chart.dataset.group} has a canvas`).toBeTruthy();
      expect(inkedPixels(canvas), `${chart.dataset.group} curve is drawn`).toBeGreaterThan(200);
    }
    expect(doc.querySelector<HTMLElement>('.chart[data-group="loss"]')!.dataset.points).toBe('60');

    const imgs = Array.from(doc.querySelectorAll<HTMLImageElement>('#images img'));
    expect(imgs).toHaveLength(9); // 3 validation steps × 3 seeds
    await Promise.all(imgs.map((i) => i.decode()));
    expect(imgs.every((i) => i.naturalWidth === 16)).toBe(true);
    expect(Array.from(doc.querySelectorAll('#images th')).map((t) => t.textContent)).toEqual(['step 20', 'step 40', 'step 60']);
    expect(doc.querySelector('#config')!.textContent).toContain('with_prior_preservation');

    // Smoothing redraws from the slider.
    const slider = doc.getElementById('smoothing') as HTMLInputElement;
    slider.value = '0';
    slider.dispatchEvent(new Event('input'));
    expect(doc.getElementById('smoothing-value')!.textContent).toBe('0.00');

    const shot = await page.screenshot({ element: frame, path: '__screenshots__/report.png' });
    expect(shot).toMatch(/report\.png$/);
  });
});
