import { guidanceIntervalFlag, seedListFlag } from '../src/flags';

test('--guidance-interval reads from,to timesteps and refuses anything else', () => {
  expect(guidanceIntervalFlag(undefined)).toBeUndefined();
  expect(guidanceIntervalFlag('0,600')).toEqual([0, 600]);
  expect(guidanceIntervalFlag(' 100 , 900 ')).toEqual([100, 900]);
  for (const bad of ['600,0', '-5,600', '600', '0,600,900', 'a,b', '']) expect(() => guidanceIntervalFlag(bad)).toThrow(/--guidance-interval must be from,to timesteps/);
});

test('--seeds reads distinct non-negative integers and refuses anything else', () => {
  expect(seedListFlag(undefined)).toBeUndefined();
  expect(seedListFlag('1,2')).toEqual([1, 2]);
  expect(seedListFlag(' 101 , 102 ')).toEqual([101, 102]);
  expect(seedListFlag('0')).toEqual([0]);
  for (const bad of ['', '1,', '1,1', '-1', '1.5', 'a', '1;2']) expect(() => seedListFlag(bad)).toThrow(/--seeds must be distinct non-negative integers/);
});
