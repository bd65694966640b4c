// A column type for one profiled field, and why, in the words the proposal's comments use.
import type { ColumnType } from '../../contract/source-config.ts';
import type { Profile } from './profile.ts';

export interface TypeGuess {
  type: ColumnType;
  /** Said next to the column when the choice is not obvious from the values. */
  note?: string;
}

/**
 * Numbers with at most this many decimals in every sample read as a fixed-point amount (prices, totals, rates)
 * and become decimal; more decimals (coordinates, measurements) become double.
 */
export const MAX_DECIMAL_SCALE = 4;
/** A decimal's precision unless its samples need more: 18 digits fits a 64-bit integer part plus cents. */
const DECIMAL_PRECISION = 18;

export function guessType(p: Profile): TypeGuess {
  const kinds = p.kinds();
  const only = (...wanted: string[]): boolean => kinds.length > 0 && kinds.every((k) => wanted.includes(k));
  if (kinds.length === 0)
    return { type: 'string', note: 'only null in the sample: string is a guess, check the API docs' };
  if (only('integer')) {
    if (p.unsafeInteger)
      return {
        type: 'decimal(38,0)',
        note: 'integers above 2^53 were seen: decimal(38,0) holds them, but check they arrive exact',
      };
    return { type: 'bigint' };
  }
  if (only('integer', 'number')) {
    if (p.maxScale <= MAX_DECIMAL_SCALE) {
      const precision = Math.min(38, Math.max(DECIMAL_PRECISION, p.maxIntegerDigits + p.maxScale + 2));
      return {
        type: `decimal(${precision},${p.maxScale})`,
        note:
          `at most ${p.maxScale} decimal${p.maxScale === 1 ? '' : 's'} in every sample, like an amount: ` +
          'decimal is exact (double if it is a measurement)',
      };
    }
    const seen = p.maxScale >= 99 ? 'numbers in exponent form' : `up to ${p.maxScale} decimals`;
    return {
      type: 'double',
      note: `${seen} in the sample, more than the ${MAX_DECIMAL_SCALE} of an amount: double`,
    };
  }
  if (only('boolean')) return { type: 'boolean' };
  if (only('string')) {
    const strings = p.strings;
    if (p.dateTimes === strings) return { type: 'timestamp' };
    if (p.dates === strings) return { type: 'date' };
    if (p.localDateTimes === strings)
      return {
        type: 'string',
        note: 'date-times without a time zone: kept as string, since a timestamp needs one',
      };
    if (p.dateTimes + p.dates + p.localDateTimes === strings)
      return { type: 'string', note: 'a mix of dates and date-times: kept as string' };
    return { type: 'string' };
  }
  return {
    type: 'json',
    note: `mixed types in the sample (${kinds.join(', ')}): json keeps each value as it came`,
  };
}
