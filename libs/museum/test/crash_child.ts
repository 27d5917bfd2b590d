/**
 * Run by store.test.ts in a child process: commits one style to the museum at argv[2] and SIGKILLs itself
 * at the commit stage argv[3] (a real crash: no catch block, no finally, no cleanup runs).
 */
import { initBackend, tf } from '@museum/tensor';
import { Museum } from '../src';

async function main(): Promise<void> {
  await initBackend({ backend: 'cpu', log: () => {} });
  const [dir, stage, detail] = process.argv.slice(2);
  const museum = Museum.open(dir);
  const lora = new Map([
    ['unet.mid.attn2.to_k.lora_A.weight', tf.ones([2, 3])],
    ['unet.mid.attn2.to_k.lora_B.weight', tf.ones([4, 2])],
  ]);
  museum.commitVersion(
    {
      parent: museum.latestVersion(),
      method: 'finetune',
      style: { name: 'crashed', embedding: { kind: 'token', initWord: 'style' }, method: 'finetune', images: [], settings: {}, metrics: {}, trainSeconds: 0, createdAt: 'now' },
      lora: { tensors: lora, config: { rank: 2, alpha: 2, targets: 'cross-attention', projections: ['to_k'] } },
      tokens: new Map([['<crashed>', tf.ones([3])]]),
    },
    {
      onStage: (s, d) => {
        if (s === stage && (!detail || d === detail)) process.kill(process.pid, 'SIGKILL');
      },
    },
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(3);
});
