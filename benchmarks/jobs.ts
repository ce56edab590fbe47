/**
 * Pool throughput: tiny-model DreamBooth jobs per hour against the number of `kiln worker`
 * processes (1, 2, 3) on this machine, each worker running one job at a time, on a throwaway
 * redis-server. Every run submits the same jobs (32×32 images, `--steps` optimizer steps, a
 * checkpoint every 2) once all its workers are ready, and times them from submission to the last
 * completion.
 *
 *   node --conditions=kiln-source --import tsx benchmarks/jobs.ts [--workers 1,2,3] [--jobs 6] [--steps 4]
 *
 * Workers run from sources here, so each job's thread also compiles Kiln's TypeScript (tsx) before
 * it trains; a built install skips that. Results: results/jobs.json.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { JobClient } from '@kiln/jobs';
import { encodePng } from '@kiln/pipeline';
import { writeTinyModel } from '@kiln/pipeline/testing';

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(here, '..', 'packages', 'cli', 'src', 'bin.ts');
const args = process.argv.slice(2);
const opt = (name: string, def: string) => (args.includes(`--${name}`) ? args[args.indexOf(`--${name}`) + 1] : def);
const workerCounts = opt('workers', '1,2,3').split(',').map(Number);
const numJobs = Number(opt('jobs', '6'));
const steps = Number(opt('steps', '4'));

if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('redis-server is not installed (apt-get install redis-server)');

function image(seed: number): Uint8Array {
  const data = new Uint8ClampedArray(32 * 32 * 4);
  for (let i = 0; i < 32 * 32; i++) data.set([(i * 7 + seed) % 256, (i >> 5) * 8, (seed * 67 + i) % 256, 255], i * 4);
  return encodePng({ width: 32, height: 32, data });
}

async function redisServer(port: number, dir: string): Promise<ChildProcess> {
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]);
  await new Promise<void>((resolve) => p.stdout!.on('data', (d: Buffer) => d.toString().includes('Ready to accept') && resolve()));
  return p;
}

function startWorker(url: string, storage: string): Promise<ChildProcess> {
  const p = spawn(
    process.execPath,
    ['--conditions=kiln-source', '--import', 'tsx', bin, 'worker', '--storage', storage, '--queues', 'train'],
    {
      env: { ...process.env, KILN_REDIS_URL: url },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  return new Promise((resolve) => p.stderr!.on('data', (d: Buffer) => d.toString().includes('serving queue') && resolve(p)));
}

const root = mkdtempSync(join(tmpdir(), 'kiln-bench-jobs-'));
await writeTinyModel(join(root, 'models', 'tiny'));
for (let s = 0; s < 3; s++) {
  mkdirSync(join(root, `subjects/s${s}`), { recursive: true });
  for (let i = 0; i < 2; i++) writeFileSync(join(root, `subjects/s${s}/img${i}.png`), image(s * 10 + i));
}

const runs = [];
for (const [n, workers] of workerCounts.entries()) {
  const port = 46_300 + n;
  const redis = await redisServer(port, root);
  const url = `redis://127.0.0.1:${port}`;
  const procs = await Promise.all(Array.from({ length: workers }, () => startWorker(url, root)));
  const client = await JobClient.connect({ redis: url });
  const load = loadavg()[0];
  const t0 = performance.now();
  const ids = [];
  for (let j = 0; j < numJobs; j++) {
    const config = {
      pretrained_model_name_or_path: 'models/tiny',
      instance_data_dir: `subjects/s${j % 3}`,
      instance_prompt: 'a photo of sks dog',
      output_dir: `bench/w${workers}/job${j}`,
      resolution: 32,
      train_batch_size: 1,
      max_train_steps: steps,
      checkpointing_steps: 2,
      learning_rate: 1e-3,
      seed: j,
      report_to: 'jsonl',
    };
    ids.push(await client.submit('train-dreambooth', { config }));
  }
  const done = new Map<string, number>();
  while (done.size < ids.length) {
    for (const id of ids) {
      if (done.has(id)) continue;
      const s = await client.status(id);
      if (s.state === 'failed') throw new Error(`${id} failed: ${s.failedReason}`);
      if (s.state === 'completed') done.set(id, performance.now() - t0);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  const wallS = Math.max(...done.values()) / 1000;
  const run = { workers, jobs: numJobs, steps, wall_s: wallS, jobs_per_hour: (numJobs / wallS) * 3600, load_before: load };
  console.log(JSON.stringify(run));
  runs.push(run);
  await client.close();
  await Promise.all(procs.map((p) => new Promise((r) => (p.once('exit', r), p.kill('SIGTERM')))));
  redis.kill('SIGTERM');
  rmSync(join(root, 'bench'), { recursive: true, force: true });
}
rmSync(root, { recursive: true, force: true });

const out = join(here, 'results', 'jobs.json');
const previous = (() => {
  try {
    return JSON.parse(readFileSync(out, 'utf8')) as { results: unknown[] };
  } catch {
    return { results: [] };
  }
})();
previous.results.push({
  date: new Date().toISOString(),
  cores: cpus().length,
  backend: 'wasm',
  model: 'tiny (@kiln/pipeline/testing)',
  runs,
});
writeFileSync(out, `${JSON.stringify(previous, null, 2)}\n`);
console.log(`wrote ${out}`);
