import { tf } from '@museum/tensor';
import { Module } from '../nn/module';

/** Which upstream library a class comes from: it decides the config style and the weights file name. */
export type ModelLibrary = 'diffusers' | 'transformers';

/**
 * How to build and describe one upstream model class (`UNet2DConditionModel`, `AutoencoderKL`,
 * `CLIPTextModel`, …). Model modules register themselves here (or the built-ins are wired in
 * lazily by `builtin.ts`), so the folder loaders never import a model class directly.
 */
export interface ModelClassEntry<M extends Module = Module> {
  library: ModelLibrary;
  /** Build a randomly initialised model from a parsed config.json (upstream field names). */
  create(config: Record<string, unknown>): M;
  /** The config to save for a model (defaults to the `config` field the model carries). */
  configOf?(model: M): Record<string, unknown>;
  /** Change the exported state dict before it is written (e.g. merge added token rows). */
  exportState?(model: M, sd: Map<string, tf.Tensor>): void;
  /** Instance test for `classNameOf` (defaults to `model instanceof ctor`). */
  ctor?: abstract new (...args: never[]) => M;
}

const registry = new Map<string, ModelClassEntry>();
const lazyRegistrars: Array<() => void> = [];

export function registerModelClass<M extends Module>(className: string, entry: ModelClassEntry<M>): void {
  registry.set(className, entry as unknown as ModelClassEntry);
}

/** A function that registers classes on first use (so importing the loaders does not pull every model in). */
export function registerLazily(registrar: () => void): void {
  lazyRegistrars.push(registrar);
}

function runLazy(): void {
  while (lazyRegistrars.length) lazyRegistrars.shift()!();
}

export function getModelClass(className: string): ModelClassEntry {
  runLazy();
  const entry = registry.get(className);
  if (!entry) throw new Error(`no model class '${className}' is registered (known: ${[...registry.keys()].sort().join(', ') || 'none'})`);
  return entry;
}

export function registeredModelClasses(): string[] {
  runLazy();
  return [...registry.keys()].sort();
}

/** The registered class name of a model instance, or undefined. */
export function classNameOf(model: Module): string | undefined {
  runLazy();
  for (const [name, entry] of registry) if (entry.ctor && model instanceof (entry.ctor as unknown as new () => Module)) return name;
  return undefined;
}
