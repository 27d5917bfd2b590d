/**
 * One gRPC server for one Museum service: its own port, grpc.health.v1, server reflection,
 * museum.v1.InfoService, message-size limits enforced by grpc-js before a message is decoded, and a
 * graceful drain (NOT_SERVING first, then stop accepting and let in-flight calls finish).
 */
import * as grpc from '@grpc/grpc-js';
import { backendInfo } from '@museum/tensor';
import { grpc as g, museum } from '@museum/proto';
import { HealthRegistry, ServingStatus } from './health';
import { addReflection } from './reflection';
import { DEFAULT_MAX_MESSAGE_BYTES } from './client';

export interface ServiceHostOptions {
  /** Short name, e.g. "denoiser" (InfoService.service). */
  name: string;
  /** Version of the service's package. */
  version?: string;
  /** Version of the Museum release. */
  museumVersion?: string;
  /** Largest request accepted, in bytes; larger ones are refused with RESOURCE_EXHAUSTED before decoding. */
  maxReceiveMessageLength?: number;
  maxSendMessageLength?: number;
  /** Serve grpc.reflection (default true). */
  reflection?: boolean;
  log?: (msg: string) => void;
}

export class ServiceHost {
  readonly server: grpc.Server;
  readonly health = new HealthRegistry();
  private readonly names: string[] = [];
  private bound: number | null = null;
  private closing: Promise<void> | null = null;
  private readonly log: (msg: string) => void;

  constructor(readonly options: ServiceHostOptions) {
    this.log = options.log ?? (() => {});
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxReceiveMessageLength ?? DEFAULT_MAX_MESSAGE_BYTES,
      'grpc.max_send_message_length': options.maxSendMessageLength ?? DEFAULT_MAX_MESSAGE_BYTES,
    });
    this.server.addService(g.health.v1.HealthService, this.health.implementation() as unknown as grpc.UntypedServiceImplementation);
    const info: museum.v1.InfoServiceServer = {
      getInfo: (_call, cb) => {
        let backend = '';
        let backendPackage = '';
        try {
          const b = backendInfo();
          backend = b.name;
          backendPackage = b.package;
        } catch {
          // the backend is chosen while the weights load
        }
        cb(null, { service: options.name, version: options.version ?? '', museumVersion: options.museumVersion ?? '', backend, backendPackage });
      },
    };
    this.server.addService(museum.v1.InfoServiceService, info as unknown as grpc.UntypedServiceImplementation);
    this.names.push('museum.v1.InfoService');
  }

  /** Add a service (fully-qualified name, e.g. museum.v1.DenoiserService); it reports NOT_SERVING until `setServing(true)`. */
  addService(fullName: string, definition: grpc.ServiceDefinition, implementation: object): void {
    this.server.addService(definition, implementation as grpc.UntypedServiceImplementation);
    this.names.push(fullName);
    this.health.set(fullName, ServingStatus.NOT_SERVING);
  }

  /** Fully-qualified names of the services served (health, info and the added ones). */
  get serviceNames(): string[] {
    return [...this.names];
  }

  /** Bind `host:port` (port 0 = chosen by the OS); resolves to the port. Adds reflection on first bind. */
  async listen(host = '127.0.0.1', port = 0): Promise<number> {
    if (this.bound !== null) return this.bound;
    if (this.options.reflection ?? true) addReflection(this.server, [...this.names, 'grpc.health.v1.Health'], this.log);
    const addr = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
    this.bound = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(addr, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.health.set('museum.v1.InfoService', ServingStatus.SERVING);
    return this.bound;
  }

  get port(): number | null {
    return this.bound;
  }

  /** Every service SERVING (weights loaded) or NOT_SERVING. */
  setServing(serving: boolean): void {
    this.health.setAll(serving);
  }

  /**
   * Graceful shutdown: NOT_SERVING, end health Watch streams, stop accepting new calls and wait for
   * in-flight ones; after `graceMs` whatever is still running is cancelled.
   */
  drain(graceMs = 30_000): Promise<void> {
    if (this.closing) return this.closing;
    this.setServing(false);
    this.health.closeWatchers();
    this.closing = new Promise<void>((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        this.log(`${this.options.name}: drain grace of ${graceMs} ms over, cancelling the calls still running`);
        this.server.forceShutdown();
      }, graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        done = true;
        clearTimeout(timer);
        resolve();
      });
    });
    return this.closing;
  }

  /** Cancel everything at once. */
  forceStop(): void {
    this.health.closeWatchers();
    this.server.forceShutdown();
  }
}
