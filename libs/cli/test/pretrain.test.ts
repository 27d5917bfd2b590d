import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { guardVaeLatents } from '../src/commands/pretrain';

function state(dir: string, stage: string, step: number): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'state.json'), JSON.stringify({ stage, step, totalSteps: step, seed: 1, lossHistory: [], imagesSeen: 0, trainSeconds: 0 }));
}

test('training the VAE further is refused once a diffusion stage depends on its latents', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-pretrain-'));
  state(path.join(root, 'vae'), 'vae', 1750);
  expect(() => guardVaeLatents(root, 2000)).not.toThrow(); // no diffusion checkpoint yet
  state(path.join(root, 'diffusion'), 'diffusion', 10);
  expect(() => guardVaeLatents(root, 1750)).not.toThrow(); // already there: nothing trains
  expect(() => guardVaeLatents(root, 2000)).toThrow(/diffusion checkpoint \(step 10\) was trained on its latents.*--stage decoder/);
  fs.rmSync(root, { recursive: true, force: true });
});
