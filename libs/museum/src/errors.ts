/**
 * Errors of the museum carry a `code` named after the gRPC status a service should answer with, so the
 * trainer and generation services map them without parsing messages.
 */
export type MuseumErrorCode =
  | 'INVALID_ARGUMENT'
  | 'ALREADY_EXISTS'
  | 'NOT_FOUND'
  | 'FAILED_PRECONDITION'
  /** A stored file does not match the hash its manifest recorded. */
  | 'DATA_LOSS'
  /** Training was cancelled through its AbortSignal (the error's name is then 'AbortError'). */
  | 'CANCELLED';

export class MuseumError extends Error {
  constructor(
    readonly code: MuseumErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    // Cancellation looks like a DOM abort, so `isAbortError` of @museum/models recognises it too.
    this.name = code === 'CANCELLED' ? 'AbortError' : 'MuseumError';
  }
}

export function isMuseumError(err: unknown, code?: MuseumErrorCode): err is MuseumError {
  return err instanceof MuseumError && (code === undefined || err.code === code);
}

/** Style names: lower-case letters, digits and dashes, 1 to 48 characters (they become `<name>` tokens and file names). */
export const STYLE_NAME_PATTERN = /^[a-z0-9-]{1,48}$/;

export function validateStyleName(name: unknown): string {
  if (typeof name !== 'string' || !STYLE_NAME_PATTERN.test(name)) {
    throw new MuseumError('INVALID_ARGUMENT', `invalid style name ${JSON.stringify(name)}: use 1 to 48 characters of [a-z0-9-]`);
  }
  return name;
}

/** The placeholder token a style is prompted with: `in <name>`. */
export function styleTokenOf(name: string): string {
  return `<${name}>`;
}
