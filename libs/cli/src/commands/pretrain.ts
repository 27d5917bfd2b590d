import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { exportAtelier, parseRenderingEmphasis, readCheckpointState, runStage, type RenderingEmphasis, type StageName, type WorkerMessage } from '@museum/atelier';
import { initBackend } from '@museum/tensor';
import { atelierDir, modelsDir } from '../paths';
import { intFlag } from '../flags';

interface PretrainOpts {
  stage: 'vae' | 'decoder' | 'diffusion' | 'all';
  vaeSteps: string;
  decoderSteps: string;
  diffusionSteps: string;
  batch: string;
  vaeBatch: string;
  textureShare: string;
  minSnr: string;
  emphasis?: string;
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
  emphasis?: RenderingEmphasis[];
}

async function runOne({ stage, steps, batch, lr, checkpoints, workers, textureShare, minSnrGamma, emphasis }: StageChoice): Promise<boolean> {
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
    emphasis,
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

/**
 * The diffusion stage learns the VAE encoder's latents: once it has a checkpoint, training the VAE further
 * would silently invalidate it. Refuse; the decoder stage improves reconstructions without moving latents.
 */
export function guardVaeLatents(checkpoints: string, vaeSteps: number): void {
  const vae = readCheckpointState(path.join(checkpoints, 'vae'));
  const diffusion = readCheckpointState(path.join(checkpoints, 'diffusion'));
  if (vae && diffusion && vaeSteps > vae.step) {
    throw new InvalidArgumentError(
      `--vae-steps ${vaeSteps} would train the VAE on from step ${vae.step}, but the diffusion checkpoint (step ${diffusion.step}) ` +
        `was trained on its latents; use --stage decoder to sharpen reconstructions, or move ${path.join(checkpoints, 'diffusion')} away first`,
    );
  }
}

export function registerPretrain(program: Command): void {
  program
    .command('pretrain')
    .description('pre-train the Atelier base model from scratch on the procedural world (resumable; Ctrl-C checkpoints)')
    .option('--stage <stage>', 'vae, decoder, diffusion or all (vae, then decoder when --decoder-steps > 0, then diffusion)', 'all')
    .option('--vae-steps <n>', 'VAE training steps', '1750')
    .option('--decoder-steps <n>', 'decoder fine-tuning steps on the frozen encoder (0: none)', '0')
    .option('--diffusion-steps <n>', 'text encoder + UNet training steps', '5000')
    .option('--batch <n>', 'diffusion stage: global batch size (split over workers)', '32')
    .option('--vae-batch <n>', 'VAE stage: global batch size', '16')
    .option('--texture-share <x>', 'VAE stage: share of generic textures among training images (0: base renderings only)', '0.5')
    .option('--min-snr <gamma>', 'diffusion stage: Min-SNR-γ loss weighting (0: plain MSE)', '5')
    .option('--emphasis <list>', 'diffusion stage: draw content modes more often, style:colour=share[,…] (e.g. watercolor:white=0.125; recorded in the checkpoint, and kept when a run resumes without this flag; none: back to uniform)')
    .option('--workers <n>', 'data-parallel worker threads (default: one per core)')
    .option('--lr <x>', 'peak learning rate (default 1e-3 VAE, 1e-4 decoder, 5e-4 diffusion)')
    .option('--checkpoints <dir>', 'checkpoint folder (default: models/checkpoints/atelier)')
    .option('--out <dir>', 'where the finished diffusers folder goes (default: models/atelier)')
    .option('--export-only', 'only write the diffusers folder from the current checkpoints')
    .action(async (o: PretrainOpts) => {
      const checkpoints = path.resolve(o.checkpoints ?? path.join(modelsDir(), 'checkpoints', 'atelier'));
      const out = path.resolve(o.out ?? atelierDir());
      const batch = intFlag('--batch', o.batch) as number;
      const vaeBatch = intFlag('--vae-batch', o.vaeBatch) as number;
      const decoderSteps = intFlag('--decoder-steps', o.decoderSteps, 0) as number;
      const workers = intFlag('--workers', o.workers);
      if (!['vae', 'decoder', 'diffusion', 'all'].includes(o.stage)) throw new InvalidArgumentError(`--stage must be vae, decoder, diffusion or all, got '${o.stage}'`);
      if (o.stage === 'decoder' && decoderSteps === 0) throw new InvalidArgumentError('--stage decoder needs --decoder-steps > 0');
      let emphasis: RenderingEmphasis[] | undefined;
      try {
        emphasis = o.emphasis === undefined ? undefined : parseRenderingEmphasis(o.emphasis);
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
      const lr = (fallback: number) => (o.lr === undefined ? fallback : Number(o.lr));
      if (!o.exportOnly) {
        if (o.stage === 'vae' || o.stage === 'all') {
          guardVaeLatents(checkpoints, intFlag('--vae-steps', o.vaeSteps) as number);
          const ok = await runOne({ stage: 'vae', steps: Number(o.vaeSteps), batch: vaeBatch, lr: lr(1e-3), checkpoints, workers, textureShare: Number(o.textureShare) });
          if (!ok) return;
        }
        if (o.stage === 'decoder' || (o.stage === 'all' && decoderSteps > 0)) {
          const ok = await runOne({ stage: 'decoder', steps: decoderSteps, batch: vaeBatch, lr: lr(1e-4), checkpoints, workers, textureShare: Number(o.textureShare) });
          if (!ok) return;
        }
        if (o.stage === 'diffusion' || o.stage === 'all') {
          const ok = await runOne({ stage: 'diffusion', steps: intFlag('--diffusion-steps', o.diffusionSteps) as number, batch, lr: lr(5e-4), checkpoints, workers, minSnrGamma: Number(o.minSnr), emphasis });
          if (!ok) return;
        }
      }
      if (!readCheckpointState(path.join(checkpoints, 'diffusion'))) {
        process.stderr.write('[pretrain] no diffusion checkpoint yet: nothing to export (run --stage diffusion)\n');
        return;
      }
      await initBackend();
      const r = exportAtelier({ checkpointsDir: checkpoints, outDir: out });
      process.stderr.write(`[pretrain] wrote ${out} (diffusion step ${r.diffusionStep}, scaling_factor ${r.scalingFactor.toFixed(5)}${r.record.finished ? '' : ', pre-training NOT finished: an interim export'})\n`);
    });
}
