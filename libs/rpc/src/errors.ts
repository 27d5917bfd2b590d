/**
 * Status errors for the services: handlers throw `RpcError`s (or plain errors), and `toServiceError`
 * turns whatever was thrown into the grpc-js error a callback or stream `destroy` expects. Bad input
 * names the offending field so a client can tell what to fix.
 */
import * as grpc from '@grpc/grpc-js';

export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

/** INVALID_ARGUMENT naming the field: `field: message`. */
export function invalidArgument(field: string, message: string): RpcError {
  return new RpcError(grpc.status.INVALID_ARGUMENT, `${field}: ${message}`);
}

export function notFound(message: string): RpcError {
  return new RpcError(grpc.status.NOT_FOUND, message);
}

export function alreadyExists(message: string): RpcError {
  return new RpcError(grpc.status.ALREADY_EXISTS, message);
}

export function resourceExhausted(message: string): RpcError {
  return new RpcError(grpc.status.RESOURCE_EXHAUSTED, message);
}

export function unavailable(message: string): RpcError {
  return new RpcError(grpc.status.UNAVAILABLE, message);
}

export function failedPrecondition(message: string): RpcError {
  return new RpcError(grpc.status.FAILED_PRECONDITION, message);
}

/** A grpc-js ServiceError as a client sees it (code + details). */
export function isServiceError(err: unknown): err is grpc.ServiceError {
  return err instanceof Error && typeof (err as Partial<grpc.ServiceError>).code === 'number' && 'details' in err;
}

/** The status code of anything thrown: RpcError / ServiceError codes, aborts as CANCELLED or DEADLINE_EXCEEDED, else INTERNAL. */
export function statusOf(err: unknown): grpc.status {
  if (err instanceof RpcError) return err.code;
  if (isServiceError(err)) return err.code;
  if (err instanceof Error && err.name === 'AbortError') return /deadline/i.test(err.message) ? grpc.status.DEADLINE_EXCEEDED : grpc.status.CANCELLED;
  // errors of the libraries that carry a status name as their code (MuseumError: 'INVALID_ARGUMENT', 'NOT_FOUND', ...)
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code !== 'OK' && code in grpc.status && typeof grpc.status[code as keyof typeof grpc.status] === 'number') {
    return grpc.status[code as keyof typeof grpc.status];
  }
  return grpc.status.INTERNAL;
}

/** The error a grpc-js handler reports: keeps codes and messages of expected errors, prefixes internal ones. */
export function toServiceError(err: unknown, context = ''): Partial<grpc.StatusObject> & Error {
  const code = statusOf(err);
  let details = isServiceError(err) ? err.details : err instanceof Error ? err.message : String(err);
  if (code === grpc.status.INTERNAL && context) details = `${context}: ${details}`;
  const out = new Error(details) as Error & Partial<grpc.StatusObject>;
  out.code = code;
  out.details = details;
  return out;
}
