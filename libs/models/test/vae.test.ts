import * as fs from 'fs';
import * as path from 'path';
import { initBackend, loadSafetensors, tf } from '@museum/tensor';
import { AutoencoderKL, convertLegacyVaeAttentionKeys, decodeLatents, encodeLatents, loadStateDict, seedInit } from '../src';

const FIX = path.join(__dirname, 'fixtures', 'vae');
const nchwToNhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]);

function maxRelErr(ours: tf.Tensor, theirs: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0] / tf.max(tf.abs(theirs)).dataSync()[0]);
}

describe('AutoencoderKL', () => {
  let vae: AutoencoderKL;
  let weights: Map<string, tf.Tensor>;
  let io: Map<string, tf.Tensor>;

  beforeAll(async () => {
    await initBackend({ log: () => {} });
    seedInit(5);
    vae = new AutoencoderKL(JSON.parse(fs.readFileSync(path.join(FIX, 'config.json'), 'utf8')));
    weights = loadSafetensors(path.join(FIX, 'diffusion_pytorch_model.safetensors')).tensors;
    expect(loadStateDict(vae, weights).loaded).toBe(weights.size);
    io = loadSafetensors(path.join(FIX, 'io.safetensors')).tensors;
  });

  afterAll(() => {
    vae.dispose();
    for (const t of [...weights.values(), ...io.values()]) t.dispose();
  });

  it('encoder posterior (mean, logvar after quant_conv) matches diffusers within 1e-4', () => {
    const image = nchwToNhwc(io.get('image')!);
    const before = tf.memory().numTensors;
    const post = vae.encode(image);
    const mean = nchwToNhwc(io.get('posterior_mean')!);
    const logvar = nchwToNhwc(io.get('posterior_logvar')!);
    const errMean = maxRelErr(post.mean, mean);
    const errLogvar = maxRelErr(post.logvar, logvar);
    process.stdout.write(`VAE encoder parity: mean ${errMean.toExponential(2)}, logvar ${errLogvar.toExponential(2)}\n`);
    expect(post.mean.shape).toEqual([1, 16, 16, 4]);
    expect(errMean).toBeLessThan(1e-4);
    expect(errLogvar).toBeLessThan(1e-4);
    // sampling: mean + exp(logvar / 2) · noise
    const noise = tf.randomNormal(post.mean.shape, 0, 1, 'float32', 9);
    const z = post.sample(noise);
    const expected = tf.tidy(() => tf.add(mean, tf.mul(tf.exp(tf.mul(logvar, 0.5)), noise)));
    expect(maxRelErr(z, expected)).toBeLessThan(1e-4);
    post.dispose();
    tf.dispose([noise, z, expected]);
    tf.dispose([mean, logvar]);
    expect(tf.memory().numTensors).toBe(before);
    image.dispose();
  });

  it('decoder (post_quant_conv → decoder) matches diffusers within 1e-4', () => {
    const latents = nchwToNhwc(io.get('latents')!);
    const out = vae.decode(latents);
    const expected = nchwToNhwc(io.get('decoded')!);
    const err = maxRelErr(out, expected);
    process.stdout.write(`VAE decoder parity: ${err.toExponential(2)}\n`);
    expect(out.shape).toEqual([1, 32, 32, 3]);
    expect(err).toBeLessThan(1e-4);
    tf.dispose([latents, out, expected]);
  });

  it('latent helpers apply the scaling factor outside the model', () => {
    const image = nchwToNhwc(io.get('image')!);
    const z = encodeLatents(vae, image);
    const mean = nchwToNhwc(io.get('posterior_mean')!);
    const scaled = tf.mul(mean, 0.18215);
    expect(maxRelErr(z, scaled)).toBeLessThan(1e-4);
    const decoded = decodeLatents(vae, z);
    const direct = vae.decode(mean);
    expect(maxRelErr(decoded, direct)).toBeLessThan(1e-5);
    tf.dispose([image, z, mean, scaled, decoded, direct]);
  });

  it('loads checkpoints with the legacy mid-block attention names and conv-shaped projections', () => {
    // rewrite the fixture into the pre-0.14 naming, with [C, C, 1, 1] projection weights
    const legacy = new Map<string, tf.Tensor>();
    const names: Record<string, string> = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' };
    for (const [k, t] of weights) {
      const m = /^(.*mid_block\.attentions\.0)\.(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(k);
      if (!m) legacy.set(k, tf.clone(t));
      else legacy.set(`${m[1]}.${names[m[2]]}.${m[3]}`, m[3] === 'weight' ? tf.reshape(t, [...t.shape, 1, 1]) : tf.clone(t));
    }
    expect([...legacy.keys()].filter((k) => /\.(query|proj_attn)\.weight$/.test(k)).length).toBe(4);
    const converted = convertLegacyVaeAttentionKeys(legacy);
    expect([...converted.keys()].sort()).toEqual([...weights.keys()].sort());
    expect(converted.get('encoder.mid_block.attentions.0.to_out.0.weight')!.shape).toEqual([64, 64]);
    expect(converted.get('decoder.mid_block.attentions.0.group_norm.weight')).toBeDefined();

    seedInit(77);
    const fresh = new AutoencoderKL(vae.config);
    loadStateDict(fresh, converted);
    const latents = nchwToNhwc(io.get('latents')!);
    const a = fresh.decode(latents);
    const b = vae.decode(latents);
    expect(maxRelErr(a, b)).toBe(0);
    tf.dispose([latents, a, b]);
    for (const t of converted.values()) t.dispose();
    fresh.dispose();
  });
});
