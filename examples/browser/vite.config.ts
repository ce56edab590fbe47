// The browser app: `vite` (dev), `vite build` (static folder in dist/), `vite preview` (serves dist/).
// The model is a diffusers folder served beside the page under `model/`: the built-in world's base
// model (packages/world/model), or the folder named by KILN_BROWSER_MODEL.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultClientConditions, defineConfig } from 'vite';
import type { Plugin } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));
const modelDir = resolve(process.env.KILN_BROWSER_MODEL ?? join(here, '../../packages/world/model'));
/** What the page fetches from a diffusers folder (training logs and the like stay behind). */
const MODEL_FILE = /\.(json|txt|safetensors)$/;

function modelFiles(dir: string): string[] {
  if (!existsSync(join(dir, 'model_index.json'))) {
    throw new Error(
      `${dir}: no model_index.json. The app serves a diffusers folder as model/: train or fetch the world's base model, or set KILN_BROWSER_MODEL`,
    );
  }
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) {
        if (name !== 'logs') walk(p);
      } else if (MODEL_FILE.test(name)) out.push(relative(dir, p).split(sep).join('/'));
    }
  };
  walk(dir);
  return out;
}

/** Serves the model folder at `model/` (dev and preview) and copies it into the build. */
function serveModel(): Plugin {
  const middleware = (req: { url?: string }, res: import('node:http').ServerResponse, next: () => void) => {
    const path = decodeURIComponent((req.url ?? '').split('?')[0]);
    const m = /\/model\/(.+)$/.exec(path);
    if (!m || m[1].includes('..')) return next();
    const file = join(modelDir, m[1]);
    if (!existsSync(file) || !MODEL_FILE.test(file)) return next();
    res.setHeader('Content-Type', file.endsWith('.json') ? 'application/json' : 'application/octet-stream');
    res.end(readFileSync(file));
  };
  return {
    name: 'kiln-serve-model',
    configureServer: (server) => void server.middlewares.use(middleware),
    configurePreviewServer: (server) => void server.middlewares.use(middleware),
    generateBundle() {
      for (const f of modelFiles(modelDir))
        this.emitFile({ type: 'asset', fileName: `model/${f}`, source: readFileSync(join(modelDir, f)) });
    },
  };
}

// Cross-origin isolation gives the page SharedArrayBuffer, so the wasm backend runs threaded.
const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  root: here,
  // Relative asset URLs, so dist/ works from any folder of a static server.
  base: './',
  // The workspace's packages are used from their TypeScript sources (their `kiln-source` export).
  resolve: { conditions: ['kiln-source', ...defaultClientConditions] },
  // Node-only modules (file loaders, the Hub client) resolve to browser builds that throw
  // NodeOnlyError, through the packages' `browser` export and import conditions.
  plugins: [serveModel()],
  worker: { format: 'es' },
  server: { headers: isolation },
  preview: { headers: isolation },
  build: { target: 'es2022', chunkSizeWarningLimit: 4096 },
});
