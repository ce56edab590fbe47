// The thread a job's work runs in, so the worker's own event loop stays free to renew BullMQ's
// job lock (a training step may take longer than the lock) and to hear cancellations. It runs a
// fixed task (training or generation) with data only; nothing from a payload is executed.
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import * as k from '@kiln/tensor-core';
import { trainDreamBooth } from '@kiln/dreambooth-trainer/node';
import { StableDiffusionPipeline, formatParameters } from '@kiln/pipeline';
import { writePng } from '@kiln/pipeline/node';
import type { ControlMessage, GenerateTask, ThreadMessage, ThreadTask, TrainTask } from './thread-protocol.js';

const port = parentPort!;
const post = (m: ThreadMessage) => port.postMessage(m);
const controller = new AbortController();
port.on('message', (m: ControlMessage) => {
  if (m.type === 'abort') controller.abort();
});
// Lets the abort message in between steps (a step runs synchronously).
const yieldToEvents = () => new Promise<void>((r) => setImmediate(r));

async function train(task: TrainTask): Promise<ThreadMessage & { type: 'done' }> {
  const r = await trainDreamBooth(task.config, {
    signal: controller.signal,
    log: (line) => post({ type: 'log', line }),
    onStep: async (s) => {
      post({ type: 'train-step', step: s.step, maxSteps: s.maxSteps, epoch: s.epoch, loss: s.loss, lr: s.lr, itPerSec: s.itPerSec });
      await yieldToEvents();
    },
  });
  return { type: 'done', result: { step: r.step, interrupted: r.interrupted, losses: r.losses } };
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

async function loadPipeline(task: GenerateTask): Promise<StableDiffusionPipeline> {
  const pipe = await StableDiffusionPipeline.fromPretrained(task.model);
  try {
    for (const { file, scale } of task.loras) await pipe.loadLoraWeights(file, { scale });
  } catch (e) {
    pipe.dispose();
    throw e;
  }
  return pipe;
}

async function generate(task: GenerateTask): Promise<ThreadMessage & { type: 'done' }> {
  await k.useBackend(task.backend);
  let pipe: StableDiffusionPipeline | undefined;
  try {
    for (const [r, { options: o, stem }] of task.requests.entries()) {
      for (let i = 0; i < o.numImages; i++) {
        const file = `${stem}-${i}.png`;
        const seed = o.seed + i;
        // An image an earlier attempt wrote (atomically) is done: the same seed would make the same pixels.
        if (await exists(join(task.out, file))) {
          post({ type: 'image', request: r, file, seed, skipped: true });
          continue;
        }
        pipe ??= await loadPipeline(task);
        const { rgba, images, scheduler } = await pipe.txt2img({
          prompt: o.prompt,
          negativePrompt: o.negativePrompt,
          numInferenceSteps: o.steps,
          guidanceScale: o.guidanceScale,
          scheduler: o.scheduler,
          width: o.width,
          height: o.height,
          seed,
          callback: async ({ step, numSteps }) => {
            post({ type: 'generate-step', request: r, image: i, step: step + 1, steps: numSteps });
            await yieldToEvents();
            if (controller.signal.aborted) throw Object.assign(new Error('cancelled'), { name: 'JobCancelledError' });
          },
        });
        images.dispose();
        const parameters = formatParameters({
          prompt: o.prompt,
          negativePrompt: o.negativePrompt,
          steps: o.steps,
          scheduler,
          guidanceScale: o.guidanceScale,
          seed,
          width: rgba[0].width,
          height: rgba[0].height,
          model: task.modelName,
        });
        await writePng(join(task.out, file), rgba[0], { parameters });
        post({ type: 'image', request: r, file, seed, skipped: false });
      }
    }
  } finally {
    pipe?.dispose();
  }
  return { type: 'done', result: null };
}

const task = workerData as ThreadTask;
try {
  post(task.kind === 'train' ? await train(task) : await generate(task));
} catch (e) {
  const err = e instanceof Error ? e : new Error(String(e));
  post({ type: 'error', name: err.name, message: err.message });
}
port.close();
