import { describe, expect, it } from 'vitest';
import { chooseEngine, formatBytes } from '../../service/stages/engine-choice.ts';

const GiB = 1024 ** 3;
const MAX = 2 * GiB;

describe('chooseEngine', () => {
  it('under auto, runs embedded up to AFLUENTE_EMBEDDED_MAX_BYTES of validated data and Spark above', () => {
    expect(chooseEngine({ configured: 'auto', validatedBytes: 1_258_291, maxEmbeddedBytes: MAX })).toEqual({
      engine: 'embedded',
      reason: 'auto: validated 1.2 MiB ≤ AFLUENTE_EMBEDDED_MAX_BYTES (2 GiB)',
    });
    expect(chooseEngine({ configured: 'auto', validatedBytes: MAX, maxEmbeddedBytes: MAX })).toMatchObject({
      engine: 'embedded',
    });
    expect(chooseEngine({ configured: 'auto', validatedBytes: MAX + 1, maxEmbeddedBytes: MAX })).toEqual({
      engine: 'spark',
      reason: 'auto: validated 2 GiB > AFLUENTE_EMBEDDED_MAX_BYTES (2 GiB)',
    });
    // A threshold of 0 sends every run with data to Spark.
    expect(chooseEngine({ configured: 'auto', validatedBytes: 1, maxEmbeddedBytes: 0 })).toEqual({
      engine: 'spark',
      reason: 'auto: validated 1 B > AFLUENTE_EMBEDDED_MAX_BYTES (0 B)',
    });
  });

  it('takes the source’s engine over auto, whatever the size', () => {
    expect(chooseEngine({ configured: 'spark', validatedBytes: 10, maxEmbeddedBytes: MAX })).toEqual({
      engine: 'spark',
      reason: 'source config engine: spark',
    });
    expect(chooseEngine({ configured: 'embedded', validatedBytes: 5 * MAX, maxEmbeddedBytes: MAX })).toEqual({
      engine: 'embedded',
      reason: 'source config engine: embedded',
    });
  });

  it('takes the run’s requested engine over the source’s; a run asking for auto picks by size', () => {
    expect(
      chooseEngine({
        requested: 'embedded',
        configured: 'spark',
        validatedBytes: 5 * MAX,
        maxEmbeddedBytes: MAX,
      }),
    ).toEqual({ engine: 'embedded', reason: 'requested on the run' });
    expect(
      chooseEngine({ requested: 'spark', configured: 'embedded', validatedBytes: 1, maxEmbeddedBytes: MAX }),
    ).toEqual({ engine: 'spark', reason: 'requested on the run' });
    expect(
      chooseEngine({ requested: 'auto', configured: 'spark', validatedBytes: 2048, maxEmbeddedBytes: MAX }),
    ).toEqual({
      engine: 'embedded',
      reason: 'auto (requested on the run): validated 2 KiB ≤ AFLUENTE_EMBEDDED_MAX_BYTES (2 GiB)',
    });
    expect(
      chooseEngine({ requested: null, configured: 'spark', validatedBytes: 1, maxEmbeddedBytes: MAX }),
    ).toMatchObject({ engine: 'spark', reason: 'source config engine: spark' });
  });
});

describe('formatBytes', () => {
  it('writes binary units with at most one decimal', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(2_147_483_648)).toBe('2 GiB');
    expect(formatBytes(5 * 1024 ** 4)).toBe('5 TiB');
  });
});
