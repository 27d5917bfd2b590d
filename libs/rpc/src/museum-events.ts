/**
 * The typed events of the museum on top of an EventBus: `museum.styles.learned` carries a
 * museum.v1.StyleLearnedEvent as proto3 JSON (readable with `nats sub`), with message id
 * `museum-version-<n>` so that publishing a version twice stores it once.
 */
import { museum } from '@museum/proto';
import type { BusSubscription, EventBus, PublishResult } from './events';

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

export function publishStyleLearned(bus: EventBus, event: StyleLearnedEvent, subjects: MuseumSubjects = museumSubjects()): Promise<PublishResult> {
  const json = JSON.stringify(museum.v1.StyleLearnedEvent.toJSON(event));
  return bus.publish(subjects.stylesLearned, json, { msgId: styleLearnedMsgId(event.museumVersion) });
}

/** Every style-learned event from the start of the stream, then new ones; malformed payloads are reported and skipped. */
export function subscribeStyleLearned(
  bus: EventBus,
  handler: (event: StyleLearnedEvent) => void | Promise<void>,
  subjects: MuseumSubjects = museumSubjects(),
  onBadMessage: (err: unknown) => void = () => {},
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
    await handler(event);
  });
}
