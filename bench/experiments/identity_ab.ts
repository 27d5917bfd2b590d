/**
 * Paired timing of learnStyle steps with upstream's copying wasm `Identity` and the project's copy-free one
 * (development tool, not part of the product):
 *
 *   node -r ./scripts/ts-register.js bench/experiments/identity_ab.ts OUT.json [STEPS] [ROUNDS]
 *
 * On the bundled Atelier model, `stripes` few-shot set, MuseumMaker defaults, STEPS steps (default 12) per run,
 * alternating the two kernels for ROUNDS rounds (default 3) in one process, each on a fresh museum (first style:
 * feature regularization on base prompts, no weight regularization). Prints and writes seconds per step.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { StableDiffusionPipeline } from '@museum/models';
import { Museum, learnStyle, modelsFromPipeline } from '@museum/museum';
import { fewShotSet } from '@museum/world';

interface WasmHeap {
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
}

/** Upstream tfjs-backend-wasm 4.22's Identity: a fresh output and a copy of the input's bytes. */
const copyingIdentity = (args: { inputs: tf.NamedTensorInfoMap; backend: object }) => {
  const x = args.inputs.x as tf.TensorInfo;
  const b = args.backend as WasmHeap;
  const out = b.makeOutput(x.shape, x.dtype);
  b.typedArrayFromHeap(out).set(b.typedArrayFromHeap(x));
  return out;
};

async function main(): Promise<void> {
  const [outFile, stepsArg, roundsArg] = process.argv.slice(2);
  const steps = Number(stepsArg ?? 12);
  const rounds = Number(roundsArg ?? 3);
  await initBackend();
  const sharing = tf.getKernel('Identity', 'wasm')!;
  const use = (k: 'copy' | 'share') => {
    tf.unregisterKernel('Identity', 'wasm');
    tf.registerKernel({ ...sharing, kernelFunc: (k === 'copy' ? copyingIdentity : sharing.kernelFunc) as tf.KernelFunc });
  };
  const root = path.resolve(__dirname, '..', '..');
  const modelDir = path.join(root, 'models', 'atelier');
  const models = modelsFromPipeline(StableDiffusionPipeline.fromPretrained(modelDir));
  const set = fewShotSet('stripes');
  const runs: Record<'copy' | 'share', number[]> = { copy: [], share: [] };
  const once = async (name: string) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'identity-ab-'));
    try {
      const museum = Museum.openOrCreate(path.join(dir, 'museum'), { baseModelDir: modelDir });
      return (await learnStyle(museum, name, set, { models, steps, warmup: 0, captions: set.map((s) => s.caption.replace('<stripes>', `<${name}>`)) })).secondsPerStep;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  await once('warmup');
  for (let r = 0; r < rounds; r++) {
    for (const k of ['copy', 'share'] as const) {
      use(k);
      runs[k].push(Number((await once(`ab${r}${k}`)).toFixed(4)));
      process.stderr.write(`round ${r + 1}: ${k} ${runs[k][r]} s/step\n`);
    }
  }
  use('share');
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const out = {
    command: `node -r ./scripts/ts-register.js bench/experiments/identity_ab.ts ${outFile} ${steps} ${rounds}`,
    date: new Date().toISOString(),
    steps_per_run: steps,
    seconds_per_step: runs,
    median_copy: median(runs.copy),
    median_share: median(runs.share),
    share_over_copy: Number((median(runs.share) / median(runs.copy)).toFixed(3)),
  };
  console.log(JSON.stringify(out, null, 2));
  fs.writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
