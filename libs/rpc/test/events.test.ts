import { InProcessEventBus, NatsEventBus, museumSubjects, publishStyleLearned, subjectMatches, subscribeStyleLearned, type EventBus, type StyleLearnedEvent } from '../src';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('subject patterns match as NATS does', () => {
  expect(subjectMatches('museum.>', 'museum.styles.learned')).toBe(true);
  expect(subjectMatches('museum.>', 'museum')).toBe(false);
  expect(subjectMatches('museum.*.learned', 'museum.styles.learned')).toBe(true);
  expect(subjectMatches('museum.*', 'museum.styles.learned')).toBe(false);
  expect(subjectMatches('museum.styles.learned', 'museum.styles.learned')).toBe(true);
  expect(subjectMatches('museum.styles.learned', 'museum.styles')).toBe(false);
});

/** The semantics both buses share: replay from the start, live delivery, de-duplication by message id. */
async function busContract(bus: EventBus, prefix: string) {
  const subjects = museumSubjects(prefix);
  const ev = (v: number): StyleLearnedEvent => ({ museumVersion: v, style: `s${v}`, token: `<s${v}>`, committedAtMs: 1000 + v });
  expect((await publishStyleLearned(bus, ev(1), subjects)).duplicate).toBe(false);
  expect((await publishStyleLearned(bus, ev(1), subjects)).duplicate).toBe(true);
  const early: StyleLearnedEvent[] = [];
  const sub = await subscribeStyleLearned(bus, (e) => void early.push(e), subjects);
  await publishStyleLearned(bus, ev(2), subjects);
  await waitFor(() => early.length === 2);
  expect(early).toEqual([ev(1), ev(2)]);
  // a late subscriber replays everything from the start
  const late: number[] = [];
  const sub2 = await subscribeStyleLearned(bus, (e) => void late.push(e.museumVersion), subjects);
  await waitFor(() => late.length === 2);
  expect(late).toEqual([1, 2]);
  // other subjects of the stream are not delivered to a styles.learned subscriber
  await bus.publish(`${prefix}.other`, 'x');
  await publishStyleLearned(bus, ev(3), subjects);
  await waitFor(() => late.length === 3);
  expect(late).toEqual([1, 2, 3]);
  await sub.unsubscribe();
  await sub2.unsubscribe();
}

test('the in-process bus retains, replays and de-duplicates', async () => {
  const bus = new InProcessEventBus();
  await busContract(bus, 'museum');
  await bus.close();
});

test('the NATS JetStream bus does the same (real server, a stream of its own)', async () => {
  const run = `e${process.pid}x${Date.now().toString(36)}`;
  const bus = await NatsEventBus.connect({ url: NATS_URL, stream: `${run.toUpperCase()}_MUSEUM`, subjects: [`${run}.>`] });
  try {
    await busContract(bus, run);
    const info = await bus.jsm.streams.info(bus.stream);
    expect(info.state.messages).toBe(4);
  } finally {
    await bus.deleteStream();
    await bus.close();
  }
});
