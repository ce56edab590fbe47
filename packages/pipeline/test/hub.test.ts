import { existsSync, mkdtempSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { PipelineError, StableDiffusionPipeline } from '@kiln/pipeline';
import { relDiff, tinyModelFolder } from './helpers.js';
import { COMMIT, REPO, startHubServer } from './hub-server.js';
import type { HubServer } from './hub-server.js';

/**
 * The Hub loader against a real HTTP server (started here, on 127.0.0.1) that serves the tiny model
 * in the Hub's URL layout (test/hub-server.ts). No test reaches the internet.
 */
describe('StableDiffusionPipeline.fromPretrained (Hugging Face Hub id)', () => {
  let hub: HubServer;
  let endpoint: string;
  let folder: string;
  let files: HubServer['files'];
  let requests: HubServer['requests'];
  let hidden: HubServer['hidden'];
  const saved = { ...process.env };

  beforeAll(async () => {
    folder = await tinyModelFolder();
    hub = await startHubServer(folder);
    ({ endpoint, files, requests, hidden } = hub);
    await k.useBackend('cpu');
  }, 120_000);
  afterAll(() => hub.close());
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
    // A relative symlink into blobs/, named by the LFS sha-256 (the git blob id for regular files), as huggingface_hub makes.
    expect(readlinkSync(unet)).toMatch(/^\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/);
    expect(readlinkSync(join(snapshot, 'unet', 'config.json'))).toMatch(/^\.\.\/\.\.\/\.\.\/blobs\/[0-9a-f]{40}$/);
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
