/**
 * Serving museum versions over one frozen base model. A served version is its shared LoRA (kept unmerged, so
 * versions swap per call), its task-token rows, and (for `separate` museums) one adapter per style. Every
 * UNet call first makes sure the right adapter set is attached and every text-encoder call first writes the
 * version's token rows, so interleaved generations of different versions (or museums) on one base are safe.
 */
import * as path from 'path';
import { tf } from '@museum/tensor';
import {
  Linear,
  LoraAdapterSet,
  StableDiffusionPipeline,
  applyLora,
  loraFromStateDict,
  type DenoisingUNet,
  type GenerateOptions,
  type PromptEmbeddings,
  type PromptEncoder,
} from '@museum/models';
import { MuseumError } from './errors';
import { StyleModels, disposeModels, ensureTokens, modelsFromPipeline, rewritePrompt, setTokenRows } from './models';
import { baseRefFromFolder, type VersionManifest } from './store/manifest';
import type { Museum } from './store/museum';

/** A museum version ready to serve (owned by the runtime: `unload` or `dispose` frees it). */
export interface ServedVersion {
  readonly key: string;
  readonly museumDir: string;
  readonly version: number;
  readonly manifest: VersionManifest;
  /** The shared LoRA, or null (textual inversion, separate, version 0). */
  readonly shared: LoraAdapterSet | null;
  /** Per-style adapters (`separate` museums). */
  readonly adapters: ReadonlyMap<string, LoraAdapterSet>;
  /** token → embedding row of the version's token-embedded styles. */
  readonly tokenRows: ReadonlyMap<string, Float32Array>;
}

/** A prompt as the models will see it under a served version, and the adapter set it needs. */
export interface ResolvedPrompt {
  text: string;
  styles: string[];
  adapter: LoraAdapterSet | null;
  /** '' for the shared adapter, else the style whose own adapter is used. */
  adapterKey: string;
}

export interface MuseumRuntimeOptions {
  /** The base's `sha256:` hash: versions of museums built on another base are refused (FAILED_PRECONDITION). */
  baseHash?: string;
}

export class MuseumRuntime {
  private readonly served = new Map<string, ServedVersion>();
  private readonly linears: Array<[string, Linear]> = [];
  private readonly baseHash: string | undefined;
  private ownsModels = false;

  constructor(
    readonly models: StyleModels,
    options: MuseumRuntimeOptions = {},
  ) {
    for (const [p, m] of models.unet.namedModules()) if (m instanceof Linear) this.linears.push([p, m]);
    this.baseHash = options.baseHash;
  }

  /** Load a diffusers folder as the base (its hash is checked against every museum served). */
  static fromPretrained(dir: string, options: { verifyBase?: boolean } = {}): MuseumRuntime {
    const baseHash = options.verifyBase === false ? undefined : baseRefFromFolder(dir).hash;
    const rt = new MuseumRuntime(modelsFromPipeline(StableDiffusionPipeline.fromPretrained(path.resolve(dir))), { baseHash });
    rt.ownsModels = true;
    return rt;
  }

  static fromPipeline(p: StableDiffusionPipeline, options: MuseumRuntimeOptions = {}): MuseumRuntime {
    return new MuseumRuntime(modelsFromPipeline(p), options);
  }

  /** Serve version `n` (default: the latest) of a museum; loading the same version again returns the cached one. */
  load(museum: Museum, n?: number): ServedVersion {
    const version = n ?? museum.latestVersion();
    const key = `${museum.dir}@${version}`;
    const cached = this.served.get(key);
    if (cached) return cached;
    const manifest = museum.manifest(version);
    if (this.baseHash && manifest.base.hash !== this.baseHash) {
      throw new MuseumError('FAILED_PRECONDITION', `museum ${museum.dir} is built on base ${manifest.base.hash}, this runtime serves ${this.baseHash}`);
    }
    const loaded = museum.loadVersion(version);
    const sets: LoraAdapterSet[] = [];
    try {
      const toSet = (l: { tensors: Map<string, tf.Tensor>; metadata: Record<string, string>; config: { alpha: number } }, name: string) => {
        const set = loraFromStateDict(l.tensors, { prefix: 'unet', metadata: l.metadata, alpha: l.config.alpha, name });
        sets.push(set);
        this.checkFits(set);
        return set;
      };
      const shared = loaded.lora ? toSet(loaded.lora, 'shared') : null;
      const adapters = new Map<string, LoraAdapterSet>();
      for (const [style, a] of loaded.adapters) adapters.set(style, toSet(a, style));
      const tokenRows = new Map<string, Float32Array>();
      for (const [tok, t] of loaded.tokens) {
        if (t.size !== this.models.textEncoder.config.hidden_size) {
          throw new MuseumError('FAILED_PRECONDITION', `token ${tok} has ${t.size} values, the text encoder ${this.models.textEncoder.config.hidden_size}`);
        }
        tokenRows.set(tok, Float32Array.from(t.dataSync()));
      }
      ensureTokens(this.models, [...tokenRows.keys()]);
      const v: ServedVersion = { key, museumDir: museum.dir, version, manifest, shared, adapters, tokenRows };
      this.served.set(key, v);
      return v;
    } catch (err) {
      sets.forEach((s) => s.dispose());
      throw err;
    } finally {
      loaded.dispose();
    }
  }

  /** Stop serving a version and free its adapters. */
  unload(v: ServedVersion): void {
    if (this.served.get(v.key) !== v) return;
    this.served.delete(v.key);
    if (this.isAttached(v.shared) || [...v.adapters.values()].some((a) => this.isAttached(a))) applyLora(this.models.unet, null);
    v.shared?.dispose();
    for (const a of v.adapters.values()) a.dispose();
  }

  get servedVersions(): ServedVersion[] {
    return [...this.served.values()];
  }

  private checkFits(set: LoraAdapterSet): void {
    const byPath = new Map(this.linears);
    for (const [p, w] of set.adapters) {
      const lin = byPath.get(p);
      if (!lin || w.down.shape[0] !== lin.inFeatures || w.up.shape[1] !== lin.outFeatures) {
        throw new MuseumError('FAILED_PRECONDITION', `LoRA layer ${p} does not fit this base model's UNet`);
      }
    }
  }

  private isAttached(set: LoraAdapterSet | null): boolean {
    if (!set) return false;
    for (const [p, lin] of this.linears) if (lin.lora !== (set.adapters.get(p) ?? null)) return false;
    return true;
  }

  /** Attach `set` (or nothing) to the UNet unless it is already exactly what is attached. */
  private ensureAdapter(set: LoraAdapterSet | null): void {
    const attached = set ? this.isAttached(set) : this.linears.every(([, lin]) => lin.lora === null);
    if (!attached) applyLora(this.models.unet, set);
  }

  /** Write the version's token rows (cheap: a few rows) before any encoding. */
  private ensureRows(v: ServedVersion): void {
    setTokenRows(this.models, v.tokenRows);
  }

  /** The prompt as the text encoder must read it under `v`, with the adapter it needs. */
  resolvePrompt(v: ServedVersion, prompt: string): ResolvedPrompt {
    const { text, styles } = rewritePrompt(prompt, v.manifest.styles, this.models.tokenizer);
    if (v.adapters.size === 0) return { text, styles, adapter: v.shared, adapterKey: '' };
    // `separate`: the style named in the prompt chooses its own adapter; a prompt may name only one
    const own = styles.filter((s) => v.adapters.has(s));
    if (own.length > 1) throw new MuseumError('INVALID_ARGUMENT', `a prompt of a 'separate' museum can name one style only, got ${own.join(', ')}`);
    return own.length ? { text, styles, adapter: v.adapters.get(own[0])!, adapterKey: own[0] } : { text, styles, adapter: null, adapterKey: '' };
  }

  /** Conditional and unconditional embeddings of prompts under `v` (the text-encoder stage of a split pipeline). */
  encodePrompt(v: ServedVersion, prompts: string | string[], negative?: string | string[] | null): PromptEmbeddings {
    const list = typeof prompts === 'string' ? [prompts] : prompts;
    const neg = negative === undefined || negative === null ? undefined : typeof negative === 'string' ? list.map(() => negative) : negative;
    const texts = list.map((p) => this.resolvePrompt(v, p).text);
    const negTexts = neg?.map((p) => rewritePrompt(p, v.manifest.styles, this.models.tokenizer).text);
    return this.pipelineFor(v, null).encodePrompt(texts, negTexts);
  }

  /** The UNet with `v`'s adapter (or the given style's own adapter) attached on every call. */
  unetFor(v: ServedVersion, adapter: LoraAdapterSet | null = v.shared): DenoisingUNet {
    const unet = this.models.unet;
    return {
      config: unet.config,
      forward: (sample: tf.Tensor, timestep: number | tf.Tensor, ctx: tf.Tensor) => {
        this.ensureAdapter(adapter);
        return unet.forward(sample, timestep, ctx);
      },
      dispose: () => {},
    };
  }

  private textEncoderFor(v: ServedVersion): PromptEncoder {
    const te = this.models.textEncoder;
    return {
      config: te.config,
      lastHiddenState: (ids: tf.Tensor) => {
        this.ensureRows(v);
        return te.lastHiddenState(ids);
      },
      dispose: () => {},
    };
  }

  /** A pipeline view bound to `v` (prompts given to it must already be resolved; its dispose frees nothing). */
  pipelineFor(v: ServedVersion, adapter: LoraAdapterSet | null = v.shared): StableDiffusionPipeline {
    const m = this.models;
    return new StableDiffusionPipeline({
      tokenizer: m.tokenizer,
      textEncoder: this.textEncoderFor(v),
      unet: this.unetFor(v, adapter),
      vae: m.vae,
      schedulerConfig: m.schedulerConfig,
      samplingDefaults: m.samplingDefaults,
    });
  }

  /**
   * Generate under version `v`: `a red star in <stripes>` is drawn in that style. Prompts needing different
   * adapters (a `separate` museum) are generated in groups and returned in the order given.
   */
  async generate(v: ServedVersion, options: GenerateOptions): Promise<tf.Tensor4D> {
    if (!this.served.has(v.key)) throw new MuseumError('FAILED_PRECONDITION', `version ${v.key} is not served by this runtime`);
    const prompts = typeof options.prompt === 'string' ? [options.prompt] : options.prompt;
    if (prompts.length === 0) throw new MuseumError('INVALID_ARGUMENT', 'no prompt');
    const negs = options.negativePrompt === undefined ? undefined : typeof options.negativePrompt === 'string' ? prompts.map(() => options.negativePrompt as string) : options.negativePrompt;
    if (negs && negs.length !== prompts.length) throw new MuseumError('INVALID_ARGUMENT', `${negs.length} negative prompts for ${prompts.length} prompts`);
    const seeds = typeof options.seed === 'number' ? prompts.map((_, i) => (options.seed as number) + i) : options.seed;
    if (seeds.length !== prompts.length) throw new MuseumError('INVALID_ARGUMENT', `${seeds.length} seeds for ${prompts.length} prompts`);
    const resolved = prompts.map((p) => this.resolvePrompt(v, p));
    const negTexts = negs?.map((p) => rewritePrompt(p, v.manifest.styles, this.models.tokenizer).text);
    const groups = new Map<string, number[]>();
    resolved.forEach((r, i) => groups.set(r.adapterKey, [...(groups.get(r.adapterKey) ?? []), i]));
    const parts: tf.Tensor4D[] = [];
    const order: number[] = [];
    try {
      for (const idx of groups.values()) {
        const pipe = this.pipelineFor(v, resolved[idx[0]].adapter);
        parts.push(
          await pipe.generate({
            ...options,
            prompt: idx.map((i) => resolved[i].text),
            negativePrompt: negTexts ? idx.map((i) => negTexts[i]) : undefined,
            seed: idx.map((i) => seeds[i]),
          }),
        );
        order.push(...idx);
      }
      if (parts.length === 1) {
        const out = parts[0];
        parts.length = 0;
        return out;
      }
      const inverse = new Array<number>(order.length);
      order.forEach((orig, pos) => (inverse[orig] = pos));
      return tf.tidy(() => tf.gather(tf.concat(parts, 0), tf.tensor1d(inverse, 'int32'))) as tf.Tensor4D;
    } finally {
      tf.dispose(parts);
    }
  }

  /** Unload every version (and free the models when the runtime loaded them). */
  dispose(): void {
    for (const v of [...this.served.values()]) this.unload(v);
    applyLora(this.models.unet, null);
    if (this.ownsModels) disposeModels(this.models);
  }
}
