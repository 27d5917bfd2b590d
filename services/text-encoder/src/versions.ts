/**
 * Museum versions as the text encoder needs them: the learned rows of the task tokens, and what every
 * `<style>` placeholder of the version stands for. A museum (libs/museum, see museum_source.ts)
 * provides them; without one, only version 0 (the base model, no styles) exists.
 */
import { notFound } from '@museum/rpc';

export interface TextVersion {
  /** token -> learned embedding row [hidden_size] (styles with a token of their own). */
  tokens: Map<string, Float32Array>;
  /**
   * Every placeholder `<style>` of the version -> the text the encoder reads for it: the token itself,
   * or a fixed word for styles learned without a token (the museum's `-token` ablation).
   */
  placeholders: Map<string, string>;
}

export interface TokenVersionSource {
  /** The newest committed version. */
  latest(): Promise<number>;
  /** Version `version`; rejects with NOT_FOUND for an unknown version. */
  version(version: number): Promise<TextVersion>;
}

/** The base model alone: version 0, no styles. */
export const BASE_ONLY_TOKENS: TokenVersionSource = {
  latest: async () => 0,
  version: async (v) => {
    if (v !== 0) throw notFound(`museum_version ${v} does not exist (no museum is configured: only version 0, the base model)`);
    return { tokens: new Map(), placeholders: new Map() };
  },
};
