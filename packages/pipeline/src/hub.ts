// Node only: Hugging Face Hub model ids, resolved and listed with the maintained @huggingface/hub
// library and downloaded resumably (hub-download.ts) into the standard cache layout (HF_HUB_CACHE, else HF_HOME/hub: models--org--name/{blobs,
// snapshots/<commit>, refs/<revision>}), which Python's huggingface_hub and diffusers share.
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { getHFHubCachePath, listFiles, modelInfo } from '@huggingface/hub';
import { writeFileAtomic } from '@kiln/nn/node';
import { PipelineError } from './errors.js';
import { HubDownloadError, downloadToCache } from './hub-download.js';
import type { HubFile } from './hub-download.js';

/** Options of {@link downloadPipeline}. */
export interface HubOptions {
  /** Branch, tag or commit (default `main`). */
  revision?: string;
  /** Weight variant to fetch (`fp16`); default: the plain weights. */
  variant?: string;
  /** Called as each file starts downloading (or is found in the cache). */
  onFile?: (info: { path: string; index: number; count: number; cached: boolean }) => void;
  /** Called as a file's bytes arrive (each network chunk), for a byte-level progress bar. */
  onProgress?: (info: DownloadProgress) => void;
}

/**
 * Where a file download stands: bytes of the file on disk so far of `total` (its size, or null),
 * `resumedFrom` of which were already there when this run started (a resumed download; 0 for a
 * fresh one), so that a speed is `(bytes − resumedFrom) / elapsed`.
 *
 * @example
 * ```ts
 * await downloadPipeline('runwayml/stable-diffusion-v1-5', {
 *   onProgress: ({ path, bytes, total }: DownloadProgress) => console.error(path, bytes, total),
 * });
 * ```
 */
export interface DownloadProgress {
  path: string;
  bytes: number;
  total: number | null;
  resumedFrom?: number;
}

/** A Hub model id (`org/name`), as opposed to a local path. */
export const isHubId = (source: string): boolean => /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(source) && !source.includes('..');

const COMMIT = /^[0-9a-f]{40}$/;
const TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json'];
const isFile = async (p: string) => (await stat(p).catch(() => null))?.isFile() ?? false;
const truthy = (v: string | undefined) => ['1', 'true', 'yes', 'on'].includes((v ?? '').toLowerCase());

/** The files of a repo a Stable Diffusion pipeline needs (diffusers' allow patterns for this pipeline). */
function wanted(files: readonly string[], variant: string | undefined, repo: string): string[] {
  const v = variant ? `\\.${variant}` : '';
  const weights = new RegExp(
    `^(text_encoder|unet|vae)/(model|diffusion_pytorch_model)(${v}\\.safetensors|${v}-\\d{5}-of-\\d{5}\\.safetensors|\\.safetensors\\.index${v}\\.json)$`,
  );
  const pick = files.filter(
    (f) =>
      f === 'model_index.json' ||
      f === 'scheduler/scheduler_config.json' ||
      /^(text_encoder|unet|vae)\/config\.json$/.test(f) ||
      TOKENIZER_FILES.some((t) => f === `tokenizer/${t}`) ||
      weights.test(f),
  );
  const missing = ['model_index.json', 'scheduler/scheduler_config.json', 'tokenizer/vocab.json', 'tokenizer/merges.txt'].filter(
    (f) => !pick.includes(f),
  );
  for (const part of ['text_encoder', 'unet', 'vae']) {
    if (!pick.includes(`${part}/config.json`)) missing.push(`${part}/config.json`);
    if (!pick.some((f) => f.startsWith(`${part}/`) && f.endsWith('.safetensors'))) {
      missing.push(`${part}/${part === 'text_encoder' ? 'model' : 'diffusion_pytorch_model'}${variant ? `.${variant}` : ''}.safetensors`);
    }
  }
  if (missing.length)
    throw new PipelineError(
      `${repo}: the repository has no ${missing.join(', ')} (a diffusers Stable Diffusion repository with safetensors weights is expected)`,
    );
  return pick;
}

function hubError(repo: string, endpoint: string, e: unknown): never {
  const status = (e as { statusCode?: number }).statusCode;
  if (status === 401 || status === 403 || status === 404) {
    throw new PipelineError(
      `${repo}: not found on ${endpoint} (HTTP ${status}); check the id and revision, or set HF_TOKEN for a private or gated model`,
      { cause: e },
    );
  }
  throw new PipelineError(
    `${repo}: download from ${endpoint} failed (${(e as Error).message}); with the files in the cache, HF_HUB_OFFLINE=1 loads without the network`,
    { cause: e },
  );
}

/**
 * Brings a Hub model's pipeline files into the Hugging Face cache and returns the snapshot folder.
 * Honours `HF_ENDPOINT` (another Hub, a mirror), `HF_TOKEN` (private and gated models),
 * `HF_HUB_OFFLINE` (use only the cache) and `HF_HUB_CACHE`/`HF_HOME` (where the cache is). Files
 * already in the cache are not fetched again. Each download goes to `blobs/<etag>.incomplete`, as
 * with Python's huggingface_hub: a rerun after an interruption resumes from the bytes already there
 * (an HTTP Range request), and the file is renamed to its final name only once its size (and, for
 * LFS files, its sha-256) match the Hub's listing, so a half file never counts as cached; a
 * mismatch is a {@link HubDownloadError} naming the file. `onProgress` follows each file's bytes
 * (counting those already on disk) as they arrive.
 *
 * @example
 * ```ts
 * const dir = await downloadPipeline('runwayml/stable-diffusion-v1-5', { variant: 'fp16' });
 * ```
 */
export async function downloadPipeline(repo: string, options: HubOptions = {}): Promise<string> {
  const revision = options.revision ?? 'main';
  const cacheDir = getHFHubCachePath();
  const storage = join(cacheDir, `models--${repo.replace('/', '--')}`);
  const endpoint = (process.env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
  const accessToken = process.env.HF_TOKEN || undefined;

  if (truthy(process.env.HF_HUB_OFFLINE)) {
    const commit = COMMIT.test(revision) ? revision : (await readFile(join(storage, 'refs', revision), 'utf8').catch(() => '')).trim();
    const snapshot = join(storage, 'snapshots', commit);
    if (commit && (await isFile(join(snapshot, 'model_index.json')))) return snapshot;
    throw new PipelineError(
      `${repo}@${revision}: not in the Hugging Face cache (${storage}) and HF_HUB_OFFLINE is set; download it once online`,
    );
  }

  let commit: string;
  const listing = new Map<string, HubFile>();
  try {
    const info = await modelInfo({ name: repo, revision, hubUrl: endpoint, accessToken, additionalFields: ['sha'] });
    commit = (info as { sha?: string }).sha ?? '';
    if (!COMMIT.test(commit)) throw new PipelineError(`${repo}@${revision}: the Hub at ${endpoint} gave no commit for this revision`);
    for await (const entry of listFiles({ repo, revision: commit, recursive: true, hubUrl: endpoint, accessToken })) {
      if (entry.type !== 'file') continue;
      // huggingface_hub's etag: the LFS sha-256 for LFS (and Xet) files, the git blob id otherwise.
      const etag = entry.lfs?.oid ?? entry.oid ?? '';
      listing.set(entry.path, { path: entry.path, size: entry.lfs?.size ?? entry.size, etag, sha256: entry.lfs?.oid });
    }
  } catch (e) {
    if (e instanceof PipelineError) throw e;
    hubError(repo, endpoint, e);
  }
  if (revision !== commit) await writeFileAtomic(join(storage, 'refs', revision), commit);
  const pick = wanted([...listing.keys()], options.variant, repo);
  const snapshot = join(storage, 'snapshots', commit);
  for (const [index, path] of pick.entries()) {
    const cached = await isFile(join(snapshot, path));
    options.onFile?.({ path, index, count: pick.length, cached });
    if (cached) continue;
    const file = listing.get(path)!;
    if (!/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(file.etag))
      throw new PipelineError(`${repo}/${path}: the Hub at ${endpoint} lists no git or LFS id for this file`);
    const onProgress = options.onProgress;
    try {
      await downloadToCache({
        url: `${endpoint}/${repo}/resolve/${commit}/${path.split('/').map(encodeURIComponent).join('/')}`,
        file,
        storage,
        commit,
        headers: accessToken ? { Authorization: `Bearer ${accessToken}` } : {},
        ...(onProgress
          ? { onProgress: (bytes: number, total: number, resumedFrom: number) => onProgress({ path, bytes, total, resumedFrom }) }
          : {}),
      });
    } catch (e) {
      if (e instanceof HubDownloadError) throw e;
      hubError(`${repo}/${path}`, endpoint, e);
    }
  }
  return snapshot;
}
