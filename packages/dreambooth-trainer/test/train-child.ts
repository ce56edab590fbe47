// Child process for kill.test.ts: trains with the JSON config in argv[2] and prints "step N"
// after each optimizer step, so the parent can kill it mid-run.
import { trainDreamBooth } from '../src/node.js';

const config = JSON.parse(process.argv[2]) as Parameters<typeof trainDreamBooth>[0];
await trainDreamBooth(config, {
  log: () => {},
  onStep: ({ step }) => {
    process.stdout.write(`step ${step}\n`);
  },
});
process.stdout.write('done\n');
