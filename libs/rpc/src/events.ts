/**
 * Museum's event bus. With NATS (NATS_URL), events live in a JetStream stream (`MUSEUM`, subjects
 * `museum.>`) so that a replica started later replays every event from the start of the stream and
 * catches up; publishing sets the JetStream message id, so a retried publish is stored once.
 * Without NATS, an in-process bus with the same semantics (retained log, de-duplication by id,
 * replay on subscribe) connects the services of one process. Both carry message headers (the
 * trace context travels in them).
 */
import { connect } from '@nats-io/transport-node';
import { headers as natsHeaders } from '@nats-io/nats-core';
import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';

type NatsConnection = Awaited<ReturnType<typeof connect>>;

export interface BusMessage {
  subject: string;
  data: Uint8Array;
  /** Position in the stream (1-based). */
  seq: number;
  msgId?: string;
  /** Headers the publisher set (e.g. W3C `traceparent`). */
  headers?: Record<string, string>;
}

export interface BusPublishOptions {
  /** De-duplication id: a second publish with the same id stores nothing. */
  msgId?: string;
  headers?: Record<string, string>;
}

export type BusHandler = (msg: BusMessage) => void | Promise<void>;

export interface BusSubscription {
  unsubscribe(): Promise<void>;
}

export interface PublishResult {
  seq: number;
  /** The message id had been published before: nothing new was stored. */
  duplicate: boolean;
}

export interface EventBus {
  readonly kind: 'nats' | 'in-process';
  /** For logs: where events go. */
  readonly description: string;
  publish(subject: string, data: Uint8Array | string, options?: BusPublishOptions): Promise<PublishResult>;
  /** Every message of `subject` from the start of the stream, then new ones, in order; one handler call at a time. */
  subscribe(subject: string, handler: BusHandler): Promise<BusSubscription>;
  close(): Promise<void>;
}

const encoder = new TextEncoder();
const asBytes = (d: Uint8Array | string) => (typeof d === 'string' ? encoder.encode(d) : d);

/** Runs handler calls one after another; a failing handler is reported, not fatal. */
function serialQueue(handler: BusHandler, onError: (err: unknown) => void) {
  let chain = Promise.resolve();
  return (msg: BusMessage) => {
    chain = chain.then(() => handler(msg)).catch(onError);
    return chain;
  };
}

export class InProcessEventBus implements EventBus {
  readonly kind = 'in-process' as const;
  readonly description = 'in-process event bus (NATS_URL not set: events reach only the services of this process)';
  private readonly log: BusMessage[] = [];
  private readonly ids = new Map<string, number>();
  private readonly subs = new Set<{ subject: string; deliver: (m: BusMessage) => Promise<void> }>();

  constructor(private readonly onError: (err: unknown) => void = () => {}) {}

  async publish(subject: string, data: Uint8Array | string, options: BusPublishOptions = {}): Promise<PublishResult> {
    if (options.msgId !== undefined) {
      const seq = this.ids.get(options.msgId);
      if (seq !== undefined) return { seq, duplicate: true };
    }
    const msg: BusMessage = { subject, data: asBytes(data), seq: this.log.length + 1, msgId: options.msgId, headers: options.headers && { ...options.headers } };
    this.log.push(msg);
    if (options.msgId !== undefined) this.ids.set(options.msgId, msg.seq);
    for (const s of this.subs) if (subjectMatches(s.subject, subject)) void s.deliver(msg);
    return { seq: msg.seq, duplicate: false };
  }

  async subscribe(subject: string, handler: BusHandler): Promise<BusSubscription> {
    const sub = { subject, deliver: serialQueue(handler, this.onError) };
    for (const m of this.log) if (subjectMatches(subject, m.subject)) void sub.deliver(m);
    this.subs.add(sub);
    return { unsubscribe: async () => void this.subs.delete(sub) };
  }

  async close(): Promise<void> {
    this.subs.clear();
  }
}

/** NATS subject matching with `*` (one token) and `>` (the rest). */
export function subjectMatches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

export interface NatsEventBusOptions {
  /** nats://host:port (comma-separated for several servers). */
  url: string;
  /** JetStream stream name (default MUSEUM). */
  stream?: string;
  /** Subjects the stream holds (default `museum.>`). */
  subjects?: string[];
  /** Connection name shown by the server. */
  name?: string;
  onError?: (err: unknown) => void;
}

export class NatsEventBus implements EventBus {
  readonly kind = 'nats' as const;
  readonly description: string;
  private readonly subs = new Set<ConsumerMessages>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly stream: string,
    private readonly onError: (err: unknown) => void,
    url: string,
  ) {
    this.description = `NATS JetStream at ${url} (stream ${stream})`;
  }

  /** Connect and make sure the stream exists (created with the given subjects if missing). */
  static async connect(o: NatsEventBusOptions): Promise<NatsEventBus> {
    const stream = o.stream ?? 'MUSEUM';
    const subjects = o.subjects ?? ['museum.>'];
    const servers = o.url.split(',').map((s) => s.trim().replace(/^nats:\/\//, ''));
    const nc = await connect({ servers, name: o.name ?? 'museum', timeout: 5000 });
    try {
      const jsm = await jetstreamManager(nc);
      try {
        await jsm.streams.info(stream);
      } catch {
        await jsm.streams.add({ name: stream, subjects });
      }
      return new NatsEventBus(nc, jetstream(nc), jsm, stream, o.onError ?? (() => {}), o.url);
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  async publish(subject: string, data: Uint8Array | string, options: BusPublishOptions = {}): Promise<PublishResult> {
    let headers;
    if (options.headers && Object.keys(options.headers).length > 0) {
      headers = natsHeaders();
      for (const [k, v] of Object.entries(options.headers)) headers.set(k, v);
    }
    const ack = await this.js.publish(subject, asBytes(data), { ...(options.msgId ? { msgID: options.msgId } : {}), ...(headers ? { headers } : {}) });
    return { seq: ack.seq, duplicate: ack.duplicate };
  }

  /** An ordered consumer from the first message: every replica sees every event, late ones catch up. */
  async subscribe(subject: string, handler: BusHandler): Promise<BusSubscription> {
    const consumer = await this.js.consumers.get(this.stream, { filter_subjects: subject, deliver_policy: DeliverPolicy.All });
    const messages = await consumer.consume();
    this.subs.add(messages);
    const deliver = serialQueue(handler, this.onError);
    void (async () => {
      try {
        for await (const m of messages) {
          await deliver({ subject: m.subject, data: m.data, seq: m.seq, msgId: m.headers?.get('Nats-Msg-Id') || undefined, headers: headerRecord(m.headers) });
        }
      } catch (err) {
        this.onError(err);
      }
    })();
    return {
      unsubscribe: async () => {
        this.subs.delete(messages);
        await messages.close();
      },
    };
  }

  /** Delete the stream (tests clean up their own streams). */
  async deleteStream(): Promise<void> {
    await this.jsm.streams.delete(this.stream);
  }

  async close(): Promise<void> {
    for (const m of this.subs) await m.close().catch(() => {});
    this.subs.clear();
    await this.nc.drain().catch(() => this.nc.close());
  }
}

/** NATS headers as a record (first value of each key; none -> undefined). */
function headerRecord(h: { keys(): string[]; get(k: string): string } | undefined): Record<string, string> | undefined {
  if (!h) return undefined;
  const out: Record<string, string> = {};
  for (const k of h.keys()) out[k] = h.get(k);
  return out;
}

export interface EventBusFromEnvOptions {
  env?: NodeJS.ProcessEnv;
  stream?: string;
  subjects?: string[];
  log?: (msg: string) => void;
}

/** NATS when NATS_URL is set, else the in-process bus; logs which. */
export async function eventBusFromEnv(o: EventBusFromEnvOptions = {}): Promise<EventBus> {
  const env = o.env ?? process.env;
  const log = o.log ?? (() => {});
  const onError = (err: unknown) => log(`event bus: ${err instanceof Error ? err.message : String(err)}`);
  const bus: EventBus = env.NATS_URL
    ? await NatsEventBus.connect({ url: env.NATS_URL, stream: o.stream, subjects: o.subjects, onError })
    : new InProcessEventBus(onError);
  log(`events: ${bus.description}`);
  return bus;
}
