import { DEFAULT_LEARN_SETTINGS, LEARN_SETTING_KINDS, isLearnSettingName, parseLearnSetting, type LearnSettings } from '../src';

test('every learn setting has a text kind that reads its own default back', () => {
  const keys = Object.keys(DEFAULT_LEARN_SETTINGS) as (keyof LearnSettings)[];
  expect(Object.keys(LEARN_SETTING_KINDS).sort()).toEqual([...keys].sort());
  for (const key of keys) {
    const def = DEFAULT_LEARN_SETTINGS[key];
    expect(parseLearnSetting(key, String(def))).toEqual(def);
  }
});

test('values are read by kind, and the wrong kind is refused with what was expected', () => {
  expect(parseLearnSetting('lr', ' 3e-3 ')).toBe(0.003);
  expect(() => parseLearnSetting('lr', 'fast')).toThrow("must be a number, got 'fast'");
  expect(() => parseLearnSetting('steps', '')).toThrow(/must be a number/);
  expect(parseLearnSetting('jointScaleSteps', 'false')).toBe(false);
  expect(() => parseLearnSetting('jointScaleSteps', 'yes')).toThrow(/true or false/);
  expect(parseLearnSetting('featRegEmptyShare', '0.25')).toBe(0.25);
  expect(parseLearnSetting('featRegEmptyShare', 'uniform')).toBe('uniform');
  // A word setting keeps a number-looking value as text: the init word '42' is a word.
  expect(parseLearnSetting('initWord', '42')).toBe('42');
  expect(isLearnSettingName('lr')).toBe(true);
  expect(isLearnSettingName('toString')).toBe(false);
});
