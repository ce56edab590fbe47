// The model's home: a dedicated worker that loads the pipeline, generates, and runs DreamBooth on the
// built-in world's subject, so the page stays responsive while tensors compute.
import { instanceScenes, renderScene } from '@kiln/world';
import type { RgbaImage } from '@kiln/pipeline';
import { loadModel } from './load-model.js';
import type { LoadedModel } from './load-model.js';
import { pickBackend } from './backend.js';
import { DreamBoothSession } from './dreambooth.js';
import { clearSession, loadSession, saveSession } from './persist.js';
import type { FromWorker, GenerateRequest, ToWorker, TrainRequest } from './protocol.js';

const post = (m: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);

let model: LoadedModel | null = null;
let modelUrl = '';
let session: DreamBoothSession | null = null;
let stopRequested = false;
/** Messages run one at a time (a generation does not interleave with a training step), except `stop`. */
let queue: Promise<void> = Promise.resolve();

async function generate(pipe: LoadedModel['pipe'], r: GenerateRequest): Promise<void> {
  const t0 = performance.now();
  const side = (pipe.unet.config.sample_size ?? 8) * pipe.vaeScaleFactor;
  // One call per image, each from its own seed, so each image is shown as soon as it is done.
  for (let i = 0; i < r.count; i++) {
    const t = performance.now();
    const out = await pipe.txt2img({
      prompt: r.prompt,
      seed: r.seed + i,
      numInferenceSteps: r.steps,
      guidanceScale: r.guidance,
      guidanceRescale: 0.7,
      scheduler: r.scheduler,
      width: side,
      height: side,
    });
    out.images.dispose();
    post({ type: 'image', index: i, image: out.rgba[0], ms: performance.now() - t });
  }
  post({ type: 'generated', ms: performance.now() - t0 });
}

/** The world's subject in its instance contexts, rendered at the model's size. */
function worldSubject(side: number): RgbaImage[] {
  return instanceScenes(5).map((scene) => {
    const rgb = renderScene(scene, side);
    const data = new Uint8ClampedArray(side * side * 4);
    for (let p = 0; p < side * side; p++) {
      data.set(rgb.subarray(p * 3, p * 3 + 3), p * 4);
      data[p * 4 + 3] = 255;
    }
    return { width: side, height: side, data };
  });
}

const sideOf = (m: LoadedModel) => (m.pipe.unet.config.sample_size ?? 8) * m.pipe.vaeScaleFactor;

/** Saves the run to OPFS; resolves to whether it could. */
async function save(s: DreamBoothSession): Promise<boolean> {
  const snap = s.snapshot(modelUrl);
  try {
    return await saveSession(snap.session, snap.unet, snap.optimizer);
  } finally {
    for (const st of Object.values(snap.optimizer.state)) for (const v of Object.values(st)) if (typeof v !== 'number') v.dispose();
  }
}

/** A run saved by an earlier visit of the page, if any, continues where it stopped. */
async function restore(m: LoadedModel): Promise<void> {
  const saved = await loadSession(modelUrl);
  if (!saved) return;
  const { prompt, step, losses, before, after, instances } = saved.session;
  session = await DreamBoothSession.restore(m, { prompt, instances, side: sideOf(m) }, saved);
  post({ type: 'restored', prompt, step, losses, before, after, instances });
}

async function train(m: LoadedModel, r: TrainRequest): Promise<void> {
  const side = sideOf(m);
  const sample = () => session!.sample(r.prompt, r.previewSeeds, r.sampleSteps);
  // A new prompt or a new set of images starts a new run (from the UNet as it is now; Reset goes back to the base model).
  if (!session || session.prompt !== r.prompt || r.instances) {
    session?.dispose();
    const instances = r.instances ?? worldSubject(side);
    post({ type: 'instances', images: instances });
    session = new DreamBoothSession(m, { prompt: r.prompt, instances, side, learningRate: r.learningRate });
    session.before = await sample();
    post({ type: 'samples', which: 'before', images: session.before });
  }
  session.setLearningRate(r.learningRate);
  stopRequested = false;
  const end = session.step + r.steps;
  while (session.step < end && !stopRequested) {
    const t = performance.now();
    const loss = await session.trainStep();
    post({ type: 'loss', step: session.step, totalSteps: end, loss, ms: performance.now() - t });
    // Let a `stop` message in between steps (messages are tasks; awaiting a read alone may not yield to them).
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  session.after = await sample();
  post({ type: 'samples', which: 'after', images: session.after });
  const saved = await save(session);
  post({ type: 'trained', step: session.step, stopped: stopRequested, saved });
}

async function handle(msg: ToWorker): Promise<void> {
  switch (msg.type) {
    case 'init': {
      const t0 = performance.now();
      const { name, detail } = await pickBackend(msg.backend);
      post({ type: 'status', text: `backend ${name}; loading the model…` });
      modelUrl = msg.modelUrl;
      model = await loadModel(msg.modelUrl, (what) => post({ type: 'status', text: `loading ${what}…` }));
      const params = [model.pipe.textEncoder, model.pipe.unet, model.pipe.vae].reduce(
        (n, mod) => n + mod.parameters().reduce((a, p) => a + p.numel(), 0),
        0,
      );
      await restore(model);
      if (!session) post({ type: 'instances', images: worldSubject(sideOf(model)) });
      post({ type: 'ready', backend: name, detail, params, loadMs: performance.now() - t0, side: sideOf(model) });
      return;
    }
    case 'generate':
      return generate(need(model).pipe, msg);
    case 'train':
      return train(need(model), msg);
    case 'download': {
      const bytes = await need(session).unetSafetensors();
      post({ type: 'weights', bytes, name: 'diffusion_pytorch_model.safetensors' }, [bytes.buffer]);
      return;
    }
    case 'forget':
      await clearSession();
      post({ type: 'forgotten' });
      return;
    case 'stop':
      return;
  }
}

function need<T>(x: T | null): T {
  if (x === null) throw new Error('not ready: load the model (and train, to download) first');
  return x;
}

self.onmessage = (e: MessageEvent<ToWorker>) => {
  if (e.data.type === 'stop') {
    stopRequested = true;
    return;
  }
  queue = queue
    .then(() => handle(e.data))
    .catch((err: unknown) => post({ type: 'error', message: String((err as Error)?.message ?? err) }));
};
