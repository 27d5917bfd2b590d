/** Linear warm-up then cosine decay to `minRatio`·peak, the usual schedule for short pre-training runs. */
export function warmupCosineLr(step: number, opts: { peak: number; warmup: number; total: number; minRatio?: number }): number {
  const minRatio = opts.minRatio ?? 0.1;
  if (step < opts.warmup) return (opts.peak * (step + 1)) / opts.warmup;
  const progress = Math.min(1, (step - opts.warmup) / Math.max(1, opts.total - opts.warmup));
  return opts.peak * (minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
}
