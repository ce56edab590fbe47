import { loadWeights } from '@kiln/nn';
import type { Module } from '@kiln/nn';
import { openWeights } from '@kiln/nn/node';

/** Loads a checkpoint's weights into a trained model (names and shapes checked by loadWeights). */
export async function loadTrainedWeights(m: Module, dir: string): Promise<void> {
  const source = await openWeights(dir);
  try {
    await loadWeights(m, source);
  } finally {
    await source.close();
  }
}
