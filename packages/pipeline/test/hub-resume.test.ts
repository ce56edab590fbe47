import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { PipelineError } from '@kiln/pipeline';
import { HubDownloadError, downloadPipeline } from '@kiln/pipeline/node';
import type { DownloadProgress } from '@kiln/pipeline/node';
import { tinyModelFolder } from './helpers.js';
import { COMMIT, REPO, startHubServer } from './hub-server.js';
import type { HubServer } from './hub-server.js';

/**
 * Interrupted Hub downloads resume as with Python's huggingface_hub: the bytes a cut connection
 * left in `blobs/<sha256>.incomplete` are kept, the rerun asks for the rest with a Range request,
 * and the file gets its final name only once whole and verified. Against the local Hub server of
 * hub-server.ts, which drops the connection mid-file on demand.
 */
const UNET = 'unet/diffusion_pytorch_model.safetensors';
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('downloadPipeline: resuming interrupted downloads', () => {
  let hub: HubServer;
  let unet: Buffer;
  const saved = { ...process.env };

  beforeAll(async () => {
    hub = await startHubServer(await tinyModelFolder());
    unet = hub.files.get(UNET)!;
  }, 120_000);
  afterAll(() => hub.close());
  afterEach(() => {
    process.env = { ...saved };
    hub.requests.length = 0;
    hub.ignoreRange = false;
    hub.cut = undefined;
    hub.stall = undefined;
  });

  /** A fresh HF_HOME pointed at the server; returns the repository's cache folder. */
  const useHub = () => {
    const home = mkdtempSync(join(tmpdir(), 'kiln-hf-resume-'));
    delete process.env.HF_HUB_CACHE;
    delete process.env.HF_HUB_OFFLINE;
    delete process.env.HF_TOKEN;
    Object.assign(process.env, { HF_HOME: home, HF_ENDPOINT: hub.endpoint });
    return join(home, 'hub', 'models--kiln-test--tiny-sd');
  };
  const unetRequests = () => hub.requests.filter((r) => r.url.endsWith(`/resolve/${COMMIT}/${UNET}`));
  const blob = (storage: string) => join(storage, 'blobs', sha256(unet));
  const pointer = (storage: string) => join(storage, 'snapshots', COMMIT, UNET);

  /** Runs a download that the server cuts after `bytes` of the UNet's weights; returns the bytes left on disk. */
  async function interrupted(storage: string, bytes: number): Promise<number> {
    hub.cut = { path: UNET, bytes };
    await expect(downloadPipeline(REPO)).rejects.toThrow(PipelineError);
    // Nothing under the final names: only the partial file, which holds a prefix of the weights.
    expect(existsSync(blob(storage))).toBe(false);
    expect(existsSync(pointer(storage))).toBe(false);
    const partial = readFileSync(`${blob(storage)}.incomplete`);
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThanOrEqual(bytes);
    expect(partial.equals(unet.subarray(0, partial.length))).toBe(true);
    hub.requests.length = 0;
    return partial.length;
  }

  it('a download cut mid-file resumes from the bytes on disk: only the rest is requested, and the file is byte-identical', async () => {
    const storage = useHub();
    const have = await interrupted(storage, Math.floor(unet.length * 0.6));
    const progress: DownloadProgress[] = [];
    await downloadPipeline(REPO, { onProgress: (p) => void (p.path === UNET && progress.push(p)) });

    const [resume, ...others] = unetRequests();
    expect(others).toEqual([]);
    expect(resume!.range).toBe(`bytes=${have}-`);
    expect(resume!.status).toBe(206);
    expect(resume!.sent).toBe(unet.length - have); // the rest, not the whole file again
    // Files finished before the cut are not fetched again.
    const fetched = hub.requests.filter((r) => r.url.includes('/resolve/')).map((r) => r.url.split(`/${COMMIT}/`)[1]);
    expect(fetched).toEqual([UNET, ...fetched.slice(1)]);
    expect(readFileSync(pointer(storage)).equals(unet)).toBe(true);
    expect(existsSync(`${blob(storage)}.incomplete`)).toBe(false);
    // Progress counts the bytes already on disk: it starts past them and ends at the size.
    expect(progress[0]!.bytes).toBeGreaterThan(have);
    expect(progress.at(-1)).toEqual({ path: UNET, bytes: unet.length, total: unet.length, resumedFrom: have });
  }, 60_000);

  it('a server that ignores Range (200 with the whole file) restarts the file cleanly', async () => {
    const storage = useHub();
    const have = await interrupted(storage, Math.floor(unet.length / 3));
    hub.ignoreRange = true;
    await downloadPipeline(REPO);
    const [request] = unetRequests();
    expect(request!.range).toBe(`bytes=${have}-`);
    expect(request!.status).toBe(200);
    expect(request!.sent).toBe(unet.length);
    expect(statSync(blob(storage)).size).toBe(unet.length); // not the old prefix plus the whole file
    expect(readFileSync(pointer(storage)).equals(unet)).toBe(true);
  }, 60_000);

  it('a corrupted partial file fails the sha-256 check with a HubDownloadError naming the file, is deleted, and the rerun downloads it whole', async () => {
    const storage = useHub();
    const have = await interrupted(storage, Math.floor(unet.length / 2));
    const part = `${blob(storage)}.incomplete`;
    const bad = readFileSync(part);
    bad[Math.floor(have / 2)]! ^= 0xff;
    writeFileSync(part, bad);

    const error = await downloadPipeline(REPO).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HubDownloadError);
    expect(error).toBeInstanceOf(PipelineError);
    expect((error as HubDownloadError).path).toBe(UNET);
    expect((error as HubDownloadError).file).toBe(part);
    expect((error as Error).message).toMatch(
      /^unet\/diffusion_pytorch_model\.safetensors: the downloaded file has sha256 [0-9a-f]{64} where the Hub lists/,
    );
    expect(unetRequests()[0]!.range).toBe(`bytes=${have}-`);
    expect(existsSync(part)).toBe(false);
    expect(existsSync(blob(storage))).toBe(false);
    expect(existsSync(pointer(storage))).toBe(false);

    hub.requests.length = 0;
    await downloadPipeline(REPO);
    expect(unetRequests().map((r) => [r.range, r.sent])).toEqual([[undefined, unet.length]]);
    expect(readFileSync(pointer(storage)).equals(unet)).toBe(true);
  }, 60_000);

  it('a partial file longer than the listed size is discarded; a whole one left before the rename needs no request', async () => {
    const storage = useHub();
    await interrupted(storage, 200_000);
    const part = `${blob(storage)}.incomplete`;
    writeFileSync(part, Buffer.concat([unet, Buffer.from('extra')]));
    await downloadPipeline(REPO);
    expect(unetRequests().map((r) => [r.range, r.sent])).toEqual([[undefined, unet.length]]);
    expect(readFileSync(pointer(storage)).equals(unet)).toBe(true);

    const second = useHub();
    await interrupted(second, 200_000);
    writeFileSync(`${blob(second)}.incomplete`, unet);
    await downloadPipeline(REPO);
    expect(unetRequests()).toEqual([]);
    expect(readFileSync(pointer(second)).equals(unet)).toBe(true);
    expect(readdirSync(join(second, 'blobs')).filter((f) => f.endsWith('.incomplete'))).toEqual([]);
  }, 60_000);

  it('a process SIGKILLed mid-file leaves a partial file that the next run completes with one Range request', async () => {
    const storage = useHub();
    const bytes = Math.floor(unet.length * 0.4);
    hub.stall = { path: UNET, bytes };
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const code = `const { downloadPipeline } = await import('./packages/pipeline/src/hub.ts'); await downloadPipeline('${REPO}');`;
    const child = spawn(process.execPath, ['--conditions=kiln-source', '--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: root,
      env: process.env,
      stdio: 'ignore',
    });
    const exited = new Promise((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    const part = `${blob(storage)}.incomplete`;
    while (!existsSync(part) || statSync(part).size < bytes) await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(existsSync(blob(storage))).toBe(false);
    expect(statSync(part).size).toBe(bytes);

    hub.requests.length = 0;
    await downloadPipeline(REPO);
    expect(unetRequests().map((r) => [r.range, r.status, r.sent])).toEqual([[`bytes=${bytes}-`, 206, unet.length - bytes]]);
    expect(readFileSync(pointer(storage)).equals(unet)).toBe(true);
  }, 120_000);

  it('two concurrent downloads of one model take turns: the weights are fetched once, and a lock left by a dead process is taken over', async () => {
    const storage = useHub();
    const lockDir = join(storage, '..', '.locks', 'models--kiln-test--tiny-sd');
    const unetLock = join(lockDir, `${sha256(unet)}.kiln.lock`);
    // A lock from a process that no longer runs (one SIGKILLed mid-download leaves this).
    mkdirSync(lockDir, { recursive: true });
    writeFileSync(unetLock, '999999999');
    const [a, b] = await Promise.all([downloadPipeline(REPO), downloadPipeline(REPO)]);
    expect(a).toBe(b);
    expect(unetRequests().map((r) => [r.range, r.sent])).toEqual([[undefined, unet.length]]);
    expect(readFileSync(pointer(storage)).equals(unet)).toBe(true);
    expect(existsSync(unetLock)).toBe(false);
    expect(readdirSync(join(storage, 'blobs')).filter((f) => !/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(f))).toEqual([]);
  }, 60_000);
});
