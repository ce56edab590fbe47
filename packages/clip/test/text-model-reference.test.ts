import { describe, expect, it } from 'vitest';
import * as k from '@kiln/tensor-core';
import { CLIPTextModel } from '@kiln/clip';
import { FIXTURE, ref, relError } from './text-model-fixture.js';

/**
 * CLIPTextModel against PyTorch (scripts/make_text_model_reference.py) on each backend:
 * `KILN_TEST_BACKENDS` picks them (cpu and wasm by default; the WebGPU suites set webgpu).
 */
const backends = (process.env.KILN_TEST_BACKENDS ?? 'cpu,wasm').split(',').filter((b) => b && k.listBackends().includes(b));

describe.each(backends)('CLIPTextModel against PyTorch (%s)', (backend) => {
  it('matches last hidden state, every hidden state and the pooled output to 1e-4', async () => {
    await k.useBackend('cpu');
    let model = await CLIPTextModel.fromPretrained(FIXTURE);
    if (backend !== 'cpu') {
      await k.useBackend(backend);
      model = await model.toBackend(backend);
    }
    expect(model.numParameters()).toBe(ref.num_parameters);
    const out = k.noGrad(() => model.forward(ref.input_ids));
    expect(out.lastHiddenState.shape).toEqual([3, 16, 32]);
    expect(relError(await out.lastHiddenState.data(), ref.last_hidden_state.flat(2))).toBeLessThan(1e-4);
    expect(out.hiddenStates.length).toBe(4);
    for (let i = 0; i < 4; i++) expect(relError(await out.hiddenStates[i].data(), ref.hidden_states[i].flat(2))).toBeLessThan(1e-4);
    expect(relError(await out.poolerOutput.data(), ref.pooler_output.flat())).toBeLessThan(1e-4);
    await k.useBackend('cpu');
  });
});
