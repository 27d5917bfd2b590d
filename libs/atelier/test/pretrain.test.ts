import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '@museum/tensor';
import { buildAtelierModels, prefixedStateDict, readCheckpointState, readCheckpointTensors, runStage, type WorkerMessage } from '@museum/atelier';

// Tiny versions of the three models: the real worker threads, all-reduce, optimizer and checkpoints.
const overrides = {
  unet: { block_out_channels: [16, 16, 16], norm_num_groups: 8, cross_attention_dim: 32 },
  text: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1 },
  vae: { block_out_channels: [8, 8, 8], norm_num_groups: 4 },
};

let root: string;
beforeAll(async () => {
  await initBackend({ log: () => {} });
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-pretrain-'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** max |b − a| over max |a − init|: how far the resumed run strays, relative to how far training moved. */
function strayOverMoved(a: Map<string, tf.Tensor>, b: Map<string, tf.Tensor>, init: Map<string, tf.Tensor>): number {
  let stray = 0;
  let moved = 0;
  for (const [k, t] of a) {
    const x = t.dataSync();
    const y = b.get(k)!.dataSync();
    const z = init.get(k)!.dataSync();
    for (let i = 0; i < x.length; i++) {
      stray = Math.max(stray, Math.abs(y[i] - x[i]));
      moved = Math.max(moved, Math.abs(x[i] - z[i]));
    }
  }
  expect(moved).toBeGreaterThan(0);
  return stray / moved;
}

test('data-parallel stages train, checkpoint, stop and resume (VAE then diffusion, two workers)', async () => {
  const vaeDir = path.join(root, 'vae');
  const vae = await runStage({ stage: 'vae', steps: 3, batchSize: 2, lr: 1e-3, workers: 2, checkpointDir: vaeDir, checkpointEvery: 2, overrides });
  expect(await vae.done).toEqual({ step: 3, stopped: false });
  const vs = readCheckpointState(vaeDir)!;
  expect(vs).toMatchObject({ step: 3, imagesSeen: 6 });
  expect(vs.scalingFactor).toBeGreaterThan(0);

  const common = { stage: 'diffusion' as const, steps: 4, batchSize: 2, lr: 1e-2, warmup: 0, workers: 2, vaeCheckpointDir: vaeDir, checkpointEvery: 100, overrides, minSnrGamma: 5 };
  const straight = await runStage({ ...common, checkpointDir: path.join(root, 'a') });
  expect(await straight.done).toEqual({ step: 4, stopped: false });

  // Same run, stopped after its first step is seen (every rank stops at the same step) and resumed.
  const resumedDir = path.join(root, 'b');
  let handle: Awaited<ReturnType<typeof runStage>> | null = null;
  const losses: number[] = [];
  handle = await runStage({ ...common, checkpointDir: resumedDir, onMessage: (m: WorkerMessage) => { if (m.type === 'step') { losses.push(m.loss); handle?.stop(); } } });
  const first = await handle.done;
  expect(first.stopped).toBe(true);
  expect(first.step).toBeLessThan(4);
  expect(readCheckpointState(resumedDir)!.step).toBe(first.step);
  const again = await runStage({ ...common, checkpointDir: resumedDir });
  expect(await again.done).toEqual({ step: 4, stopped: false });
  for (const l of losses) expect(Number.isFinite(l)).toBe(true);

  const a = readCheckpointState(path.join(root, 'a'))!;
  const b = readCheckpointState(resumedDir)!;
  expect(b.imagesSeen).toBe(a.imagesSeen);
  expect(b.scalingFactor).toBeCloseTo(vs.scalingFactor!, 6);
  // Resuming reproduces the uninterrupted run (the stored moments are bfloat16, so not to the last bit).
  const models = buildAtelierModels(20261126, overrides);
  const init = prefixedStateDict({ text_encoder: models.textEncoder, unet: models.unet });
  for (const which of ['weights', 'ema'] as const) {
    const wa = readCheckpointTensors(path.join(root, 'a'), which)!;
    const wb = readCheckpointTensors(resumedDir, which)!;
    expect([...wb.keys()].sort()).toEqual([...wa.keys()].sort());
    expect(strayOverMoved(wa, wb, init)).toBeLessThan(0.02);
    tf.dispose([...wa.values(), ...wb.values()]);
  }
  tf.dispose([...init.values()]);
  for (const m of [models.vae, models.unet, models.textEncoder]) m.dispose();
}, 240000);
