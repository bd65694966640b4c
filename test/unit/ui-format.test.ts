import { describe, expect, it } from 'vitest';
import { elapsed, formatBytes, formatCount, formatDuration, formatRelative } from '../../ui/src/format.ts';

describe('formatDuration', () => {
  it('picks the unit by size', () => {
    expect(formatDuration(0)).toBe('0 ms');
    expect(formatDuration(849.6)).toBe('850 ms');
    expect(formatDuration(1000)).toBe('1.0 s');
    expect(formatDuration(12_345)).toBe('12.3 s');
    expect(formatDuration(59_999)).toBe('59.9 s');
    expect(formatDuration(60_000)).toBe('1 min 00 s');
    expect(formatDuration(245_000)).toBe('4 min 05 s');
    expect(formatDuration(2 * 3600_000 + 3 * 60_000 + 59_000)).toBe('2 h 03 min');
    expect(formatDuration(26 * 3600_000)).toBe('1 d 2 h');
  });

  it('writes a dash for no duration', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(undefined)).toBe('—');
    expect(formatDuration(-5)).toBe('—');
    expect(formatDuration(Number.NaN)).toBe('—');
  });
});

describe('elapsed', () => {
  const now = Date.parse('2025-01-01T00:01:00Z');
  it('runs from start to end, or to now while open', () => {
    expect(elapsed('2025-01-01T00:00:00Z', '2025-01-01T00:00:30Z', now)).toBe(30_000);
    expect(elapsed('2025-01-01T00:00:00Z', null, now)).toBe(60_000);
    expect(elapsed(null, null, now)).toBeNull();
  });
});

describe('counts, sizes, relative times', () => {
  it('formats them', () => {
    expect(formatCount(null)).toBe('—');
    expect(formatCount(0)).toBe('0');
    expect(formatCount(1234567)).toBe('1,234,567');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(12 * 1024 * 1024)).toBe('12 MiB');
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(formatRelative('2025-01-01T00:05:00Z', now)).toBe('in 5 min 00 s');
    expect(formatRelative('2024-12-31T23:59:57Z', now)).toBe('3.0 s ago');
  });
});
