/**
 * Run by wasm-stream.test.ts in a child process under `node --import tsx`, the transform the CLI
 * and the trainer run with (it names functions through a helper of its own, which a worker's copy
 * of `streamChunks` would not have): a streamed layerNorm whose chunks the workers copy themselves,
 * against one thread. Prints { streams, same } as JSON.
 */
import { createWasmBackend } from '../src/backends/wasm/index.js';
import { seededView } from './seeded-view.js';

const [one, two] = await Promise.all([createWasmBackend({ threads: 1 }), createWasmBackend({ threads: 2, parallelMinUs: 0 })]);
const { runStream } = two.engine;
let streams = 0;
two.engine.runStream = (...a) => {
  streams++;
  runStream.apply(two.engine, a);
};
const x = seededView([600, 260], 1);
const storage = new Float32Array(new SharedArrayBuffer(x.storage.byteLength));
storage.set(x.storage);
const a = one.layerNorm(x, null, null, 260, 1e-5);
const b = two.layerNorm({ ...x, storage }, null, null, 260, 1e-5);
const same = a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
console.log(JSON.stringify({ streams, same }));
one.dispose();
two.dispose();
