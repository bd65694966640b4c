// What the sampled records hold, field by field: the JSON types seen, string formats, decimals, whether the
// values were unique (across the sample, or within each array for array elements), and the same for every
// nested object field and array element. tables.ts turns it into tables; nothing here decides a type.
import { isObject } from './records.ts';

// Only the forms the validate stage and the warehouse read back exactly: RFC 3339 with a zone for a timestamp.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
const LOCAL_DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
/** How many distinct sample values a profile keeps, for the comments. */
const SAMPLES = 3;

export class Profile {
  /** Times the field was present (null included). */
  seen = 0;
  nulls = 0;
  integers = 0;
  /** Numbers with a fraction. */
  fractions = 0;
  booleans = 0;
  strings = 0;
  objects = 0;
  arrays = 0;
  dateTimes = 0;
  localDateTimes = 0;
  dates = 0;
  /** Most digits after the point in a number's shortest form; exponent forms count as many. */
  maxScale = 0;
  /** Most digits before the point. */
  maxIntegerDigits = 0;
  /** An integer beyond what a JavaScript number holds exactly was seen. */
  unsafeInteger = false;
  /** Non-null values, as JSON, while they are all distinct within their group; `undefined` after a repeat. */
  private values: Set<string> | undefined = new Set();
  private group = -1;
  /** No value repeated within a group (the whole sample for records, one array for its elements). */
  unique = true;
  /** Some group held two values or more, so `unique` means something. */
  compared = false;
  readonly samples: unknown[] = [];
  /** Object fields, in the order first seen. */
  readonly fields = new Map<string, Profile>();
  /** Array elements, all arrays at this place merged. */
  element: Profile | undefined;
  /** Arrays here that had an element. */
  nonEmptyArrays = 0;

  /** `group` tells arrays apart: values are compared for uniqueness only within the same group. */
  add(value: unknown, group: number, groups: { next: number }): void {
    this.seen++;
    if (value === null) {
      this.nulls++;
      return;
    }
    this.track(value, group);
    if (Array.isArray(value)) {
      this.arrays++;
      if (value.length > 0) this.nonEmptyArrays++;
      this.element ??= new Profile();
      const inner = groups.next++;
      for (const element of value) this.element.add(element, inner, groups);
    } else if (isObject(value)) {
      this.objects++;
      for (const [key, field] of Object.entries(value)) {
        let profile = this.fields.get(key);
        if (profile === undefined) this.fields.set(key, (profile = new Profile()));
        profile.add(field, group, groups);
      }
    } else if (typeof value === 'number') {
      this.number(value);
    } else if (typeof value === 'boolean') {
      this.booleans++;
    } else if (typeof value === 'string') {
      this.strings++;
      if (DATE_TIME.test(value) && !Number.isNaN(Date.parse(value))) this.dateTimes++;
      else if (LOCAL_DATE_TIME.test(value)) this.localDateTimes++;
      else if (DATE.test(value) && !Number.isNaN(Date.parse(value))) this.dates++;
    }
  }

  private number(value: number): void {
    if (Number.isInteger(value)) {
      this.integers++;
      if (!Number.isSafeInteger(value)) this.unsafeInteger = true;
    } else this.fractions++;
    const text = String(Math.abs(value));
    const [whole = '', fraction = ''] = text.split('.');
    if (/e/i.test(text)) this.maxScale = Math.max(this.maxScale, 99);
    else this.maxScale = Math.max(this.maxScale, fraction.length);
    this.maxIntegerDigits = Math.max(this.maxIntegerDigits, whole.replace(/e.*$/i, '').length);
  }

  private track(value: unknown, group: number): void {
    const text = JSON.stringify(value);
    if (this.samples.length < SAMPLES && !this.samples.some((s) => JSON.stringify(s) === text))
      this.samples.push(value);
    if (!this.unique) return;
    if (group !== this.group) {
      // A new group starts afresh; the sample's records are all group 0, so they are never reset.
      this.group = group;
      this.values = new Set();
    }
    if (this.values === undefined) return;
    if (this.values.has(text)) {
      this.unique = false;
      this.values = undefined;
      return;
    }
    if (this.values.size > 0) this.compared = true;
    this.values.add(text);
  }

  /** The JSON kinds seen, nulls aside. */
  kinds(): string[] {
    const kinds: [string, number][] = [
      ['integer', this.integers],
      ['number', this.fractions],
      ['boolean', this.booleans],
      ['string', this.strings],
      ['object', this.objects],
      ['array', this.arrays],
    ];
    return kinds.filter(([, n]) => n > 0).map(([kind]) => kind);
  }
}

/** Profiles a sample's records: the root is the records' object profile. */
export function profileRecords(records: readonly unknown[]): Profile {
  const root = new Profile();
  const groups = { next: 1 };
  for (const record of records) root.add(record, 0, groups);
  return root;
}
