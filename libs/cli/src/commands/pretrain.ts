import * as path from 'node:path';
import { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { exportAtelier, readCheckpointState, runStage, type StageName, type WorkerMessage } from '@museum/atelier';
import { initBackend } from '@museum/tensor';
import { atelierDir, modelsDir } from '../paths';

interface PretrainOpts {
  stage: 'vae' | 'diffusion' | 'all';
  vaeSteps: string;
  diffusionSteps: string;
  batch: string;
  vaeBatch: string;
  textureShare: string;
  minSnr: string;
  workers?: string;
  lr?: string;
  checkpoints?: string;
  out?: string;
  exportOnly?: boolean;
}

interface StageChoice {
  stage: StageName;
  steps: number;
  batch: number;
  lr: number;
  checkpoints: string;
  workers?: number;
  textureShare?: number;
  minSnrGamma?: number;
}

async function runOne({ stage, steps, batch, lr, checkpoints, workers, textureShare, minSnrGamma }: StageChoice): Promise<boolean> {
  const dir = path.join(checkpoints, stage);
  const prior = readCheckpointState(dir);
  if (prior && prior.step >= steps) {
    process.stderr.write(`[pretrain] ${stage}: already at step ${prior.step}/${steps}\n`);
    return true;
  }
  const bar = new SingleBar({ format: `${stage.padEnd(9)} [{bar}] {value}/{total} steps | loss {loss} | {sps} s/step, {ips} images/s | ETA {eta_formatted}`, hideCursor: true, noTTYOutput: true, notTTYSchedule: 30000 }, Presets.shades_classic);
  bar.start(steps, prior?.step ?? 0, { loss: '-', sps: '-', ips: '-' });
  let ema = 0;
  const handle = await runStage({
    stage,
    steps,
    batchSize: batch,
    lr,
    workers,
    textureShare,
    minSnrGamma,
    checkpointDir: dir,
    vaeCheckpointDir: path.join(checkpoints, 'vae'),
    onMessage: (m: WorkerMessage) => {
      if (m.type === 'step') {
        ema = ema === 0 ? m.loss : 0.98 * ema + 0.02 * m.loss;
        bar.update(m.step, { loss: ema.toFixed(4), sps: m.seconds.toFixed(2), ips: (batch / m.seconds).toFixed(1) });
      }
    },
  });
  const onSigint = () => {
    process.stderr.write('\n[pretrain] stopping after this step and checkpointing…\n');
    handle.stop();
  };
  process.once('SIGINT', onSigint);
  const r = await handle.done;
  process.removeListener('SIGINT', onSigint);
  bar.stop();
  return !r.stopped && r.step >= steps;
}

export function registerPretrain(program: Command): void {
  program
    .command('pretrain')
    .description('pre-train the Atelier base model from scratch on the procedural world (resumable; Ctrl-C checkpoints)')
    .option('--stage <stage>', 'vae, diffusion or all', 'all')
    .option('--vae-steps <n>', 'VAE training steps', '2100')
    .option('--diffusion-steps <n>', 'text encoder + UNet training steps', '6000')
    .option('--batch <n>', 'diffusion stage: global batch size (split over workers)', '32')
    .option('--vae-batch <n>', 'VAE stage: global batch size', '16')
    .option('--texture-share <x>', 'VAE stage: share of generic textures among training images (0: base renderings only)', '0.5')
    .option('--min-snr <gamma>', 'diffusion stage: Min-SNR-γ loss weighting (0: plain MSE)', '5')
    .option('--workers <n>', 'data-parallel worker threads (default: one per core)')
    .option('--lr <x>', 'peak learning rate (default 1e-3 VAE, 5e-4 diffusion)')
    .option('--checkpoints <dir>', 'checkpoint folder (default: models/checkpoints/atelier)')
    .option('--out <dir>', 'where the finished diffusers folder goes (default: models/atelier)')
    .option('--export-only', 'only write the diffusers folder from the current checkpoints')
    .action(async (o: PretrainOpts) => {
      const checkpoints = path.resolve(o.checkpoints ?? path.join(modelsDir(), 'checkpoints', 'atelier'));
      const out = path.resolve(o.out ?? atelierDir());
      const batch = Number(o.batch);
      const workers = o.workers ? Number(o.workers) : undefined;
      if (!o.exportOnly) {
        if (o.stage === 'vae' || o.stage === 'all') {
          const ok = await runOne({ stage: 'vae', steps: Number(o.vaeSteps), batch: Number(o.vaeBatch), lr: Number(o.lr ?? 1e-3), checkpoints, workers, textureShare: Number(o.textureShare) });
          if (!ok) return;
        }
        if (o.stage === 'diffusion' || o.stage === 'all') {
          const ok = await runOne({ stage: 'diffusion', steps: Number(o.diffusionSteps), batch, lr: Number(o.lr ?? 5e-4), checkpoints, workers, minSnrGamma: Number(o.minSnr) });
          if (!ok) return;
        }
      }
      await initBackend();
      const r = exportAtelier({ checkpointsDir: checkpoints, outDir: out });
      process.stderr.write(`[pretrain] wrote ${out} (diffusion step ${r.diffusionStep}, scaling_factor ${r.scalingFactor.toFixed(5)}${r.record.finished ? '' : ', pre-training NOT finished: an interim export'})\n`);
    });
}
