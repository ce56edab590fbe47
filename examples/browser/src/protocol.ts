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
}

export type ToWorker =
  { type: 'init'; modelUrl: string; backend: BackendChoice } | GenerateRequest | TrainRequest | { type: 'stop' } | { type: 'download' };

export type FromWorker =
  | { type: 'status'; text: string }
  | { type: 'ready'; backend: string; detail: string; params: number; loadMs: number }
  | { type: 'image'; index: number; image: RgbaImage; ms: number }
  | { type: 'generated'; ms: number }
  | { type: 'instances'; images: RgbaImage[] }
  | { type: 'samples'; which: 'before' | 'after'; images: RgbaImage[] }
  | { type: 'loss'; step: number; totalSteps: number; loss: number; ms: number }
  | { type: 'trained'; step: number; stopped: boolean }
  | { type: 'weights'; bytes: Uint8Array; name: string }
  | { type: 'error'; message: string };
