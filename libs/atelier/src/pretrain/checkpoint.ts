/**
 * Resumable pre-training checkpoints: one folder per stage with the live weights, the EMA weights,
 * the AdamW moments and a `state.json`; written to a temporary sibling and renamed into place, so an
 * interrupted write leaves the previous checkpoint whole.
 */
import * as fs from 'fs';
import * as path from 'path';
import { tf, loadSafetensors, saveSafetensors } from '@museum/tensor';
import { Module, loadStateDict, stateDict } from '@museum/models';

export interface CheckpointState {
  stage: string;
  step: number;
  totalSteps: number;
  seed: number;
  scalingFactor?: number;
  lossHistory: Array<[number, number]>;
  imagesSeen: number;
  trainSeconds: number;
  [extra: string]: unknown;
}

/** Every module's state dict (torch layout) under `{moduleName}.` prefixes; the caller disposes. */
export function prefixedStateDict(modules: Record<string, Module>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, m] of Object.entries(modules)) for (const [k, v] of stateDict(m)) out.set(`${name}.${k}`, v);
  return out;
}

export function loadPrefixed(modules: Record<string, Module>, tensors: Map<string, tf.Tensor>): void {
  for (const [name, m] of Object.entries(modules)) {
    const mine = new Map<string, tf.Tensor>();
    for (const [k, v] of tensors) if (k.startsWith(`${name}.`)) mine.set(k.slice(name.length + 1), v);
    loadStateDict(m, mine, { strict: true });
  }
}

export function writeCheckpoint(
  dir: string,
  parts: { weights: Map<string, tf.Tensor>; ema?: Map<string, tf.Tensor>; optimizer?: Map<string, tf.Tensor>; state: CheckpointState },
): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  saveSafetensors(path.join(tmp, 'weights.safetensors'), parts.weights);
  if (parts.ema) saveSafetensors(path.join(tmp, 'ema.safetensors'), parts.ema);
  // Adam moments as bfloat16: float32's exponent range (float16 underflows the second moment) at half the
  // bytes; resuming needs their scale, not their last digits. Weights and EMA stay float32.
  if (parts.optimizer) saveSafetensors(path.join(tmp, 'optimizer.safetensors'), parts.optimizer, { dtype: 'BF16' });
  fs.writeFileSync(path.join(tmp, 'state.json'), JSON.stringify(parts.state, null, 1));
  const old = `${dir}.old-${process.pid}`;
  fs.rmSync(old, { recursive: true, force: true });
  if (fs.existsSync(dir)) fs.renameSync(dir, old);
  fs.renameSync(tmp, dir);
  fs.rmSync(old, { recursive: true, force: true });
}

export function readCheckpointState(dir: string): CheckpointState | null {
  const file = path.join(dir, 'state.json');
  if (!fs.existsSync(file)) return null;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as CheckpointState;
}

/** Load weights (and EMA / optimizer tensors when present) of a checkpoint folder. */
export function readCheckpointTensors(dir: string, which: 'weights' | 'ema' | 'optimizer'): Map<string, tf.Tensor> | null {
  const file = path.join(dir, `${which}.safetensors`);
  if (!fs.existsSync(file)) return null;
  return loadSafetensors(file).tensors;
}

/**
 * Loads a checkpoint's EMA weights (or its live weights when it has no EMA) into `modules`, by the
 * `{moduleName}.` prefixes they were saved under. Returns which copy was used.
 */
export function loadCheckpointWeights(dir: string, modules: Record<string, Module>): 'ema' | 'weights' {
  const which = fs.existsSync(path.join(dir, 'ema.safetensors')) ? 'ema' : 'weights';
  const t = readCheckpointTensors(dir, which);
  if (!t) throw new Error(`no weights in checkpoint ${dir}`);
  try {
    loadPrefixed(modules, t);
  } finally {
    for (const x of t.values()) x.dispose();
  }
  return which;
}
