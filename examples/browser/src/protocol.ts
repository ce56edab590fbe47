// The messages between the page and the worker that holds the model (generation and training both
// run there, so the page stays responsive). Images travel as RGBA bytes.
import type { RgbaImage } from '@kiln/pipeline';

/** `auto`: WebGPU where `navigator.gpu` gives an adapter, else wasm (threaded when cross-origin isolated). */
export type BackendChoice = 'auto' | 'webgpu' | 'wasm' | 'cpu';

export interface GenerateRequest {
  type: 'generate';
  prompt: string;
  seed: number;
  steps: number;
  guidance: number;
  scheduler: string;
  count: number;
}

export interface TrainRequest {
  type: 'train';
  prompt: string;
  steps: number;
  learningRate: number;
  /** Seeds of the before/after samples (same seeds before and after). */
  previewSeeds: number[];
  /** Sampling steps of the before/after samples. */
  sampleSteps: number;
  /** Subject images chosen by the user (at the model's resolution); absent: the world's subject. A new set starts a new run. */
  instances?: RgbaImage[];
}

export type ToWorker =
  | { type: 'init'; modelUrl: string; backend: BackendChoice }
  | GenerateRequest
  | TrainRequest
  | { type: 'stop' }
  | { type: 'forget' }
  | { type: 'download' };

export type FromWorker =
  | { type: 'status'; text: string }
  | { type: 'ready'; backend: string; detail: string; params: number; loadMs: number; side: number }
  | { type: 'image'; index: number; image: RgbaImage; ms: number }
  | { type: 'generated'; ms: number }
  | { type: 'instances'; images: RgbaImage[] }
  | { type: 'samples'; which: 'before' | 'after'; images: RgbaImage[] }
  | { type: 'loss'; step: number; totalSteps: number; loss: number; ms: number }
  | { type: 'trained'; step: number; stopped: boolean; saved: boolean }
  | { type: 'restored'; prompt: string; step: number; losses: number[]; before: RgbaImage[]; after: RgbaImage[]; instances: RgbaImage[] }
  | { type: 'forgotten' }
  | { type: 'weights'; bytes: Uint8Array; name: string }
  | { type: 'error'; message: string };
