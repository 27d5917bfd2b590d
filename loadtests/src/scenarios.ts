/**
 * What each scenario calls, over the real gRPC API (grpc-js clients of the generated stubs):
 *   encode    TextEncoderService.Encode, unary and fast (one prompt), round-robin over replicas;
 *   generate  GatewayService.Generate, server streaming: progress events, then the PNG;
 *   mixed     generate while the trainer learns a style (LearnStyle, watched with WatchJob).
 */
import * as grpc from '@grpc/grpc-js';
import { museum } from '@museum/proto';
import { serverStream, unary } from '@museum/rpc';
import { assertLoopback } from '@museum/bench';
import type { LoadCall } from './runner';

const creds = () => grpc.credentials.createInsecure();
const channelOptions: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 64 * 1024 * 1024 };

export interface Clients {
  close(): void;
}

export function encodeCall(addresses: string[], prompts: string[], deadlineMs = 30_000): { call: LoadCall; clients: Clients } {
  addresses.forEach(assertLoopback);
  const clients = addresses.map((a) => new museum.v1.TextEncoderServiceClient(a, creds(), channelOptions));
  // a closed-loop worker keeps to one replica, so every replica has the same number of calls in flight
  const call: LoadCall = async ({ index, worker, signal }) => {
    const c = clients[(worker ?? index) % clients.length];
    const res = await unary(c.encode.bind(c), { prompts: [prompts[index % prompts.length]] }, { deadline: Date.now() + deadlineMs, signal });
    if (!res.embeddings || res.embeddings.shape.length !== 3) throw new Error('Encode answered without embeddings');
  };
  return { call, clients: { close: () => clients.forEach((c) => c.close()) } };
}

export interface GenerateSettings {
  steps: number;
  guidance: number;
  prompts: string[];
  deadlineMs?: number;
}

export interface StreamCounters {
  progressEvents: number;
  images: number;
  pngBytes: number;
}

export function generateCall(gateways: string[], s: GenerateSettings): { call: LoadCall; clients: Clients; counters: StreamCounters } {
  gateways.forEach(assertLoopback);
  const clients = gateways.map((a) => new museum.v1.GatewayServiceClient(a, creds(), channelOptions));
  const counters: StreamCounters = { progressEvents: 0, images: 0, pngBytes: 0 };
  const call: LoadCall = async ({ index, worker, signal }) => {
    const client = clients[(worker ?? index) % clients.length];
    const req = museum.v1.GenerateRequest.fromPartial({ prompt: s.prompts[index % s.prompts.length], seed: 1000 + index, steps: s.steps, guidance: s.guidance, sampler: museum.v1.Sampler.SAMPLER_DDIM });
    let image: museum.v1.GeneratedImage | undefined;
    for await (const msg of serverStream(client.generate.bind(client), req, { deadline: Date.now() + (s.deadlineMs ?? 300_000), signal })) {
      if (msg.event?.$case === 'progress') counters.progressEvents++;
      else if (msg.event?.$case === 'image') image = msg.event.value;
    }
    if (!image || image.png.length === 0) throw new Error('Generate ended without an image');
    counters.images++;
    counters.pngBytes += image.png.length;
  };
  return { call, clients: { close: () => clients.forEach((c) => c.close()) }, counters };
}

export interface LearningJob {
  jobId: string;
  /** Every status seen (WatchJob). */
  statuses: museum.v1.JobStatus[];
  last(): museum.v1.JobStatus | undefined;
  /** Cancel the job if it still runs, and stop watching. */
  stop(): Promise<museum.v1.JobStatus | undefined>;
}

/** Queue a LearnStyle job on the trainer and watch it in the background. */
export async function startLearning(trainer: string, name: string, images: Buffer[], steps: number): Promise<LearningJob> {
  assertLoopback(trainer);
  const client = new museum.v1.TrainerServiceClient(trainer, creds(), channelOptions);
  const { jobId } = await unary(client.learnStyle.bind(client), museum.v1.LearnStyleRequest.fromPartial({ name, images, options: { steps, seed: 1 } }), { deadline: Date.now() + 60_000 });
  const statuses: museum.v1.JobStatus[] = [];
  const ctl = new AbortController();
  const watching = (async () => {
    try {
      for await (const m of serverStream(client.watchJob.bind(client), { jobId }, { signal: ctl.signal })) if (m.status) statuses.push(m.status);
    } catch {
      // cancelled at the end of the test
    }
  })();
  const ended = (st?: museum.v1.JobStatus) => st !== undefined && st.state >= museum.v1.JobState.JOB_STATE_SUCCEEDED;
  return {
    jobId,
    statuses,
    last: () => statuses[statuses.length - 1],
    stop: async () => {
      let final = statuses[statuses.length - 1];
      if (!ended(final)) {
        const r = await unary(client.cancelJob.bind(client), { jobId }, { deadline: Date.now() + 30_000 }).catch(() => undefined);
        final = r?.status ?? final;
      }
      ctl.abort();
      await watching;
      client.close();
      return final;
    },
  };
}
