import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '@museum/tensor';
import { loadSamplingConfig } from '@museum/models';
import { ATELIER_SAMPLING_DEFAULTS, ATELIER_TRAINING_FILE, buildAtelierModels, exportAtelier, prefixedStateDict, writeCheckpoint, type AtelierTrainingRecord } from '@museum/atelier';

beforeAll(() => initBackend({ log: () => {} }));

/** Checkpoints of freshly built models: a finished VAE stage (10 steps, 160 images in 40 s) and the given diffusion state. */
function writeTinyCheckpoints(root: string, seed: number, diffusion: { step: number; totalSteps: number; imagesSeen: number; trainSeconds: number; [extra: string]: unknown }) {
  const models = buildAtelierModels(seed);
  const base = { seed, lossHistory: [] as Array<[number, number]> };
  const vae = prefixedStateDict({ vae: models.vae });
  writeCheckpoint(path.join(root, 'ckpt', 'vae'), { weights: vae, state: { ...base, stage: 'vae', step: 10, totalSteps: 10, imagesSeen: 160, trainSeconds: 40, scalingFactor: 0.4 } });
  const diff = prefixedStateDict({ text_encoder: models.textEncoder, unet: models.unet });
  writeCheckpoint(path.join(root, 'ckpt', 'diffusion'), { weights: diff, state: { ...base, stage: 'diffusion', ...diffusion } });
  tf.dispose([...vae.values(), ...diff.values()]);
  for (const m of [models.vae, models.unet, models.textEncoder]) m.dispose();
}

test('export writes a diffusers folder and a training record that says whether pre-training finished', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-export-'));
  writeTinyCheckpoints(root, 11, { step: 5, totalSteps: 20, imagesSeen: 160, trainSeconds: 20 });
  const before = tf.memory().numTensors;
  const out = path.join(root, 'atelier');
  const r = exportAtelier({ checkpointsDir: path.join(root, 'ckpt'), outDir: out });
  expect(tf.memory().numTensors).toBe(before);
  expect(r.diffusionStep).toBe(5);
  for (const f of ['model_index.json', 'unet/config.json', 'vae/config.json', 'text_encoder/config.json', 'scheduler/scheduler_config.json']) expect(fs.existsSync(path.join(out, f))).toBe(true);
  const vaeConfig = JSON.parse(fs.readFileSync(path.join(out, 'vae', 'config.json'), 'utf8'));
  expect(vaeConfig.scaling_factor).toBeCloseTo(0.4, 6);
  const record = JSON.parse(fs.readFileSync(path.join(out, ATELIER_TRAINING_FILE), 'utf8')) as AtelierTrainingRecord;
  expect(record.finished).toBe(false);
  expect(record.stages.diffusion).toMatchObject({ step: 5, totalSteps: 20, imagesSeen: 160, imagesPerSecond: 8 });
  expect(record.stages.vae.imagesPerSecond).toBe(4);
  expect(record.dataStream).toBeUndefined();
  // the model's recommended guidance shaping goes with it
  expect(loadSamplingConfig(out)).toEqual(ATELIER_SAMPLING_DEFAULTS);
  fs.rmSync(root, { recursive: true, force: true });
});

test('the training record carries a diffusion run\'s non-uniform data stream', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-export-stream-'));
  const streamSegments = [{ fromStep: 0, emphasis: [] }, { fromStep: 3, emphasis: [{ style: 'watercolor', colour: 'white', share: 0.125 }] }];
  writeTinyCheckpoints(root, 12, { step: 6, totalSteps: 6, imagesSeen: 96, trainSeconds: 12, streamSegments });
  const r = exportAtelier({ checkpointsDir: path.join(root, 'ckpt'), outDir: path.join(root, 'atelier') });
  expect(r.record.finished).toBe(true);
  expect(r.record.dataStream).toEqual(streamSegments);
  fs.rmSync(root, { recursive: true, force: true });
});
