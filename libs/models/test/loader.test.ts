import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { float16ToFloat32, float32ToFloat16, initBackend, loadSafetensors, saveSafetensors, tf } from '@museum/tensor';
import {
  AutoencoderKL,
  CLIPTextModel,
  Conv2d,
  Embedding,
  GroupNorm,
  Linear,
  Module,
  ModuleList,
  StateDictError,
  UNet2DConditionModel,
  classNameOf,
  clipTextConfigFromJson,
  disposeStateDict,
  legacyVaeAttentionKey,
  loadModelFolder,
  loadStateDict,
  parsePythonJson,
  readJsonFile,
  readModelFolderTensors,
  registerModelClass,
  saveModelFolder,
  seedInit,
  stateDict,
} from '../src';

/** A mid-block attention named like diffusers' VAE attention (group_norm, to_q/k/v, to_out.0). */
class TinyAttention extends Module {
  readonly group_norm: GroupNorm;
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: ModuleList<Linear>;
  constructor(c: number) {
    super();
    this.group_norm = this.addModule('group_norm', new GroupNorm(2, c));
    this.to_q = this.addModule('to_q', new Linear(c, c));
    this.to_k = this.addModule('to_k', new Linear(c, c));
    this.to_v = this.addModule('to_v', new Linear(c, c));
    this.to_out = this.addModule('to_out', new ModuleList<Linear>());
    this.to_out.push(new Linear(c, c));
  }
}

class TinyMid extends Module {
  readonly attentions: ModuleList<TinyAttention>;
  constructor(c: number) {
    super();
    this.attentions = this.addModule('attentions', new ModuleList<TinyAttention>());
    this.attentions.push(new TinyAttention(c));
  }
}

interface TinyConfig {
  channels: number;
  [k: string]: unknown;
}

/** A small model from nn layers, with every parameter layout (conv, linear, same). */
class TinyNet extends Module {
  readonly conv_in: Conv2d;
  readonly norm: GroupNorm;
  readonly proj: Linear;
  readonly emb: Embedding;
  readonly mid_block: TinyMid;
  constructor(readonly config: TinyConfig) {
    super();
    const c = config.channels;
    this.conv_in = this.addModule('conv_in', new Conv2d(3, c, 3, 1, 1));
    this.norm = this.addModule('norm', new GroupNorm(2, c));
    this.proj = this.addModule('proj', new Linear(c, 6));
    this.emb = this.addModule('emb', new Embedding(5, c));
    this.mid_block = this.addModule('mid_block', new TinyMid(c));
  }
}

registerModelClass<TinyNet>('TinyNet', { library: 'diffusers', ctor: TinyNet, create: (cfg) => new TinyNet(cfg as TinyConfig) });

let tmp: string;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-loader-'));
});

afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function params(m: Module): Map<string, Float32Array> {
  return new Map(m.namedParameters().map(([n, p]) => [n, p.variable.dataSync() as Float32Array]));
}

function randomise(m: Module, seed: number): void {
  seedInit(seed);
  for (const [, p] of m.namedParameters()) {
    const v = tf.randomNormal(p.shape, 0, 1, 'float32', seed++);
    p.variable.assign(v);
    v.dispose();
  }
}

describe('stateDict / loadStateDict', () => {
  it('exports torch layouts under upstream names', () => {
    const m = new TinyNet({ channels: 4 });
    const sd = stateDict(m);
    expect(sd.get('conv_in.weight')!.shape).toEqual([4, 3, 3, 3]);
    expect(sd.get('proj.weight')!.shape).toEqual([6, 4]);
    expect(sd.get('mid_block.attentions.0.to_out.0.bias')!.shape).toEqual([4]);
    expect(sd.size).toBe(m.namedParameters().length);
    // the linear weight is the transpose of our [in, out] variable
    const ours = m.proj.weight.variable.arraySync() as number[][];
    const theirs = sd.get('proj.weight')!.arraySync() as number[][];
    expect(theirs[5][3]).toBe(ours[3][5]);
    disposeStateDict(sd);
    m.dispose();
  });

  it('strict loading lists every missing and unexpected key, sorted, and leaves the model untouched', () => {
    const src = new TinyNet({ channels: 4 });
    const dst = new TinyNet({ channels: 4 });
    const before = params(dst);
    const sd = stateDict(src);
    sd.get('proj.bias')!.dispose();
    sd.delete('proj.bias');
    sd.get('conv_in.weight')!.dispose();
    sd.delete('conv_in.weight');
    sd.set('extra.b', tf.zeros([2]));
    sd.set('extra.a', tf.zeros([2]));
    let err: unknown;
    try {
      loadStateDict(dst, sd);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(StateDictError);
    const e = err as StateDictError;
    expect(e.missing).toEqual(['conv_in.weight', 'proj.bias']);
    expect(e.unexpected).toEqual(['extra.a', 'extra.b']);
    expect(e.message).toContain('conv_in.weight, proj.bias');
    expect(e.message).toContain('extra.a, extra.b');
    for (const [n, v] of params(dst)) expect(v).toEqual(before.get(n));
    // non-strict: reported, and the rest loaded
    const r = loadStateDict(dst, sd, { strict: false });
    expect(r.missing).toEqual(['conv_in.weight', 'proj.bias']);
    expect(r.unexpected).toEqual(['extra.a', 'extra.b']);
    expect(r.loaded).toBe(dst.namedParameters().length - 2);
    expect(dst.norm.weight.variable.dataSync()).toEqual(src.norm.weight.variable.dataSync());
    // ignore and rename
    const r2 = loadStateDict(dst, sd, { strict: false, ignore: [/^extra\./] });
    expect(r2.unexpected).toEqual([]);
    disposeStateDict(sd);
    src.dispose();
    dst.dispose();
  });

  it('shape mismatches are named (strict or not)', () => {
    const m = new TinyNet({ channels: 4 });
    const sd = stateDict(m);
    sd.get('proj.weight')!.dispose();
    sd.set('proj.weight', tf.zeros([6, 5]));
    expect(() => loadStateDict(m, sd, { strict: false })).toThrow(/shape mismatches \(1\): proj\.weight \(file \[6,5\], model \[6,4\]\)/);
    disposeStateDict(sd);
    m.dispose();
  });

  it('accepts legacy VAE attention names with 1×1-conv weights, position_ids, and renames', () => {
    expect(legacyVaeAttentionKey('decoder.mid_block.attentions.0.proj_attn.weight')).toBe('decoder.mid_block.attentions.0.to_out.0.weight');
    expect(legacyVaeAttentionKey('decoder.mid_block.attentions.0.query.bias')).toBe('decoder.mid_block.attentions.0.to_q.bias');
    const src = new TinyNet({ channels: 4 });
    randomise(src, 3);
    const dst = new TinyNet({ channels: 4 });
    const legacy = new Map<string, tf.Tensor>();
    const old = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' } as Record<string, string>;
    for (const [k, t] of stateDict(src)) {
      const m = /^(mid_block\.attentions\.0\.)(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(k);
      if (!m) {
        legacy.set(`model.${k}`, t);
        continue;
      }
      // old diffusers stored these projections as 1×1 convolutions
      const v = m[3] === 'weight' ? tf.reshape(t, [...t.shape, 1, 1]) : t;
      if (v !== t) t.dispose();
      legacy.set(`model.${m[1]}${old[m[2]]}.${m[3]}`, v);
    }
    legacy.set('model.text_model.embeddings.position_ids', tf.tensor2d([[0, 1, 2]], [1, 3], 'int32'));
    expect(legacy.get('model.mid_block.attentions.0.query.weight')!.shape).toEqual([4, 4, 1, 1]);
    const r = loadStateDict(dst, legacy, { rename: (k) => k.replace(/^model\./, '') });
    expect(r.missing).toEqual([]);
    expect(r.unexpected).toEqual([]);
    const want = params(src);
    for (const [n, v] of params(dst)) expect(v).toEqual(want.get(n));
    disposeStateDict(legacy);
    src.dispose();
    dst.dispose();
  });
});

describe('model folders', () => {
  it('save → load round trip is bit-exact in F32 and writes upstream files', () => {
    const m = new TinyNet({ channels: 4 });
    randomise(m, 10);
    const dir = path.join(tmp, 'tiny-f32');
    saveModelFolder(dir, m);
    const cfg = readJsonFile(path.join(dir, 'config.json'));
    expect(cfg._class_name).toBe('TinyNet');
    expect(cfg._diffusers_version).toBe('0.21.4');
    expect(cfg.channels).toBe(4);
    expect(fs.existsSync(path.join(dir, 'diffusion_pytorch_model.safetensors'))).toBe(true);
    const { tensors, metadata } = loadSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'));
    expect(metadata.format).toBe('pt');
    expect(tensors.get('conv_in.weight')!.shape).toEqual([4, 3, 3, 3]);
    disposeStateDict(tensors);
    const before = tf.memory().numTensors;
    const { model, className } = loadModelFolder<TinyNet>(dir);
    expect(className).toBe('TinyNet');
    expect(model).toBeInstanceOf(TinyNet);
    const want = params(m);
    for (const [n, v] of params(model)) expect(v).toEqual(want.get(n));
    // only the model's variables were added
    expect(tf.memory().numTensors - before).toBe(model.namedParameters().length);
    model.dispose();
    m.dispose();
  });

  it('F16 save → load gives the fp16-rounded values', () => {
    const m = new TinyNet({ channels: 4 });
    randomise(m, 20);
    const dir = path.join(tmp, 'tiny-f16');
    saveModelFolder(dir, m, undefined, { dtype: 'F16', weightsName: 'diffusion_pytorch_model.fp16.safetensors' });
    const { model } = loadModelFolder<TinyNet>(dir);
    let changed = 0;
    for (const [n, p] of m.namedParameters()) {
      const orig = p.variable.dataSync() as Float32Array;
      const rounded = float16ToFloat32(float32ToFloat16(orig));
      const got = model.namedParameters().find(([k]) => k === n)![1].variable.dataSync();
      expect(Array.from(got)).toEqual(Array.from(rounded));
      for (let i = 0; i < orig.length; i++) if (orig[i] !== rounded[i]) changed++;
    }
    expect(changed).toBeGreaterThan(0);
    model.dispose();
    m.dispose();
  });

  it('reads Python JSON (Infinity) and reports a folder without weights', () => {
    expect(parsePythonJson('{"a": -Infinity, "b": "NaN-Infinity", "c": [NaN, Infinity]}')).toEqual({ a: -Infinity, b: 'NaN-Infinity', c: [NaN, Infinity] });
    const dir = path.join(tmp, 'empty');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'config.json'), '{"_class_name": "TinyNet", "channels": 4}');
    expect(() => loadModelFolder(dir)).toThrow(/no safetensors weights/);
    fs.writeFileSync(path.join(dir, 'config.json'), '{"_class_name": "NoSuchNet"}');
    expect(() => loadModelFolder(dir)).toThrow(/no model class 'NoSuchNet'/);
  });

  it('a strict load error names the class and file, and frees the half-built model', () => {
    const m = new TinyNet({ channels: 4 });
    const dir = path.join(tmp, 'tiny-bad');
    saveModelFolder(dir, m);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ _class_name: 'TinyNet', channels: 2 }));
    const before = tf.memory().numTensors;
    expect(() => loadModelFolder(dir)).toThrow(/TinyNet from .*shape mismatches/);
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });

  it('loads upstream CLIPTextModel folders and round-trips the text encoder', () => {
    const fixture = path.join(__dirname, 'fixtures', 'text_encoder');
    const { model, className, result } = loadModelFolder<CLIPTextModel>(fixture);
    expect(className).toBe('CLIPTextModel');
    expect(model).toBeInstanceOf(CLIPTextModel);
    expect(result.missing).toEqual([]);
    const upstream = readModelFolderTensors(fixture);
    const ours = stateDict(model);
    for (const [k, t] of upstream) expect(Array.from(ours.get(k)!.dataSync())).toEqual(Array.from(t.dataSync()));
    disposeStateDict(upstream);
    disposeStateDict(ours);

    const dir = path.join(tmp, 'text_encoder');
    saveModelFolder(dir, model);
    expect(fs.existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
    const cfg = readJsonFile(path.join(dir, 'config.json'));
    expect(cfg.architectures).toEqual(['CLIPTextModel']);
    expect(cfg.hidden_size).toBe(32);
    const back = loadModelFolder<CLIPTextModel>(dir).model;
    const want = params(model);
    for (const [n, v] of params(back)) expect(v).toEqual(want.get(n));
    back.dispose();
    model.dispose();
  });

  it('saves added CLIP tokens as a resized token table', () => {
    const cfg = clipTextConfigFromJson({ vocab_size: 20, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 6 });
    const m = new CLIPTextModel(cfg);
    const ids = m.addTokenEmbeddings(2);
    expect(ids).toEqual([20, 21]);
    const dir = path.join(tmp, 'text_encoder_added');
    saveModelFolder(dir, m);
    expect(readJsonFile(path.join(dir, 'config.json')).vocab_size).toBe(22);
    const back = loadModelFolder<CLIPTextModel>(dir).model;
    expect(back.numTokens).toBe(22);
    const a = m.tokenEmbeddingRows([3, 20, 21]);
    const b = back.tokenEmbeddingRows([3, 20, 21]);
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    tf.dispose([a, b]);
    back.dispose();
    m.dispose();
  });

  it('round-trips a tiny UNet2DConditionModel bit-exactly', () => {
    const config = { block_out_channels: [8, 16], down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'], norm_num_groups: 4, cross_attention_dim: 8, attention_head_dim: 2, layers_per_block: 1, sample_size: 8 };
    const unet = new UNet2DConditionModel(config);
    expect(classNameOf(unet)).toBe('UNet2DConditionModel');
    const dir = path.join(tmp, 'unet');
    saveModelFolder(dir, unet);
    const cfg = readJsonFile(path.join(dir, 'config.json'));
    expect(cfg._class_name).toBe('UNet2DConditionModel');
    expect(cfg.attention_head_dim).toEqual([2, 2]);
    expect(cfg.num_attention_heads).toBeNull();
    const back = loadModelFolder<UNet2DConditionModel>(dir).model;
    const want = params(unet);
    expect(back.namedParameters().length).toBe(want.size);
    for (const [n, v] of params(back)) expect(v).toEqual(want.get(n));
    back.dispose();
    unet.dispose();
  });

  it('loads sharded weights through the index file', () => {
    const m = new TinyNet({ channels: 4 });
    randomise(m, 30);
    const dir = path.join(tmp, 'sharded');
    fs.mkdirSync(dir, { recursive: true });
    const sd = stateDict(m);
    const names = [...sd.keys()];
    const half = Math.floor(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((ns, i) => {
      const file = `diffusion_pytorch_model-0000${i + 1}-of-00002.safetensors`;
      saveSafetensors(path.join(dir, file), new Map(ns.map((n) => [n, sd.get(n)!])));
      for (const n of ns) weightMap[n] = file;
    });
    disposeStateDict(sd);
    fs.writeFileSync(path.join(dir, 'diffusion_pytorch_model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ _class_name: 'TinyNet', channels: 4 }));
    const back = loadModelFolder<TinyNet>(dir).model;
    const want = params(m);
    for (const [n, v] of params(back)) expect(v).toEqual(want.get(n));
    back.dispose();
    m.dispose();
  });
});

describe('AutoencoderKL', () => {
  it('round-trips and loads pre-0.14 attention names with 1×1-conv weights', () => {
    const config = { block_out_channels: [8, 8], down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'], norm_num_groups: 4, layers_per_block: 1 };
    const vae = new AutoencoderKL(config);
    randomise(vae, 40);
    expect(classNameOf(vae)).toBe('AutoencoderKL');
    const dir = path.join(tmp, 'vae');
    saveModelFolder(dir, vae);
    expect(readJsonFile(path.join(dir, 'config.json'))).toMatchObject({ _class_name: 'AutoencoderKL', scaling_factor: 0.18215, block_out_channels: [8, 8] });
    const back = loadModelFolder<AutoencoderKL>(dir).model;
    const want = params(vae);
    for (const [n, v] of params(back)) expect(v).toEqual(want.get(n));
    back.dispose();

    // rewrite the file with the old names and conv-shaped projections
    const old = { to_q: 'query', to_k: 'key', to_v: 'value', 'to_out.0': 'proj_attn' } as Record<string, string>;
    const legacy = new Map<string, tf.Tensor>();
    let renamed = 0;
    for (const [k, t] of stateDict(vae)) {
      const m = /^(.*mid_block\.attentions\.\d+\.)(to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(k);
      if (!m) {
        legacy.set(k, t);
        continue;
      }
      renamed++;
      const v = m[3] === 'weight' ? tf.reshape(t, [...t.shape, 1, 1]) : t;
      if (v !== t) t.dispose();
      legacy.set(`${m[1]}${old[m[2]]}.${m[3]}`, v);
    }
    expect(renamed).toBe(16); // encoder and decoder mid blocks, 4 projections × (weight, bias)
    saveSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), legacy);
    disposeStateDict(legacy);
    const fromLegacy = loadModelFolder<AutoencoderKL>(dir).model;
    for (const [n, v] of params(fromLegacy)) expect(v).toEqual(want.get(n));
    fromLegacy.dispose();
    vae.dispose();
  });
});
