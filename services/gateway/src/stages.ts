/**
 * gRPC clients of the three stages, and the mapping of their errors to what the gateway answers:
 * the client's own mistakes (INVALID_ARGUMENT, NOT_FOUND, ...) pass through with their message,
 * an unreachable stage is UNAVAILABLE naming it, anything else INTERNAL naming the stage.
 */
import * as grpc from '@grpc/grpc-js';
import { museum } from '@museum/proto';
import { RpcError, clientOptions, isServiceError, type ChannelOptions } from '@museum/rpc';

export interface StageAddresses {
  textEncoder: string;
  denoiser: string;
  vaeDecoder: string;
}

export class StageClients {
  readonly textEncoder: museum.v1.TextEncoderServiceClient;
  readonly denoiser: museum.v1.DenoiserServiceClient;
  readonly vaeDecoder: museum.v1.VaeDecoderServiceClient;

  constructor(
    readonly addresses: StageAddresses,
    channel: ChannelOptions = {},
  ) {
    const creds = grpc.credentials.createInsecure();
    const opts = clientOptions(channel);
    this.textEncoder = new museum.v1.TextEncoderServiceClient(addresses.textEncoder, creds, opts);
    this.denoiser = new museum.v1.DenoiserServiceClient(addresses.denoiser, creds, opts);
    this.vaeDecoder = new museum.v1.VaeDecoderServiceClient(addresses.vaeDecoder, creds, opts);
  }

  close(): void {
    this.textEncoder.close();
    this.denoiser.close();
    this.vaeDecoder.close();
  }
}

/** Codes that describe the request (or its caller), not a failure of the stage: passed through as they are. */
const PASS_THROUGH = new Set<grpc.status>([
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.ALREADY_EXISTS,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.OUT_OF_RANGE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.CANCELLED,
]);

/** A stage's error as the gateway reports it; `rename` maps the stage's field names to the gateway's. */
export function stageError(stage: string, address: string, err: unknown, rename: (details: string) => string = (d) => d): unknown {
  if (!isServiceError(err)) return err;
  if (PASS_THROUGH.has(err.code)) return new RpcError(err.code, rename(err.details));
  if (err.code === grpc.status.UNAVAILABLE) return new RpcError(grpc.status.UNAVAILABLE, `the ${stage} at ${address} is unavailable: ${err.details}`);
  return new RpcError(grpc.status.INTERNAL, `the ${stage} failed (${grpc.status[err.code]}): ${err.details}`);
}
