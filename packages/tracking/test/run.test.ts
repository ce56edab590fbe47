import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildReport, MemorySink, openRun, parseJsonl, readRun, RunLogger, TrackingError, writeReport } from '@kiln/tracking/node';
import { UPLOT_JS, UPLOT_VERSION } from '../src/report/uplot-vendor.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'kiln-run-'));
const px = (v: number) => ({ width: 2, height: 1, data: new Uint8Array([v, v, v, 255 - v, 255 - v, 255 - v]) });

async function sampleRun(dir: string, steps = 5): Promise<void> {
  const log = openRun(dir, { name: 'dog', environment: { backend: 'wasm', threads: 2 } });
  for (let s = 1; s <= steps; s++) {
    log.log(s, { loss: 1 / s, lr: 1e-4 });
    if (s % 2 === 0) log.logImages(s, 'validation', [px(s * 40), px(255 - s * 40)]);
  }
  log.logHparams({ learning_rate: 1e-4, seed: 0 }, { loss: 1 / steps });
  await log.close();
}

describe('run folders', () => {
  it('read back exactly what was logged, images included', async () => {
    const dir = tmp();
    await sampleRun(dir);
    const run = readRun(dir);
    expect(run.name).toBe('dog');
    expect(run.warnings).toEqual([]);
    const scalars = run.records.filter((r) => r.kind === 'scalars');
    expect(scalars.map((r) => r.values.loss)).toEqual([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]);
    const images = run.records.filter((r) => r.kind === 'images');
    expect(images.map((r) => r.step)).toEqual([2, 4]);
    expect(images[0].images[0].png.subarray(1, 4)).toEqual(new TextEncoder().encode('PNG'));
    expect(existsSync(join(dir, 'report.html'))).toBe(true);
  });

  it('are readable while the run is going, and flush makes the report current', async () => {
    const dir = tmp();
    const log = openRun(dir, { reportTo: ['html'] });
    log.log(1, { loss: 2 });
    expect(readRun(dir).records.filter((r) => r.kind === 'scalars')).toHaveLength(1); // written at once, before any flush
    await log.flush();
    expect(readFileSync(join(dir, 'report.html'), 'utf8')).toContain('"loss"');
    await log.close();
    expect(() => log.log(2, { loss: 1 })).toThrow(TrackingError);
  });

  it('keep NaN, ±Infinity and a key named __proto__ through JSONL', async () => {
    const dir = tmp();
    const log = openRun(dir, { reportTo: [] });
    log.log(3, { loss: NaN, up: Infinity, down: -Infinity, ...JSON.parse('{"__proto__": 7}') });
    await log.close();
    const r = readRun(dir).records.find((x) => x.kind === 'scalars')!;
    expect(r.kind === 'scalars' && { ...r.values }).toEqual({ loss: NaN, up: Infinity, down: -Infinity, ['__proto__']: 7 });
    expect(r.kind === 'scalars' && Object.keys(r.values)).toContain('__proto__');
  });

  it("a killed run's log, cut mid-line, still builds a report, with a warning", async () => {
    const dir = tmp();
    await sampleRun(dir, 4);
    appendFileSync(join(dir, 'metrics.jsonl'), '{"kind":"scalars","step":5,"wall":17000');
    const run = readRun(dir);
    expect(run.records.filter((r) => r.kind === 'scalars')).toHaveLength(4);
    expect(run.warnings?.[0]).toMatch(/metrics\.jsonl:\d+: the last line is incomplete/);
    const out = await writeReport([dir]);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('the last line is incomplete');
  });

  it('bad input is a TrackingError naming the folder, file or line', async () => {
    const dir = tmp();
    expect(() => readRun(join(dir, 'nope'))).toThrow(/does not exist/);
    expect(() => readRun(dir)).toThrow(/has no metrics\.jsonl/);
    await expect(writeReport([dir])).rejects.toThrow(TrackingError);
    writeFileSync(
      join(dir, 'metrics.jsonl'),
      '{"kind":"scalars","step":1,"wall":1,"values":{}}\nnot json\n{"kind":"scalars","step":2,"wall":2,"values":{}}\n',
    );
    expect(() => readRun(dir)).toThrow(/metrics\.jsonl:2: not a JSON record/);
    writeFileSync(join(dir, 'metrics.jsonl'), '{"kind":"scalars","step":-1,"wall":1,"values":{}}\n');
    expect(() => readRun(dir)).toThrow(/metrics\.jsonl:1: step/);
    writeFileSync(
      join(dir, 'metrics.jsonl'),
      '{"kind":"images","step":1,"wall":1,"tag":"v","images":[{"width":1,"height":1,"channels":3,"file":"../../etc/passwd"}]}\n',
    );
    expect(() => readRun(dir)).toThrow(/leaves the run folder/);
    const log = new RunLogger([new MemorySink()]);
    expect(() => log.log(1.5, { loss: 1 })).toThrow(/step 1.5 must be a non-negative integer/);
    expect(() => log.log(1, { loss: '1' as unknown as number })).toThrow(/scalar 'loss' is string/);
    expect(() => log.logImages(1, 'v', [{ width: 3, height: 3, data: new Uint8Array(10) }])).toThrow(/10 bytes do not make a 3×3 image/);
    expect(() => openRun(tmp(), { reportTo: ['wandb' as 'html'] })).toThrow(/unknown reportTo 'wandb'/);
  });

  it('compares several runs on one page, configs diffed', async () => {
    const [a, b] = [tmp(), tmp()];
    await sampleRun(a, 4);
    const log = openRun(b, { name: 'cat' });
    log.log(1, { loss: 3 });
    log.logHparams({ learning_rate: 5e-6, seed: 0 });
    await log.close();
    await expect(writeReport([a, b])).rejects.toThrow(/needs an output file/);
    const out = await writeReport([a, b], join(tmp(), 'compare.html'));
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('Kiln runs: dog, cat');
    const data = JSON.parse(html.match(/<script id="kiln-data" type="application\/json">(.*?)<\/script>/s)![1]);
    expect(data.runs.map((r: { config: { learning_rate: number } }) => r.config.learning_rate)).toEqual([1e-4, 5e-6]);
  });
});

describe('the report', () => {
  it('is one self-contained file: no external script, style or image', () => {
    const sink = new MemorySink();
    const log = new RunLogger([sink], { name: '</script><b>x' });
    log.log(1, { loss: 1 });
    log.logText(1, 'note', '</script><script>alert(1)</script>');
    const html = buildReport([{ name: sink.name, records: sink.records }]);
    expect(html).not.toMatch(/<script[^>]+src=|<link|https?:\/\/(?!github\.com\/leeoniya)/);
    expect(html.match(/<\/script>/g)).toHaveLength(3); // data, uPlot, the page's script: nothing logged closes one
    expect(html).toContain(UPLOT_JS.slice(0, 200));
  });

  it('inlines exactly the uPlot that is installed (re-run scripts/vendor-uplot.mjs after an upgrade)', () => {
    const dir = join(__dirname, '../node_modules/uplot');
    expect(UPLOT_VERSION).toBe(JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version);
    expect(UPLOT_JS).toBe(readFileSync(join(dir, 'dist/uPlot.iife.min.js'), 'utf8'));
  });

  it('parses JSONL written by hand with the same rules', () => {
    const { records, warnings } = parseJsonl('{"kind":"text","step":0,"wall":1,"tag":"t","text":"hi"}\n', 'x.jsonl');
    expect(records).toEqual([{ kind: 'text', step: 0, wall: 1, tag: 't', text: 'hi' }]);
    expect(warnings).toEqual([]);
    mkdirSync(tmp(), { recursive: true });
  });
});
