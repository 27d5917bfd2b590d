/** The shared LoRA of the versions of a museum store (libs/museum), for the denoiser service. */
import { loraFromStateDict, type LoraAdapterSet } from '@museum/models';
import type { Museum } from '@museum/museum';
import { failedPrecondition } from '@museum/rpc';
import type { LoraVersionSource } from './versions';

export function museumLoraSource(museum: Museum): LoraVersionSource {
  return {
    latest: async () => museum.latestVersion(),
    lora: async (v): Promise<LoraAdapterSet | null> => {
      const manifest = museum.manifest(v);
      if (manifest.styles.some((s) => s.adapter)) {
        // per-style adapters (the `separate` baseline) would need the style of each request: not served
        throw failedPrecondition(`museum version ${v} keeps one adapter per style (method ${manifest.method}); the denoiser serves shared-LoRA museums`);
      }
      if (!manifest.lora) return null;
      const loaded = museum.loadVersion(v);
      try {
        const l = loaded.lora!;
        return loraFromStateDict(l.tensors, { prefix: 'unet', metadata: l.metadata, alpha: l.config.alpha, name: `museum-v${v}` });
      } finally {
        loaded.dispose();
      }
    },
  };
}
