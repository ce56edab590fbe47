// Node only: reached through `#node-only`.
import { CLIPTokenizer } from '@kiln/clip';
import { StableDiffusionPipeline } from '@kiln/pipeline';
import { openRun } from '@kiln/tracking/node';
import type { TrainerEnvironment } from './environment.js';
import { nodeStorage } from './storage/node-storage.js';

/** The filesystem, Hub downloads and single files through `fromPretrained`, tracking through `openRun`. */
export function nodeEnvironment(): TrainerEnvironment {
  return {
    storage: nodeStorage(),
    loadPipeline: (source, o) => StableDiffusionPipeline.fromPretrained(source, o),
    loadTokenizer: (source) => CLIPTokenizer.fromPretrained(source),
    openTracker: (dir, reportTo) => openRun(dir, { reportTo }),
    log: (line) => process.stderr.write(`${line}\n`),
  };
}
