/** Parsing of numeric command-line flags, with one wording for every command's errors. */
import { InvalidArgumentError } from 'commander';

/** An integer flag ≥ lo (and ≤ hi when given); undefined stays undefined. */
export function intFlag(name: string, value: string | undefined, lo = 1, hi = Infinity): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < lo || n > hi) {
    const range = hi === Infinity ? (lo === 1 ? 'a positive integer' : `an integer ≥ ${lo}`) : `an integer in [${lo}, ${hi}]`;
    throw new InvalidArgumentError(`${name} must be ${range}, got '${value}'`);
  }
  return n;
}

/** A commander argument parser for an integer flag in [lo, hi] (keeps the string: callers convert). */
export function intInRange(name: string, lo: number, hi: number): (v: string) => string {
  return (v: string) => {
    intFlag(name, v, lo, hi);
    return v;
  };
}
