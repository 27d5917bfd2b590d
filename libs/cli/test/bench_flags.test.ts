import { guidanceIntervalFlag } from '../src/commands/bench';

test('--guidance-interval reads from,to timesteps and refuses anything else', () => {
  expect(guidanceIntervalFlag(undefined)).toBeUndefined();
  expect(guidanceIntervalFlag('0,600')).toEqual([0, 600]);
  expect(guidanceIntervalFlag(' 100 , 900 ')).toEqual([100, 900]);
  for (const bad of ['600,0', '600', '0,600,900', 'a,b', '']) expect(() => guidanceIntervalFlag(bad)).toThrow(/--guidance-interval must be from,to timesteps/);
});
