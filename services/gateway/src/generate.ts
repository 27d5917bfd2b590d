/** GatewayService.Generate: progress events, then the image. */
import { museum } from '@museum/proto';
import { generateOne, planGeneration, type GenerateContext } from './pipeline';

export async function generate(
  req: museum.v1.GenerateRequest,
  ctx: Omit<GenerateContext, 'field'>,
  write: (msg: museum.v1.GenerateResponse) => void,
): Promise<void> {
  const plan = planGeneration(req, ctx.limits);
  await generateOne(plan, ctx, (event) => write({ event }));
}
