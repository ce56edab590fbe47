/** Base class of every error Kiln raises on purpose; `instanceof KilnError` tells them from bugs. */
export class KilnError extends Error {
  override name = 'KilnError';
}

/** Shapes that do not fit the op (the message names both shapes and the rule they break). */
export class ShapeError extends KilnError {
  override name = 'ShapeError';
}

/** A dtype the op does not accept, or an unknown dtype name. */
export class DTypeError extends KilnError {
  override name = 'DTypeError';
}

/** The tensor was disposed (directly, by `tidy`, or by `using`) and then used. */
export class DisposedError extends KilnError {
  override name = 'DisposedError';
}

/** A backend that is unknown, unavailable here, or that failed (device lost, out of memory). */
export class BackendError extends KilnError {
  override name = 'BackendError';
}

/** An argument that is not a shape or dtype problem: a bad option, an out-of-range value. */
export class ArgumentError extends KilnError {
  override name = 'ArgumentError';
}
