/** Base class of every error Kiln raises on purpose; `instanceof KilnError` tells them from bugs. @example try { k.zeros([2, 3]).matmul(k.zeros([2, 3])); } catch (e) { if (e instanceof k.KilnError) console.error(e.message); } */
export class KilnError extends Error {
  override name = 'KilnError';
}

/** Shapes that do not fit the op (the message names both shapes and the rule they break). @example k.zeros([2, 3]).matmul(k.zeros([2, 3])); // throws ShapeError naming [2, 3] and [2, 3] */
export class ShapeError extends KilnError {
  override name = 'ShapeError';
}

/** A dtype the op does not accept, or an unknown dtype name. @example k.assertDType('float8', 'header dtype'); // throws DTypeError */
export class DTypeError extends KilnError {
  override name = 'DTypeError';
}

/** The tensor was disposed (directly, by `tidy`, or by `using`) and then used. @example const t = k.ones([2]); t.dispose(); t.add(1); // throws DisposedError */
export class DisposedError extends KilnError {
  override name = 'DisposedError';
}

/** A backend that is unknown, unavailable here, or that failed (device lost, out of memory). @example await k.useBackend('tpu'); // throws BackendError: unknown backend 'tpu'; registered: cpu, webgpu, wasm */
export class BackendError extends KilnError {
  override name = 'BackendError';
}

/** An argument that is not a shape or dtype problem: a bad option, an out-of-range value. @example k.zeros([4]).slice(0, 0, NaN); // throws ArgumentError naming the argument */
export class ArgumentError extends KilnError {
  override name = 'ArgumentError';
}
