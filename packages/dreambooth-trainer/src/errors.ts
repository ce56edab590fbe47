import { KilnError } from '@kiln/tensor-core';

/** A run's settings are wrong: an unknown option, a wrong type or value, a missing required one. */
export class TrainerConfigError extends KilnError {
  override name = 'TrainerConfigError';
  /** The option at fault, when there is one. */
  readonly field?: string;
  /** Its bad value. */
  readonly value?: unknown;
  constructor(message: string, details: { field?: string; value?: unknown } = {}) {
    super(message);
    this.field = details.field;
    this.value = details.value;
  }
}

/** Training data Kiln cannot use: no images, an image that does not decode, one too small. */
export class DatasetError extends KilnError {
  override name = 'DatasetError';
}

/** A checkpoint that cannot be resumed: missing, corrupt, or made from another model or run. */
export class CheckpointError extends KilnError {
  override name = 'CheckpointError';
}

/** Training went bad: a non-finite loss. Names the step and the loss term. */
export class TrainingDivergedError extends KilnError {
  override name = 'TrainingDivergedError';
  constructor(
    message: string,
    readonly step: number,
    readonly term: string,
  ) {
    super(message);
  }
}

/** The trained model could not be written (a full disk, an I/O error); names the folder and the cause. */
export class OutputError extends KilnError {
  override name = 'OutputError';
}
