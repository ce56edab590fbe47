import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { PipelineError, StableDiffusionPipeline } from '@kiln/pipeline';
import { relDiff, tinyModelFolder } from './helpers.js';

/**
 * The Hub loader against a real HTTP server (started here, on 127.0.0.1) that serves the tiny model
 * in the Hub's URL layout: `/api/models/{id}/revision/{rev}`, `/api/models/{id}/tree/{commit}`,
 * `/api/models/{id}/paths-info/{commit}` and `/{id}/resolve/{commit}/{path}` with range requests.
 * No test reaches the internet.
 */
const COMMIT = 'a'.repeat(39) + 'b';
const REPO = 'kiln-test/tiny-sd';

function listFiles(dir: string, base = dir): string[] {
  return readdirSync(dir).flatMap((n) =>
    statSync(join(dir, n)).isDirectory() ? listFiles(join(dir, n), base) : [relative(base, join(dir, n))],
  );
}

describe('StableDiffusionPipeline.fromPretrained (Hugging Face Hub id)', () => {
  let server: Server;
  let endpoint: string;
  let folder: string;
  const requests: { method: string; url: string; auth?: string }[] = [];
  const files = new Map<string, Buffer>();
  const hidden = new Set<string>();
  const saved = { ...process.env };

  beforeAll(async () => {
    folder = await tinyModelFolder();
    for (const f of listFiles(folder)) files.set(f, readFileSync(join(folder, f)));
    server = createServer((req, res) => {
      requests.push({ method: req.method!, url: req.url!, auth: req.headers.authorization });
      const url = new URL(req.url!, 'http://x');
      const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
        res.end(JSON.stringify(body));
      };
      const api = url.pathname.match(/^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree|paths-info)\/([^/]+)/);
      const id = api?.[1] ?? url.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\//)?.[1];
      if (id !== REPO) return json(404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
      const visible = [...files.keys()].filter((f) => !hidden.has(f));
      const entry = (path: string) => ({
        type: 'file',
        path,
        size: files.get(path)!.length,
        oid: createHash('sha1').update(files.get(path)!).digest('hex'),
        lastCommit: { id: COMMIT, title: 'tiny', date: '2026-01-01T00:00:00.000Z' },
      });
      if (api?.[2] === 'revision')
        return json(200, {
          _id: 'x',
          id: REPO,
          sha: COMMIT,
          private: false,
          lastModified: '2026-01-01T00:00:00.000Z',
          siblings: visible.map((rfilename) => ({ rfilename })),
        });
      if (api?.[2] === 'tree') return json(200, visible.map(entry));
      if (api?.[2] === 'paths-info') {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => json(200, (JSON.parse(body).paths as string[]).filter((p) => files.has(p)).map(entry)));
        return;
      }
      const path = decodeURIComponent(url.pathname.split('/').slice(5).join('/'));
      const data = files.get(path);
      if (!data || hidden.has(path)) return json(404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      const etag = `"${createHash('sha1').update(data).digest('hex')}"`;
      const range = req.headers.range?.match(/bytes=(\d+)-(\d*)/);
      if (range) {
        const start = Number(range[1]);
        const end = range[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
        res.writeHead(206, {
          'Content-Range': `bytes ${start}-${end}/${data.length}`,
          'Content-Length': end - start + 1,
          ETag: etag,
          'Accept-Ranges': 'bytes',
        });
        return res.end(data.subarray(start, end + 1));
      }
      res.writeHead(200, { 'Content-Length': data.length, ETag: etag });
      res.end(data);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    await k.useBackend('cpu');
  }, 120_000);
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  afterEach(() => {
    process.env = { ...saved };
    hidden.clear();
    requests.length = 0;
  });

  const useHub = (extra: Record<string, string> = {}) => {
    const home = mkdtempSync(join(tmpdir(), 'kiln-hf-home-'));
    delete process.env.HF_HUB_CACHE;
    delete process.env.HF_HUB_OFFLINE;
    Object.assign(process.env, { HF_HOME: home, HF_ENDPOINT: endpoint, ...extra });
    return join(home, 'hub', 'models--kiln-test--tiny-sd');
  };

  it('downloads into the standard cache layout, then reuses it (and loads offline)', async () => {
    const storage = useHub({ HF_TOKEN: 'hf_test_token' });
    const seen: string[] = [];
    const pipe = await StableDiffusionPipeline.fromPretrained(REPO, {
      onDownload: ({ path, cached }) => seen.push(`${path}${cached ? ' (cached)' : ''}`),
    });
    expect(seen).toContain('unet/diffusion_pytorch_model.safetensors');
    expect(readFileSync(join(storage, 'refs', 'main'), 'utf8')).toBe(COMMIT);
    const snapshot = join(storage, 'snapshots', COMMIT);
    const unet = join(snapshot, 'unet', 'diffusion_pytorch_model.safetensors');
    expect(readlinkSync(unet)).toMatch(/^\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{40}$/); // a relative symlink into blobs/, as huggingface_hub makes
    expect(readFileSync(unet).equals(files.get('unet/diffusion_pytorch_model.safetensors')!)).toBe(true);
    expect(requests.every((r) => r.auth === 'Bearer hf_test_token')).toBe(true);
    const fromFolder = await StableDiffusionPipeline.fromPretrained(folder);
    const opts = { prompt: 'a fox', seed: 1, numInferenceSteps: 2, width: 16, height: 16 };
    const [a, b] = [await pipe.txt2img(opts), await fromFolder.txt2img(opts)];
    expect(await relDiff(a.images, b.images)).toBe(0);

    requests.length = 0;
    const again = await StableDiffusionPipeline.fromPretrained(REPO);
    expect(requests.filter((r) => r.url.includes('/resolve/'))).toEqual([]); // nothing downloaded twice

    process.env.HF_HUB_OFFLINE = '1';
    requests.length = 0;
    const offline = await StableDiffusionPipeline.fromPretrained(REPO);
    expect(requests).toEqual([]);
    for (const p of [pipe, fromFolder, again, offline]) p.dispose();
  }, 120_000);

  it('reports every downloaded file byte by byte up to its size, and nothing for cached files', async () => {
    useHub();
    const downloaded: string[] = [];
    const reports = new Map<string, { bytes: number; total: number | null }[]>();
    const onDownloadProgress = ({ path, bytes, total }: { path: string; bytes: number; total: number | null }) => {
      if (!reports.has(path)) reports.set(path, []);
      reports.get(path)!.push({ bytes, total });
    };
    const pipe = await StableDiffusionPipeline.fromPretrained(REPO, {
      onDownload: ({ path, cached }) => void (cached || downloaded.push(path)),
      onDownloadProgress,
    });
    expect([...reports.keys()].sort()).toEqual([...downloaded].sort());
    for (const [path, r] of reports) {
      const size = files.get(path)!.length;
      expect(r.every((x) => x.total === size)).toBe(true);
      expect(r.at(-1)!.bytes).toBe(size);
      expect(r.every((x, i) => i === 0 || x.bytes > r[i - 1]!.bytes)).toBe(true);
    }
    // The UNet's weights arrive in many chunks: the progress is per chunk, not per file.
    expect(reports.get('unet/diffusion_pytorch_model.safetensors')!.length).toBeGreaterThan(3);
    reports.clear();
    const again = await StableDiffusionPipeline.fromPretrained(REPO, { onDownloadProgress });
    expect(reports.size).toBe(0);
    for (const p of [pipe, again]) p.dispose();
  }, 120_000);

  it('offline without the files in the cache, a 404 model id and a missing file each give a clear error', async () => {
    useHub({ HF_HUB_OFFLINE: '1' });
    await expect(StableDiffusionPipeline.fromPretrained(REPO)).rejects.toThrow(
      /kiln-test\/tiny-sd@main: not in the Hugging Face cache .* HF_HUB_OFFLINE is set/,
    );

    useHub();
    await expect(StableDiffusionPipeline.fromPretrained('kiln-test/no-such-model')).rejects.toThrow(
      /kiln-test\/no-such-model: not found on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404\).*HF_TOKEN/,
    );
    await expect(StableDiffusionPipeline.fromPretrained('kiln-test/no-such-model')).rejects.toBeInstanceOf(PipelineError);

    const storage = useHub();
    hidden.add('vae/diffusion_pytorch_model.safetensors');
    await expect(StableDiffusionPipeline.fromPretrained(REPO)).rejects.toThrow(
      /kiln-test\/tiny-sd: the repository has no vae\/diffusion_pytorch_model\.safetensors/,
    );
    await expect(StableDiffusionPipeline.fromPretrained(REPO, { variant: 'fp16' })).rejects.toThrow(
      /no text_encoder\/model\.fp16\.safetensors, unet\/diffusion_pytorch_model\.fp16\.safetensors/,
    );
    expect(existsSync(join(storage, 'blobs'))).toBe(false); // nothing fetched for a repository that cannot load
  }, 60_000);
});
