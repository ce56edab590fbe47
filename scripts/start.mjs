// `npm start`: installs what is missing, then runs DreamBooth on the built-in world
// (packages/world/scripts/start.ts; `npm start -- --help` lists its options).
import { install, run } from './tooling.mjs';

install();
const args = ['--conditions=kiln-source', '--import', 'tsx', 'packages/world/scripts/start.ts', ...process.argv.slice(2)];
process.exit(run(process.execPath, args));
