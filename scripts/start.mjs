// `npm start`: installs what is missing, then runs the main example on its built-in defaults.
import { install, run } from './tooling.mjs';

install();
process.exit(run(process.execPath, ['--conditions=kiln-source', '--import', 'tsx', 'examples/src/train-mlp.ts']));
