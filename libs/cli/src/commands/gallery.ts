/**
 * `museum gallery --out FILE.png`: one tile per learned style of the running services' museum,
 * `a {colour} {shape} in <style>` generated through the gateway and laid out in a grid.
 */
import { Command, InvalidArgumentError } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import { DEFAULT_GATEWAY_ADDRESS, DEFAULT_TRAINER_ADDRESS, gatewayAddress, remoteGallery, trainerAddress } from './client';

interface GalleryOpts {
  out: string;
  address?: string;
  trainer?: string;
  subject?: string;
  seed: string;
  steps?: string;
  guidance?: string;
  sampler?: string;
  columns?: string;
  version?: string;
}

function int(name: string, v: string | undefined, lo: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < lo) throw new InvalidArgumentError(`${name} must be an integer >= ${lo}, got ${JSON.stringify(v)}`);
  return n;
}

export function registerGallery(program: Command): void {
  program
    .command('gallery')
    .description('draw one tile per learned style (`a {colour} {shape} in <style>`) through the running services, as one PNG')
    .requiredOption('-o, --out <file>', 'output PNG')
    .option('--address <host:port>', `the gateway (default ${DEFAULT_GATEWAY_ADDRESS} as \`museum start\` prints, or $MUSEUM_GATEWAY_ADDR)`)
    .option('--trainer <host:port>', `the trainer, which lists the styles (default ${DEFAULT_TRAINER_ADDRESS}, or $MUSEUM_TRAINER_ADDR)`)
    .option('--subject <text>', 'the same content in every tile, e.g. "a red star" (default: a different colour and shape per style)')
    .option('--seed <n>', 'seed of the first tile (tile i uses seed + i)', '0')
    .option('--steps <n>', 'sampler steps (default: the service’s)')
    .option('--guidance <x>', 'classifier-free guidance scale (default: the service’s)')
    .option('--sampler <name>', 'ddim, dpmpp-2m or euler-a (default: the service’s)')
    .option('--columns <n>', 'tiles per row (default: a square-ish grid)')
    .option('--version <n>', 'the museum version (default: the latest)')
    .action(async (o: GalleryOpts) => {
      const guidance = o.guidance === undefined ? undefined : Number(o.guidance);
      if (guidance !== undefined && !Number.isFinite(guidance)) throw new InvalidArgumentError('--guidance must be a number');
      const bar = new SingleBar({ format: 'gallery [{bar}] {value}/{total} tiles', hideCursor: true }, Presets.shades_classic);
      let started = false;
      try {
        const r = await remoteGallery(
          {
            gateway: gatewayAddress(o.address),
            trainer: trainerAddress(o.trainer),
            out: o.out,
            subject: o.subject,
            seed: int('--seed', o.seed, 0),
            steps: int('--steps', o.steps, 1),
            guidance,
            sampler: o.sampler,
            columns: int('--columns', o.columns, 1),
            museumVersion: int('--version', o.version, 0),
          },
          {
            onTile: (done, total) => {
              if (!started) bar.start(total, 0);
              started = true;
              bar.update(done);
            },
          },
        );
        bar.stop();
        process.stderr.write(`wrote ${r.file} (${r.width}x${r.height}): ${r.prompts.length} style(s) of museum version ${r.museumVersion}\n`);
      } finally {
        bar.stop();
      }
    });
}
