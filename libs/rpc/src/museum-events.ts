/**
 * The typed events of the museum on top of an EventBus: `museum.styles.learned` carries a
 * museum.v1.StyleLearnedEvent as proto3 JSON (readable with `nats sub`), with message id
 * `museum-version-<n>` so that publishing a version twice stores it once. The publisher's trace
 * context rides in the message headers: each consumer's handling is a child of the publish span.
 */
import { museum } from '@museum/proto';
import type { BusSubscription, EventBus, PublishResult } from './events';
import { SpanKind, extractHeaders, inSpan, injectHeaders } from './tracing';

export type StyleLearnedEvent = museum.v1.StyleLearnedEvent;

export interface MuseumSubjects {
  /** Subjects of the JetStream stream, e.g. `museum.>`. */
  all: string;
  stylesLearned: string;
}

/** Subjects under a prefix (default `museum`; tests use a unique one). */
export function museumSubjects(prefix = 'museum'): MuseumSubjects {
  return { all: `${prefix}.>`, stylesLearned: `${prefix}.styles.learned` };
}

export function styleLearnedMsgId(version: number): string {
  return `museum-version-${version}`;
}

function eventAttributes(subject: string, event: StyleLearnedEvent) {
  return { 'messaging.system': 'nats', 'messaging.destination.name': subject, 'museum.version': event.museumVersion, 'museum.style': event.style };
}

export function publishStyleLearned(bus: EventBus, event: StyleLearnedEvent, subjects: MuseumSubjects = museumSubjects()): Promise<PublishResult> {
  const json = JSON.stringify(museum.v1.StyleLearnedEvent.toJSON(event));
  const subject = subjects.stylesLearned;
  return inSpan(`publish ${subject}`, { kind: SpanKind.PRODUCER, attributes: eventAttributes(subject, event) }, () =>
    bus.publish(subject, json, { msgId: styleLearnedMsgId(event.museumVersion), headers: injectHeaders() }),
  );
}

export interface SubscribeOptions {
  /** Who consumes (span attribute `messaging.consumer.group.name`, e.g. `denoiser`). */
  consumer?: string;
}

/** Every style-learned event from the start of the stream, then new ones; malformed payloads are reported and skipped. */
export function subscribeStyleLearned(
  bus: EventBus,
  handler: (event: StyleLearnedEvent) => void | Promise<void>,
  subjects: MuseumSubjects = museumSubjects(),
  onBadMessage: (err: unknown) => void = () => {},
  options: SubscribeOptions = {},
): Promise<BusSubscription> {
  const decoder = new TextDecoder();
  return bus.subscribe(subjects.stylesLearned, async (msg) => {
    let event: StyleLearnedEvent;
    try {
      event = museum.v1.StyleLearnedEvent.fromJSON(JSON.parse(decoder.decode(msg.data)));
    } catch (err) {
      onBadMessage(err);
      return;
    }
    const subject = subjects.stylesLearned;
    await inSpan(
      `process ${subject}`,
      {
        kind: SpanKind.CONSUMER,
        parent: extractHeaders(msg.headers),
        attributes: { ...eventAttributes(subject, event), ...(options.consumer ? { 'messaging.consumer.group.name': options.consumer } : {}) },
      },
      async () => handler(event),
    );
  });
}
