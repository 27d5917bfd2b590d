/**
 * grpc.health.v1.Health (Check, Watch, List) over a table of service statuses. "" is the server as a
 * whole: SERVING only when every registered service is. Services start NOT_SERVING and become
 * SERVING once their weights are loaded; drain turns them NOT_SERVING first so load balancers stop
 * sending traffic before the listener closes.
 */
import * as grpc from '@grpc/grpc-js';
import { grpc as g } from '@museum/proto';

type H = typeof g.health.v1;
export const ServingStatus: H['HealthCheckResponse_ServingStatus'] = g.health.v1.HealthCheckResponse_ServingStatus;
export type ServingStatus = g.health.v1.HealthCheckResponse_ServingStatus;

export class HealthRegistry {
  private readonly statuses = new Map<string, ServingStatus>([['', ServingStatus.NOT_SERVING]]);
  private readonly watchers = new Set<{ service: string; call: grpc.ServerWritableStream<g.health.v1.HealthCheckRequest, g.health.v1.HealthCheckResponse>; last: ServingStatus | null }>();

  /** Register (or update) a service's status; "" follows the others. */
  set(service: string, status: ServingStatus): void {
    this.statuses.set(service, status);
    if (service !== '') this.recomputeOverall();
    this.notify();
  }

  /** Every registered service (except "") to SERVING or NOT_SERVING. */
  setAll(serving: boolean): void {
    const status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    for (const k of this.statuses.keys()) this.statuses.set(k, status);
    this.recomputeOverall();
    this.notify();
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  /** End every Watch stream (a server cannot shut down gracefully while they are open). */
  closeWatchers(): void {
    for (const w of this.watchers) w.call.end();
    this.watchers.clear();
  }

  private recomputeOverall(): void {
    const others = [...this.statuses.entries()].filter(([k]) => k !== '');
    const all = others.length > 0 && others.every(([, s]) => s === ServingStatus.SERVING);
    this.statuses.set('', all ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
  }

  private notify(): void {
    for (const w of this.watchers) {
      const s = this.statuses.get(w.service) ?? ServingStatus.SERVICE_UNKNOWN;
      if (s !== w.last) {
        w.last = s;
        w.call.write({ status: s });
      }
    }
  }

  /** The grpc-js implementation of grpc.health.v1.Health. */
  implementation(): g.health.v1.HealthServer {
    return {
      check: (call, cb) => {
        const s = this.statuses.get(call.request.service);
        if (s === undefined) cb({ code: grpc.status.NOT_FOUND, details: `unknown service '${call.request.service}'` });
        else cb(null, { status: s });
      },
      list: (_call, cb) => {
        const statuses: Record<string, g.health.v1.HealthCheckResponse> = {};
        for (const [k, s] of this.statuses) statuses[k] = { status: s };
        cb(null, { statuses });
      },
      watch: (call) => {
        const s = this.statuses.get(call.request.service) ?? ServingStatus.SERVICE_UNKNOWN;
        const w = { service: call.request.service, call, last: s as ServingStatus | null };
        this.watchers.add(w);
        call.write({ status: s });
        const drop = () => this.watchers.delete(w);
        call.on('cancelled', drop);
        call.on('close', drop);
      },
    };
  }
}
