/** Task tokens of the versions of a museum store (libs/museum), for the text-encoder service. */
import type { Museum } from '@museum/museum';
import type { TextVersion, TokenVersionSource } from './versions';

export function museumTokenSource(museum: Museum): TokenVersionSource {
  return {
    latest: async () => museum.latestVersion(),
    version: async (v): Promise<TextVersion> => {
      const manifest = museum.manifest(v);
      const placeholders = new Map<string, string>();
      for (const s of manifest.styles) placeholders.set(s.token, s.embedding.kind === 'word' ? s.embedding.word : s.token);
      const tokens = new Map<string, Float32Array>();
      if (manifest.tokens) {
        const loaded = museum.loadVersion(v);
        try {
          for (const [tok, t] of loaded.tokens) tokens.set(tok, Float32Array.from(t.dataSync()));
        } finally {
          loaded.dispose();
        }
      }
      return { tokens, placeholders };
    },
  };
}
