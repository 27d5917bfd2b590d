/**
 * The lifecycle every Museum service follows:
 *
 *   start()  bind the port (health answers NOT_SERVING at once), then load the weights in the
 *            background; resolves to the port.
 *   ready    resolves when the weights are loaded and health says SERVING (rejects if loading fails).
 *   drain()  NOT_SERVING, stop accepting new calls, let in-flight calls finish (bounded by a grace).
 *   stop()   drain, then free the models and close event subscriptions.
 */
import { initBackend } from '@museum/tensor';
import { ServiceHost, ServiceHostOptions } from './host';

export interface ServiceOptions extends Omit<ServiceHostOptions, 'name'> {
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Port (default 0: chosen by the OS). */
  port?: number;
  /** Loading waits for this promise (tests use it to observe NOT_SERVING). */
  loadGate?: Promise<unknown>;
  /** How long drain waits for in-flight calls before cancelling them (default 30 s). */
  drainGraceMs?: number;
}

export abstract class ManagedService {
  readonly host: ServiceHost;
  private readyPromise: Promise<void> | null = null;
  private stopped: Promise<void> | null = null;
  protected readonly log: (msg: string) => void;
  private loaded = false;
  private registered = false;

  constructor(
    readonly name: string,
    protected readonly serviceOptions: ServiceOptions,
  ) {
    this.log = serviceOptions.log ?? (() => {});
    this.host = new ServiceHost({ ...serviceOptions, name });
  }

  /** Add the service's gRPC services to the host (called once, by the first `start`). */
  protected abstract register(host: ServiceHost): void;
  /** Load weights and whatever else the service needs before SERVING. */
  protected abstract load(): Promise<void>;
  /** Free models and subscriptions (after drain). */
  protected abstract unload(): Promise<void>;
  /** Called when drain starts, before the server stops accepting: end long-lived streams here. */
  protected onDrain(): void {}

  /** Bind, then load in the background; resolves to the bound port. */
  async start(): Promise<number> {
    if (!this.registered) {
      this.registered = true;
      this.register(this.host);
    }
    const port = await this.host.listen(this.serviceOptions.host ?? '127.0.0.1', this.serviceOptions.port ?? 0);
    if (!this.readyPromise) {
      this.readyPromise = (async () => {
        await initBackend({ log: this.log });
        // let health checks see NOT_SERVING before a synchronous weight load takes the event loop
        await new Promise<void>((r) => setImmediate(r));
        if (this.serviceOptions.loadGate) await this.serviceOptions.loadGate;
        if (this.stopped) return;
        await this.load();
        this.loaded = true;
        if (!this.stopped) this.host.setServing(true);
      })();
      // a failed load must not be an unhandled rejection when nobody awaits `ready`
      this.readyPromise.catch((err: unknown) => this.log(`${this.name}: loading failed: ${err instanceof Error ? err.message : String(err)}`));
    }
    return port;
  }

  get ready(): Promise<void> {
    if (!this.readyPromise) return Promise.reject(new Error(`${this.name}: start() has not been called`));
    return this.readyPromise;
  }

  get port(): number | null {
    return this.host.port;
  }

  get isLoaded(): boolean {
    return this.loaded;
  }

  /** Graceful: NOT_SERVING, stop accepting, finish in-flight calls. */
  async drain(graceMs = this.serviceOptions.drainGraceMs ?? 30_000): Promise<void> {
    this.onDrain();
    await this.host.drain(graceMs);
  }

  /** Drain, then free everything. Safe to call more than once. */
  stop(graceMs?: number): Promise<void> {
    if (!this.stopped) {
      this.stopped = (async () => {
        await this.drain(graceMs);
        await this.readyPromise?.catch(() => {});
        await this.unload();
      })();
    }
    return this.stopped;
  }
}
