// The page: forms, images and the loss curve. Everything that computes runs in ./worker.ts.
import type { RgbaImage } from '@kiln/pipeline';
import { drawLossCurve } from './loss-chart.js';
import type { BackendChoice, FromWorker, ToWorker } from './protocol.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const num = (id: string) => Number($<HTMLInputElement>(id).value);
const params = new URLSearchParams(location.search);
// ?backend=wasm|webgpu|cpu overrides the automatic choice; ?model=<url> loads another diffusers folder.
const backend = (params.get('backend') ?? 'auto') as BackendChoice;
const modelUrl = new URL(params.get('model') ?? 'model/', location.href).href.replace(/\/?$/, '/');

const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (m: ToWorker) => worker.postMessage(m);

const losses: number[] = [];
let totalSteps = 0;
let trained = false;
/** The model's image size (from the worker), and subject images the user picked for the next run. */
let side = 32;
let uploaded: RgbaImage[] | undefined;

function setStatus(text: string, error = false): void {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', error);
}

function imageCanvas(image: RgbaImage): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = image.width;
  c.height = image.height;
  c.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(image.data), image.width, image.height), 0, 0);
  return c;
}

function show(containerId: string, images: readonly RgbaImage[], replace = true): void {
  const box = $(containerId);
  if (replace) box.replaceChildren();
  for (const im of images) box.append(imageCanvas(im));
}

function busy(on: boolean): void {
  $<HTMLButtonElement>('generate').disabled = on;
  $<HTMLButtonElement>('train').disabled = on;
  $<HTMLButtonElement>('stop').disabled = !on;
  $<HTMLButtonElement>('download').disabled = on || !trained;
  document.body.dataset.busy = String(on);
}

worker.onmessage = (e: MessageEvent<FromWorker>) => {
  const m = e.data;
  switch (m.type) {
    case 'status':
      return setStatus(m.text);
    case 'ready':
      $('backend').textContent = m.backend;
      $('backend-detail').textContent = `(${m.detail})`;
      document.body.dataset.backend = m.backend;
      setStatus(`ready: ${(m.params / 1e6).toFixed(2)}M parameters loaded in ${(m.loadMs / 1000).toFixed(1)} s`);
      busy(false);
      side = m.side;
      document.body.dataset.ready = 'true';
      return;
    case 'image':
      show('gallery', [m.image], false);
      return setStatus(`image ${m.index + 1} in ${(m.ms / 1000).toFixed(2)} s`);
    case 'generated':
      busy(false);
      return setStatus(`generated in ${(m.ms / 1000).toFixed(2)} s`);
    case 'instances':
      // A new run: its curve starts empty.
      losses.length = 0;
      drawLossCurve($<HTMLCanvasElement>('loss'), losses, 0);
      return show('instances', m.images);
    case 'samples':
      return show(m.which, m.images);
    case 'loss':
      losses.push(m.loss);
      totalSteps = m.totalSteps;
      drawLossCurve($<HTMLCanvasElement>('loss'), losses, totalSteps);
      $('train-progress').textContent = `step ${m.step} / ${m.totalSteps}, loss ${m.loss.toFixed(4)}, ${m.ms.toFixed(0)} ms/step`;
      return;
    case 'trained':
      trained = true;
      busy(false);
      document.body.dataset.trainedSteps = String(m.step);
      return setStatus(
        (m.stopped ? `stopped at step ${m.step}: Train resumes` : `trained ${m.step} steps`) +
          (m.saved ? ' (saved in this browser: a reload continues from here)' : ''),
      );
    case 'restored':
      trained = true;
      losses.splice(0, losses.length, ...m.losses);
      totalSteps = m.step;
      drawLossCurve($<HTMLCanvasElement>('loss'), losses, totalSteps);
      $<HTMLInputElement>('instance-prompt').value = m.prompt;
      show('instances', m.instances);
      show('before', m.before);
      show('after', m.after);
      $('train-progress').textContent = `restored at step ${m.step} (loss ${m.losses.at(-1)?.toFixed(4) ?? '–'}): Train continues the run`;
      document.body.dataset.restoredStep = String(m.step);
      return;
    case 'forgotten':
      location.reload();
      return;
    case 'weights': {
      const url = URL.createObjectURL(new Blob([m.bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = m.name;
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      return setStatus(`saved ${m.name} (${(m.bytes.byteLength / 1e6).toFixed(1)} MB)`);
    }
    case 'error':
      busy(false);
      return setStatus(m.message, true);
  }
};
worker.onerror = (e) => setStatus(`worker failed: ${e.message}`, true);

$('generate-form').addEventListener('submit', (e) => {
  e.preventDefault();
  $('gallery').replaceChildren();
  busy(true);
  setStatus('generating…');
  send({
    type: 'generate',
    prompt: $<HTMLInputElement>('prompt').value,
    seed: num('seed'),
    steps: num('steps'),
    guidance: num('guidance'),
    scheduler: $<HTMLSelectElement>('scheduler').value,
    count: num('count'),
  });
});

$('train-form').addEventListener('submit', (e) => {
  e.preventDefault();
  busy(true);
  setStatus('training…');
  send({
    type: 'train',
    prompt: $<HTMLInputElement>('instance-prompt').value,
    steps: num('train-steps'),
    learningRate: num('lr'),
    previewSeeds: [0, 1, 2, 3],
    sampleSteps: num('sample-steps'),
    instances: uploaded,
  });
  uploaded = undefined;
});
/** A picked image, centre-cropped to a square and scaled to the model's size (as the trainer's --center_crop). */
async function toModelSize(file: File): Promise<RgbaImage> {
  const bitmap = await createImageBitmap(file);
  const s = Math.min(bitmap.width, bitmap.height);
  const c = new OffscreenCanvas(side, side);
  const ctx = c.getContext('2d')!;
  ctx.drawImage(bitmap, (bitmap.width - s) / 2, (bitmap.height - s) / 2, s, s, 0, 0, side, side);
  bitmap.close();
  return { width: side, height: side, data: ctx.getImageData(0, 0, side, side).data };
}

$('instance-files').addEventListener('change', async () => {
  const files = [...($<HTMLInputElement>('instance-files').files ?? [])];
  if (files.length === 0) return;
  try {
    uploaded = await Promise.all(files.map(toModelSize));
    show('instances', uploaded);
    setStatus(`${uploaded.length} subject image(s) picked: Train starts a new run on them`);
  } catch (e) {
    setStatus(`cannot read the picked images: ${(e as Error).message}`, true);
  }
});
$('stop').addEventListener('click', () => send({ type: 'stop' }));
$('download').addEventListener('click', () => send({ type: 'download' }));
$('forget').addEventListener('click', () => send({ type: 'forget' }));

drawLossCurve($<HTMLCanvasElement>('loss'), [], 0);
send({ type: 'init', modelUrl, backend });
