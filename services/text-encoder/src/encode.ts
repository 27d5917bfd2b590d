/** TextEncoderService.Encode: validate the prompts against the version's task tokens, embed them in one batch. */
import { museum, tensorToProto } from '@museum/proto';
import { checkPrompt, checkVersion, invalidArgument, styleTokensIn, type GenerationLimits, type VersionCache } from '@museum/rpc';
import type { TextEncoderModel } from './model';
import type { TextVersion } from './versions';

export interface EncodeDeps {
  model: () => TextEncoderModel;
  versions: VersionCache<TextVersion>;
  limits: GenerationLimits;
  /** Counts embedding batches (tests read it). */
  stats: { encodeCalls: number; prompts: number };
}

export async function encode(req: museum.v1.EncodeRequest, deps: EncodeDeps): Promise<museum.v1.EncodeResponse> {
  const { limits } = deps;
  const prompts = req.prompts ?? [];
  if (prompts.length === 0) throw invalidArgument('prompts', 'at least one prompt is needed');
  if (prompts.length > limits.maxPrompts) throw invalidArgument('prompts', `${prompts.length} prompts, at most ${limits.maxPrompts} per call`);
  // The empty prompt is the unconditional branch of classifier-free guidance: allowed here.
  prompts.forEach((p, i) => checkPrompt(p, `prompts[${i}]`, limits, true));
  const version = checkVersion(req.museumVersion);

  const pinned = await deps.versions.acquire(version);
  try {
    const model = deps.model();
    const { placeholders, tokens } = pinned.value;
    prompts.forEach((p, i) => {
      for (const tok of styleTokensIn(p)) {
        if (!placeholders.has(tok) && !model.baseTokens.has(tok)) {
          const list = [...placeholders.keys()];
          throw invalidArgument(
            `prompts[${i}]`,
            `unknown style token ${tok} for museum version ${pinned.version} (${list.length ? `it knows ${list.join(', ')}` : 'it has no learned styles'})`,
          );
        }
      }
    });
    // placeholders of word-embedded styles become their word; token styles stay as they are
    const texts = prompts.map((p) => p.replace(/<[A-Za-z0-9_-]+>/g, (m) => placeholders.get(m) ?? m));
    const counts = texts.map((p, i) => {
      const n = model.tokenCount(p);
      if (n > model.maxLength) throw invalidArgument(`prompts[${i}]`, `is ${n} tokens long, the text encoder takes at most ${model.maxLength} (start and end tokens included)`);
      return n;
    });
    const embeddings = model.encode(texts, pinned.version, tokens);
    try {
      deps.stats.encodeCalls++;
      deps.stats.prompts += prompts.length;
      return { embeddings: tensorToProto(embeddings), museumVersion: pinned.version, tokenCounts: counts };
    } finally {
      embeddings.dispose();
    }
  } finally {
    pinned.release();
  }
}
