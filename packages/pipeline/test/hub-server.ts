import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, relative } from 'node:path';

/**
 * A real HTTP server (on 127.0.0.1) that serves a model folder in the Hugging Face Hub's URL layout:
 * `/api/models/{id}/revision/{rev}`, `/api/models/{id}/tree/{commit}`, `/api/models/{id}/paths-info/{commit}`
 * and `/{id}/resolve/{commit}/{path}` with range requests. `.safetensors` files are LFS files (the
 * tree lists their sha-256), the others regular git files (a git blob id), as on the Hub. It logs
 * every request with the bytes it sent, and can misbehave on demand.
 */
export const COMMIT = 'a'.repeat(39) + 'b';
export const REPO = 'kiln-test/tiny-sd';

export interface HubRequest {
  method: string;
  url: string;
  auth?: string;
  range?: string;
  status?: number;
  /** Body bytes of a file download sent (counted as written). */
  sent: number;
}

export interface HubServer {
  endpoint: string;
  files: Map<string, Buffer>;
  requests: HubRequest[];
  /** Files the tree and resolve pretend do not exist. */
  hidden: Set<string>;
  /** Answers range requests with the whole file (200), as some proxies and mirrors do. */
  ignoreRange: boolean;
  /** Drops the connection after this many bytes of this file's body (once), as a network failure or a killed process does. */
  cut?: { path: string; bytes: number };
  /** Sends this many bytes of this file's body (once), then nothing more, keeping the connection open (a process to kill mid-file). */
  stall?: { path: string; bytes: number };
  close: () => Promise<void>;
}

const sha = (algo: string, data: Buffer) => createHash(algo).update(data).digest('hex');
const gitBlobId = (data: Buffer) => sha('sha1', Buffer.concat([Buffer.from(`blob ${data.length}\0`), data]));

function listFolder(dir: string, base = dir): string[] {
  return readdirSync(dir).flatMap((n) =>
    statSync(join(dir, n)).isDirectory() ? listFolder(join(dir, n), base) : [relative(base, join(dir, n))],
  );
}

/** Starts the server on a free port of 127.0.0.1, serving `folder` as {@link REPO} at {@link COMMIT}. */
export async function startHubServer(folder: string): Promise<HubServer> {
  const files = new Map<string, Buffer>();
  for (const f of listFolder(folder)) files.set(f, readFileSync(join(folder, f)));
  const hub: HubServer = {
    endpoint: '',
    files,
    requests: [],
    hidden: new Set(),
    ignoreRange: false,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
  const entry = (path: string) => {
    const data = files.get(path)!;
    const lfs = path.endsWith('.safetensors') ? { oid: sha('sha256', data), size: data.length, pointerSize: 134 } : undefined;
    return {
      type: 'file',
      path,
      size: data.length,
      oid: lfs ? sha('sha1', Buffer.from(`lfs pointer ${lfs.oid}`)) : gitBlobId(data),
      ...(lfs ? { lfs } : {}),
      lastCommit: { id: COMMIT, title: 'tiny', date: '2026-01-01T00:00:00.000Z' },
    };
  };
  const server = createServer((req, res) => {
    const log: HubRequest = { method: req.method!, url: req.url!, auth: req.headers.authorization, range: req.headers.range, sent: 0 };
    hub.requests.push(log);
    const url = new URL(req.url!, 'http://x');
    const json = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      log.status = status;
      res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const api = url.pathname.match(/^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree|paths-info)\/([^/]+)/);
    const id = api?.[1] ?? url.pathname.match(/^\/([^/]+\/[^/]+)\/resolve\//)?.[1];
    if (id !== REPO) return json(404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
    const visible = [...files.keys()].filter((f) => !hub.hidden.has(f));
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
    if (!data || hub.hidden.has(path)) return json(404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
    const lfsEntry = entry(path).lfs;
    const headers = { ETag: `"${lfsEntry?.oid ?? gitBlobId(data)}"`, 'Accept-Ranges': 'bytes' };
    const range = hub.ignoreRange ? null : req.headers.range?.match(/^bytes=(\d+)-(\d*)$/);
    let body = data;
    if (range) {
      const start = Number(range[1]);
      const end = range[2] ? Math.min(Number(range[2]), data.length - 1) : data.length - 1;
      if (start >= data.length) {
        log.status = 416;
        res.writeHead(416, { 'Content-Range': `bytes */${data.length}` });
        return res.end();
      }
      body = data.subarray(start, end + 1);
      log.status = 206;
      res.writeHead(206, { ...headers, 'Content-Range': `bytes ${start}-${end}/${data.length}`, 'Content-Length': body.length });
    } else {
      log.status = 200;
      res.writeHead(200, { ...headers, 'Content-Length': data.length });
    }
    if (hub.cut?.path === path && req.method === 'GET' && body.length > hub.cut.bytes) {
      const n = hub.cut.bytes;
      hub.cut = undefined;
      log.sent = n;
      res.write(body.subarray(0, n), () => res.destroy());
      return;
    }
    if (hub.stall?.path === path && req.method === 'GET' && body.length > hub.stall.bytes) {
      log.sent = hub.stall.bytes;
      res.write(body.subarray(0, hub.stall.bytes));
      hub.stall = undefined;
      return;
    }
    log.sent = req.method === 'GET' ? body.length : 0;
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  hub.endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return hub;
}
