import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, loadSafetensors, tf } from '@museum/tensor';
import {
  CLIPTextModel,
  CLIP_LORA_PROJECTIONS,
  Linear,
  LoraAdapterSet,
  UNet2DConditionModel,
  applyLora,
  attachedLora,
  clipTextConfigFromJson,
  injectLora,
  isLoraMerged,
  loadLora,
  loraFromStateDict,
  loraTargetPaths,
  mergeLora,
  saveLora,
  seedInit,
  unmergeLora,
} from '../src';

/** A small UNet with both block kinds: 2 transformer blocks in the down path, 2 in the mid block, 2 in the up path. */
const TINY = {
  block_out_channels: [16, 32],
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 8,
  cross_attention_dim: 12,
  attention_head_dim: 2,
};

function maxRelErr(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / tf.max(tf.abs(b)).dataSync()[0]);
}
function sameValues(a: tf.Tensor, b: tf.Tensor): boolean {
  const x = a.dataSync();
  const y = b.dataSync();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}
/** Give every `up` random values so that adapters change the output (they start at zero). */
function randomiseUp(set: LoraAdapterSet, seed: number): void {
  let s = seed;
  for (const w of set.adapters.values()) tf.tidy(() => w.up.assign(tf.randomNormal(w.up.shape, 0, 0.2, 'float32', s++)));
}

describe('LoRA', () => {
  let unet: UNet2DConditionModel;
  let sample: tf.Tensor;
  let ctx: tf.Tensor;
  let base: tf.Tensor;
  const run = () => unet.forward(sample, 321, ctx);

  beforeAll(async () => {
    await initBackend({ log: () => {} });
    seedInit(21);
    unet = new UNet2DConditionModel(TINY);
    sample = tf.randomNormal([1, 8, 8, 4], 0, 1, 'float32', 1);
    ctx = tf.randomNormal([1, 5, 12], 0, 1, 'float32', 2);
    base = run();
  });

  afterAll(() => {
    unet.dispose();
    tf.dispose([sample, ctx, base]);
  });

  afterEach(() => {
    applyLora(unet, null);
    expect(isLoraMerged(unet)).toBe(false);
  });

  it('selects cross-, self- or all-attention projections, or modules by RegExp', () => {
    const cross = loraTargetPaths(unet, 'cross-attention');
    const self = loraTargetPaths(unet, 'self-attention');
    expect(cross.length).toBe(4 * 4); // 1 down + 1 mid + 2 up transformer blocks × (to_q, to_k, to_v, to_out.0)
    expect(cross.every((p) => /\.attn2\.(to_q|to_k|to_v|to_out\.0)$/.test(p))).toBe(true);
    expect(self.every((p) => /\.attn1\./.test(p))).toBe(true);
    expect(loraTargetPaths(unet, 'all-attention').sort()).toEqual([...cross, ...self].sort());
    // attention-ff: the same projections plus each transformer block's feed-forward (GEGLU projection and output)
    const ff = loraTargetPaths(unet, 'attention-ff').filter((p) => !/\.attn[12]\./.test(p));
    expect(loraTargetPaths(unet, 'attention-ff').filter((p) => /\.attn[12]\./.test(p)).sort()).toEqual([...cross, ...self].sort());
    expect(ff.length).toBe(4 * 2);
    expect(ff.every((p) => /\.transformer_blocks\.0\.ff\.net\.(0\.proj|2)$/.test(p))).toBe(true);
    const ffSet = injectLora(unet, { rank: 2, targets: 'attention-ff', apply: false });
    const geglu = ffSet.adapters.get('mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj')!;
    expect(geglu.up.shape[1]).toBe(2 * geglu.down.shape[0] * 4); // GEGLU projects dim → 2 × (4 · dim): value and gate
    ffSet.dispose();
    expect(loraTargetPaths(unet, /^mid_block\..*attn2$/, ['to_k', 'to_v'])).toEqual([
      'mid_block.attentions.0.transformer_blocks.0.attn2.to_k',
      'mid_block.attentions.0.transformer_blocks.0.attn2.to_v',
    ]);
    expect(() => injectLora(unet, { rank: 2, targets: /no_such_module/ })).toThrow(/no Linear layer matches/);
  });

  it('zero-initialised adapters leave the output unchanged, and shapes follow the layers', () => {
    const set = injectLora(unet, { rank: 4, alpha: 8, targets: 'all-attention', name: 'style-a' });
    expect(set.name).toBe('style-a');
    expect(set.scale).toBe(2);
    const w = set.adapters.get('down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k')!;
    expect(w.down.shape).toEqual([12, 4]); // [in = cross_attention_dim, r]
    expect(w.up.shape).toEqual([4, 16]); // [r, out]
    expect(tf.tidy(() => tf.max(tf.abs(w.up)).dataSync()[0])).toBe(0);
    expect(tf.max(tf.abs(w.down)).dataSync()[0]).toBeGreaterThan(0);
    expect(attachedLora(unet).size).toBe(set.size);
    const out = run();
    expect(sameValues(out, base)).toBe(true);
    out.dispose();
    set.dispose();
  });

  it('gradients with respect to down and up match central finite differences', () => {
    const set = injectLora(unet, { rank: 2, targets: 'all-attention' });
    randomiseUp(set, 100);
    unet.setTrainable(false);
    const weightsR = tf.randomNormal(base.shape, 0, 1, 'float32', 3);
    const loss = () => tf.tidy(() => tf.sum(tf.mul(run(), weightsR)) as tf.Scalar);
    const vars = set.variables();
    const { grads } = tf.variableGrads(loss, vars);
    const r = weightsR.dataSync();
    const checks: Array<[tf.Variable, number]> = [];
    for (const [i, v] of vars.entries()) {
      if (i % 5 !== 0) continue; // a spread of downs and ups across the network
      const g = grads[v.name].dataSync();
      let arg = 0;
      for (let j = 1; j < g.length; j++) if (Math.abs(g[j]) > Math.abs(g[arg])) arg = j;
      checks.push([v, arg]);
    }
    expect(checks.length).toBeGreaterThanOrEqual(6);
    const eps = 3e-2; // float32 forward noise dominates below ~1e-2; the cubic term is still small here
    let worst = 0;
    for (const [v, idx] of checks) {
      const g = grads[v.name].dataSync()[idx];
      const orig = v.dataSync().slice();
      const outputAt = (delta: number) => {
        const d = orig.slice();
        d[idx] += delta;
        tf.tidy(() => v.assign(tf.tensor(d, v.shape)));
        const out = run();
        const vals = out.dataSync().slice();
        out.dispose();
        return vals;
      };
      // difference the outputs element-wise before the weighted sum (in float64) to keep cancellation small
      const plus = outputAt(eps);
      const minus = outputAt(-eps);
      let diff = 0;
      for (let j = 0; j < plus.length; j++) diff += (plus[j] - minus[j]) * r[j];
      const fd = diff / (2 * eps);
      tf.tidy(() => v.assign(tf.tensor(orig, v.shape)));
      expect(Math.abs(g)).toBeGreaterThan(1e-3);
      expect(Math.abs(fd - g) / Math.abs(g)).toBeLessThan(1e-2);
      worst = Math.max(worst, Math.abs(fd - g) / Math.abs(g));
    }
    process.stdout.write(`LoRA finite differences: ${checks.length} entries, worst rel err ${worst.toExponential(2)}\n`);
    // frozen base weights get no gradient; the tape only reaches the adapters
    expect(Object.keys(grads).sort()).toEqual(vars.map((v) => v.name).sort());
    tf.dispose(grads);
    weightsR.dispose();
    unet.setTrainable(true);
    set.dispose();
  });

  it('merged equals unmerged, and unmerging restores the base weights exactly', () => {
    const set = injectLora(unet, { rank: 3, alpha: 1.5, targets: 'cross-attention' });
    randomiseUp(set, 200);
    const unmerged = run();
    expect(maxRelErr(unmerged, base)).toBeGreaterThan(1e-3);
    const lin = unet.mid_block!.attentions.at(0).transformer_blocks.at(0).attn2!.to_v;
    const before = tf.clone(lin.weight.variable);
    mergeLora(unet, set);
    expect(isLoraMerged(unet)).toBe(true);
    expect(attachedLora(unet).size).toBe(0); // merged adapters are detached, never applied twice
    const merged = run();
    expect(maxRelErr(merged, unmerged)).toBeLessThan(1e-5);
    expect(unmergeLora(unet)).toBe(set.size);
    expect(sameValues(lin.weight.variable, before)).toBe(true);
    const restored = run();
    expect(sameValues(restored, base)).toBe(true);
    tf.dispose([unmerged, merged, restored, before]);
    set.dispose();
  });

  it('swapping adapter sets at run time changes the output and swapping back restores it exactly', () => {
    const tensorsBefore = tf.memory().numTensors;
    const a = injectLora(unet, { rank: 2, targets: 'cross-attention', name: 'a', apply: false });
    const b = injectLora(unet, { rank: 4, targets: 'all-attention', name: 'b', apply: false });
    randomiseUp(a, 300);
    randomiseUp(b, 400);
    applyLora(unet, a);
    const outA = run();
    applyLora(unet, b);
    const outB = run();
    expect(maxRelErr(outA, outB)).toBeGreaterThan(1e-3);
    expect(maxRelErr(outA, base)).toBeGreaterThan(1e-3);
    applyLora(unet, a);
    const outA2 = run();
    expect(sameValues(outA2, outA)).toBe(true);
    applyLora(unet, null);
    const outNone = run();
    expect(sameValues(outNone, base)).toBe(true);
    tf.dispose([outA, outB, outA2, outNone]);
    a.dispose();
    b.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('saves and loads peft/diffusers-named safetensors with rank and alpha in the metadata', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-lora-'));
    const file = path.join(dir, 'pytorch_lora_weights.safetensors');
    const set = injectLora(unet, { rank: 3, alpha: 6, targets: 'cross-attention', name: 'monet' });
    randomiseUp(set, 500);
    const out = run();
    saveLora(file, set);

    const { tensors, metadata } = loadSafetensors(file);
    expect(metadata).toMatchObject({ format: 'pt', lora_rank: '3', lora_alpha: '6', lora_name: 'monet' });
    const key = 'unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k';
    expect(tensors.get(`${key}.lora_A.weight`)!.shape).toEqual([3, 12]); // [r, in]
    expect(tensors.get(`${key}.lora_B.weight`)!.shape).toEqual([16, 3]); // [out, r]
    expect(tensors.size).toBe(2 * set.size);
    for (const t of tensors.values()) t.dispose();

    applyLora(unet, null);
    const loaded = loadLora(file);
    expect([loaded.name, loaded.rank, loaded.alpha, loaded.size]).toEqual(['monet', 3, 6, set.size]);
    applyLora(unet, loaded);
    const out2 = run();
    expect(sameValues(out2, out)).toBe(true);
    tf.dispose([out, out2]);
    set.dispose();
    loaded.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('reads the older diffusers attention-processor LoRA names', () => {
    const down = tf.randomNormal([4, 32], 0, 1, 'float32', 1); // torch [r, in]
    const up = tf.randomNormal([32, 4], 0, 1, 'float32', 2); // torch [out, r]
    const p = 'unet.mid_block.attentions.0.transformer_blocks.0.attn1.processor';
    const set = loraFromStateDict(
      new Map([
        [`${p}.to_out_lora.down.weight`, down],
        [`${p}.to_out_lora.up.weight`, up],
      ]),
    );
    const w = set.adapters.get('mid_block.attentions.0.transformer_blocks.0.attn1.to_out.0')!;
    expect(w.down.shape).toEqual([32, 4]);
    expect(set.alpha).toBe(4); // no alpha stored: scale 1, as diffusers
    applyLora(unet, set); // fits the model
    tf.dispose([down, up]);
    set.dispose();
  });

  it('adapts the CLIP text encoder through the same mechanism, saved beside the UNet set', () => {
    seedInit(8);
    const cfg = clipTextConfigFromJson(JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'text_encoder', 'config.json'), 'utf8')));
    const clip = new CLIPTextModel(cfg);
    const ids = tf.tensor2d([[98, 5, 17, 42, 99, 1]], undefined, 'int32');
    const plain = clip.lastHiddenState(ids);
    const byName = loraTargetPaths(clip, 'self-attention', CLIP_LORA_PROJECTIONS);
    expect(loraTargetPaths(clip, /self_attn$/, CLIP_LORA_PROJECTIONS)).toEqual(byName);
    expect(byName.length).toBe(cfg.num_hidden_layers * 4);
    expect(byName).toContain('text_model.encoder.layers.0.self_attn.q_proj');
    expect(byName).toContain('text_model.encoder.layers.1.self_attn.out_proj');
    const te = injectLora(clip, { rank: 2, targets: /self_attn$/, projections: CLIP_LORA_PROJECTIONS, name: 'te' });
    const same = clip.lastHiddenState(ids);
    expect(sameValues(same, plain)).toBe(true);
    randomiseUp(te, 600);
    const adapted = clip.lastHiddenState(ids);
    expect(maxRelErr(adapted, plain)).toBeGreaterThan(1e-3);
    const { grads } = tf.variableGrads(() => tf.sum(tf.square(clip.lastHiddenState(ids))) as tf.Scalar, te.variables());
    expect(Object.keys(grads).length).toBe(te.variables().length);
    tf.dispose(grads);

    // one file holding both the UNet's and the text encoder's adapters, as diffusers saves them
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-lora-'));
    const file = path.join(dir, 'pytorch_lora_weights.safetensors');
    const u = injectLora(unet, { rank: 2, targets: 'cross-attention', apply: false });
    saveLora(file, [
      { prefix: 'unet', set: u },
      { prefix: 'text_encoder', set: te },
    ]);
    const loadedTe = loadLora(file, { prefix: 'text_encoder' });
    expect([...loadedTe.adapters.keys()].sort()).toEqual([...te.adapters.keys()].sort());
    expect(loadLora(file, { prefix: 'unet' }).size).toBe(u.size);
    applyLora(clip, loadedTe);
    const again = clip.lastHiddenState(ids);
    expect(sameValues(again, adapted)).toBe(true);

    // the raw file keys carry the text_encoder prefix and transformers' module names
    const header = loadSafetensors(file);
    expect(header.tensors.has('text_encoder.text_model.encoder.layers.1.self_attn.out_proj.lora_B.weight')).toBe(true);
    for (const t of header.tensors.values()) t.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
    tf.dispose([ids, plain, same, adapted, again]);
    for (const s of [te, u, loadedTe]) s.dispose();
    clip.dispose();
  });

  it('refuses adapters that do not fit the layer they name', () => {
    const bad = new LoraAdapterSet('bad', 2, 2);
    bad.adapters.set('conv_in', { down: tf.variable(tf.zeros([4, 2])), up: tf.variable(tf.zeros([2, 16])), scale: 1 });
    expect(() => applyLora(unet, bad)).toThrow(/not a Linear/);
    const wrong = new LoraAdapterSet('wrong', 2, 2);
    const p = 'mid_block.attentions.0.transformer_blocks.0.attn2.to_k';
    wrong.adapters.set(p, { down: tf.variable(tf.zeros([99, 2])), up: tf.variable(tf.zeros([2, 32])), scale: 1 });
    expect(() => applyLora(unet, wrong)).toThrow(/do not fit/);
    expect((unet.mid_block!.attentions.at(0).transformer_blocks.at(0).attn2!.to_k as Linear).lora).toBeNull();
    bad.dispose();
    wrong.dispose();
  });
});
