// Node only: one file of a Hub repository into the Hugging Face cache, as Python's huggingface_hub
// does it: the bytes go to `blobs/<etag>.incomplete`, an interrupted download resumes from the
// bytes already there (an HTTP Range request), the whole file is checked (size; sha-256 for LFS
// files) and renamed to `blobs/<etag>`, and `snapshots/<commit>/<path>` becomes a relative symlink to it.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, open, readFile, rename, rm, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { PipelineError } from './errors.js';

/**
 * A Hub download that did not give the file the Hub described: a size or sha-256 that does not
 * match (a corrupted partial download, a proxy that altered the bytes), or a server that answered a
 * resume request with a range it was not asked for. `path` is the file in the repository, `file`
 * the cache file. A partial download that cannot be trusted is deleted, so a rerun starts it again.
 *
 * @example
 * ```ts
 * try {
 *   await downloadPipeline('runwayml/stable-diffusion-v1-5');
 * } catch (e) {
 *   if (e instanceof HubDownloadError) console.error(`${e.path}: ${e.message}`); // rerun to download it again
 * }
 * ```
 */
export class HubDownloadError extends PipelineError {
  override name = 'HubDownloadError';
  constructor(
    message: string,
    /** The file's path in the repository (`unet/diffusion_pytorch_model.safetensors`). */
    readonly path: string,
    /** The local file it concerns (`…/blobs/<etag>.incomplete`). */
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A file as the Hub's tree listing describes it. */
export interface HubFile {
  path: string;
  size: number;
  /** The git blob id (regular files) or the LFS sha-256: the blob's name in the cache, as huggingface_hub's etag. */
  etag: string;
  /** The content's sha-256, for LFS files (the Hub gives none for regular files: their size is checked). */
  sha256?: string;
}

/** What {@link downloadToCache} did: from which byte it asked the server for the file (0: the whole file), and how many bytes it received. */
export interface DownloadOutcome {
  resumedFrom: number;
  received: number;
}

interface DownloadRequest {
  /** The file's `/resolve/<commit>/<path>` URL. */
  url: string;
  file: HubFile;
  /** The repository's cache folder (`…/hub/models--org--name`). */
  storage: string;
  commit: string;
  headers: Record<string, string>;
  /** Bytes on disk so far, of `total`; `resumedFrom` of them were there before this run. */
  onProgress?: (bytes: number, total: number, resumedFrom: number) => void;
}

/** An HTTP error, with the status `hubError` turns into "not found" for 401/403/404. */
class HttpStatusError extends Error {
  constructor(
    readonly statusCode: number,
    url: string,
  ) {
    super(`HTTP ${statusCode} for ${url}`);
  }
}

const sizeOf = async (p: string) => (await stat(p).catch(() => null))?.size ?? null;

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The start of a 206 response's `Content-Range: bytes START-END/TOTAL`, or null. */
const rangeStart = (response: Response) => {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(response.headers.get('content-range') ?? '');
  return m ? Number(m[1]) : null;
};

/**
 * Streams the rest of the file into `part` (which holds `have` bytes): a Range request from `have`,
 * appended on a 206; a server that ignores Range (200) sends the whole file, which replaces the part.
 */
async function fetchInto(r: DownloadRequest, part: string, have: number): Promise<DownloadOutcome> {
  const headers = have > 0 ? { ...r.headers, Range: `bytes=${have}-` } : r.headers;
  let response = await fetch(r.url, { headers, redirect: 'follow' });
  if (response.status === 416 && have > 0) {
    // The part is not a prefix the server recognises (longer than the file, or the file changed): start again.
    await response.body?.cancel();
    response = await fetch(r.url, { headers: r.headers, redirect: 'follow' });
    have = 0;
  }
  if (!response.ok || !response.body) throw new HttpStatusError(response.status, r.url);
  let append = false;
  if (response.status === 206) {
    if (rangeStart(response) !== have) {
      await response.body.cancel();
      await rm(part, { force: true });
      throw new HubDownloadError(
        `${r.file.path}: asked the server for bytes ${have}- and got '${response.headers.get('content-range')}'; the partial download was deleted, rerun to download it again`,
        r.file.path,
        part,
      );
    }
    append = have > 0;
  }
  const resumedFrom = append ? have : 0;
  const handle = await open(part, append ? 'a' : 'w');
  let bytes = resumedFrom;
  try {
    // Each chunk goes to disk as it arrives, so whatever arrived before an interruption is kept.
    const reader = response.body.getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      await handle.write(next.value);
      bytes += next.value.byteLength;
      r.onProgress?.(bytes, r.file.size, resumedFrom);
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { resumedFrom, received: bytes - resumedFrom };
}

/** Checks the whole `part` against the listing: its size, and its sha-256 for LFS files. A mismatch deletes it. */
async function verify(file: HubFile, part: string): Promise<void> {
  const size = await sizeOf(part);
  if (size !== null && size < file.size)
    throw new HubDownloadError(
      `${file.path}: the download stopped at ${size} of ${file.size} bytes; rerun to resume it from there`,
      file.path,
      part,
    );
  const fail = async (what: string) => {
    await rm(part, { force: true });
    return new HubDownloadError(
      `${file.path}: the downloaded file ${what} (${part}); it was deleted, rerun to download it again`,
      file.path,
      part,
    );
  };
  if (size !== file.size) throw await fail(`has ${size} bytes where the Hub lists ${file.size}`);
  if (file.sha256) {
    const actual = await sha256Of(part);
    if (actual !== file.sha256.toLowerCase()) throw await fail(`has sha256 ${actual} where the Hub lists ${file.sha256}`);
  }
}

/**
 * `snapshots/<commit>/<path>` → `../../blobs/<etag>` (relative, as huggingface_hub links), made under
 * a temporary name and renamed into place; a copy where the filesystem has no symlinks.
 */
async function link(blob: string, pointer: string): Promise<void> {
  await mkdir(dirname(pointer), { recursive: true });
  // A name of its own, so concurrent links of one pointer never share (or copy through) a temporary.
  const temp = `${pointer}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await symlink(relative(dirname(pointer), blob), temp);
  } catch (e) {
    if (!['EPERM', 'ENOSYS', 'EOPNOTSUPP'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
    await copyFile(blob, temp);
  }
  await rename(temp, pointer);
}

/** How often a process waiting for another's download of the same blob looks again. */
const LOCK_POLL_MS = 200;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/**
 * Runs `body` holding `lock` (created exclusively, holding our pid), so that two downloads of one
 * blob (two `kiln generate`s, a worker pool) never append to the same `.incomplete` file. While
 * another live process holds it, waits; returns null without running `body` if the blob appeared
 * meanwhile. A lock whose process is gone (killed mid-download) is taken over. Per host: the pid
 * means nothing to another machine sharing the cache.
 */
async function withBlobLock<T>(lock: string, blob: string, body: () => Promise<T>): Promise<T | null> {
  await mkdir(dirname(lock), { recursive: true });
  for (;;) {
    if ((await sizeOf(blob)) !== null) return null;
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = await readFile(lock, 'utf8').catch(() => '');
    const pid = Number(holder);
    // Stale: its process is gone (an empty file is one killed between create and write).
    if (!(Number.isSafeInteger(pid) && pid > 0 && alive(pid))) {
      if ((await readFile(lock, 'utf8').catch(() => null)) === holder) await rm(lock, { force: true });
      continue;
    }
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
  }
  try {
    return await body();
  } finally {
    await rm(lock, { force: true });
  }
}

/**
 * Brings one Hub file into the cache and links it into the snapshot. A blob already in the cache
 * is only linked. Otherwise the download goes to `blobs/<etag>.incomplete` and resumes from the
 * bytes a previous, interrupted run left there (a `Range: bytes=N-` request; a server that answers
 * with the whole file restarts it cleanly). The file gets its final name only once its size, and
 * for LFS files its sha-256, match the Hub's listing: a mismatch is a {@link HubDownloadError}
 * naming the file, and the untrustworthy partial file is deleted. Concurrent downloads of one blob
 * take turns on `.locks/<repo folder>/<etag>.kiln.lock` (beside huggingface_hub's own locks).
 */
export async function downloadToCache(r: DownloadRequest): Promise<DownloadOutcome> {
  const blob = join(r.storage, 'blobs', r.file.etag);
  const pointer = join(r.storage, 'snapshots', r.commit, r.file.path);
  const lock = join(dirname(r.storage), '.locks', basename(r.storage), `${r.file.etag}.kiln.lock`);
  let outcome: DownloadOutcome = { resumedFrom: 0, received: 0 };
  await mkdir(dirname(blob), { recursive: true });
  const done = await withBlobLock(lock, blob, async () => {
    const part = `${blob}.incomplete`;
    let have = (await sizeOf(part)) ?? 0;
    if (have > r.file.size) {
      await truncate(part, 0);
      have = 0;
    }
    // A part already whole (killed between the last byte and the rename) needs no request.
    if (have < r.file.size || r.file.size === 0) outcome = await fetchInto(r, part, have);
    else outcome = { resumedFrom: have, received: 0 };
    await verify(r.file, part);
    await rename(part, blob);
    return outcome;
  });
  await link(blob, pointer);
  return done ?? outcome;
}
